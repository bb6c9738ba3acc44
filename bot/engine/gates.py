"""Deciding gates: votes, Retry, Rollback (`Gates`); manual ticks, record entries, abort and
cancel (`Interventions`).

Locks are always taken in one order, run row → gate row → audit head: an abort racing a click
either decides the open gate itself or finds it decided and stops the phase that followed.
A stranger's click is refused before any row is locked."""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot import metrics
from bot.domain import approvals, states
from bot.domain.audit_kinds import AuditKind
from bot.domain.states import DecisionKind
from bot.engine.aborts import Aborts
from bot.engine.core import Decision, DecisionName, Notify, Refusals
from bot.engine.manual_ticks import ManualTicks, already, gate_facts
from bot.engine.phase_claim import Handoff, PhaseClaim
from bot.engine.tick_checks import TickChecks
from bot.store import gates as gate_rows
from bot.store import runs as run_rows
from bot.store.models import Gate, GateStatus, PhaseRun, Run, RunStatus, Vote
from bot.store.unit import Store, Tx
from bot.surface import Actor
from phases.runbook import Runbook
from phases.secrets import Masker

log = logging.getLogger(__name__)

_GATE_TRIGGER = {
    DecisionKind.CONTINUE: "approve",
    DecisionKind.ROLLBACK: "rollback",
    DecisionKind.RETRY: "retry",
}


@dataclass(frozen=True)
class _Passed:
    """What an approval tells the stakeholders, known inside the decision's transaction."""

    environment: str
    phase_id: str
    completed: bool


def observe_wait(tx: Tx | Any, gate: Gate, outcome: str, now: datetime) -> None:
    """The gate's wait, from opening to this decision, for /metrics: counted once the
    decision commits (no extra query; a failed commit counts nothing)."""
    if gate.opened_at is None:
        return
    wait = (now - gate.opened_at).total_seconds()
    Tx.of(tx, lambda: now).after_commit(lambda: metrics.observe_gate_wait(outcome, wait))


