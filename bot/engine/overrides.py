"""Break-glass: continue past a gate's failed steps, with a justification and the override
quorum (issue 20, item 1).

An override is a gate decision of its own kind, not a Continue: its own permission
(`approvals.may_override`), its own quorum (the environment's `override_quorum`, default the
gate's quorum + 1, at least 2), its own votes (`override_vote`, unique per gate and person:
a double click or a Slack retry counts once) and its own audit rows (`override.vote` per
vote, `gate.overridden` for the decision). The gate moves by the state table's `override`
trigger, in the transaction that writes the deciding vote and its audit rows, under the same
lock order as every decision: run row → gate row → audit head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.domain import approvals, states
from bot.domain.approvals import OverrideFacts, failed_steps
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import InvalidInput
from bot.engine.core import Decision, Notify, Refusals
from bot.engine.gates import observe_wait
from bot.engine.manual_ticks import already, gate_facts
from bot.store import override_votes, steps
from bot.store.models import Gate, GateStatus, OverrideVote, PhaseRun, Run, RunStatus
from bot.store.unit import Store, Tx
from bot.surface import Actor
from phases.runbook import Runbook
from phases.secrets import Masker

JUSTIFICATION_CHARS = 500


def gate_subject(gate_id: int) -> str:
    """The override_vote subject of a gate's override."""
    return f"gate:{gate_id}"


def one_line(text: str, limit: int = JUSTIFICATION_CHARS) -> str:
    """A justification as the trail keeps it: one line (the record is line based)."""
    return " ".join(text.split())[:limit]


@dataclass(frozen=True)
class _Overridden:
    """What the stakeholders are told, known inside the deciding transaction."""

    environment: str
    phase_id: str
    approvers: tuple[str, ...]
    justifications: tuple[str, ...]
    steps: tuple[str, ...]
    completed: bool


