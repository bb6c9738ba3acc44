"""The one place the engine's services are built, each given only what it needs: the store,
the clock, the runbook, the masker, a surface call, and the other services' operations it
hands work to (a bound method, never the engine). The order below is the order they depend
on each other: nothing is handed an operation of a service built after it.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta

from bot.engine.aborts import Aborts
from bot.engine.contexts import Contexts
from bot.engine.core import (
    Completion,
    ContextFactory,
    EngineClock,
    FollowUps,
    Notify,
    Refusals,
    SurfaceCalls,
    runbook_digest,
)
from bot.engine.deviations import Deviations
from bot.engine.gate_opening import GateOpening
from bot.engine.gates import Gates, Interventions
from bot.engine.identity import Identity
from bot.engine.leasing import Leases
from bot.engine.locks import Locks
from bot.engine.manual_ticks import ManualTicks
from bot.engine.overrides import Overrides
from bot.engine.recovery import Recovery
from bot.engine.revert import Reverts
from bot.engine.rollback import Rollback
from bot.engine.run_end import RunEnd
from bot.engine.run_facts import RunFacts
from bot.engine.run_signoff import RunSignoffs
from bot.engine.run_start import RunStart
from bot.engine.runs import Phases, Runs
from bot.engine.signoffs import Signoffs
from bot.engine.step_log import StepLog
from bot.engine.tick_checks import TickChecks
from bot.engine.tick_resume import TickResume
from bot.store.unit import Database, Store
from bot.surface import Surface
from phases.checks.base import Clock
from phases.runbook import Runbook
from phases.secrets import Masker, install_log_masking


@dataclass(frozen=True)
class Services:
    """Every service of one engine; `Engine` (bot/engine/__init__.py) delegates to them."""

    clock: EngineClock
    store: Store
    stop: threading.Event  # set once, when the engine shuts down
    follow_ups: FollowUps
    calls: SurfaceCalls
    notify: Notify
    refusals: Refusals
    leases: Leases
    step_log: StepLog
    facts: RunFacts
    contexts: Contexts
    identity: Identity
    locks: Locks
    signoffs: Signoffs
    run_signoffs: RunSignoffs
    run_end: RunEnd
    rollback: Rollback
    phases: Phases
    runs: Runs
    tick_checks: TickChecks
    gates: Gates
    interventions: Interventions
    overrides: Overrides
    deviations: Deviations
    reverts: Reverts
    tick_resume: TickResume
    recovery: Recovery


def compose(
    db: Database,
    runbook: Runbook,
    *,
    surface: Surface | None,
    clock: Clock | None,
    context_factory: ContextFactory,
    background: bool,
    workers: int,
    masker: Masker,
    replica_id: str | None,
    lease_seconds: float,
) -> Services:
    """Builds one engine's services (`Engine.__init__`'s parameters, documented there)."""
    ticking = EngineClock(clock)
    now = ticking.when
    store = Store(db, now)  # the engine's one door to the database
    follow_ups = FollowUps(workers, background)
    spawn = follow_ups.spawn
    calls = SurfaceCalls(surface, store, masker, now)
    notify = Notify(calls)
    refusals = Refusals(store, now)
    # A replica id names one replica across its restarts (CUTOVER_REPLICA_ID; the hostname
    # by default, which is one per container): leases left by an earlier incarnation of this
    # replica are known dead at once, others only once they lapse.
    replica = replica_id or os.environ.get("CUTOVER_REPLICA_ID") or socket.gethostname()
    stop = threading.Event()
    lease = timedelta(seconds=lease_seconds)
    leases = Leases(store, masker, now, replica, lease, stop)
    step_log = StepLog(db, store, runbook, masker, now, leases.fence)
    facts = RunFacts(db, store, runbook, masker, notify.notice)
    contexts = Contexts(db, runbook, masker, context_factory, facts.run_backup, facts.run_ref)
    context, feed = contexts.context, facts.feed
    complete = Completion(runbook, now, leases.epochs).complete
    identity = Identity(store, masker, replica, leases.me, lease, stop)
    locks = Locks(store, runbook, masker, now, notify, refusals)
    signoffs = Signoffs(db, store, runbook, masker, now, notify, refusals)
    run_signoffs = RunSignoffs(db, store, runbook, masker, now, notify, refusals, feed)
    run_end = RunEnd(db, runbook, masker, notify, run_signoffs.show_run_signoff, leases.lock)
    rollback = Rollback(
        db, store, runbook, now, leases, step_log, notify, context, feed, run_end.run_ended
    )
    # (run id, environment) of the gates known: filled as a gate opens or is first clicked.
    gate_runs: dict[int, tuple[int, str]] = {}
    phases = Phases(
        db,
        store,
        runbook,
        ticking,
        leases,
        step_log,
        notify,
        spawn,
        context,
        GateOpening(store, runbook, now, leases, step_log.add, gate_runs),
        complete,
        run_end.run_ended,
        signoffs.request_signoffs,
        rollback.execute_rollback,
    )
    run_start = RunStart(store, runbook, runbook_digest(runbook), now)
    runs = Runs(runbook, notify, spawn, contexts, refusals, feed, locks, run_start, phases.advance)
    tick_checks = TickChecks(
        db, store, runbook, ticking, leases, step_log.add, notify, spawn, context, phases.advance
    )
    gates = Gates(
        store,
        runbook,
        masker,
        now,
        notify,
        spawn,
        refusals,
        feed,
        complete,
        phases.advance,
        rollback.execute_rollback,
        run_end.run_ended,
        gate_runs,
        leases.lock,
        phases.claims,
    )
    ticks = ManualTicks(
        store, runbook, masker, now, gates.gate_run, refusals.refuse, refusals.refused
    )
    # An abort at an open gate is a Rollback decided there (`Gates._apply`).
    aborts = Aborts(store, runbook, masker, now, refusals.refused, gates._apply)
    interventions = Interventions(
        store,
        notify,
        spawn,
        ticks,
        aborts,
        tick_checks,
        rollback.execute_rollback,
        run_end.run_ended,
    )
    overrides = Overrides(
        store,
        runbook,
        masker,
        now,
        notify,
        spawn,
        refusals,
        feed,
        complete,
        gates.gate_run,
        phases.advance,
        run_end.run_ended,
    )
    reverts = Reverts(
        store, runbook, masker, now, notify, spawn, refusals, feed, rollback.execute_rollback
    )
    tick_resume = TickResume(store, runbook, leases, notify, tick_checks)
    recovery = Recovery(
        store,
        runbook,
        now,
        leases,
        notify,
        spawn,
        phases.advance,
        rollback.execute_rollback,
        phases.open_gate,
        tick_resume.resume_tick_checks,
    )
    # Secrets are known from the moment the engine exists, before any run is read back
    # after a restart: every environment's ${VAR} values, URL userinfo and env file.
    install_log_masking()
    for env_name in runbook.environments:
        contexts.register_secrets(env_name)
    return Services(
        clock=ticking,
        store=store,
        stop=stop,
        follow_ups=follow_ups,
        calls=calls,
        notify=notify,
        refusals=refusals,
        leases=leases,
        step_log=step_log,
        facts=facts,
        contexts=contexts,
        identity=identity,
        locks=locks,
        signoffs=signoffs,
        run_signoffs=run_signoffs,
        run_end=run_end,
        rollback=rollback,
        phases=phases,
        runs=runs,
        tick_checks=tick_checks,
        gates=gates,
        interventions=interventions,
        overrides=overrides,
        deviations=Deviations(masker, ticks.add_to_record),
        reverts=reverts,
        tick_resume=tick_resume,
        recovery=recovery,
    )
