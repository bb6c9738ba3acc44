"""Audit vocabulary of a run's course: runs, phases, steps, gates, ticks, rollback."""

from __future__ import annotations

from bot.domain.audit_kinds import AuditKind

_STEP = {
    "section": "actions | checks | rollback | restore | monitor",
    "step": "the step's id in the runbook",
    "status": "pass | fail | error | warn | skipped",
    "evidence": "what the step found (masked)",
    "duration_ms": "the step's own time",
    "artifact": "what later steps rely on (a backup's path, SHA-256, size), when it made one",
    "output": "digest of what it printed (the text is in step_output), when it printed",
}
GATE = {"gate": "the gate's id", "phase": "the phase's id"}

# Merged into `audit_vocabulary.CATALOGUE`: (what the row means, its data fields).
ENTRIES: dict[AuditKind, tuple[str, dict[str, str]]] = {
    AuditKind.RUN_STARTED: (
        "a run was started",
        {
            "environment": "the environment",
            "runbook": "the runbook's name",
            "version": "the runbook's own version (its `version:`)",
            "dry_run": "true for a dry run",
            "reverts": "the completed run this run undoes (a revert run only)",
            "ref": "the git branch, tag or commit the run deploys (runbooks with a `ref` var)",
            "ref_from": '"start" (given as `ref=` at start) or "runbook" (its default)',
        },
    ),
    AuditKind.RUN_COMPLETED: ("every phase passed", {"environment": "the environment"}),
    AuditKind.RUN_ABORTED: ("an approver aborted the run", {"reason": "as typed (masked)"}),
    AuditKind.RUN_CANCELLED: (
        "the run ended before any action ran: nothing to roll back",
        {"reason": "why", "rollback": "false: no rollback ran"},
    ),
    AuditKind.RUN_ROLLED_BACK: (
        "the rollback finished; the facts the rollback report is drawn from",
        {
            "failed_steps": "rollback steps that failed",
            "steps": "how many rollback steps ran",
            "verified": "whether the old service was verified healthy",
            "health": "the report's sentence on the old service",
            "old_service": "the verdict in one word",
            "claims": "[{step, claim}]: what each check established",
            "checks": "the checks' ids",
            "duration_s": "how long the rollback took",
            "target_minutes": "the runbook's rollback target",
            "within_target": "whether it met the target",
            "restored": "whether the data was restored",
            "restore": "the restore's state, or null",
            "restore_point": "{path, sha256} of the backup restored, or null",
            "schema": "what the report says of the schema",
        },
    ),
    AuditKind.PHASE_STARTED: (
        "a phase (or a new attempt of it) began",
        {"phase": "the phase's id", "index": "its 0-based index", "attempt": "1, 2, …"},
    ),
    AuditKind.PHASE_INTERRUPTED: (
        "the process running the phase died; another took the run over",
        {"phase": "the phase's id", "attempt": "the attempt", "owner": "the dead process"},
    ),
    AuditKind.PHASE_NOT_BEGUN: (
        "the process that claimed the phase died before any of its actions began; another "
        "took the run over and starts the phase again (a new attempt)",
        {"phase": "the phase's id", "attempt": "the attempt", "owner": "the dead process"},
    ),
    AuditKind.PHASE_STOPPED: (
        "an aborted phase's running step ended: the rollback may begin",
        {
            "phase": "the phase's id",
            "attempt": "the attempt",
            "step": "the step that was running, or null",
            "how": "finished | sigterm | sigkill | request (left a wait) | between_steps",
            "seconds": "how long stopping took, or null",
            "said": "the sentence posted in the channel",
        },
    ),
    AuditKind.STEP_RESULT: ("a step ran", _STEP),
    AuditKind.GATE_OPENED: (
        "a phase's checkpoint opened for the approvers",
        {
            **GATE,
            "attempt": "the phase's attempt",
            "checks_passed": "whether every check passed",
            "note": "why the phase was interrupted, or null",
        },
    ),
    AuditKind.GATE_VOTE: (
        "an approver pressed Continue",
        {
            **GATE,
            "votes": "Continue votes so far",
            "quorum": "votes needed",
            "comment": "Continue with comment (masked), when given",
        },
    ),
    AuditKind.GATE_DECIDED: (
        "the gate was decided",
        {
            **GATE,
            "decision": "continue | rollback | retry",
            "approvers": "who approved (continue)",
            "reason": "the rollback's reason (masked)",
        },
    ),
    AuditKind.GATE_REMINDED: (
        "an open gate waited past its timeout: approvers reminded",
        {
            **GATE,
            "waited_minutes": "how long it had waited",
            "timeout_minutes": "the environment's gate timeout",
        },
    ),
    AuditKind.GATE_ESCALATED: (
        "an open gate waited twice its timeout: escalated",
        {
            **GATE,
            "waited_minutes": "how long it had waited",
            "timeout_minutes": "the environment's gate timeout",
        },
    ),
    AuditKind.MANUAL_TICKED: (
        "a manual step was ticked",
        {
            "gate": "the gate's id",
            "item": "the manual step's id",
            "done_by": "the action that did it, when the bot ticked it (the step's `done_by`)",
            "evidence": "that action's (or check's) evidence, when the bot ticked it",
            "ask_unless": "the check whose pass made asking unneeded, when the bot ticked it "
            "(the step's `ask_unless`)",
            "round": "the monitoring round that check passed in, when it was a round",
            "value": 'what the tick carried, by the step\'s value name ({"pubkey": …}), when '
            "the step declares `value`; as kept: an npub as its 64-hex key",
            "given": "what the person typed, when it was kept in another form (an npub1…)",
        },
    ),
    AuditKind.GATE_RECHECKED: (
        "a check run once a manual step was ticked failed: the open gate's checks no longer "
        "pass (its Continue is refused; Retry or Rollback)",
        {
            **GATE,
            "item": "the manual step whose tick ran the check",
            "failed": "the ids of the checks that failed",
            "checks_passed": "false: the gate's checks no longer pass",
        },
    ),
    AuditKind.ROLLBACK_STARTED: (
        "the rollback began",
        {"phase": "the phase that failed", "restore": "whether the data is restored too"},
    ),
    AuditKind.ROLLBACK_RESUMED: (
        "a process took over a rollback whose owner died",
        {"owner": "the dead process, when known"},
    ),
    AuditKind.RESTORE_POINT_SET: (
        "the verified backup a restore would put back, fixed before the first action",
        {
            "protects": "the phase the restore point protects",
            "path": "the backup file",
            "sha256": "its SHA-256",
            "bytes": "its size",
            "database": "the database backed up",
            "taken_at": "when (the audit row's time)",
            "taken_by": "{phase, phase_index, phase_number, attempt, step}",
            "backup_row": "the step.result row that made it",
        },
    ),
    AuditKind.RESTORE_POINT_MISSING: (
        "a restore-protected phase began its actions with no verified backup",
        {"protects": "the phase"},
    ),
}
