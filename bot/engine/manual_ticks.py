"""Manual steps ticked at an open gate, and entries people add to a run's record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bot.domain import approvals
from bot.domain.approvals import GateFacts
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import NotFound
from bot.engine.core import Decision
from bot.engine.tick_checks import judge, tick_facts
from bot.store import gates as gate_rows
from bot.store import runs as run_rows
from bot.store.models import Gate, GateStatus, ManualTick, Run
from bot.store.unit import Store, Tx
from bot.surface import Actor
from phases.runbook import Runbook
from phases.secrets import Masker


def already(gate: Gate) -> Decision:
    """The answer to a click at a gate decided already: by whom, and when."""
    when = gate.decided_at.astimezone(UTC).strftime("%H:%M:%S UTC") if gate.decided_at else "?"
    verb = {
        GateStatus.APPROVED: "approved",
        GateStatus.ROLLED_BACK: "rolled back",
        GateStatus.RETRIED: "sent to retry",
        GateStatus.CANCELLED: "cancelled",
    }.get(GateStatus(gate.status), gate.status)
    return Decision(
        "already_decided",
        f"already {verb} by {gate.decided_by} at {when}",
        gate.id,
        gate.run_id,
        surface_ref=gate.surface_ref,
    )


def gate_facts(tx: Tx, runbook: Runbook, gate: Gate, run: Run) -> GateFacts:
    """What `approvals.may_decide` asks of a gate, read under its lock."""
    phase = runbook.phase(gate.phase_id)
    # An open gate holds fewer votes than its quorum (the vote that reaches it decides the
    # gate in its own transaction): one of quorum 1 holds none, and is not read (a round trip
    # of most Continue clicks; tests/test_properties.py checks the invariant).
    votes = tuple(gate_rows.voters(tx, gate.id)) if gate.quorum > 1 else ()
    ticked = gate_rows.ticked(tx, gate.id) if phase.manual else set()  # nothing to tick: no read
    return GateFacts(
        environment=run.environment,
        status=GateStatus(gate.status),
        checks_passed=gate.checks_passed,
        dry_run=run.dry_run,
        requested_by=run.requested_by,
        votes=votes,
        unticked=tuple(m.id for m in phase.manual if m.id not in ticked),
        **tick_facts(tx, phase, gate),
        quorum=gate.quorum,
    )


# (tx, run id, gate, item id, actor) -> the lease epoch taken for the gate's tick checks.
ClaimChecks = Callable[[Tx, int, Gate, str, Actor], int | None]


class ManualTicks:
    """`gate_run`: a gate's (run id, environment); `refuse`/`refused`: the engine's audited
    refusals (`Refusals.refuse`, `Refusals.refused` in core.py)."""

    def __init__(
        self,
        store: Store,
        runbook: Runbook,
        masker: Masker,
        now: Callable[[], datetime],
        gate_run: Callable[[int], tuple[int, str] | None],
        refuse: Callable[..., str],
        refused: Callable[..., Decision],
    ) -> None:
        self.store = store
        self.runbook = runbook
        self.masker = masker
        self.now = now
        self.gate_run = gate_run
        self.refuse = refuse
        self.refused = refused

    def add_note(self, run_id: int, actor: Actor, text: str) -> Decision:
        """A line for the record's notes (masked), from an approver of the run's environment."""
        said = self.masker.mask(text)[:500]
        done = f"noted for run #{run_id}'s record"
        return self.add_to_record(run_id, actor, "note", AuditKind.RECORD_NOTE, said, done)

    def add_to_record(
        self, run_id: int, actor: Actor, action: str, kind: AuditKind, said: str, done: str
    ) -> Decision:
        """An entry a person adds to a run's record (a note, a deviation): an approver of the
        run's environment may; anyone else is refused, audited as `action`."""
        with self.store.tx() as tx:
            run = run_rows.get(tx, run_id)
        if run is None:
            raise NotFound(f"no run #{run_id}")
        env = self.runbook.environment(run.environment)
        refusal = approvals.may_tick(run.environment, env, actor)
        if refusal:
            return self.refused(actor, action, refusal, run_id=run_id)
        self.store.record(kind, actor=actor.id, run_id=run_id, data={"text": said})
        return Decision("ticked", done, None, run_id)

    def tick(
        self, gate_id: int, item_id: str, actor: Actor, value: str | None, claim: ClaimChecks
    ) -> tuple[Decision, int | None]:
        """Marks a manual step done, committed when this returns "ticked"; only approvers
        may. `value`: what a step with `value` must be ticked with (tick_checks.py).
        `claim`: takes, in the tick's transaction, the lease for the gate's tick checks
        (`TickChecks.claim_tick_checks`); returned with the Decision (its epoch, or None)."""
        found = self.gate_run(gate_id)
        if found is None:
            return Decision("unknown_gate", f"no gate #{gate_id}"), None
        run_id, env_name = found
        refusal = approvals.may_tick(env_name, self.runbook.environment(env_name), actor)
        if refusal:
            refused = self.refused(
                actor, "tick", refusal, run_id=run_id, gate_id=gate_id, item=item_id
            )
            return refused, None
        with self.store.tx() as tx:
            tx.lock_run(run_id)
            gate = gate_rows.lock(tx, gate_id)
            if gate.status != GateStatus.OPEN:
                return already(gate), None
            items = {m.id for m in self.runbook.phase(gate.phase_id).manual}
            if item_id not in items:
                said = f"phase {gate.phase_id} has no manual step {item_id!r}"
                return Decision("refused", said, gate.id, run_id), None
            if item_id not in gate_rows.ticked(tx, gate.id):
                step = next(m for m in self.runbook.phase(gate.phase_id).manual if m.id == item_id)
                kept, refusal = judge(tx, run_id, gate_id, step, value)
                if refusal:
                    self.refuse(
                        actor, "tick", refusal, run_id=run_id, tx=tx, gate=gate_id, item=item_id
                    )
                    return Decision("refused", refusal, gate_id, run_id), None
                tx.add(ManualTick(gate_id=gate_id, item_id=item_id, actor=actor.id, at=self.now()))
                tx.audit(
                    AuditKind.MANUAL_TICKED,
                    actor=actor.id,
                    run_id=run_id,
                    data={"gate": gate.id, "item": item_id, **kept},
                    at=self.now(),
                )
            epoch = claim(tx, run_id, gate, item_id, actor)  # its checks' lease
        return Decision("ticked", f"{item_id} ticked", gate_id, run_id), epoch


__all__ = ["ManualTicks", "already"]