class Overrides:
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
        gate_run: Callable[[int], tuple[int, str] | None],
        advance: Callable[[int], None],
        run_ended: Callable[[int], None],
    ) -> None:
        self.store, self.runbook, self.environment = store, runbook, runbook.environment
        self.masker, self.now, self.notify, self.spawn = masker, now, notify, spawn
        self.refused, self.feed, self._complete = refusals.refused, feed, complete
        self._gate_run, self.advance, self.run_ended = gate_run, advance, run_ended

    def override(self, gate_id: int, actor: Actor, justification: str) -> Decision:
        """One break-glass vote with its justification; the vote that reaches the override
        quorum decides the gate (the next phase starts). Permission is checked now."""
        text = one_line(self.masker.untrusted(justification or ""))
        if not text:
            raise InvalidInput(
                "say why: an override needs a justification (it goes into the audit trail, "
                "the record and the stakeholders' channel)"
            )
        found = self._gate_run(gate_id)
        if found is None:
            return Decision("unknown_gate", f"no gate #{gate_id}; the message is out of date")
        run_id, env_name = found
        env = self.environment(env_name)
        if not approvals.is_override_approver(env, actor):
            reason = f"you may not override checks in {env_name}; nothing was changed"
            return self.refused(actor, "override", reason, run_id=run_id, gate_id=gate_id)
        spawn: Callable[[int], None] | None = None
        told: _Overridden | None = None
        with self.store.tx() as tx:
            run, gate, pr = tx.lock_gate(run_id, gate_id)
            if gate.status != GateStatus.OPEN:
                return already(gate)
            facts = self._override_facts(tx, gate, run)
            refusal = approvals.may_override(env, actor, facts)
            if refusal is None and not states.can(gate, "override"):
                refusal = "override is not possible at this gate now"
            if refusal:
                return self.refused(
                    actor,
                    "override",
                    refusal,
                    run_id=run_id,
                    gate_id=gate.id,
                    tx=tx,
                    phase=gate.phase_id,
                )
            result, told = self._vote(tx, run, gate, pr, actor, text, facts)
            if result.outcome == "overridden":
                spawn = self.advance
        if spawn is not None:
            self.spawn(spawn, run_id)
        self.notify.gate_changed(gate_id)
        if result.outcome == "overridden":
            self.notify.run_changed(run_id)
        if told is not None:
            self._feed_override(run_id, told)
            if told.completed:
                self.run_ended(run_id)
        return result

    def _override_facts(self, tx: Tx, gate: Gate, run: Run) -> OverrideFacts:
        phase = self.runbook.phase(gate.phase_id)
        results = steps.results(tx, gate.phase_run_id)
        failed, not_run = failed_steps(self.runbook, phase, results)
        votes = override_votes.voters(tx, gate_subject(gate.id or 0))
        env = self.environment(run.environment)
        return OverrideFacts(
            gate=gate_facts(tx, self.runbook, gate, run),
            failed=failed,
            not_run=not_run,
            votes=votes,
            quorum=env.override_quorum_for(gate.quorum),
        )

    def _vote(
        self,
        tx: Tx,
        run: Run,
        gate: Gate,
        pr: PhaseRun,
        actor: Actor,
        text: str,
        facts: OverrideFacts,
    ) -> tuple[Decision, _Overridden | None]:
        """The vote and, at the quorum, the decision: rows locked by the caller."""
        now: datetime = self.now()
        assert gate.id is not None and run.id is not None
        subject = gate_subject(gate.id)
        tx.add(OverrideVote(subject=subject, actor=actor.id, justification=text, at=now))
        votes = [*facts.votes, actor.id]
        failed = [f.ref for f in facts.failed]
        tx.audit(
            AuditKind.OVERRIDE_VOTE,
            actor=actor.id,
            run_id=run.id,
            data={
                "subject": "gate",
                "gate": gate.id,
                "phase": gate.phase_id,
                "steps": failed,
                "justification": text,
                "votes": len(votes),
                "quorum": facts.quorum,
            },
            at=now,
        )
        if len(votes) < facts.quorum:
            return (
                Decision(
                    "vote_recorded",
                    f"{len(votes)}/{facts.quorum} override approvals",
                    gate.id,
                    run.id,
                ),
                None,
            )
        said = override_votes.justifications(tx, subject, but=actor.id)
        said[actor.id] = text
        justifications = [f"{v}: {said.get(v, '')}" for v in votes]
        tx.apply(
            gate,
            "override",
            actor.id,
            {
                "attempt": gate.attempt,
                "steps": failed,
                "approvers": votes,
                "justifications": justifications,
                "quorum": facts.quorum,
            },
            at=now,
            decided_by=",".join(votes),
        )
        tx.apply(pr, "overridden", actor.id, at=now)
        tx.apply(run, "overridden", actor.id, at=now)
        run.phase_index += 1
        observe_wait(tx, gate, "overridden", now)
        if run.phase_index >= len(self.runbook.phases):
            self._complete(tx, run)
        tx.add(gate, pr, run)
        told = _Overridden(
            run.environment,
            gate.phase_id,
            tuple(votes),
            tuple(justifications),
            tuple(failed),
            run.status == RunStatus.COMPLETED,
        )
        return (
            Decision(
                "overridden",
                f"overridden by {', '.join(votes)}: {', '.join(failed)} passed over",
                gate.id,
                run.id,
            ),
            told,
        )

    def _feed_override(self, run_id: int, told: _Overridden) -> None:
        """The stakeholders hear of every override, in red, with who and why."""
        try:
            index = next(i for i, p in enumerate(self.runbook.phases) if p.id == told.phase_id)
        except StopIteration:
            return
        phase = self.runbook.phases[index]
        self.feed(
            run_id,
            f"🟥 {told.environment}: Phase {self.runbook.phase_number(index)} ({phase.name}) "
            f"continued PAST FAILED CHECKS by break-glass override (run #{run_id}): "
            f"{', '.join(told.steps)} failed; approved by {', '.join(told.approvers)}. "
            f"Why: {'; '.join(told.justifications)}",
        )
        # A completed run's end is told with its record (bot.record_feed), not here.
