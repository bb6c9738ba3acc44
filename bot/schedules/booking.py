"""Booking scheduled cutovers: create one with its notices, cancel it, list them, find one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain import approvals
from bot.domain.audit_kinds import AuditKind
from bot.notices import channel_name, hhmm, when
from bot.schedules.common import (
    EARLY_START,
    EVENTS,
    STALE_AFTER,
    ScheduleError,
    already_scheduled,
    event_key,
)
from bot.store import schedules
from bot.store.models import EventStatus, Schedule, ScheduledEvent, ScheduleStatus
from bot.store.unit import Duplicate
from bot.surface import Actor

if TYPE_CHECKING:
    from bot.engine import Engine


class ScheduleBook:
    """The schedule rows and their notice rows, as people book and cancel them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        env_name: str,
        start_at: datetime,
        actor: Actor,
        *,
        stakeholders: str | None = None,
        channel: str | None = None,
    ) -> Schedule:
        engine = self.engine
        env = engine.environment(env_name)  # unknown environment: RunbookError names the known
        refusal = approvals.may_schedule(env_name, env, actor)
        if refusal:
            engine.refuse(actor, "schedule", refusal, environment=env_name)
            raise ScheduleError(refusal)
        if start_at.tzinfo is None or start_at.utcoffset() is None:
            raise ScheduleError(
                "the start time needs a time zone, e.g. 2026-03-01T14:00Z or 2026-03-01T15:00+01:00"
            )
        start = start_at.astimezone(UTC)
        now = engine.now()
        if start <= now:
            raise ScheduleError(
                f"{when(start)} is in the past (now {when(now)}); pick a later time"
            )
        frozen = engine.frozen(env_name, start)
        if frozen is not None:
            said = f"{frozen.text(env_name)}; pick a time after it. Nothing was scheduled"
            engine.refuse(actor, "schedule", said, environment=env_name, freeze=frozen.freeze.id)
            raise ScheduleError(said)
        run_channel = channel or env.channel
        with engine.store.tx() as tx:
            other = schedules.blocking(tx, env_name, now, STALE_AFTER)
            if other is not None:
                raise ScheduleError(already_scheduled(other))
            sched = Schedule(
                environment=env_name,
                start_at=start,
                stakeholders=stakeholders,
                channel=run_channel,
                created_by=actor.id,
                created_at=now,
            )
            tx.add(sched)
            try:
                tx.flush()
            except Duplicate:  # the unique key (environment, start): booked once
                raise ScheduleError(
                    f"a cutover of {env_name} is already scheduled for {when(start)}"
                ) from None
            assert sched.id is not None
            tx.add(
                *(
                    ScheduledEvent(
                        key=event_key(sched.id, kind),
                        kind=kind,
                        schedule_id=sched.id,
                        due_at=max(start - before, now),  # already past: due at once, not late
                    )
                    for kind, before in EVENTS
                )
            )
            tx.audit(
                AuditKind.SCHEDULE_CREATED,
                actor=actor.id,
                data={
                    "schedule": sched.id,
                    "environment": env_name,
                    "start_at": start.isoformat(),
                    "stakeholders": stakeholders,
                    "channel": run_channel,
                },
                at=now,
            )
        return sched

    def cancel(self, schedule_id: int, actor: Actor) -> str:
        engine = self.engine
        with engine.store.tx() as tx:
            found = schedules.get(tx, schedule_id)
        if found is None:
            raise ScheduleError(f"no scheduled cutover #{schedule_id}; see /cutover schedule list")
        refusal = approvals.may_schedule(
            found.environment, engine.environment(found.environment), actor
        )
        if refusal:  # audited in its own transaction: the refusal row must commit
            engine.refuse(actor, "unschedule", refusal, schedule=schedule_id)
            raise ScheduleError(refusal)
        with engine.store.tx() as tx:
            sched = schedules.lock(tx, schedule_id)
            if sched.status != ScheduleStatus.SCHEDULED:
                extra = f" as run #{sched.run_id}" if sched.run_id else ""
                raise ScheduleError(f"scheduled cutover #{schedule_id} is {sched.status}{extra}")
            # cancelled, cancelled_by and schedule.cancelled: the transition table's move
            tx.apply(
                sched,
                "cancel",
                actor.id,
                {"schedule": schedule_id, "environment": sched.environment},
            )
            schedules.drop_pending(tx, schedule_id)
        return (
            f"Scheduled cutover #{schedule_id} of {sched.environment} at {when(sched.start_at)} "
            f"cancelled by {actor.label}; no more notices will be sent for it."
        )

    def listing(self, include_past: bool = False) -> list[tuple[Schedule, list[ScheduledEvent]]]:
        now = self.engine.now()
        with self.engine.store.tx() as tx:
            rows = schedules.every(tx)
            events = schedules.events_of(tx, [r.id for r in rows])
        out = []
        for r in rows:
            recent = r.start_at > now - timedelta(days=2)
            if include_past or r.status == ScheduleStatus.SCHEDULED or recent:
                out.append((r, [e for e in events if e.schedule_id == r.id]))
        return out

    def list_text(self) -> str:
        rows = self.listing()
        if not rows:
            return "No scheduled cutover. Schedule one: /cutover schedule ENV 2026-03-01T14:00Z"
        lines = ["Scheduled cutovers:"]
        order = {kind: i for i, (kind, _) in enumerate(EVENTS)}
        for sched, events in rows:
            state = str(sched.status) + (f" (run #{sched.run_id})" if sched.run_id else "")
            lines.append(
                f"#{sched.id} {sched.environment} at {when(sched.start_at)} — {state}; run channel "
                f"{channel_name(sched.channel)}, stakeholders "
                f"{channel_name(sched.stakeholders or sched.channel)}; by {sched.created_by}"
            )
            parts = []
            for e in sorted(events, key=lambda e: order.get(e.kind, 99)):
                if e.status == EventStatus.SENT and e.sent_at is not None:
                    parts.append(f"{e.kind} sent {hhmm(e.sent_at)}")
                elif e.status in (EventStatus.PENDING, EventStatus.CLAIMED):
                    parts.append(f"{e.kind} due {hhmm(e.due_at)}")
                else:
                    parts.append(f"{e.kind} {e.status}")
            lines.append("   " + " · ".join(parts))
        return "\n".join(lines)

    def blocking(self, env_name: str) -> Schedule | None:
        """The environment's scheduled cutover that a new one would clash with, if any."""
        with self.engine.store.tx() as tx:
            return schedules.blocking(tx, env_name, self.engine.now(), STALE_AFTER)

    def due_for(self, env_name: str) -> Schedule | None:
        """The environment's scheduled cutover that a run started now would be."""
        now = self.engine.now()
        with self.engine.store.tx() as tx:
            waiting = schedules.waiting_in(tx, env_name)
        for sched in waiting:
            start = sched.start_at
            if start - EARLY_START <= now < start + STALE_AFTER:
                return sched
        return None
