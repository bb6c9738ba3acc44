"""The runbook engine: runs, phases, gates, decisions and rollback, durable in the database.

Every state change and its audit row commit in one transaction, and every status change goes
through the transition table (`bot.domain.states`); who may do what is asked of
`bot.domain.approvals` when the request arrives. Nothing here knows Slack: surfaces are told
what changed (`bot.surface`).

`Engine` (below) is a façade: the names the CLI, `serve`, the console, the demo, Slack and
the tests call, each the operation of one service. The services are built in one place,
`services.py` (`compose`), each given only what it needs (the store, the clock, the runbook,
the masker, a surface call) and the operations of the services it hands work to, as bound
methods: none is given the engine.

What is shared (core.py and beside it):

    core.py          Decision; EngineClock (the clock, replaceable while running), FollowUps
                     (the pool for follow-up work), SurfaceCalls and Notify (telling the
                     surface, a failed post audited), Refusals, Completion (a run's end)
    contexts.py      Contexts: a run's step context and values, the secrets it registers
    leasing.py       Leases: leases and fencing, heartbeat, reaper, a phase's standing
    step_log.py      StepLog: a step's result, output and audit row, recorded once
    run_facts.py     RunFacts: a run's restore point, ref, artifacts, stakeholder feed
    run_end.py       RunEnd: once a run ended, sign-offs shown and the chain head posted

Use cases:

    runs.py          Runs: start a run. Phases: execute and check a phase; its gate
    phase_claim.py   PhaseClaim: a phase claimed (its own transaction, or a Continue's)
    gate_opening.py  GateOpening: a phase's gate opened; an aborted phase handed over
    run_start.py     RunStart: the transaction that starts a run
    locks.py         Locks: environment locks and change freezes, an emergency start
    gates.py         Gates: votes, Retry, Rollback. Interventions: ticks, record entries,
                     abort, a message's chat ref
    manual_ticks.py  ManualTicks: manual ticks, record entries, a gate's facts
    tick_checks.py   TickChecks: the checks a ticked step runs, under the run's lease
    tick_resume.py   TickResume: a tick's checks after a restart or a takeover
    aborts.py        Aborts: aborting or cancelling a run from wherever it stands
    overrides.py     Overrides: break-glass past failed steps, with a justification, a quorum
    signoffs.py      Signoffs: sign-offs of success criteria, asked for, given once per person
    run_signoff.py   RunSignoffs: sign-off of a completed run by the people its env names
    deviations.py    Deviations: "Deviations from Runbook" entries people add to a record
    rollback.py      Rollback: restore and rollback steps
    revert.py        Reverts: reverting a completed run (a new run, a quorum, then rollback)
    recovery.py      Recovery: restart recovery, taking over a dead replica's runs
    identity.py      Identity: one live process per replica id (a heartbeat row)
    monitoring.py    monitoring windows: a phase's checks in rounds (the scheduler's tick)
"""

from __future__ import annotations

from collections.abc import Callable

from bot.domain.actor import Actor
from bot.engine.core import (
    ContextFactory,
    Decision,
    DecisionName,
    default_context,
    runbook_digest,
)
from bot.engine.errors import EngineError
from bot.engine.identity import ReplicaInUse
from bot.engine.services import Services, compose
from bot.store.unit import Database
from bot.surface import Surface
from phases.checks.base import Clock
from phases.runbook import Runbook, RunbookError
from phases.secrets import GLOBAL_MASKER, Masker


