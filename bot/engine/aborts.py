"""Aborting an environment's active run from wherever it stands: cancelled when no action
changed anything yet, else rolled back (at its open gate, or once its executing phase ends).

One transaction, run row then gate row: an abort racing a click either decides the open gate
itself or finds the gate decided and stops the phase that followed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.domain import approvals
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.states import DecisionKind
from bot.engine.core import Decision
from bot.store import gates as gate_rows
from bot.store import runs as run_rows
from bot.store import steps as step_rows
from bot.store.models import Gate, PhaseRun, Run, RunStatus
from bot.store.unit import Store, Tx
from bot.surface import Actor
from phases.runbook import Runbook
from phases.secrets import Masker

# The gate's Rollback decision in the caller's transaction (`Gates._apply`).
RollbackAtGate = Callable[[Tx, Run, Gate, PhaseRun, Actor, DecisionKind, str], tuple[Decision, Any]]


class Aborts:
    def __init__(
        self,
        store: Store,
        runbook: Runbook,
        masker: Masker,
        now: Callable[[], datetime],
        refused: Callable[..., Decision],
        rollback_at_gate: RollbackAtGate,
    ) -> None:
        self.store = store
        self.runbook = runbook
        self.masker = masker
        self.now = now
        self.refused = refused
        self.rollback_at_gate = rollback_at_gate

    def abort(
        self, env_name: str, actor: Actor, reason: str
    ) -> tuple[Decision, Gate | None, int | None, bool]:
        """Commits the abort; returns its Decision, the gate it decided (if open), the run,
        and whether the run now rolls back (its rollback is for the caller to start)."""
        env = self.runbook.environment(env_name)
        if not reason.strip():
            raise InvalidInput("say why: --reason is required")
        masked = self.masker.untrusted(reason)
        refusal = approvals.may_abort(env_name, env, actor)
        if refusal:
            with self.store.tx() as tx:
                active = run_rows.active_id(tx, env_name)
            refused = self.refused(actor, "abort", refusal, run_id=active, environment=env_name)
            return refused, None, None, False
        with self.store.tx() as tx:
            run = run_rows.lock_active(tx, env_name)
            if run is None:
                raise NotFound(f"no active run for {env_name}")
            assert run.id is not None
            if run.status == RunStatus.ROLLING_BACK:
                said = f"run #{run.id} is already rolling back"
                return Decision("already_decided", said, None, run.id), None, None, False
            gate = gate_rows.lock_open(tx, run.id)
            now = self.now()
            if not self._changed_anything(tx, run):
                return self._cancel(tx, run, gate, actor, masked, now), gate, run.id, False
            if gate is not None:
                pr = tx.get(PhaseRun, gate.phase_run_id)
                assert pr is not None
                result, _ = self.rollback_at_gate(
                    tx, run, gate, pr, actor, DecisionKind.ROLLBACK, f"aborted: {reason}"
                )
                tx.add(gate, pr, run)
                return result, gate, run.id, True
            # The gate was decided first (or a phase is executing): its running step is
            # stopped, then it hands over to the rollback (execute_rollback waits).
            run.rolled_back_by = actor.id
            run.rollback_reason = f"aborted: {masked}"
            tx.apply(run, "aborted", actor.id, {"reason": masked}, at=now)
            result = Decision(
                "rolled_back",
                f"run #{run.id} aborted by {actor.label} while phase {run.phase_index + 1} "
                "was executing (its gate had been decided first); its running step is "
                "stopped, and the run rolls back once it has ended",
                None,
                run.id,
            )
            return result, None, run.id, True

    def _changed_anything(self, tx: Tx, run: Run) -> bool:
        """True once any action may have changed the target: a dry run never does; a real
        run has once an action began (its phase's `began_at`: even one killed before its
        result) or ran (not skipped), or while a phase is between monitoring rounds. A phase
        claimed but none of whose actions began (its checks running, or its thread not yet
        started) has changed nothing: the run is cancelled, and that phase with it."""
        if run.dry_run:
            return False
        assert run.id is not None
        return run_rows.phase_began(tx, run.id) or step_rows.any_action_ran(tx, run.id)

    def _cancel(
        self, tx: Tx, run: Run, gate: Gate | None, actor: Actor, reason: str, now: datetime
    ) -> Decision:
        if gate is not None:
            tx.apply(gate, "cancel", actor.id, {"decision": "cancel", "reason": reason}, at=now)
            pr = tx.get(PhaseRun, gate.phase_run_id)
            if pr is not None:
                tx.apply(pr, "cancelled", actor.id, at=now)
        running = run_rows.running_phase(tx, run.id or 0)
        if running is not None:  # claimed, not begun: its thread stops at its next look
            tx.apply(running, "cancelled", actor.id, at=now)
        run.rolled_back_by, run.rollback_reason = actor.id, f"cancelled: {reason}"
        tx.apply(
            run,
            "cancelled",
            actor.id,
            {"reason": reason, "rollback": "not needed: no action had run"},
            at=now,
        )
        return Decision(
            "cancelled",
            f"run #{run.id} cancelled by {actor.label}: no action had changed anything, so no "
            "rollback steps were run",
            gate.id if gate is not None else None,
            run.id,
        )
