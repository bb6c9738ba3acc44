"""Audit vocabulary of what people decide: sign-offs, notes, overrides, locks, reverts."""

from __future__ import annotations

from bot.domain.audit_kinds import AuditKind
from bot.domain.audit_vocabulary_runs import GATE

# Merged into `audit_vocabulary.CATALOGUE`: (what the row means, its data fields).
ENTRIES: dict[AuditKind, tuple[str, dict[str, str]]] = {
    AuditKind.CRITERION_SIGNED_OFF: (
        "an approver vouched for a success criterion",
        {"criterion": "the criterion's id", "note": "the note (masked), or null"},
    ),
    AuditKind.SIGNOFF_REQUESTED: (
        "the last phase began: approvers were asked to sign off",
        {"criteria": "the criteria bound to a sign-off"},
    ),
    AuditKind.RUN_SIGNOFF_REQUESTED: (
        "the run completed: the people its environment's `signoff` names were asked to sign "
        "it off (committed with run.completed; not for a dry run, nor where nobody is named)",
        {
            "by": "the people named, fully qualified (TEAM:USER, console:NAME)",
            "groups": "the Slack user groups whose members may sign",
            "quorum": "how many different people must sign",
        },
    ),
    AuditKind.RUN_SIGNED_OFF: (
        "a person the environment's `signoff` names signed the completed run off (once per "
        "person: the unique key of run_signoff)",
        {
            "note": "the note (masked), or empty",
            "signed": "how many different people have signed, this one included",
            "quorum": "how many must sign",
        },
    ),
    AuditKind.RECORD_NOTE: ("/cutover note: a line for the record", {"text": "(masked)"}),
    AuditKind.RECORD_DEVIATION: (
        "/cutover deviation: an entry for the record's Deviations from Runbook",
        {"text": "(masked)"},
    ),
    AuditKind.OVERRIDE_VOTE: (
        "an override approver voted to go past failed checks (a gate) or a change freeze (a start)",
        {
            "subject": "gate | start",
            "gate": "the gate's id (subject gate)",
            "phase": "the phase's id (subject gate)",
            "steps": "the failed steps the vote goes past (subject gate)",
            "environment": "the environment (subject start)",
            "freeze": "the freeze's id (subject start)",
            "justification": "why, in the voter's words (masked)",
            "votes": "override votes so far, this one included",
            "quorum": "override votes needed",
        },
    ),
    AuditKind.GATE_OVERRIDDEN: (
        "the override quorum was reached: the run goes on past the gate's failed checks",
        {
            **GATE,
            "attempt": "the gate's attempt",
            "steps": "the failed steps gone past",
            "approvers": "who voted for the override",
            "justifications": "each voter's justification, as 'voter: text' (masked)",
            "quorum": "override votes that were needed",
        },
    ),
    AuditKind.FREEZE_OVERRIDDEN: (
        "an emergency start went past a change freeze (written beside run.started)",
        {
            "environment": "the environment",
            "freeze": "the freeze's id in the runbook",
            "reason": "the freeze's reason, from the runbook",
            "by": "who declared the freeze, from the runbook",
            "until": "when the environment reopens (ISO 8601, UTC)",
            "approvers": "who voted for the emergency start",
            "justifications": "each voter's justification (masked)",
        },
    ),
    AuditKind.ENV_LOCKED: (
        "an approver locked an environment: no run may start there until it is unlocked",
        {"environment": "the environment", "reason": "why (masked)"},
    ),
    AuditKind.ENV_UNLOCKED: (
        "an approver unlocked an environment",
        {
            "environment": "the environment",
            "reason": "the lock's reason",
            "locked_by": "who had locked it",
        },
    ),
    AuditKind.REVERT_REQUESTED: (
        "an approver asked to revert a completed run: the revert run was created, waiting "
        "for its quorum",
        {
            "reverts": "the completed run it undoes",
            "reason": "why, in the requester's words (masked)",
            "completed_at": "when that run completed (ISO 8601, UTC)",
            "window_hours": "the runbook's revert_window_hours",
            "quorum": "votes needed",
        },
    ),
    AuditKind.REVERT_APPROVED: (
        "an approver voted for a revert",
        {
            "reverts": "the completed run it undoes",
            "votes": "votes so far, this one included",
            "quorum": "votes needed",
        },
    ),
    AuditKind.REVERT_STARTED: (
        "the revert's quorum was reached: its restore and rollback steps begin",
        {"reverts": "the completed run it undoes", "approvers": "who voted for it"},
    ),
    AuditKind.RUN_REVERTED: (
        "written on a completed run when a revert of it starts (its quorum reached): the "
        "original run's record says by which run, who asked and who approved",
        {
            "by_run": "the revert run",
            "requested_by": "who asked for the revert",
            "approvers": "who voted for it",
            "reason": "why, in the requester's words (masked)",
        },
    ),
    AuditKind.REVERT_REMINDED: (
        "a revert waited for its approvers past the environment's gate timeout: reminded "
        "(it never approves itself)",
        {
            "reverts": "the completed run it undoes",
            "votes": "votes so far",
            "quorum": "votes needed",
            "waited_minutes": "how long it had waited",
            "timeout_minutes": "the environment's gate timeout",
        },
    ),
    AuditKind.REVERT_ESCALATED: (
        "a revert waited for its approvers twice the gate timeout: escalated to the channel",
        {
            "reverts": "the completed run it undoes",
            "votes": "votes so far",
            "quorum": "votes needed",
            "waited_minutes": "how long it had waited",
            "timeout_minutes": "the environment's gate timeout",
        },
    ),
}
