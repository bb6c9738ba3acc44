"""Audit vocabulary of what runs on a clock: schedules, notices, monitoring, readiness."""

from __future__ import annotations

from bot.domain.audit_kinds import AuditKind

EVENT = {
    "event": "the scheduled event's key (schedule:3:t-1h, gate:12:reminder, record:7)",
    "kind": "t-24h | t-1h | t-1h-checklist | t-0 | gate-reminder | gate-escalation | record | …",
}
TICK = {
    "scope": "what the checklist is for (a schedule, or an environment's next start)",
    "environment": "the environment",
    "schedule": "the schedule's id, or null",
    "item": "the pre-cutover item's id",
}
READINESS = {
    "schedule": "the schedule's id, or null",
    "environment": "the environment",
    "phase": "the phase dry-run",
    "dry_run": "always true",
    "trigger": "t-24h | t-1h | tick: what asked for it",
    "asked_for": "the item a tick asked to check, when one did",
    "results": "[{step, status, evidence}] (masked)",
}

# Merged into `audit_vocabulary.CATALOGUE`: (what the row means, its data fields).
ENTRIES: dict[AuditKind, tuple[str, dict[str, str]]] = {
    AuditKind.SCHEDULE_CREATED: (
        "a cutover was scheduled",
        {
            "schedule": "the schedule's id",
            "environment": "the environment",
            "start_at": "ISO 8601 UTC",
            "channel": "the run channel",
            "stakeholders": "the stakeholders' channel",
        },
    ),
    AuditKind.SCHEDULE_CANCELLED: (
        "a schedule was cancelled",
        {"schedule": "the schedule's id", "environment": "the environment"},
    ),
    AuditKind.SCHEDULE_STARTED: (
        "a scheduled cutover was started",
        {
            "schedule": "the schedule's id",
            "run": "the run's id",
            "via": "start button | /cutover start",
        },
    ),
    AuditKind.SCHEDULE_DONE: (
        "a scheduled cutover's run ended",
        {
            "schedule": "the schedule's id",
            "run": "the run's id",
            "outcome": "the run's status: completed | rolled_back | cancelled",
        },
    ),
    AuditKind.NOTICE_SENT: (
        "a scheduled message was posted",
        {
            **EVENT,
            "schedule": "the schedule's id, or null",
            "gate": "the gate's id, or null",
            "due_at": "ISO 8601 UTC",
            "attempt": "the claim's attempt",
            "channel": "where it was posted",
            "late": "whether it was posted late",
            "late_seconds": "how late, when late",
            "repeat": "true when a lapsed claim was taken over (it may show twice)",
        },
    ),
    AuditKind.NOTICE_SKIPPED: (
        "a scheduled message was moot when due",
        {
            **EVENT,
            "schedule": "the schedule's id, or null",
            "gate": "the gate's id, or null",
            "due_at": "ISO 8601 UTC",
            "attempt": "the claim's attempt",
            "reason": "why it was skipped",
        },
    ),
    AuditKind.NOTICE_FAILED: (
        "posting a scheduled message failed",
        {
            **EVENT,
            "attempt": "the attempt",
            "error": "the error (masked)",
            "final": "true when no retry follows",
        },
    ),
    AuditKind.NOTICE_RECLAIMED: (
        "a claim on a scheduled message lapsed and was taken over",
        {**EVENT, "claimed_at": "the lapsed claim's time", "previous": "its claimant"},
    ),
    AuditKind.MONITOR_STARTED: (
        "post-cutover monitoring began",
        {
            "phase": "the monitoring phase",
            "rounds": "how many rounds",
            "every_minutes": "between rounds",
            "for_minutes": "the whole window",
        },
    ),
    AuditKind.MONITOR_ROUND: (
        "a monitoring round ran",
        {
            "phase": "the monitoring phase",
            "round": "1-based",
            "of": "rounds in all",
            "minute": "minutes into the window",
            "status": "passed | failed",
            "steps": "[{step, status, evidence}]",
        },
    ),
    AuditKind.MONITOR_MISSED: (
        "monitoring rounds whose slot passed while no bot was up",
        {"phase": "the monitoring phase", "rounds": "the rounds missed (1-based)"},
    ),
    AuditKind.MONITOR_RECLAIMED: (
        "a round whose runner died was run again",
        {"phase": "the monitoring phase", "round": "1-based", "previous": "its claimant"},
    ),
    AuditKind.MONITOR_BREACH: (
        "monitoring failed: the run rolls back",
        {
            "phase": "the monitoring phase",
            "round": "1-based",
            "failures": "[{step, status, evidence}] of the checks that failed",
        },
    ),
    AuditKind.READINESS_CHECKED: ("a readiness dry run (T-24h, T-1h, or a tick)", READINESS),
    AuditKind.CHECKLIST_TICKED: (
        "an approver ticked a pre-cutover item that gates Start",
        {**TICK, "text": "the item's text", "note": "the note (masked), or null"},
    ),
    AuditKind.CHECKLIST_UNTICKED: ("a pre-cutover item was unticked", TICK),
    AuditKind.PREFLIGHT_CHECKED: (
        "preflight ran (at schedule, T-24h and start)",
        {
            "environment": "the environment",
            "schedule": "the schedule's id, or null",
            "stage": "schedule | t-24h | start",
            "passed": "whether every item passed",
            "items": "[{what, status, evidence}] (masked)",
            "elapsed_ms": "how long it took",
        },
    ),
}