class Gates:
    def __init__(
        self,
        store: Store,
        runbook: Runbook,
        masker: Masker,
        now: Callable[[], datetime],
        notify: Notify,
        spawn: Callable[..., None],
        refusals: Refusals,
        feed: Callable[[int, str], None],
        complete: Callable[[Tx, Run], None],
        advance: Callable[..., None],
        execute_rollback: Callable[[int], None],
        run_ended: Callable[[int], None],
        gate_runs: dict[int, tuple[int, str]],
        lock: threading.Lock,
        claims: PhaseClaim,
    ) -> None:
        """`gate_runs`: (run id, environment) of the gates known, shared with GateOpening.
        `claims`: a Continue or a Retry claims the next phase in its own transaction."""
        self.store, self.runbook, self.environment = store, runbook, runbook.environment
        self.masker, self.now, self.notify, self.spawn = masker, now, notify, spawn
        self.refused = refusals.refused
        self.feed, self._complete = feed, complete
        self.advance, self.execute_rollback, self.run_ended = advance, execute_rollback, run_ended
        self._gate_runs, self._threads_lock = gate_runs, lock
        self.claims = claims

    @staticmethod
    def lock_gate(tx: Tx | Any, run_id: int, gate_id: int) -> tuple[Run, Gate, PhaseRun]:
        """Locks the run, then its gate (`Tx.lock_gate`: every decision at a gate takes its
        locks in this order)."""
        return Tx.of(tx, lambda: datetime.now(UTC)).lock_gate(run_id, gate_id)

    def decide(
        self,
        gate_id: int,
        actor: Actor,
        decision: DecisionName,
        reason: str | None = None,
        *,
        attempt: int | None = None,
    ) -> Decision:
        """Records one click. Permission is checked here, when the click arrives. `reason`:
        why, for a rollback; an optional comment, for a continue (kept with the vote).
        `attempt`: the phase attempt the clicked message shows; another one is out of date
        (checked under the gate's lock, with the decision's one read of the gate)."""
        result, spawn, passed = self._decide(
            gate_id, actor, DecisionKind(decision), reason, attempt
        )
        if spawn is not None and result.run_id is not None:
            self.spawn(spawn, result.run_id)  # the next phase first: redraws may wait on Slack
        if result.outcome == "vote_recorded" and result.gate_id is not None:
            self.notify.gate_changed(result.gate_id)  # "1/2 approved by …", live
        elif result.changed and result.gate_id is not None and result.run_id is not None:
            self.notify.gate_changed(result.gate_id)
            self.notify.run_changed(result.run_id)
        if passed is not None and result.run_id is not None:
            self._feed_progress(result.run_id, passed)
            if passed.completed:
                self.run_ended(result.run_id)
        return result

    def _feed_progress(self, run_id: int, passed: _Passed) -> None:
        """Tells the stakeholders (from what the decision knew: no read); the decision is
        committed already, so this never raises."""
        try:
            index = next(i for i, p in enumerate(self.runbook.phases) if p.id == passed.phase_id)
        except StopIteration:
            return
        phase = self.runbook.phases[index]
        self.feed(
            run_id,
            f"✅ {passed.environment}: Phase {self.runbook.phase_number(index)} ({phase.name}) "
            f"passed (run #{run_id}).",
        )
        # How the run ended is told with its record (bot.record_feed), from the criteria the
        # record judges: never "completed" past a ❌ criterion.

    def gate_run(self, gate_id: int) -> tuple[int, str] | None:
        """(run id, environment) of a gate; no read once known (see `_gate_run`)."""
        return self._gate_run(gate_id)

    def _gate_run(self, gate_id: int) -> tuple[int, str] | None:
        """(run id, environment) of a gate, read without a lock: the locks come in order.
        Kept once read: a gate never moves to another run, a run to another environment."""
        with self._threads_lock:
            known = self._gate_runs.get(gate_id)
        if known is not None:
            return known
        with self.store.tx() as tx:
            row = run_rows.gate_of(tx, gate_id)
        if row is None:
            return None
        with self._threads_lock:
            if len(self._gate_runs) > 10_000:
                self._gate_runs.clear()
            self._gate_runs[gate_id] = (row[0], row[1])
        return row[0], row[1]

    def _decide(
        self,
        gate_id: int,
        actor: Actor,
        decision: DecisionKind,
        reason: str | None,
        attempt: int | None = None,
    ) -> tuple[Decision, Callable[[int], None] | None, _Passed | None]:
        found = self._gate_run(gate_id)
        if found is None:
            unknown = Decision("unknown_gate", f"no gate #{gate_id}; the message is out of date")
            return unknown, None, None
        run_id, env_name = found
        env = self.environment(env_name)
        if not approvals.is_approver(env, actor):
            # Refused before any row lock: a stranger's clicks never queue behind the gate.
            reason_text = f"you are not an approver for {env_name}; nothing was changed"
            refused = self.refused(
                actor, str(decision), reason_text, run_id=run_id, gate_id=gate_id
            )
            return refused, None, None
        handoff: Handoff | None = None
        try:
            with self.store.tx() as tx:
                run, gate, pr = tx.lock_gate(run_id, gate_id)
                if attempt is not None and gate.attempt != attempt:
                    said = (
                        f"gate #{gate.id} is at attempt {gate.attempt}; the message is out of date"
                    )
                    stale = Decision("unknown_gate", said, gate.id, run.id)
                    return stale, None, None
                if gate.status != GateStatus.OPEN:
                    return already(gate), None, None
                facts = gate_facts(tx, self.runbook, gate, run)
                refusal = approvals.may_decide(env, actor, decision, facts)
                if refusal is None and not states.can(gate, _GATE_TRIGGER[decision]):
                    refusal = f"{decision} is not possible at this gate now"
                if refusal:
                    refused = self.refused(
                        actor,
                        str(decision),
                        refusal,
                        run_id=run.id,
                        gate_id=gate.id,
                        tx=tx,
                        surface_ref=gate.surface_ref,
                        phase=gate.phase_id,
                    )
                    return refused, None, None
                assert run.id is not None
                result, spawn = self._apply(tx, run, gate, pr, actor, decision, reason, facts.votes)
                result = dataclasses.replace(
                    result, quorum=gate.quorum, surface_ref=gate.surface_ref
                )
                tx.add(gate, pr, run)
                if spawn is self.advance:
                    # The next phase is claimed in this transaction (one commit for both):
                    # its thread starts with the claim made.
                    handoff = self.claims.claim_in(
                        tx, run, moved_on=decision == DecisionKind.CONTINUE
                    )
                passed = (
                    _Passed(run.environment, gate.phase_id, run.status == RunStatus.COMPLETED)
                    if result.outcome == "approved"
                    else None
                )
        except BaseException as exc:
            pending = self.claims.failed(handoff, exc) if handoff is not None else None
            if pending is not None:  # its COMMIT may have landed: the phase's thread finds out
                self.spawn(self.advance, run_id, pending)
            raise
        if handoff is not None:
            self.claims.committed()
            spawn = functools.partial(self.advance, handoff=handoff)
        return result, spawn, passed

    def _apply(
        self,
        tx: Tx,
        run: Run,
        gate: Gate,
        pr: PhaseRun,
        actor: Actor,
        decision: DecisionKind,
        reason: str | None,
        voted: tuple[str, ...] | None = None,
    ) -> tuple[Decision, Callable[[int], None] | None]:
        """The decision's state changes, inside the caller's transaction (rows locked).
        `voted`: the gate's votes read under its lock, if the caller has them already."""
        now = self.now()
        assert run.id is not None

        if decision == DecisionKind.ROLLBACK:
            # A reason is typed by a person: it may quote a secret, and is kept masked.
            said = self.masker.untrusted(reason or "") or f"rolled back at phase {gate.phase_id}"
            tx.apply(gate, "rollback", actor.id, {"decision": "rollback", "reason": said}, at=now)
            tx.apply(pr, "failed", actor.id, at=now)
            tx.apply(run, "rolled_back_at_gate", actor.id, at=now)
            run.rolled_back_by, run.rollback_reason = actor.id, said
            observe_wait(tx, gate, "rolled_back", now)
            return (
                Decision("rolled_back", f"rolled back by {actor.label}", gate.id, run.id),
                self.execute_rollback,
            )
        if decision == DecisionKind.RETRY:
            tx.apply(gate, "retry", actor.id, {"decision": "retry"}, at=now)
            tx.apply(pr, "retried", actor.id, at=now)
            tx.apply(run, "retried", actor.id, at=now)
            observe_wait(tx, gate, "retried", now)
            return (
                Decision("retried", f"phase re-run requested by {actor.label}", gate.id, run.id),
                self.advance,
            )
        assert gate.id is not None
        tx.add(Vote(gate_id=gate.id, actor=actor.id, at=now))
        # The gate row is locked: no other vote can land meanwhile, so the votes are the ones
        # read under the lock and this one (flushed with the audit row, in this transaction).
        votes = (
            [*voted, actor.id] if voted is not None else [*gate_rows.voters(tx, gate.id), actor.id]
        )
        # Continue's optional comment (typed by a person: masked), kept with the vote.
        comment = self.masker.untrusted(reason or "").strip()[:500]
        tx.audit(
            AuditKind.GATE_VOTE,
            actor=actor.id,
            run_id=run.id,
            data={
                "gate": gate.id,
                "phase": gate.phase_id,
                "votes": len(votes),
                "quorum": gate.quorum,
                **({"comment": comment} if comment else {}),
            },
            at=now,
        )
        if len(votes) < gate.quorum:
            return (
                Decision("vote_recorded", f"{len(votes)}/{gate.quorum} approved", gate.id, run.id),
                None,
            )
        tx.apply(
            gate,
            "approve",
            actor.id,
            {"decision": "continue", "approvers": votes},
            at=now,
            decided_by=",".join(votes),
        )
        tx.apply(pr, "approved", actor.id, at=now)
        tx.apply(run, "approved", actor.id, at=now)
        run.phase_index += 1
        observe_wait(tx, gate, "approved", now)
        if run.phase_index >= len(self.runbook.phases):
            self._complete(tx, run)
        return (
            Decision("approved", f"approved by {', '.join(votes)}", gate.id, run.id),
            self.advance,
        )


