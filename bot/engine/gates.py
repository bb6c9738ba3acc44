"""Deciding gates: votes, Retry, Rollback, manual ticks, abort and cancel.

Locks are always taken in one order, run row → gate row → audit head: an abort racing a click
either decides the open gate itself or finds it decided and stops the phase that followed.
A stranger's click is refused before any row is locked."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot import metrics
from bot.domain import approvals, states
from bot.domain.approvals import GateFacts
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.states import DecisionKind
from bot.engine.core import Decision, DecisionName
from bot.engine.tick_checks import TickChecks, judge, tick_facts
from bot.models import Gate, GateStatus, ManualTick, PhaseRun, Run, RunStatus, Vote
from bot.store import gates as gate_rows
from bot.store import runs as run_rows
from bot.store import steps as step_rows
from bot.store.unit import Tx, session_of
from bot.surface import Actor

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


class Gates(TickChecks):
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

    @staticmethod
    def _observe_wait(tx: Tx | Any, gate: Gate, outcome: str, now: datetime) -> None:
        """The gate's wait, from opening to this decision, for /metrics: counted once the
        decision commits (no extra query; a failed commit counts nothing)."""
        if gate.opened_at is None:
            return
        wait = (now - gate.opened_at).total_seconds()
        Tx.of(tx, lambda: now).after_commit(lambda: metrics.observe_gate_wait(outcome, wait))

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
        with self.store.tx() as tx:
            run, gate, pr = tx.lock_gate(run_id, gate_id)
            if attempt is not None and gate.attempt != attempt:
                said = f"gate #{gate.id} is at attempt {gate.attempt}; the message is out of date"
                stale = Decision("unknown_gate", said, gate.id, run.id)
                return stale, None, None
            if gate.status != GateStatus.OPEN:
                return self._already(gate), None, None
            facts = self._facts(tx, gate, run)
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
            result = dataclasses.replace(result, quorum=gate.quorum, surface_ref=gate.surface_ref)
            tx.add(gate, pr, run)
            passed = (
                _Passed(run.environment, gate.phase_id, run.status == RunStatus.COMPLETED)
                if result.outcome == "approved"
                else None
            )
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
            self._observe_wait(tx, gate, "rolled_back", now)
            return (
                Decision("rolled_back", f"rolled back by {actor.label}", gate.id, run.id),
                self.execute_rollback,
            )
        if decision == DecisionKind.RETRY:
            tx.apply(gate, "retry", actor.id, {"decision": "retry"}, at=now)
            tx.apply(pr, "retried", actor.id, at=now)
            tx.apply(run, "retried", actor.id, at=now)
            self._observe_wait(tx, gate, "retried", now)
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
        self._observe_wait(tx, gate, "approved", now)
        if run.phase_index >= len(self.runbook.phases):
            self._complete(tx, run)
        return (
            Decision("approved", f"approved by {', '.join(votes)}", gate.id, run.id),
            self.advance,
        )

    def _facts(self, within: Tx | Any, gate: Gate, run: Run) -> GateFacts:
        tx = Tx.of(within, self.now)
        return GateFacts(
            environment=run.environment,
            status=GateStatus(gate.status),
            checks_passed=gate.checks_passed,
            dry_run=run.dry_run,
            requested_by=run.requested_by,
            votes=tuple(gate_rows.voters(tx, gate.id)),
            unticked=tuple(self._unticked(tx, gate)),
            **tick_facts(session_of(tx), self.runbook.phase(gate.phase_id), gate),
            quorum=gate.quorum,
        )

    def _already(self, gate: Gate) -> Decision:
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

    def _unticked(self, tx: Tx, gate: Gate) -> list[str]:
        phase = self.runbook.phase(gate.phase_id)
        if not phase.manual:
            return []  # nothing to tick: no read
        ticked = gate_rows.ticked(tx, gate.id)
        return [m.id for m in phase.manual if m.id not in ticked]

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
        refusal = approvals.may_tick(run.environment, self.environment(run.environment), actor)
        if refusal:
            return self.refused(actor, action, refusal, run_id=run_id)
        self.store.record(kind, actor=actor.id, run_id=run_id, data={"text": said})
        return Decision("ticked", done, None, run_id)

    def tick(self, gate_id: int, item_id: str, actor: Actor, value: str | None = None) -> Decision:
        """Marks a manual step (phase 7's browser tests) done; only approvers may. `value`:
        what a step with `value` must be ticked with (bot/engine/tick_checks.py)."""
        found = self._gate_run(gate_id)
        if found is None:
            return Decision("unknown_gate", f"no gate #{gate_id}")
        run_id, env_name = found
        refusal = approvals.may_tick(env_name, self.environment(env_name), actor)
        if refusal:
            return self.refused(
                actor, "tick", refusal, run_id=run_id, gate_id=gate_id, item=item_id
            )
        with self.store.tx() as tx:
            tx.lock_run(run_id)
            gate = gate_rows.lock(tx, gate_id)
            if gate.status != GateStatus.OPEN:
                return self._already(gate)
            items = {m.id for m in self.runbook.phase(gate.phase_id).manual}
            if item_id not in items:
                return Decision(
                    "refused",
                    f"phase {gate.phase_id} has no manual step {item_id!r}",
                    gate.id,
                    run_id,
                )
            if item_id not in gate_rows.ticked(tx, gate.id):
                step = next(m for m in self.runbook.phase(gate.phase_id).manual if m.id == item_id)
                kept, refusal = judge(session_of(tx), run_id, gate_id, step, value)
                if refusal:
                    self.refuse(
                        actor, "tick", refusal, run_id=run_id, tx=tx, gate=gate_id, item=item_id
                    )
                    return Decision("refused", refusal, gate_id, run_id)
                tx.add(ManualTick(gate_id=gate_id, item_id=item_id, actor=actor.id, at=self.now()))
                tx.audit(
                    AuditKind.MANUAL_TICKED,
                    actor=actor.id,
                    run_id=run_id,
                    data={"gate": gate.id, "item": item_id, **kept},
                    at=self.now(),
                )
            epoch = self.claim_tick_checks(tx, run_id, gate, item_id, actor)  # its checks' lease
        self.after_tick(run_id, gate_id, epoch)
        return Decision("ticked", f"{item_id} ticked", gate_id, run_id)

    def abort(self, env_name: str, actor: Actor, reason: str) -> Decision:
        """Ends the environment's active run from wherever it stands. Final.

        One transaction, run row then gate row: an abort racing a click either decides the
        open gate itself or finds the gate decided and stops the phase that followed. A run
        in which no action has changed anything yet is cancelled without rollback steps.
        """
        env = self.environment(env_name)
        if not reason.strip():
            raise InvalidInput("say why: --reason is required")
        masked = self.masker.untrusted(reason)
        refusal = approvals.may_abort(env_name, env, actor)
        if refusal:
            with self.store.tx() as tx:
                active = run_rows.active_id(tx, env_name)
            return self.refused(actor, "abort", refusal, run_id=active, environment=env_name)
        spawn = False
        with self.store.tx() as tx:
            run = run_rows.lock_active(tx, env_name)
            if run is None:
                raise NotFound(f"no active run for {env_name}")
            assert run.id is not None
            if run.status == RunStatus.ROLLING_BACK:
                return Decision(
                    "already_decided", f"run #{run.id} is already rolling back", None, run.id
                )
            gate = gate_rows.lock_open(tx, run.id)
            now = self.now()
            if not self._changed_anything(tx, run):
                result = self._cancel(tx, run, gate, actor, masked, now)
            elif gate is not None:
                pr = tx.get(PhaseRun, gate.phase_run_id)
                assert pr is not None
                result, _ = self._apply(
                    tx, run, gate, pr, actor, DecisionKind.ROLLBACK, f"aborted: {reason}"
                )
                tx.add(gate, pr, run)
                spawn = True
            else:
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
                spawn = True
        if gate is not None and gate.id is not None:
            self.notify.gate_changed(gate.id)
        self.notify.run_changed(run.id)
        if spawn:
            self.spawn(self.execute_rollback, run.id)
        elif result.outcome == "cancelled":
            self.run_ended(run.id)
        return result

    def _changed_anything(self, tx: Tx, run: Run) -> bool:
        """True once any action may have changed the target: a dry run never does; a real
        run has if an action step ran (not skipped) or a phase is executing now."""
        if run.dry_run:
            return False
        assert run.id is not None
        return run_rows.phase_executing(tx, run.id) or step_rows.any_action_ran(tx, run.id)

    def _cancel(
        self, tx: Tx, run: Run, gate: Gate | None, actor: Actor, reason: str, now: datetime
    ) -> Decision:
        if gate is not None:
            tx.apply(gate, "cancel", actor.id, {"decision": "cancel", "reason": reason}, at=now)
            pr = tx.get(PhaseRun, gate.phase_run_id)
            if pr is not None:
                tx.apply(pr, "cancelled", actor.id, at=now)
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
