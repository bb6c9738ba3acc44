"""Claim, post, mark sent: each due `scheduled_event` goes out once, with its audit row."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.domain.audit_kinds import AuditKind
from bot.domain.states import EventStatus
from bot.store import scheduled_events
from bot.surface import SYSTEM

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.store.scheduled_events import ScheduledEvent
    from bot.store.unit import Store

log = logging.getLogger("bot.scheduler")  # the package's one logger: its name is in log lines


@dataclass(frozen=True)
class Posted:
    status: EventStatus  # SENT or SKIPPED
    channel: str | None = None
    reason: str | None = None


class Delivery:
    """Delivers due events: `post` says what one event posted (or why it was skipped)."""

    def __init__(
        self,
        engine: Engine,
        post: Callable[[ScheduledEvent, datetime, bool], Posted],
        *,
        me: str,
        lease: timedelta,
        grace: timedelta,
        max_attempts: int,
    ) -> None:
        self.engine = engine
        self.post = post
        self.me = me
        self.lease = lease
        self.grace = grace
        self.max_attempts = max_attempts

    @property
    def store(self) -> Store:
        return self.engine.store

    def deliver_due(self, now: datetime) -> list[str]:
        with self.store.tx() as tx:
            rows = scheduled_events.due(tx)
        done: list[str] = []
        for row in rows:
            if row.due_at <= now:
                done += self._deliver(row, now)
        return done

    def _deliver(self, row: ScheduledEvent, now: datetime) -> list[str]:
        """claim → post → mark sent (or released for a retry when the post failed)."""
        reclaim = row.status == EventStatus.CLAIMED
        if reclaim and row.claimed_at is not None and now - row.claimed_at < self.lease:
            return []  # being posted right now by whoever claimed it
        attempt = row.attempts + 1
        with self.store.tx() as tx:
            if not scheduled_events.claim(tx, row, now, self.me):
                return []  # another process claimed it first
            if reclaim:
                tx.audit(
                    AuditKind.NOTICE_RECLAIMED,
                    actor=SYSTEM.id,
                    run_id=row.run_id,
                    data={
                        "event": row.key,
                        "kind": row.kind,
                        "previous": row.claimed_by,
                        "claimed_at": row.claimed_at.isoformat() if row.claimed_at else None,
                    },
                    at=now,
                )
        try:
            posted = self.post(row, now, reclaim)
        except Exception as exc:
            error = self.engine.masker.untrusted(f"{type(exc).__name__}: {exc}")[:300]
            final = attempt >= self.max_attempts
            log.warning("posting %s failed (attempt %s): %s", row.key, attempt, error)
            with self.store.tx() as tx:
                scheduled_events.release(tx, row.id, attempt, error, final=final)
                tx.audit(
                    AuditKind.NOTICE_FAILED,
                    actor=SYSTEM.id,
                    run_id=row.run_id,
                    data={
                        "event": row.key,
                        "kind": row.kind,
                        "attempt": attempt,
                        "error": error,
                        "final": final,
                    },
                    at=now,
                )
            return [f"{row.key}: failed ({error})"]
        late_s = int((now - row.due_at).total_seconds())
        late = posted.status == EventStatus.SENT and late_s > self.grace.total_seconds()
        with self.store.tx() as tx:
            if not scheduled_events.finish(
                tx,
                row.id,
                attempt,
                now,
                sent=posted.status == EventStatus.SENT,
                late_seconds=late_s if late else None,
            ):
                log.warning("%s: the claim expired while posting; it may be posted twice", row.key)
            data: dict[str, Any] = {
                "event": row.key,
                "kind": row.kind,
                "schedule": row.schedule_id,
                "gate": row.gate_id,
                "due_at": row.due_at.isoformat(),
                "attempt": attempt,
            }
            if posted.status == EventStatus.SENT:
                data.update(channel=posted.channel, late=late, repeat=reclaim)
                if late:
                    data["late_seconds"] = late_s
            else:
                data["reason"] = posted.reason
            tx.audit(
                AuditKind.NOTICE_SENT
                if posted.status == EventStatus.SENT
                else AuditKind.NOTICE_SKIPPED,
                actor=SYSTEM.id,
                run_id=row.run_id,
                data=data,
                at=now,
            )
        what = "sent late" if late else str(posted.status)
        return [f"{row.key}: {what}"]