class Interventions:
    """What people do besides deciding a gate: tick a manual step (its checks run by
    `TickChecks`), add to a run's record, abort; and the chat messages of runs and gates."""

    def __init__(
        self,
        store: Store,
        notify: Notify,
        spawn: Callable[..., None],
        ticks: ManualTicks,
        aborts: Aborts,
        tick_checks: TickChecks,
        execute_rollback: Callable[[int], None],
        run_ended: Callable[[int], None],
    ) -> None:
        self.store, self.notify, self.spawn = store, notify, spawn
        self.ticks, self.aborts = ticks, aborts  # manual_ticks.py, aborts.py
        self.claim_tick_checks = tick_checks.claim_tick_checks
        self.after_tick = tick_checks.after_tick
        self.execute_rollback, self.run_ended = execute_rollback, run_ended

    def add_note(self, run_id: int, actor: Actor, text: str) -> Decision:
        """A line for the record's notes (masked), from an approver of the run's environment."""
        return self.ticks.add_note(run_id, actor, text)

    def add_to_record(
        self, run_id: int, actor: Actor, action: str, kind: AuditKind, said: str, done: str
    ) -> Decision:
        """An entry a person adds to a run's record (a note, a deviation)."""
        return self.ticks.add_to_record(run_id, actor, action, kind, said, done)

    def tick(self, gate_id: int, item_id: str, actor: Actor, value: str | None = None) -> Decision:
        """Marks a manual step (phase 7's browser tests) done; only approvers may. `value`:
        what a step with `value` must be ticked with (bot/engine/tick_checks.py)."""
        result, epoch = self.ticks.tick(gate_id, item_id, actor, value, self.claim_tick_checks)
        if result.outcome == "ticked" and result.run_id is not None:
            self.after_tick(result.run_id, gate_id, epoch)
        return result

    def abort(self, env_name: str, actor: Actor, reason: str) -> Decision:
        """Ends the environment's active run from wherever it stands. Final (aborts.py)."""
        result, gate, run_id, rolls_back = self.aborts.abort(env_name, actor, reason)
        if run_id is None:
            return result  # refused, or rolling back already: nothing changed
        if gate is not None and gate.id is not None:
            self.notify.gate_changed(gate.id)
        self.notify.run_changed(run_id)
        if rolls_back:
            self.spawn(self.execute_rollback, run_id)
        elif result.outcome == "cancelled":
            self.run_ended(run_id)
        return result

    def set_surface_ref(
        self,
        ref: str | None,
        *,
        run_id: int | None = None,
        gate_id: int | None = None,
        replacing: str | None = None,
    ) -> str:
        """Records the chat message of a run or gate once; returns the ref that won.

        A conditional UPDATE (only where none is set yet) keeps two threads that
        posted at once from both owning the message: the loser updates the winner's.
        `replacing`: the message was lost (deleted in the chat): forget it, so the next
        redraw posts it again; only if it is still the recorded one.
        """
        if run_id is None and gate_id is None:
            raise ValueError("set_surface_ref needs run_id or gate_id")
        with self.store.tx() as tx:
            return gate_rows.set_surface_ref(
                tx, ref, run_id=run_id, gate_id=gate_id, replacing=replacing
            )