class Engine:
    """The one engine object the CLI, `serve`, the console, the demo and tests build: each
    name is a service's operation (services.py); nothing is decided here."""

    def __init__(
        self,
        db: Database,
        runbook: Runbook,
        *,
        surface: Surface | None = None,
        clock: Clock | None = None,
        context_factory: ContextFactory = default_context,
        background: bool = True,
        workers: int = 4,
        masker: Masker = GLOBAL_MASKER,
        replica_id: str | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        """`background`: follow-up work (the next phase, a rollback) runs on a pool of
        `workers` threads, else in the calling thread. `replica_id`: this replica's name
        across its restarts (CUTOVER_REPLICA_ID, the hostname by default); `lease_seconds`:
        how long a run this process holds stays its own without a renewal."""
        sv = self.services = compose(
            db,
            runbook,
            surface=surface,
            clock=clock,
            context_factory=context_factory,
            background=background,
            workers=workers,
            masker=masker,
            replica_id=replica_id,
            lease_seconds=lease_seconds,
        )
        self.db, self.runbook, self.digest, self.masker = db, runbook, sv.phases.digest, masker
        self.store, self.notify, self.now = sv.store, sv.notify, sv.clock.when
        self.environment = runbook.environment
        # Surface calls, refusals, contexts, a run's facts and ends (core.py and beside it).
        self.tell, self.record_surface_failure = sv.calls.tell, sv.calls.record_surface_failure
        self.refuse, self.refused = sv.refusals.refuse, sv.refusals.refused
        self.register_secrets, self.context = sv.contexts.register_secrets, sv.contexts.context
        self.stakeholder_channel, self.feed = sv.facts.stakeholder_channel, sv.facts.feed
        self.run_backup, self.run_ref = sv.facts.run_backup, sv.facts.run_ref
        self.run_artifact, self.run_ended = sv.facts.run_artifact, sv.run_end.run_ended
        # Leases, step results and this process's replica id.
        self.leases, self.step_log, self.facts = sv.leases, sv.step_log, sv.facts
        self.replica, self.me, self.lease = sv.leases.replica, sv.leases.me, sv.leases.lease
        self.leash, self.holds, self.fence = sv.leases.leash, sv.leases.holds, sv.leases.fence
        self.renew_leases, self._take_lease = sv.leases.renew, sv.leases.take
        self.record_step, self.add_step = sv.step_log.record, sv.step_log.add
        self.incarnation, self.claim_replica = sv.identity.incarnation, sv.identity.claim_replica
        self.release_replica = sv.identity.release_replica
        # Starting runs, executing phases; locks and freezes.
        self.start_run, self.run_start = sv.runs.start_run, sv.runs.run_start
        self.advance, self.release, self.open_gate = (
            sv.phases.advance,
            sv.phases.release,
            sv.phases.open_gate,
        )
        self._claim_phase, self.gate_opening = sv.phases.claims.claim, sv.phases.gate_opening
        self.lock, self.unlock, self.lock_of = sv.locks.lock, sv.locks.unlock, sv.locks.lock_of
        self.locks, self.start_blocker = sv.locks.locks, sv.locks.start_blocker
        self.frozen, self.emergency_vote = sv.locks.frozen, sv.locks.emergency_vote
        # Gates: decisions, overrides, ticks and their checks, record entries, abort.
        self.decide, self.gate_run = sv.gates.decide, sv.gates.gate_run
        self.override, self.add_deviation = sv.overrides.override, sv.deviations.add_deviation
        self.tick, self.abort = sv.interventions.tick, sv.interventions.abort
        self.add_note, self.add_to_record = (
            sv.interventions.add_note,
            sv.interventions.add_to_record,
        )
        self.set_surface_ref = sv.interventions.set_surface_ref
        self.ticks, self.aborts = sv.interventions.ticks, sv.interventions.aborts
        self.claim_tick_checks = sv.tick_checks.claim_tick_checks
        self.after_tick, self.run_tick_checks = (
            sv.tick_checks.after_tick,
            sv.tick_checks.run_tick_checks,
        )
        self.resume_tick_checks = sv.tick_resume.resume_tick_checks
        # Sign-offs, rollback, reverts, recovery.
        self.request_signoffs, self.sign_off = sv.signoffs.request_signoffs, sv.signoffs.sign_off
        self.show_run_signoff = sv.run_signoffs.show_run_signoff
        self.sign_off_run = sv.run_signoffs.sign_off_run
        self.execute_rollback, self.waiting_for = (
            sv.rollback.execute_rollback,
            sv.rollback.waiting_for,
        )
        self.revert, self.approve_revert = sv.reverts.revert, sv.reverts.approve_revert
        self.revert_refusal, self.revert_target = (
            sv.reverts.revert_refusal,
            sv.reverts.revert_target,
        )
        self.recover, self.reap = sv.recovery.recover, sv.recovery.reap

    # What a test or a driver may replace while the engine runs: the services read it anew.

    @property
    def clock(self) -> Clock:
        return self.services.clock.current

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.services.clock.current = clock

    @property
    def surface(self) -> Surface:
        return self.services.calls.surface

    @surface.setter
    def surface(self, surface: Surface) -> None:
        self.services.calls.surface = surface

    @property
    def context_factory(self) -> ContextFactory:
        return self.services.contexts.context_factory

    @context_factory.setter
    def context_factory(self, factory: ContextFactory) -> None:
        self.services.contexts.context_factory = factory

    @property
    def background(self) -> bool:
        return self.services.follow_ups.background

    @background.setter
    def background(self, background: bool) -> None:
        self.services.follow_ups.background = background

    @property
    def spawn(self) -> Callable[..., None]:
        """Runs follow-up work (the next phase, a rollback) on the engine's pool."""
        return self.services.follow_ups.spawn

    @spawn.setter
    def spawn(self, runner: Callable[..., None]) -> None:
        self.services.follow_ups.runner = runner

    def start_reaper(self, interval: float | None = None) -> None:
        """Takes over, every `interval` seconds, what a dead replica left executing."""
        self.services.leases.start_reaper(self.reap, interval)

    def shutdown(self, wait: bool = True) -> None:
        self.services.stop.set()
        self.services.follow_ups.shutdown(wait)
        self.leash.close()
        self.services.identity.shutdown()  # a claimed replica id is released

    def redraws_idle(self, timeout: float = 10.0) -> bool:
        """True once every redraw was handed to the surface: at once, since the engine tells
        the surface in the thread that changed the state (kept for the tests that wait)."""
        return True


__all__ = [
    "Actor",
    "ContextFactory",
    "Decision",
    "DecisionName",
    "Engine",
    "EngineError",
    "ReplicaInUse",
    "RunbookError",
    "Services",
    "default_context",
    "runbook_digest",
]
