"""Who opened the bot's Home tab, and when last (`home_viewer`): their Home is republished
when a run changes (bot.slack.home.HomeRefresher), so a Home left open does not show a run
that has moved on. Kept in the database: every replica, and a restarted bot, knows them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import col, select

from bot.store.db import Database, db_now
from bot.store.models import HomeViewer


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


def drawing_version(db: Database) -> int:
    """The version of a Home drawing about to be read: now on the database's clock, in
    microseconds. Taken before the reads, so a drawing with a greater version read later."""
    with db.session() as s:
        return int(db_now(s).timestamp() * 1_000_000)


def shown(db: Database, user: str, team: str) -> tuple[int | None, str | None]:
    """(version, Slack's view hash) of the Home drawing last published for `user`."""
    with db.session() as s:
        row = s.exec(
            select(HomeViewer.shown_version, HomeViewer.view_hash).where(
                HomeViewer.user_id == user[:40], HomeViewer.team_id == team[:40]
            )
        ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def published(db: Database, user: str, team: str, version: int, view_hash: str | None) -> bool:
    """Slack took drawing `version` of `user`'s Home (its new hash `view_hash`): kept, unless
    a newer one was recorded meanwhile. False then."""
    stmt = (
        update(HomeViewer)
        .where(
            col(HomeViewer.user_id) == user[:40],
            col(HomeViewer.team_id) == team[:40],
            or_(col(HomeViewer.shown_version).is_(None), col(HomeViewer.shown_version) < version),
        )
        .values(shown_version=version, view_hash=(view_hash or None) and view_hash[:100])
    )
    with db.session() as s:
        return bool(s.connection().execute(stmt).rowcount)


def forget_hash(db: Database, user: str, team: str, stale: str) -> None:
    """Slack's hash of `user`'s Home is not `stale`, the one kept (hash_conflict): unless a
    newer one was kept meanwhile, the next publish goes without one (the version and the
    turn still guard it), so a hash that went stale never blocks Home for good."""
    stmt = (
        update(HomeViewer)
        .where(
            col(HomeViewer.user_id) == user[:40],
            col(HomeViewer.team_id) == team[:40],
            col(HomeViewer.view_hash) == stale,
        )
        .values(view_hash=None)
    )
    with db.session() as s:
        s.connection().execute(stmt)


def where(team: str | None, enterprise: str | None) -> str:
    """The workspace a person opened Home from, as kept in `team_id`: `T…`, or `T…/E…` on
    Enterprise Grid (the enterprise decides what an org-wide `W…` user may see)."""
    return f"{team or ''}/{enterprise}" if enterprise else team or ""


def parse_where(value: str) -> tuple[str, str | None]:
    """(team, enterprise or None) of a `where()` value."""
    team, _, enterprise = value.partition("/")
    return team or enterprise, enterprise or None
