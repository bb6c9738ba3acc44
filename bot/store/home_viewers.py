"""Who opened the bot's Home tab, and when last (`home_viewer`): their Home is republished
when a run changes (bot.slack.home.HomeRefresher), so a Home left open does not show a run
that has moved on. Kept in the database: every replica, and a restarted bot, knows them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from bot.db import Database
from bot.models import HomeViewer


def opened(db: Database, user: str, team: str, at: datetime) -> None:
    """`user` of `team` opened Home at `at` (one row per person, the latest time kept)."""
    table = HomeViewer.__table__  # type: ignore[attr-defined]
    insert = db.insert(table)
    stmt = insert.values(user_id=user[:40], team_id=team[:40], opened_at=at)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id", "team_id"], set_={"opened_at": stmt.excluded.opened_at}
    )
    with db.session() as s:
        s.connection().execute(stmt)


def recent(db: Database, since: datetime, limit: int) -> list[tuple[str, str]]:
    """(user, team) of the people who opened Home since `since`, the latest first."""
    with db.session() as s:
        rows = s.exec(
            select(HomeViewer.user_id, HomeViewer.team_id)
            .where(col(HomeViewer.opened_at) >= since)
            .order_by(col(HomeViewer.opened_at).desc())
            .limit(limit)
        ).all()
    return [(str(u), str(t)) for u, t in rows]


def where(team: str | None, enterprise: str | None) -> str:
    """The workspace a person opened Home from, as kept in `team_id`: `T…`, or `T…/E…` on
    Enterprise Grid (the enterprise decides what an org-wide `W…` user may see)."""
    return f"{team or ''}/{enterprise}" if enterprise else team or ""


def parse_where(value: str) -> tuple[str, str | None]:
    """(team, enterprise or None) of a `where()` value."""
    team, _, enterprise = value.partition("/")
    return team or enterprise, enterprise or None
