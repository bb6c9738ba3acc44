"""The audit vocabulary of checks bound to a manual step's tick when the process running
them dies (bot/engine/tick_checks.py, bot/engine/tick_resume.py), merged into
`audit_vocabulary.CATALOGUE`: (what the row means, its data fields)."""

from __future__ import annotations

from bot.domain.audit_kinds import AuditKind
from bot.domain.audit_vocabulary_runs import GATE

_CHECKS = {
    **GATE,
    "item": "the manual step whose tick the checks are bound to",
    "checks": "the ids of its checks that have no result",
}
_CAUSE = {
    "cause": "restart (this replica was restarted) | takeover (another replica's lease lapsed)",
    "owner": "the replica that was running them",
}

ENTRIES: dict[AuditKind, tuple[str, dict[str, str]]] = {
    AuditKind.TICK_CHECKS_STARTED: (
        "the process holding the run (its lease) began the checks of a manual step's tick; "
        "their results follow as step.result rows of the gate's phase run",
        {
            **_CHECKS,
            "replica": "the replica that runs them",
            "epoch": "the run's lease epoch (fencing token) it holds: its results are "
            "written only while it still holds that epoch",
        },
    ),
    AuditKind.TICK_CHECKS_INTERRUPTED: (
        "the process running a tick's checks died before their results, and the step does not "
        "declare them safe to repeat (`on_restart: ask`, the default): the checkpoint says "
        "so, and Continue is refused until a person ticks the step again (or Retries)",
        {**_CHECKS, **_CAUSE},
    ),
    AuditKind.TICK_CHECKS_RESUMED: (
        "a tick's checks that have no result are run again: by the process that now holds "
        "the run (the step declares `on_restart: rerun`), or because a person ticked the step "
        "again after they were interrupted (actor: that person)",
        {**_CHECKS, **_CAUSE, "cause": "restart | takeover | tick (a person ticked again)"},
    ),
}
