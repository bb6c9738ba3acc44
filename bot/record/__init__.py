"""The cutover record: the runbook's Notes section and success criteria, filled in from
the audit trail of a run when it completes or rolls back; and the post-cutover tasks.

Everything here is read from the run's typed `audit_event` rows (the run row gives only
its status and environment): what a person did is in them (ticks, decisions, refusals), so
is what the bot saw (step results, monitoring rounds), each with who and when, so every
line of the record maps to the rows that justify it (`tests/trail_checker.py` checks
that). Issues are what went wrong (failed or erroring steps, retries, interruptions,
aborts, timeouts, overrides); a refusal is the bot's rules working and gets its own line.
A criterion is judged only by what the runbook binds it to (a check, monitoring rounds,
a manual step, a sign-off); one bound to nothing, or with no result, is "not verified".
"""

from bot.record.build import (
    DEFAULT_BINDINGS,
    DEFAULT_NOTES,
    REFUSED,
    build_record,
)
from bot.record.criteria import evaluate, manual_verdict
from bot.record.deployed import deployed_artifact, deployed_lines
from bot.record.issues import deviations, issues, refusals, revert_lines, rollback_reason
from bot.record.manual_steps import manual_lines
from bot.record.render import record_text, tasks_text
from bot.record.sign_off import went_on
from bot.record.trail import (
    ENDED,
    VERDICT_ICONS,
    Criterion,
    CutoverRecord,
    Trail,
    Verdict,
    hm,
    read_trail,
)

_trail = read_trail  # the name tests (and older callers) use

__all__ = [
    "DEFAULT_BINDINGS",
    "DEFAULT_NOTES",
    "ENDED",
    "REFUSED",
    "VERDICT_ICONS",
    "Criterion",
    "CutoverRecord",
    "Trail",
    "Verdict",
    "build_record",
    "deployed_artifact",
    "deployed_lines",
    "deviations",
    "evaluate",
    "hm",
    "issues",
    "manual_lines",
    "manual_verdict",
    "read_trail",
    "record_text",
    "refusals",
    "revert_lines",
    "rollback_reason",
    "tasks_text",
    "went_on",
]
