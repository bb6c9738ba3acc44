"""`SurfaceRows`: the rows a chat surface keeps for itself, bound to the database, so the
surface never holds it (issue 19): where it posted the messages it edits later
(bot.store.message_refs) and who opened its Home tab (bot.store.home_viewers). The wiring
(bot/app.py) builds it; a surface sees it as `bot.ports.SurfaceRowsPort`."""

from __future__ import annotations

from datetime import datetime

from bot.store import home_viewers, message_refs
from bot.store.db import Database
from bot.views import Posted


class SurfaceRows:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ message refs

    def posted(self, key: str) -> Posted | None:
        return message_refs.lookup(self.db, key)

    def remember_post(
        self, key: str, ref: str, *, run_id: int | None = None, body: str | None = None
    ) -> str:
        """Keeps `ref` as `key`'s message unless one is kept already; the ref that counts."""
        return message_refs.remember(self.db, key, ref, run_id=run_id, body=body)

    def replace_post(self, key: str, ref: str, *, body: str | None = None) -> None:
        message_refs.replace(self.db, key, ref, body=body)

    # ------------------------------------------------------------------ Home viewers

    def home_opened(self, user: str, team: str, at: datetime) -> None:
        home_viewers.opened(self.db, user, team, at)

    def home_recent(self, since: datetime, limit: int) -> list[tuple[str, str]]:
        return home_viewers.recent(self.db, since, limit)

    def home_drawing_version(self) -> int:
        return home_viewers.drawing_version(self.db)

    def home_shown(self, user: str, team: str) -> tuple[int | None, str | None]:
        return home_viewers.shown(self.db, user, team)

    def home_published(self, user: str, team: str, version: int, view_hash: str | None) -> bool:
        return home_viewers.published(self.db, user, team, version, view_hash)

    def home_forget_hash(self, user: str, team: str, stale: str) -> None:
        home_viewers.forget_hash(self.db, user, team, stale)
