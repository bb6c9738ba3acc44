"""Opening a phase's checkpoint (its gate) once its steps are done or it was interrupted,
and handing a phase aborted while it executed over to the rollback."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from bot.domain.audit_kinds import AuditKind
from bot.engine.leasing import Leases
from bot.engine.manual_done import tick_done_by_actions, tick_unless_asked
from bot.store import gates as gate_rows
from bot.store import read_gates
from bot.store import runs as run_rows
from bot.store.models import Gate, PhaseRun, PhaseStatus, RunStatus
from bot.store.unit import Store, Tx
from bot.surface import SYSTEM
from bot.views import GateView
from phases.checks.base import StopRequest
from phases.runbook import PhaseSpec, Runbook
from phases.runner import StepOutcome

log = logging.getLogger(__name__)


class Opening(NamedTuple):
    """What `GateOpening.open` did: the gate it opened (None: nothing to open), whether the
    run rolls back now instead, and, when asked for, the checkpoint as the opening
    transaction wrote it (for the first post, without reading it back)."""

    gate_id: int | None
    rollback_now: bool
    view: GateView | None = None


class GateOpening:
    """`add_step`: records a check result in the caller's transaction (`StepLog.add`);
    `gate_runs`: the engine's cache of a gate's (run id, environment), filled as it opens."""

    def __init__(
        self,
        store: Store,
        runbook: Runbook,
        now: Callable[[], datetime],
        leases: Leases,
        add_step: Callable[[Tx, int, int | None, StepOutcome], None],
        gate_runs: dict[int, tuple[int, str]],
    ) -> None:
        self.store = store
        self.runbook = runbook
        self.now = now
        self.leases = leases
        self.add_step = add_step
        self._gate_runs = gate_runs

    def open(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        passed: bool,
        note: str | None = None,
        *,
        executor: bool = False,
        checks: Sequence[StepOutcome] = (),
        draw: bool = False,
    ) -> Opening:
        """Opens the checkpoint of a phase whose steps are done (or that was interrupted).

        `executor`: the caller is the process that ran the phase; it opens the gate only
        while it still owns the run, so a phase another replica took over is not decided
        twice. `checks`: the phase's check results, recorded (each with its audit row) in
        this transaction, before the gate's own row. `draw`: also return the checkpoint's
        view, read in this transaction after its last write (its steps, ticks; a new gate
        has no votes). Returns the gate id, or None if there is nothing to open (the results
        are then dropped: the phase was taken over), and whether the run rolls back now (it
        was aborted while the phase ran).
        """
        gate_id: int | None = None
        epochs = self.leases.epochs
        rollback_now = False
        released = False
        view: GateView | None = None
        with self.store.tx() as tx:
            # The run row locked, the phase run read with it (one round trip).
            run, pr = run_rows.lock_with_phase(tx, run_id, phase_run_id)
            if pr.status not in (
                PhaseStatus.RUNNING,
                PhaseStatus.INTERRUPTED,
                PhaseStatus.MONITORING,
            ):
                return Opening(None, False)
            if (
                executor
                and pr.status == PhaseStatus.RUNNING
                and (run.owner != self.leases.me or run.lease_epoch != epochs.get(run_id))
            ):
                log.warning(
                    "run #%s: phase %s was taken over (lease epoch %s is not ours, %s); "
                    "not opening its gate",
                    run_id,
                    phase.id,
                    run.lease_epoch,
                    epochs.get(run_id),
                )
                return Opening(None, False)
            if pr.status == PhaseStatus.INTERRUPTED and gate_rows.opened_for(tx, phase_run_id):
                return Opening(None, False)  # opened already (by the replica that took over)
            for outcome in checks:
                self.add_step(tx, run_id, phase_run_id, outcome)
            if run.status == RunStatus.ROLLING_BACK:  # aborted while the phase ran
                tx.apply(pr, "failed", SYSTEM.id)
                rollback_now = True
            else:
                if pr.status == PhaseStatus.RUNNING:
                    tx.apply(pr, "checked", SYSTEM.id)
                elif pr.status == PhaseStatus.MONITORING:
                    tx.apply(pr, "monitoring_done", SYSTEM.id)
                else:  # interrupted: it ends with its gate
                    pr.ended_at = self.now()
                env = self.runbook.environment(run.environment)
                gate = Gate(
                    run_id=run_id,
                    phase_run_id=phase_run_id,
                    phase_id=phase.id,
                    attempt=pr.attempt,
                    checks_passed=passed,
                    note=note,
                    quorum=env.quorum,
                    opened_at=self.now(),
                )
                tx.add(gate)
                tx.apply(run, "gate_opened", SYSTEM.id)  # releases the run's lease
                released = True  # its epoch is forgotten once this commits, not before
                tx.add(pr)
                tx.flush()
                tx.audit(
                    AuditKind.GATE_OPENED,
                    actor=SYSTEM.id,
                    run_id=run_id,
                    data={
                        "gate": gate.id,
                        "phase": phase.id,
                        "attempt": pr.attempt,
                        "checks_passed": passed,
                        "note": note,
                    },
                    at=self.now(),
                )
                assert gate.id is not None
                tick_done_by_actions(tx, run_id, phase_run_id, gate.id, phase, self.now())
                tick_unless_asked(tx, run_id, phase_run_id, gate.id, phase, self.now())
                gate_id = gate.id
                if draw:
                    view = read_gates.view_of(tx, self.runbook, gate, run, pr, fresh=True)
        if released:  # a retried attempt whose commit did not land still holds the epoch
            with self.leases.lock:
                self.leases.epochs.pop(run_id, None)
        if rollback_now:
            return Opening(None, True)
        if gate_id is not None:  # its click finds the gate's run without a read
            with self.leases.lock:
                self._gate_runs[gate_id] = (run_id, run.environment)
        return Opening(gate_id, False, view)

    def stop_for_rollback(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        stop: StopRequest,
        outcomes: Sequence[StepOutcome],
    ) -> dict[str, Any] | None:
        """The run was aborted while this phase executed: its running step has ended now (on
        its own, or stopped); says which in the trail. Returns how it ended (`handover`), for the
        caller to say in the channel and hand over; None: the lease was lost."""
        stopped = handover(phase, stop, outcomes)
        with self.store.tx() as tx:
            if not self.leases.holds(tx, run_id):
                log.warning("run #%s: lease lost; the rollback is another process's", run_id)
                return None
            pr = tx.get(PhaseRun, phase_run_id)
            if pr is not None and pr.status == PhaseStatus.RUNNING:
                tx.apply(pr, "failed", SYSTEM.id)
                tx.audit(
                    AuditKind.PHASE_STOPPED,
                    actor=SYSTEM.id,
                    run_id=run_id,
                    data={"phase": phase.id, "attempt": pr.attempt, **stopped},
                    at=self.now(),
                )
        return stopped


def handover(
    phase: PhaseSpec, stop: StopRequest, outcomes: Sequence[StepOutcome]
) -> dict[str, Any]:
    """How the step that ran when the abort arrived ended (from its own result): finished on
    its own, stopped by SIGTERM, killed after its grace, or left the wait it was in (a step
    polling in this process); None: none was running."""
    step = stop.during
    last = outcomes[-1] if outcomes else None
    if step is None or last is None or last.step.name != step:
        return {"step": None, "how": "between_steps", "seconds": None, "said": None}
    r = last.result
    how = str(r.details.get("stopped") or "finished")
    seconds = r.details.get("stop_seconds")
    if how == "sigterm":
        said = f"*{step}* stopped by SIGTERM after {seconds:.1f} s."
    elif how == "sigkill":
        said = (
            f"*{step}* ignored SIGTERM and was killed (SIGKILL) after its "
            f"{last.step.stop_grace_seconds:g} s grace."
        )
    elif how == "request":  # a step waiting in this process: it left its wait at once
        said = f"*{step}* stopped while it waited (no verdict)."
    else:
        said = f"*{step}* finished on its own ({r.status}: {r.evidence})."
    return {"step": step, "how": how, "seconds": seconds, "said": said}
