"""The runbook engine: runs, phases, gates, decisions and rollback, durable in the database.

Every state change and its audit row commit in one transaction, and every status change goes
through the transition table (`bot.domain.states`); who may do what is asked of
`bot.domain.approvals` when the request arrives. Nothing here knows Slack: surfaces are told
what changed (`bot.surface`). The use cases live in one module each:

    core.py      collaborators, follow-up pool, surface calls, audited refusals, leases
    runs.py      start a run; claim, execute and check a phase; open its gate
    gates.py     votes, Retry, Rollback, manual ticks, abort, cancel
    tick_checks.py  the checks bound to a manual step's tick, run under the run's lease
    tick_resume.py  those checks after a restart or a take-over: re-run, or shown interrupted
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
    EngineError,
    default_context,
    runbook_digest,
)
from bot.engine.deviations import Deviations
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
