"""The runbook engine: runs, phases, gates, decisions and rollback, durable in the database.

Every state change and its audit row commit in one transaction, and every status change goes
through the transition table (`bot.domain.states`); who may do what is asked of
`bot.domain.approvals` when the request arrives. Nothing here knows Slack: surfaces are told
what changed (`bot.surface`). The core and the two biggest use cases:

    core.py      collaborators, follow-up pool, surface calls, audited refusals; it holds the
                 services below and the use cases delegate to them
    runs.py      start a run; claim, execute and check a phase; open its gate
    gates.py     votes, Retry, Rollback; ticks and abort delegated to their services

Services, each given only what it needs (the store, the clock, the runbook, the masker, a
surface call), held by the façade:

    leasing.py       Leases: leases and fencing, heartbeat, reaper, a phase's standing
    step_log.py      StepLog: a step's result, output and audit row, recorded once
    run_facts.py     RunFacts: a run's restore point, ref, artifacts, stakeholder feed
    manual_ticks.py  ManualTicks: manual ticks, record entries, a gate's facts
    aborts.py        Aborts: aborting or cancelling a run from wherever it stands
    gate_opening.py  GateOpening: a phase's gate opened; an aborted phase handed over
    run_start.py     RunStart: the transaction that starts a run

Use cases:

    overrides.py break-glass: continue past failed steps with a justification and a quorum
    signoffs.py  sign-offs of success criteria: asked for, given once per person
    run_signoff.py  sign-off of a completed run by the people its environment names
    deviations.py  "Deviations from Runbook" entries people add to a run's record
    rollback.py  restore and rollback steps
    revert.py    reverting a completed run: a new run, approved by quorum, then rollback.py
    recovery.py  restart recovery and taking over a dead replica's run
    identity.py  one live process per replica id (a heartbeat row)
"""

from __future__ import annotations

from bot.domain.actor import Actor
from bot.engine.core import (
    ContextFactory,
    Decision,
    DecisionName,
    default_context,
    runbook_digest,
)
from bot.engine.deviations import Deviations
from bot.engine.errors import EngineError
from bot.engine.identity import Identity, ReplicaInUse
from bot.engine.overrides import Overrides
from bot.engine.recovery import Recovery
from bot.engine.revert import Reverts
from bot.engine.rollback import Rollback
from bot.engine.run_signoff import RunSignoffs
from bot.engine.runs import Runs
from bot.engine.signoffs import Signoffs
from phases.runbook import RunbookError


class Engine(
    Identity, Recovery, Reverts, Rollback, Overrides, Signoffs, RunSignoffs, Deviations, Runs
):
    """The one engine object the CLI, `serve`, the console, the demo and tests build."""


__all__ = [
    "Actor",
    "ContextFactory",
    "Decision",
    "DecisionName",
    "Engine",
    "EngineError",
    "ReplicaInUse",
    "RunbookError",
    "default_context",
    "runbook_digest",
]
