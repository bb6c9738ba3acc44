"""Reverting a completed run: its restore and rollback steps, as a new run linked to it.

The runbook says the first 24 hours after a cutover are critical, but `/cutover abort` needs
an active run: a bad release found at T+2h had no audited way back. `/cutover revert ENV
--reason …` (or the completion message's Revert button) asks for one, within the runbook's
`revert_window_hours`, while no later run of the environment has started. The revert is its
own run (`reverts_run_id` names the run it undoes): it holds the environment's one active
slot, waits (`revert_pending`) for the environment's quorum of approvers, as a gate does,
then runs the rollback machinery (bot/engine/rollback.py), restoring from the original run's
restore point. Who may: `approvals.may_revert` / `may_approve_revert`; every move goes
through the run's state table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.domain import approvals
from bot.domain.actor import Actor
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import InvalidInput
from bot.engine.core import Decision, Notify, Refusals, runbook_digest
from bot.store import reverts as revert_rows
from bot.store import runs as run_rows
from bot.store.models import RevertVote, Run, RunStatus
from bot.store.unit import Duplicate, Store, Tx
from phases.runbook import EnvironmentSpec, Runbook
from phases.secrets import Masker


class Reverts:
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
        execute_rollback: Callable[[int], None],
    ) -> None:
        self.store, self.runbook, self.digest = store, runbook, runbook_digest(runbook)
        self.environment, self.masker, self.now = runbook.environment, masker, now
        self.notify, self.spawn, self.refused = notify, spawn, refusals.refused
        self.feed, self.execute_rollback = feed, execute_rollback

    def revert(
        self, env_name: str, actor: Actor, reason: str, *, run_id: int | None = None
    ) -> Decision:
        """Asks for a revert of the environment's last completed run, or votes for the one
        already asked for. Idempotent: a second click by the same person changes nothing,
        and two requests at once start one revert (the environment's one active slot).
        `run_id`: the run a Revert… button was drawn for; refused unless it is that one."""
        env = self.environment(env_name)
        if not reason.strip():
            raise InvalidInput("say why: --reason is required")
        masked = self.masker.untrusted(reason)[:500]
        pending = self._pending_revert(env_name)
        if pending is not None:
            return self.approve_revert(pending, actor)
        facts = self._revert_facts(env_name)
        if run_id is not None and facts.run_id != run_id:
            facts = self._revert_facts(env_name, run_id)
        refusal = approvals.may_revert(env_name, env, actor, facts)
        if refusal:
            return self.refused(actor, "revert", refusal, run_id=facts.run_id, environment=env_name)
        assert facts.run_id is not None
        try:
            run_id = self._insert_revert(env_name, env, actor, facts.run_id, masked)
        except Duplicate:
            run_id = None  # another request took the environment's active slot first
        if run_id is None:
            pending = self._pending_revert(env_name)
            if pending is not None:
                return self.approve_revert(pending, actor)
            return self._revert_taken(env_name, actor)
        self.notify.run_changed(run_id)
        self.feed(
            run_id,
            f"⏪ {self.runbook.name}: revert of {env_name}'s run #{facts.run_id} asked for by "
            f"{actor.label} (run #{run_id}): {masked}",
        )
        if approvals.may_approve_revert(env_name, env, actor, actor.id, ()) is None:
            return self.approve_revert(run_id, actor, requested=True)
        return Decision(
            "vote_recorded",
            f"revert of run #{facts.run_id} asked for as run #{run_id}; it needs "
            f"{env.quorum} approval(s) from other approvers before its steps run",
            None,
            run_id,
        )

    def approve_revert(self, run_id: int, actor: Actor, *, requested: bool = False) -> Decision:
        """One approver's vote for a pending revert; at quorum its steps begin."""
        start = False
        with self.store.tx() as tx:
            run = tx.lock_run(run_id)
            if run is None or run.reverts_run_id is None:
                return Decision("unknown_gate", f"run #{run_id} is not a revert", None, run_id)
            env = self.environment(run.environment)
            if run.status != RunStatus.REVERT_PENDING:
                word = str(run.status).replace("_", " ")
                return Decision(
                    "already_decided",
                    f"run #{run_id} (revert of run #{run.reverts_run_id}) is {word} already",
                    None,
                    run_id,
                )
            votes = revert_rows.votes(tx, run_id)
            refusal = approvals.may_approve_revert(
                run.environment, env, actor, run.requested_by, votes
            )
            if refusal:
                if any(actor.is_(v) for v in votes):
                    return Decision("already_voted", refusal, None, run_id)
                return self.refused(actor, "revert", refusal, run_id=run_id, tx=tx)
            now = self.now()
            tx.add(RevertVote(run_id=run_id, actor=actor.id, at=now))
            votes.append(actor.id)
            tx.audit(
                AuditKind.REVERT_APPROVED,
                actor=actor.id,
                run_id=run_id,
                data={"reverts": run.reverts_run_id, "votes": len(votes), "quorum": env.quorum},
                at=now,
            )
            if len(votes) >= env.quorum:
                tx.apply(run, "revert_approved", actor.id, at=now)
                run.rollback_started_at = None
                tx.audit(
                    AuditKind.REVERT_STARTED,
                    actor=actor.id,
                    run_id=run_id,
                    data={"reverts": run.reverts_run_id, "approvers": votes},
                    at=now,
                )
                prefix = f"revert of run #{run.reverts_run_id}: "
                tx.audit(  # the original's own trail says what undid it
                    AuditKind.RUN_REVERTED,
                    actor=actor.id,
                    run_id=run.reverts_run_id,
                    data={
                        "by_run": run_id,
                        "requested_by": run.requested_by,
                        "approvers": votes,
                        "reason": (run.rollback_reason or "").removeprefix(prefix),
                    },
                    at=now,
                )
                start = True
            reverts = run.reverts_run_id
        self.notify.run_changed(run_id)
        if start:
            self.notify.run_changed(reverts)  # its completion message loses the Revert… button
            self.spawn(self.execute_rollback, run_id)
            who = "asked for and approved" if requested else "approved"
            return Decision(
                "approved",
                f"revert of run #{reverts} {who} by {actor.label} (run #{run_id}, "
                f"{len(votes)}/{env.quorum}): its restore and rollback steps run now",
                None,
                run_id,
            )
        return Decision(
            "vote_recorded",
            f"{actor.label} approved the revert of run #{reverts} (run #{run_id}): "
            f"{len(votes)}/{env.quorum}; it needs another approver",
            None,
            run_id,
        )

    def _pending_revert(self, env_name: str) -> int | None:
        with self.store.tx() as tx:
            return revert_rows.pending(tx, env_name)

    def _revert_taken(self, env_name: str, actor: Actor) -> Decision:
        with self.store.tx() as tx:
            active = run_rows.active(tx, env_name)
        if active is not None and active.reverts_run_id is not None:
            return Decision(
                "already_decided",
                f"run #{active.id} already reverts run #{active.reverts_run_id} "
                f"({str(active.status).replace('_', ' ')}); nothing more was started",
                None,
                active.id,
            )
        message = (
            f"run #{active.id} of {env_name} is active: abort it, not revert; nothing was started"
            if active is not None
            else f"another run of {env_name} was starting at the same time; try again"
        )
        run_id = active.id if active else None
        return self.refused(actor, "revert", message, run_id=run_id, environment=env_name)

    def revert_refusal(self, run_id: int) -> str | None:
        """Why run `run_id` cannot be reverted now, whoever asks (None: it can, or a revert of
        it waits for votes). The completion message's Revert… button is drawn only while this
        is None, and a click re-checks it when it arrives."""
        with self.store.tx() as tx:
            run = run_rows.get(tx, run_id)
            pending = revert_rows.pending_of(tx, run_id)
        if run is None or run.dry_run or run.reverts_run_id is not None:
            return f"run #{run_id} is not a completed cutover a revert could undo"
        if pending is not None:
            return None
        facts = self._revert_facts(run.environment, run_id)
        return approvals.revert_closed(run.environment, facts)

    def revert_target(self, env_name: str) -> int | None:
        """The run a revert of the environment would undo: its last real run (None: none)."""
        return self._revert_facts(env_name).run_id

    def _revert_facts(self, env_name: str, run_id: int | None = None) -> approvals.RevertFacts:
        """The environment's last real run (or run `run_id`) and whatever started after it."""
        with self.store.tx() as tx:
            last = revert_rows.last_real(tx, env_name, run_id)
            later = revert_rows.first_after(tx, env_name, last.id) if last is not None else None
        return approvals.RevertFacts(
            run_id=last.id if last else None,
            status=str(last.status) if last else None,
            ended_at=last.ended_at if last else None,
            later_run=later.id if later else None,
            later_reverts=later.reverts_run_id if later else None,
            now=self.now(),
            window_hours=self.runbook.revert_window_hours,
            has_steps=bool(self.runbook.rollback or self.runbook.restore),
        )

    def _insert_revert(
        self, env_name: str, env: EnvironmentSpec, actor: Actor, original_id: int, reason: str
    ) -> int | None:
        with self.store.tx() as tx:
            if run_rows.active_id(tx, env_name) is not None:
                return None
            original = run_rows.get(tx, original_id)
            assert original is not None
            run = Run(
                environment=env_name,
                active_env=env_name,
                runbook_name=self.runbook.name,
                runbook_digest=self.digest,
                requested_by=actor.id,
                channel=original.channel or env.channel,
                phase_index=len(self.runbook.phases) - 1,  # past every phase: it completed
                reverts_run_id=original_id,
                status=RunStatus.REVERT_PENDING,
                rolled_back_by=actor.id,
                rollback_reason=f"revert of run #{original_id}: {reason}",
                started_at=self.now(),
            )
            tx.add(run)
            tx.flush()
            assert run.id is not None
            self._audit_request(tx, run, actor, original, reason, env)
            return run.id

    def _audit_request(
        self, tx: Tx, run: Run, actor: Actor, original: Run, reason: str, env: EnvironmentSpec
    ) -> None:
        now = self.now()
        ended: datetime | None = original.ended_at
        tx.audit(
            AuditKind.RUN_STARTED,
            actor=actor.id,
            run_id=run.id,
            data={
                "environment": run.environment,
                "dry_run": False,
                "runbook": self.runbook.name,
                "version": self.runbook.version,
                "reverts": original.id,
            },
            at=now,
        )
        tx.audit(
            AuditKind.REVERT_REQUESTED,
            actor=actor.id,
            run_id=run.id,
            data={
                "reverts": original.id,
                "reason": reason,
                "completed_at": ended.isoformat() if ended else None,
                "window_hours": self.runbook.revert_window_hours,
                "quorum": env.quorum,
            },
            at=now,
        )
