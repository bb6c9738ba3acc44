"""The scheduler's part: runs started by hand linked to their schedule; ended ones done."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.models import Run, RunStatus, Schedule, ScheduleStatus
from bot.schedules.common import EARLY_START, STALE_AFTER
from bot.store.claims import claim
from bot.surface import SYSTEM

if TYPE_CHECKING:
    from bot.engine import Engine


class Reconciler:
    """`link` marks a schedule started as a run (`StartGate.link`)."""

    def __init__(self, engine: Engine, link: Callable[[Session, int, int, str, str], bool]) -> None:
        self.engine = engine
        self.link = link

    def reconcile(self, now: datetime | None = None) -> list[str]:
        """Links runs started by hand to their schedule; marks schedules of ended runs done."""
        now = now or self.engine.now()
        done: list[str] = []
        with self.engine.db.session() as s:
            waiting = list(
                s.exec(select(Schedule).where(Schedule.status == ScheduleStatus.SCHEDULED))
            )
            started = list(
                s.exec(select(Schedule).where(Schedule.status == ScheduleStatus.STARTED))
            )
        for sched in waiting:
            assert sched.id is not None
            since = max(sched.start_at - EARLY_START, sched.created_at)
            if since > now:
                continue
            with self.engine.db.session() as s:
                runs = s.exec(
                    select(Run).where(Run.environment == sched.environment).order_by(col(Run.id))
                ).all()
                until = sched.start_at + STALE_AFTER
                match = next(
                    (r for r in runs if not r.dry_run and since <= r.started_at < until),
                    None,
                )
                if (
                    match is not None
                    and match.id is not None
                    and self.link(s, sched.id, match.id, SYSTEM.id, "/cutover start")
                ):
                    done.append(f"schedule #{sched.id}: run #{match.id} started by hand")
        for sched in started:
            with self.engine.db.session() as s:
                run = s.get(Run, sched.run_id) if sched.run_id else None
                if run is None or run.status not in (RunStatus.COMPLETED, RunStatus.ROLLED_BACK):
                    continue
                if claim(
                    s, Schedule, col(Schedule.id) == sched.id, values={}, move=("schedule", "done")
                ):
                    audit.append(
                        s,
                        AuditKind.SCHEDULE_DONE,
                        actor=SYSTEM.id,
                        run_id=run.id,
                        data={"schedule": sched.id, "run": run.id, "outcome": run.status},
                        at=now,
                    )
                    done.append(f"schedule #{sched.id}: done ({run.status})")
        return done
