"""Starting a run (`Runs`) and executing its phases: claim, steps, gate (`Phases`)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Callable, Collection, Sequence

from bot import metrics
from bot.domain import approvals
from bot.domain.errors import Refused
from bot.engine.contexts import Contexts
from bot.engine.core import EngineClock, Notify, Refusals, runbook_digest
from bot.engine.errors import LeaseLost
from bot.engine.gate_opening import GateOpening, Opening
from bot.engine.leasing import Leases
from bot.engine.locks import Locks
from bot.engine.monitoring import start_monitoring
from bot.engine.phase_claim import Handoff, PhaseClaim
from bot.engine.run_start import RunStart, check_env_file, no_ref
from bot.engine.step_log import StepLog
from bot.store import leases
from bot.store.models import Run
from bot.store.unit import Database, DatabaseUnavailable, Duplicate, Store, Tx
from bot.surface import Actor
from bot.views import GateView
from phases.checks.base import StepContext, StopRequest
from phases.runbook import PhaseSpec, Runbook, Value
from phases.runner import StepOutcome, run_actions, run_checks

log = logging.getLogger(__name__)


class Runs:
    """Starting a run: who may, locks and freezes, then its transaction (run_start.py)."""

    def __init__(
        self,
        runbook: Runbook,
        notify: Notify,
        spawn: Callable[..., None],
        contexts: Contexts,
        refusals: Refusals,
        feed: Callable[[int, str], None],
        locks: Locks,
        run_start: RunStart,
        advance: Callable[[int], None],
    ) -> None:
        self.runbook, self.environment = runbook, runbook.environment
        self.notify, self.spawn, self.feed, self.advance = notify, spawn, feed, advance
        self.register_secrets, self.refuse = contexts.register_secrets, refusals.refuse
        self.start_blocker, self.frozen = locks.start_blocker, locks.frozen
        self.emergency_vote = locks.emergency_vote
        self.run_start = run_start

    def start_run(
        self,
        env_name: str,
        actor: Actor,
        *,
        channel: str | None = None,
        dry_run: bool = False,
        group_members: Collection[str] | None = None,
        emergency: str | None = None,
        ref: str | None = None,
    ) -> Run:
        """Starts a run; refused (and audited) unless the actor may and quorum is reachable.

        `group_members`: qualified ids of the environment's approver groups' members, when
        the surface can list them, so an unreachable quorum is refused before anything runs.
        """
        env = self.environment(env_name)  # unknown environment: RunbookError names the known ones
        refusal = approvals.start_refusal(env_name, env, actor, group_members)
        if refusal:
            raise Refused(self.refuse(actor, "start", refusal, environment=env_name))
        blocked = self.start_blocker(env_name, actor, dry_run)  # a lock: audited there
        if blocked:
            raise Refused(blocked)
        frozen = None if dry_run else self.frozen(env_name)
        spend = None
        if frozen is not None and emergency is None:
            need = env.override_quorum_for()
            said = (
                f"{frozen.text(env_name)}; nothing was started. An emergency start is a "
                f"break-glass: {need} override approvers each type /cutover start {env_name} "
                "--emergency --reason WHY"
            )
            raise Refused(
                self.refuse(actor, "start", said, environment=env_name, freeze=frozen.freeze.id)
            )
        if frozen is not None and emergency is not None:
            subject, approvers, said_by = self.emergency_vote(env_name, actor, emergency, frozen)
            spend = (subject, approvers, said_by, frozen)
        values = self.runbook.values_for(env_name)  # a missing ${VAR}: RunbookError names it
        no_ref_said = no_ref(env_name, ref, values)
        if no_ref_said is not None:
            raise Refused(self.refuse(actor, "start", no_ref_said, environment=env_name))
        if env.env_file:
            check_env_file(env_name, values, self.register_secrets)
        try:
            run = self.run_start.insert(env_name, env, actor, channel, dry_run, spend, ref, values)
        except Duplicate:
            run = None  # another start won the race for the environment's one active slot
        if run is None or run.id is None:
            raise self.run_start.already_active(env_name)
        self.notify.run_changed(run.id)
        assert run.id is not None
        if spend is not None:
            self.feed(
                run.id,
                f"🟥 {env_name}: EMERGENCY START during the change freeze "
                f"{spend[3].freeze.id!r} ({spend[3].freeze.reason}) by break-glass override of "
                f"{', '.join(spend[1])} (run #{run.id}). Why: {'; '.join(spend[2])}",
            )
        self.feed(
            run.id,
            f"🚀 {self.runbook.name}: cutover of {env_name} started by {actor.label} "
            f"(run #{run.id}{', DRY RUN' if dry_run else ''}); expected "
            f"{self.runbook.estimate_text()}.",
        )
        self.spawn(self.advance, run.id)
        return run


class Phases:
    """Executing a run's phases: the claim, the steps under the lease, the gate."""

    def __init__(
        self,
        db: Database,
        store: Store,
        runbook: Runbook,
        clock: EngineClock,
        leases: Leases,
        step_log: StepLog,
        notify: Notify,
        spawn: Callable[..., None],
        context: Callable[..., tuple[StepContext, dict[str, Value]]],
        gate_opening: GateOpening,
        complete: Callable[[Tx, Run], None],
        run_ended: Callable[[int], None],
        request_signoffs: Callable[[int], None],
        execute_rollback: Callable[[int], None],
    ) -> None:
        self.db, self.store, self.runbook = db, store, runbook
        self.clock, self.now = clock, clock.when
        self.leases, self.me = leases, leases.me
        self._threads_lock, self._epochs = leases.lock, leases.epochs
        self.digest = runbook_digest(runbook)
        self.claims = PhaseClaim(store, runbook, self.digest, leases, self.now, complete)
        self._ensure_heartbeat = leases.ensure_heartbeat
        self.record_step, self._record_step_once = step_log.record, step_log.record_once
        self.notify, self.spawn, self.context = notify, spawn, context
        self.gate_opening, self._complete = gate_opening, complete
        self.run_ended, self.request_signoffs = run_ended, request_signoffs
        self.execute_rollback = execute_rollback

    def advance(self, run_id: int, handoff: Handoff | None = None) -> None:
        """Runs the run's current phase and opens its gate; does nothing if it is not its turn.
        `handoff`: the phase was claimed already, in the transaction that moved the run to it
        (`PhaseClaim.claim_in`).

        While it runs, the phase's StopRequest is known to this process (`executing`), before
        the claim commits: an abort or a lost lease stops its running step, and the rollback
        begins only once that step has ended (`execute_rollback` waits for the hand-over)."""
        stop = handoff.stop if handoff is not None else self.leases.executes(run_id, "phase")
        try:
            self._advance(run_id, stop, handoff)
        finally:
            self.leases.done(run_id, stop)

    def _advance(self, run_id: int, stop: StopRequest, handoff: Handoff | None) -> None:
        claimed = handoff.claimed if handoff is not None else None
        if claimed is None:
            # A dropped database connection is retried, not left as a phase stuck "running";
            # a retried claim whose COMMIT did land finds its own row by its token.
            token = handoff.token if handoff is not None else uuid.uuid4().hex
            try:
                claimed = self.db.retrying(
                    lambda: self.claims.claim(run_id, token), f"run #{run_id}: start"
                )
            except LeaseLost:
                return  # another process claimed it in the same instant
            if claimed is None:
                if token in self.claims.completed_by:
                    self.claims.completed_by.discard(token)
                    self.run_ended(run_id)
                return
        run, phase_run, phase = claimed
        self._ensure_heartbeat()
        self.notify.run_changed(run_id)
        if phase_run.phase_index == len(self.runbook.phases) - 1:
            # The last phase (NostrMaxi: monitoring): the cutover is live, people can vouch.
            self.db.retrying(lambda: self.request_signoffs(run_id), f"run #{run_id}: sign-offs")
        ctx, values = self.context(run, [*phase.actions, *phase.checks])
        ctx = dataclasses.replace(
            ctx,
            phase_started_at=self.clock.now(),
            stop=stop,
            fencing_token=self._epochs.get(run_id),
        )
        assert phase_run.id is not None
        pr_id = phase_run.id

        def record(outcome: StepOutcome) -> None:
            try:
                self.record_step(run_id, pr_id, outcome, fenced=True)
            except LeaseLost:  # another process holds the run now: stop, record nothing more
                stop.set("the lease was lost", kill_by=time.monotonic())

        outcomes: list[StepOutcome] = []
        actions_ok = True
        for step in [*phase.actions, None]:
            if step is None and not phase.actions and phase.monitor is None:
                # Nothing ran since the claim found the phase ours: on to the checks, which
                # change nothing; an abort meanwhile is found by the gate's own transaction
                # (open_gate hands over to the rollback), a take-over by its fencing.
                break
            # Retried while the database drops connections, never a dead phase. Before each
            # action, its start is marked (fenced, in the same transaction).
            begin = (pr_id, step.id) if step is not None and actions_ok else None
            standing = self.db.retrying(
                functools.partial(self.leases.standing, run_id, begin),
                f"run #{run_id}: is the phase still ours",
            )
            if standing == "rolling_back":
                return self._stop_for_rollback(run_id, pr_id, phase, stop, outcomes)
            if standing != "mine":
                log.warning(
                    "run #%s: phase %s is no longer this process's (taken over, or the run "
                    "was cancelled); stopping",
                    run_id,
                    phase.id,
                )
                return None
            if step is None or not actions_ok:
                break  # the actions are done: on to the checks, or to the gate
            stop.step = step.name
            result = run_actions([step], values, ctx, "actions", on_result=record)
            stop.step = None
            outcomes += result
            if result and result[-1].result.status.blocks_gate:
                actions_ok = False
        if actions_ok and phase.monitor is not None:
            # Checks run in rounds (monitoring.py); the scheduler opens the gate at the end.
            start_monitoring(self, run_id, pr_id, phase)
            self.release(run_id)
            return None
        checks: list[StepOutcome] = []
        if actions_ok and phase.checks:
            # Checks change nothing: their results are recorded with the gate that shows
            # them, in its transaction (one commit instead of one per check). An action's
            # result is recorded the moment it ends (above), before anything else runs.
            checks = run_checks(phase.checks, values, ctx)
            outcomes += checks
        passed = all(not o.result.status.blocks_gate for o in outcomes)
        view: GateView | None = None  # the checkpoint as its transaction wrote it
        try:
            opening = self._opened(run_id, pr_id, phase, passed, checks=checks, draw=True)
            gate_id, view = opening.gate_id, opening.view
        except DatabaseUnavailable:
            # A flapping database may never let the one long transaction through: each
            # result on its own then (found, not doubled, if that transaction did commit),
            # and the gate in a short one, each retried.
            for outcome in checks:
                self.db.retrying(
                    functools.partial(self._record_step_once, run_id, pr_id, outcome, retry=True),
                    f"run #{run_id}: record step {outcome.step.id}",
                )
            gate_id = self.db.retrying(
                lambda: self.open_gate(run_id, pr_id, phase, passed, executor=True),
                f"run #{run_id}: open gate",
            )
        for outcome in checks:
            r = outcome.result
            metrics.observe_step(outcome.section, outcome.step.kind, str(r.status), r.duration_ms)
        if gate_id is not None:
            self.notify.run_changed(run_id)
            self.notify.checkpoint(gate_id, view)
        return None

    def release(self, run_id: int) -> None:
        """This process no longer executes the run (monitoring rounds are the scheduler's)."""
        with self.store.tx() as tx:
            leases.release(tx, run_id, self.me, self._epochs.get(run_id, -1))
        with self._threads_lock:
            self._epochs.pop(run_id, None)

    def open_gate(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        passed: bool,
        note: str | None = None,
        *,
        executor: bool = False,
        checks: Sequence[StepOutcome] = (),
    ) -> int | None:
        """Opens the checkpoint of a phase whose steps are done (or that was interrupted);
        see `GateOpening.open`. A run aborted meanwhile rolls back instead: None."""
        return self._opened(
            run_id, phase_run_id, phase, passed, note, executor=executor, checks=checks
        ).gate_id

    def _opened(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        passed: bool,
        note: str | None = None,
        *,
        executor: bool = True,
        checks: Sequence[StepOutcome] = (),
        draw: bool = False,
    ) -> Opening:
        """As open_gate, with what `GateOpening.open` returned (the view, if `draw`)."""
        opening = self.gate_opening.open(
            run_id, phase_run_id, phase, passed, note, executor=executor, checks=checks, draw=draw
        )
        if opening.rollback_now:
            self.spawn(self.execute_rollback, run_id)
        return opening

    def _stop_for_rollback(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        stop: StopRequest,
        outcomes: Sequence[StepOutcome],
    ) -> None:
        """The run was aborted while this phase executed: says how its running step ended,
        then hands over to the rollback (unless the lease was lost meanwhile)."""
        stopped = self.gate_opening.stop_for_rollback(run_id, phase_run_id, phase, stop, outcomes)
        if stopped is None:
            return
        if stopped["step"] is not None:
            self.notify.notice(run_id, f"{stopped['said']} Rolling back now.")
        self.spawn(self.execute_rollback, run_id)
