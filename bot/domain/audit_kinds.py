"""Every kind of audit row the bot writes: the trail's vocabulary, in one place."""

from __future__ import annotations

import enum
from typing import Any


class AuditKind(enum.StrEnum):
    RUN_STARTED = "run.started"
    RUN_COMPLETED = "run.completed"
    RUN_ABORTED = "run.aborted"
    RUN_CANCELLED = "run.cancelled"  # ended before any action ran: nothing to roll back
    RUN_ROLLED_BACK = "run.rolled_back"
    PHASE_STARTED = "phase.started"
    PHASE_INTERRUPTED = "phase.interrupted"
    # The process that claimed a phase died before any of its actions began: started again
    PHASE_NOT_BEGUN = "phase.not_begun"
    # An aborted phase's running step ended (on its own, SIGTERM, SIGKILL): the rollback may begin
    PHASE_STOPPED = "phase.stopped"
    STEP_RESULT = "step.result"
    GATE_OPENED = "gate.opened"
    GATE_VOTE = "gate.vote"
    GATE_DECIDED = "gate.decided"
    GATE_REMINDED = "gate.reminded"
    GATE_ESCALATED = "gate.escalated"
    # A check bound to a manual step's tick failed while its gate was open: no longer passed
    GATE_RECHECKED = "gate.rechecked"
    # The checks bound to a tick: begun by the process holding the run (its lease), and,
    # when that process died before their results, re-run by the next holder or marked
    # interrupted for a person (bot/engine/tick_resume.py).
    TICK_CHECKS_STARTED = "tick.checks_started"
    TICK_CHECKS_INTERRUPTED = "tick.checks_interrupted"
    TICK_CHECKS_RESUMED = "tick.checks_resumed"
    # Break-glass: one approver's vote, with their justification, to pass over failed steps
    # (a gate) or a change freeze (an emergency start); then the override that decided it.
    OVERRIDE_VOTE = "override.vote"
    GATE_OVERRIDDEN = "gate.overridden"
    FREEZE_OVERRIDDEN = "freeze.overridden"  # an emergency start inside a change freeze
    ENV_LOCKED = "env.locked"  # /cutover lock ENV --reason …: no start there until unlocked
    ENV_UNLOCKED = "env.unlocked"
    MANUAL_TICKED = "manual.ticked"
    CRITERION_SIGNED_OFF = "criterion.signed_off"  # a person vouches for a success criterion
    SIGNOFF_REQUESTED = "signoff.requested"  # the last phase began: approvers asked to sign
    # Post-cutover tasks of a completed run (bot/post_tasks.py): listed with their owners,
    # each marked done once by a person, open ones reminded, and escalated at T+24h.
    POST_TASKS_OPENED = "post_tasks.opened"
    POST_TASK_DONE = "post_task.done"
    POST_TASKS_REMINDED = "post_tasks.reminded"
    POST_TASKS_ESCALATED = "post_tasks.escalated"
    # The run completed: the people its environment's `signoff` names are asked to sign it off
    # (committed with run.completed); then one row per person who did.
    RUN_SIGNOFF_REQUESTED = "run.signoff_requested"
    RUN_SIGNED_OFF = "run.signed_off"
    RECORD_NOTE = "record.note"  # /cutover note: a line for the record
    RECORD_DEVIATION = "record.deviation"  # /cutover deviation: a Deviations from Runbook entry
    ACTION_REFUSED = "action.refused"  # an authorization rule or the state machine said no
    # A revert of a completed run: its own run (reverts_run_id), asked for with a reason,
    # approved by its quorum, then the runbook's restore and rollback steps (rollback.*).
    REVERT_REQUESTED = "revert.requested"
    REVERT_APPROVED = "revert.approved"  # one approver's vote for the revert
    REVERT_STARTED = "revert.started"  # quorum reached: the steps begin
    RUN_REVERTED = "run.reverted"  # on the completed run: a revert run of it started
    REVERT_REMINDED = "revert.reminded"  # a pending revert waited past the gate timeout
    REVERT_ESCALATED = "revert.escalated"  # … and twice the gate timeout
    ROLLBACK_STARTED = "rollback.started"
    ROLLBACK_RESUMED = "rollback.resumed"
    # The verified backup a restore of the run puts back, fixed before the first
    # state-changing action of a restore-protected phase (bot/engine/restore_point.py).
    RESTORE_POINT_SET = "restore_point.set"
    RESTORE_POINT_MISSING = "restore_point.missing"  # that action began with no backup
    SCHEDULE_CREATED = "schedule.created"
    SCHEDULE_CANCELLED = "schedule.cancelled"
    SCHEDULE_STARTED = "schedule.started"
    SCHEDULE_DONE = "schedule.done"
    NOTICE_SENT = "notice.sent"
    NOTICE_SKIPPED = "notice.skipped"
    NOTICE_FAILED = "notice.failed"
    NOTICE_RECLAIMED = "notice.reclaimed"
    MONITOR_STARTED = "monitor.started"
    MONITOR_ROUND = "monitor.round"
    MONITOR_MISSED = "monitor.missed"
    MONITOR_RECLAIMED = "monitor.reclaimed"
    MONITOR_BREACH = "monitor.breach"
    READINESS_CHECKED = "readiness.checked"
    CHECKLIST_TICKED = "checklist.ticked"  # a pre-cutover item that gates Start, by an approver
    CHECKLIST_UNTICKED = "checklist.unticked"
    PREFLIGHT_CHECKED = "preflight.checked"  # at schedule, T-24h and start
    SURFACE_FAILED = "surface.failed"
    SCHEDULER_LEADER = "scheduler.leader"
    # The bot started with another signing key than the trail's last: the old one is retired
    # from this row on (signed by the new key). And started with none, where it was signed.
    AUDIT_KEY_ROTATED = "audit.key_rotated"
    AUDIT_KEY_DROPPED = "audit.key_dropped"


# Names an older bot wrote, read as today's kind: a trail keeps every row it ever had (rows
# are hashed and never rewritten), so a reader maps the old name instead. docs/audit.md lists
# them under "Older names".
RENAMED: dict[str, AuditKind] = {
    # c605e77 (the approval core): every refusal is audited alike as action.refused, start
    # and unschedule too. An old row says `decision`, or `tick` (the item), or `abort: true`,
    # where a new one says `action`.
    "click.refused": AuditKind.ACTION_REFUSED,
}


def read_kind(kind: str) -> str:
    """The kind a stored row means today: an older name read as the kind it became."""
    return RENAMED.get(kind, kind)


def read_data(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """A stored row's data as today's kind has it: an old `click.refused` row's `decision`,
    `tick` or `abort` read as `action` (and `tick` as `item`)."""
    if kind != "click.refused" or "action" in data:
        return data
    out = dict(data)
    if "tick" in out:
        out["action"], out["item"] = "tick", out.pop("tick")
    elif out.pop("abort", None):
        out["action"] = "abort"
    else:
        out["action"] = out.pop("decision", "click")
    return out
