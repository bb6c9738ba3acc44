"""The scheduler's part: runs started by hand linked to their schedule; ended ones done."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from bot.schedules.common import EARLY_START, STALE_AFTER
from bot.store import runs, schedules
from bot.store.models import RunStatus, ScheduleStatus
from bot.store.unit import Tx
from bot.surface import SYSTEM

if TYPE_CHECKING:
    from bot.engine import Engine


class Reconciler:
    """`link` marks a schedule started as a run (`StartGate.link`)."""

    def __init__(self, engine: Engine, link: Callable[[Tx, int, int, str, str], bool]) -> None:
        self.engine = engine
        self.link = link

    def reconcile(self, now: datetime | None = None) -> list[str]:
        """Links runs started by hand to their schedule; marks schedules of ended runs done."""
        now = now or self.engine.now()
        store = self.engine.store
        done: list[str] = []
        with store.tx() as tx:
            waiting = schedules.with_status(tx, ScheduleStatus.SCHEDULED)
            started = schedules.with_status(tx, ScheduleStatus.STARTED)
        for sched in waiting:
            assert sched.id is not None
            since = max(sched.start_at - EARLY_START, sched.created_at)
            if since > now:
                continue
            with store.tx() as tx:
                until = sched.start_at + STALE_AFTER
                match = next(
                    (
                        r
                        for r in schedules.runs_in(tx, sched.environment)
                        if not r.dry_run and since <= r.started_at < until
                    ),
                    None,
                )
                if (
                    match is not None
                    and match.id is not None
                    and self.link(tx, sched.id, match.id, SYSTEM.id, "/cutover start")
                ):
                    done.append(f"schedule #{sched.id}: run #{match.id} started by hand")
        for sched in started:
            assert sched.id is not None
            with store.tx() as tx:
                run = runs.get(tx, sched.run_id) if sched.run_id else None
                if run is None or run.status not in (RunStatus.COMPLETED, RunStatus.ROLLED_BACK):
                    continue
                row = schedules.lock(tx, sched.id)
                if row.status != ScheduleStatus.STARTED:
                    continue  # another replica marked it done first
                tx.apply(
                    row,
                    "done",
                    SYSTEM.id,
                    {"schedule": sched.id, "run": run.id, "outcome": run.status},
                    at=now,
                )
                done.append(f"schedule #{sched.id}: done ({run.status})")
        return done
