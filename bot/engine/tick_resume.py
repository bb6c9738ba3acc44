"""After a restart, and when a replica dies: the checks of a tick whose process died before
their results (`tick.checks_started`, no result). As with a phase interrupted mid-step
(recovery.py), nothing is repeated silently: the process that now holds the run re-runs them
when the manual step declares that safe (`on_restart: rerun`: a lookup, a log read), audited
`tick.checks_resumed`; otherwise (the default, `ask`) it marks them `tick.checks_interrupted`,
and the checkpoint and a notice say so from that row: a person ticks the step again or
Retries. Ticks whose checks never began are run as any tick's are (tick_checks.py)."""

from __future__ import annotations

import logging

from bot.domain.audit_kinds import AuditKind
from bot.engine.core import Notify
from bot.engine.leasing import Leases
from bot.engine.tick_checks import TickChecks, pending
from bot.store import gates as gate_rows
from bot.store.models import Gate, RunStatus
from bot.store.reads import read_tick_marks
from bot.store.unit import Store
from bot.views import interrupted
from phases.runbook import Runbook

log = logging.getLogger(__name__)


class TickResume:
    def __init__(
        self,
        store: Store,
        runbook: Runbook,
        leases: Leases,
        notify: Notify,
        tick_checks: TickChecks,
    ) -> None:
        self.store, self.runbook, self.notify = store, runbook, notify
        self.replica, self._dead, self._take_lease = leases.replica, leases.dead, leases.take
        self._mark, self.after_tick = tick_checks.mark, tick_checks.after_tick

    def resume_tick_checks(self, run_id: int, old: str | None) -> str:
        """`old`: the replica whose process held the run (None: nobody held it). Returns what
        the recovery report adds after "run #N: waiting at phase P" ("" when nothing)."""
        said: list[str] = []
        stopped: list[str] = []
        epoch: int | None = None
        with self.store.tx() as tx:
            run = tx.lock_run(run_id)
            if (
                run is None
                or run.status != RunStatus.WAITING
                or not self._dead(run.owner, run.lease_until, tx.db_now())
            ):
                return ""
            gate = gate_rows.lock_open(tx, run_id)
            if gate is None or gate.id is None:
                return ""
            gate_id, phase = gate.id, self.runbook.phase(gate.phase_id)
            todo = pending(tx, phase, gate)
            marks = read_tick_marks(tx, run_id, gate_id) if todo else {}
            ready = False
            for item, checks in todo.items():
                mark = marks.get(item)
                if mark is not None and mark.started:  # begun, and its process is gone
                    owner = old or str(mark.data["replica"])
                    cause = "restart" if owner == self.replica else "takeover"
                    step = next(m for m in phase.manual if m.id == item)
                    kind = (
                        AuditKind.TICK_CHECKS_RESUMED
                        if step.on_restart == "rerun"
                        else AuditKind.TICK_CHECKS_INTERRUPTED
                    )
                    self._mark(tx, kind, gate, item, checks, cause=cause, owner=owner)
                    if kind == AuditKind.TICK_CHECKS_RESUMED:
                        said.append(f"{', '.join(checks)} re-run after {_after(cause, owner)}")
                    else:
                        stopped.append(item)
                        said.append(f"{', '.join(checks)} interrupted (tick {item} again or Retry)")
                ready = ready or mark is None or not mark.interrupted
            if ready:
                self._take_lease(tx, run)
                epoch = run.lease_epoch
        if stopped:
            self._tell_interrupted(run_id, gate_id, stopped)
        if said:
            log.warning("run #%s: %s", run_id, "; ".join(said))
            self.notify.run_changed(run_id)
        if said or epoch is not None:  # the checkpoint redrawn; what is ready runs
            self.after_tick(run_id, gate_id, epoch)
        return "".join(f"; {line}" for line in said)

    def _tell_interrupted(self, run_id: int, gate_id: int, items: list[str]) -> None:
        """A notice per interrupted tick, worded from its audit row as the checkpoint is."""
        with self.store.tx() as tx:
            gate = tx.get(Gate, gate_id)
            marks = read_tick_marks(tx, run_id, gate_id)
        if gate is None:
            return
        phase = self.runbook.phase(gate.phase_id)
        for item in items:
            mark = marks[item]
            names = [
                c.name
                for m in phase.manual
                if m.id == item
                for c in m.checks
                if c.id in mark.data["checks"]
            ]
            self.notify.notice(
                run_id,
                f"Run #{run_id}, phase {phase.id}: {', '.join(names)}: {interrupted(mark)}.",
            )


def _after(cause: str, owner: str) -> str:
    return "a restart" if cause == "restart" else f"replica {owner} stopped"


__all__ = ["TickResume"]
