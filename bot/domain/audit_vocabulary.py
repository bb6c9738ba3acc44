"""The audit vocabulary as a public interface: what each kind of row means and the fields of
its `data`, for the auditors and tools that read the trail.

docs/audit.md is generated from this and from the enum (`python -m bot.domain.audit_vocabulary
> docs/audit.md`); tests/test_audit_vocabulary.py fails when a kind has no entry here, when a
call site writes a field not listed, or when the doc is stale. A kind or field is never
renamed in place: the old name goes in `audit_kinds.RENAMED` and stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain.audit_kinds import RENAMED, AuditKind
from bot.domain.audit_vocabulary_tasks import ENTRIES as TASK_ENTRIES

REGENERATE = "python -m bot.domain.audit_vocabulary > docs/audit.md"

# Fields every refusal may carry besides action and reason: what the action was about.
_REFUSED_CONTEXT = "gate, item, phase, environment, schedule, criterion, missing, preflight, freeze"


@dataclass(frozen=True)
class Entry:
    what: str
    fields: dict[str, str] = field(default_factory=dict)


_STEP = {
    "section": "actions | checks | rollback | restore | monitor",
    "step": "the step's id in the runbook",
    "status": "pass | fail | error | warn | skipped",
    "evidence": "what the step found (masked)",
    "duration_ms": "the step's own time",
    "artifact": "what later steps rely on (a backup's path, SHA-256, size), when it made one",
    "output": "digest of what it printed (the text is in step_output), when it printed",
}
_GATE = {"gate": "the gate's id", "phase": "the phase's id"}
_TICK_CHECKS = {
    **_GATE,
    "item": "the manual step whose tick the checks are bound to",
    "checks": "the ids of its checks that have no result",
}
_TICK_CAUSE = {
    "cause": "restart (this replica was restarted) | takeover (another replica's lease lapsed)",
    "owner": "the replica that was running them",
}
_EVENT = {
    "event": "the scheduled event's key (schedule:3:t-1h, gate:12:reminder, record:7)",
    "kind": "t-24h | t-1h | t-1h-checklist | t-0 | gate-reminder | gate-escalation | record | …",
}
_TICK = {
    "scope": "what the checklist is for (a schedule, or an environment's next start)",
    "environment": "the environment",
    "schedule": "the schedule's id, or null",
    "item": "the pre-cutover item's id",
}
_READINESS = {
    "schedule": "the schedule's id, or null",
    "environment": "the environment",
    "phase": "the phase dry-run",
    "dry_run": "always true",
    "trigger": "t-24h | t-1h | tick: what asked for it",
    "asked_for": "the item a tick asked to check, when one did",
    "results": "[{step, status, evidence}] (masked)",
}

CATALOGUE: dict[AuditKind, Entry] = {
    AuditKind.RUN_STARTED: Entry(
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
    AuditKind.RUN_COMPLETED: Entry("every phase passed", {"environment": "the environment"}),
    AuditKind.RUN_ABORTED: Entry("an approver aborted the run", {"reason": "as typed (masked)"}),
    AuditKind.RUN_CANCELLED: Entry(
        "the run ended before any action ran: nothing to roll back",
        {"reason": "why", "rollback": "false: no rollback ran"},
    ),
    AuditKind.RUN_ROLLED_BACK: Entry(
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
    AuditKind.PHASE_STARTED: Entry(
        "a phase (or a new attempt of it) began",
        {"phase": "the phase's id", "index": "its 0-based index", "attempt": "1, 2, …"},
    ),
    AuditKind.PHASE_INTERRUPTED: Entry(
        "the process running the phase died; another took the run over",
        {"phase": "the phase's id", "attempt": "the attempt", "owner": "the dead process"},
    ),
    AuditKind.PHASE_STOPPED: Entry(
        "an aborted phase's running step ended: the rollback may begin",
        {
            "phase": "the phase's id",
            "attempt": "the attempt",
            "step": "the step that was running, or null",
            "how": "finished | sigterm | sigkill | between_steps",
            "seconds": "how long stopping took, or null",
            "said": "the sentence posted in the channel",
        },
    ),
    AuditKind.STEP_RESULT: Entry("a step ran", _STEP),
    AuditKind.GATE_OPENED: Entry(
        "a phase's checkpoint opened for the approvers",
        {
            **_GATE,
            "attempt": "the phase's attempt",
            "checks_passed": "whether every check passed",
            "note": "why the phase was interrupted, or null",
        },
    ),
    AuditKind.GATE_VOTE: Entry(
        "an approver pressed Continue",
        {
            **_GATE,
            "votes": "Continue votes so far",
            "quorum": "votes needed",
            "comment": "Continue with comment (masked), when given",
        },
    ),
    AuditKind.GATE_DECIDED: Entry(
        "the gate was decided",
        {
            **_GATE,
            "decision": "continue | rollback | retry",
            "approvers": "who approved (continue)",
            "reason": "the rollback's reason (masked)",
        },
    ),
    AuditKind.GATE_REMINDED: Entry(
        "an open gate waited past its timeout: approvers reminded",
        {
            **_GATE,
            "waited_minutes": "how long it had waited",
            "timeout_minutes": "the environment's gate timeout",
        },
    ),
    AuditKind.GATE_ESCALATED: Entry(
        "an open gate waited twice its timeout: escalated",
        {
            **_GATE,
            "waited_minutes": "how long it had waited",
            "timeout_minutes": "the environment's gate timeout",
        },
    ),
    AuditKind.MANUAL_TICKED: Entry(
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
    AuditKind.GATE_RECHECKED: Entry(
        "a check run once a manual step was ticked failed: the open gate's checks no longer "
        "pass (its Continue is refused; Retry or Rollback)",
        {
            **_GATE,
            "item": "the manual step whose tick ran the check",
            "failed": "the ids of the checks that failed",
            "checks_passed": "false: the gate's checks no longer pass",
        },
    ),
    AuditKind.TICK_CHECKS_STARTED: Entry(
        "the process holding the run (its lease) began the checks of a manual step's tick; "
        "their results follow as step.result rows of the gate's phase run",
        {
            **_TICK_CHECKS,
            "replica": "the replica that runs them",
            "epoch": "the run's lease epoch (fencing token) it holds: its results are "
            "written only while it still holds that epoch",
        },
    ),
    AuditKind.TICK_CHECKS_INTERRUPTED: Entry(
        "the process running a tick's checks died before their results, and the step does not "
        "declare them safe to repeat (`on_restart: ask`, the default): the checkpoint says "
        "so, and Continue is refused until a person ticks the step again (or Retries)",
        {**_TICK_CHECKS, **_TICK_CAUSE},
    ),
    AuditKind.TICK_CHECKS_RESUMED: Entry(
        "a tick's checks that have no result are run again: by the process that now holds "
        "the run (the step declares `on_restart: rerun`), or because a person ticked the step "
        "again after they were interrupted (actor: that person)",
        {**_TICK_CHECKS, **_TICK_CAUSE, "cause": "restart | takeover | tick (a person)"},
    ),
    AuditKind.CRITERION_SIGNED_OFF: Entry(
        "an approver vouched for a success criterion",
        {"criterion": "the criterion's id", "note": "the note (masked), or null"},
    ),
    AuditKind.SIGNOFF_REQUESTED: Entry(
        "the last phase began: approvers were asked to sign off",
        {"criteria": "the criteria bound to a sign-off"},
    ),
    AuditKind.RUN_SIGNOFF_REQUESTED: Entry(
        "the run completed: the people its environment's `signoff` names were asked to sign "
        "it off (committed with run.completed; not for a dry run, nor where nobody is named)",
        {
            "by": "the people named, fully qualified (TEAM:USER, console:NAME)",
            "groups": "the Slack user groups whose members may sign",
            "quorum": "how many different people must sign",
        },
    ),
    AuditKind.RUN_SIGNED_OFF: Entry(
        "a person the environment's `signoff` names signed the completed run off (once per "
        "person: the unique key of run_signoff)",
        {
            "note": "the note (masked), or empty",
            "signed": "how many different people have signed, this one included",
            "quorum": "how many must sign",
        },
    ),
    AuditKind.RECORD_NOTE: Entry("/cutover note: a line for the record", {"text": "(masked)"}),
    AuditKind.RECORD_DEVIATION: Entry(
        "/cutover deviation: an entry for the record's Deviations from Runbook",
        {"text": "(masked)"},
    ),
    AuditKind.OVERRIDE_VOTE: Entry(
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
    AuditKind.GATE_OVERRIDDEN: Entry(
        "the override quorum was reached: the run goes on past the gate's failed checks",
        {
            **_GATE,
            "attempt": "the gate's attempt",
            "steps": "the failed steps gone past",
            "approvers": "who voted for the override",
            "justifications": "each voter's justification, as 'voter: text' (masked)",
            "quorum": "override votes that were needed",
        },
    ),
    AuditKind.FREEZE_OVERRIDDEN: Entry(
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
    AuditKind.ENV_LOCKED: Entry(
        "an approver locked an environment: no run may start there until it is unlocked",
        {"environment": "the environment", "reason": "why (masked)"},
    ),
    AuditKind.ENV_UNLOCKED: Entry(
        "an approver unlocked an environment",
        {
            "environment": "the environment",
            "reason": "the lock's reason",
            "locked_by": "who had locked it",
        },
    ),
    AuditKind.REVERT_REQUESTED: Entry(
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
    AuditKind.REVERT_APPROVED: Entry(
        "an approver voted for a revert",
        {
            "reverts": "the completed run it undoes",
            "votes": "votes so far, this one included",
            "quorum": "votes needed",
        },
    ),
    AuditKind.REVERT_STARTED: Entry(
        "the revert's quorum was reached: its restore and rollback steps begin",
        {"reverts": "the completed run it undoes", "approvers": "who voted for it"},
    ),
    AuditKind.RUN_REVERTED: Entry(
        "written on a completed run when a revert of it starts (its quorum reached): the "
        "original run's record says by which run, who asked and who approved",
        {
            "by_run": "the revert run",
            "requested_by": "who asked for the revert",
            "approvers": "who voted for it",
            "reason": "why, in the requester's words (masked)",
        },
    ),
    AuditKind.REVERT_REMINDED: Entry(
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
    AuditKind.REVERT_ESCALATED: Entry(
        "a revert waited for its approvers twice the gate timeout: escalated to the channel",
        {
            "reverts": "the completed run it undoes",
            "votes": "votes so far",
            "quorum": "votes needed",
            "waited_minutes": "how long it had waited",
            "timeout_minutes": "the environment's gate timeout",
        },
    ),
    AuditKind.ACTION_REFUSED: Entry(
        "an authorization rule or the state machine said no; nothing was changed",
        {
            "action": "start | continue | rollback | retry | tick | abort | note | signoff | "
            "run_signoff | "
            "schedule | unschedule | …",
            "reason": "the refusal as shown to the person",
            "…": f"what the action was about, when it names one: {_REFUSED_CONTEXT}",
        },
    ),
    AuditKind.ROLLBACK_STARTED: Entry(
        "the rollback began",
        {"phase": "the phase that failed", "restore": "whether the data is restored too"},
    ),
    AuditKind.ROLLBACK_RESUMED: Entry(
        "a process took over a rollback whose owner died",
        {"owner": "the dead process, when known"},
    ),
    AuditKind.RESTORE_POINT_SET: Entry(
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
    AuditKind.RESTORE_POINT_MISSING: Entry(
        "a restore-protected phase began its actions with no verified backup",
        {"protects": "the phase"},
    ),
    AuditKind.SCHEDULE_CREATED: Entry(
        "a cutover was scheduled",
        {
            "schedule": "the schedule's id",
            "environment": "the environment",
            "start_at": "ISO 8601 UTC",
            "channel": "the run channel",
            "stakeholders": "the stakeholders' channel",
        },
    ),
    AuditKind.SCHEDULE_CANCELLED: Entry(
        "a schedule was cancelled",
        {"schedule": "the schedule's id", "environment": "the environment"},
    ),
    AuditKind.SCHEDULE_STARTED: Entry(
        "a scheduled cutover was started",
        {
            "schedule": "the schedule's id",
            "run": "the run's id",
            "via": "start button | /cutover start",
        },
    ),
    AuditKind.SCHEDULE_DONE: Entry(
        "a scheduled cutover's run ended",
        {
            "schedule": "the schedule's id",
            "run": "the run's id",
            "outcome": "the run's status: completed | rolled_back | cancelled",
        },
    ),
    AuditKind.NOTICE_SENT: Entry(
        "a scheduled message was posted",
        {
            **_EVENT,
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
    AuditKind.NOTICE_SKIPPED: Entry(
        "a scheduled message was moot when due",
        {
            **_EVENT,
            "schedule": "the schedule's id, or null",
            "gate": "the gate's id, or null",
            "due_at": "ISO 8601 UTC",
            "attempt": "the claim's attempt",
            "reason": "why it was skipped",
        },
    ),
    AuditKind.NOTICE_FAILED: Entry(
        "posting a scheduled message failed",
        {
            **_EVENT,
            "attempt": "the attempt",
            "error": "the error (masked)",
            "final": "true when no retry follows",
        },
    ),
    AuditKind.NOTICE_RECLAIMED: Entry(
        "a claim on a scheduled message lapsed and was taken over",
        {**_EVENT, "claimed_at": "the lapsed claim's time", "previous": "its claimant"},
    ),
    AuditKind.MONITOR_STARTED: Entry(
        "post-cutover monitoring began",
        {
            "phase": "the monitoring phase",
            "rounds": "how many rounds",
            "every_minutes": "between rounds",
            "for_minutes": "the whole window",
        },
    ),
    AuditKind.MONITOR_ROUND: Entry(
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
    AuditKind.MONITOR_MISSED: Entry(
        "monitoring rounds whose slot passed while no bot was up",
        {"phase": "the monitoring phase", "rounds": "the rounds missed (1-based)"},
    ),
    AuditKind.MONITOR_RECLAIMED: Entry(
        "a round whose runner died was run again",
        {"phase": "the monitoring phase", "round": "1-based", "previous": "its claimant"},
    ),
    AuditKind.MONITOR_BREACH: Entry(
        "monitoring failed: the run rolls back",
        {
            "phase": "the monitoring phase",
            "round": "1-based",
            "failures": "[{step, status, evidence}] of the checks that failed",
        },
    ),
    AuditKind.READINESS_CHECKED: Entry("a readiness dry run (T-24h, T-1h, or a tick)", _READINESS),
    AuditKind.CHECKLIST_TICKED: Entry(
        "an approver ticked a pre-cutover item that gates Start",
        {**_TICK, "text": "the item's text", "note": "the note (masked), or null"},
    ),
    AuditKind.CHECKLIST_UNTICKED: Entry("a pre-cutover item was unticked", _TICK),
    AuditKind.PREFLIGHT_CHECKED: Entry(
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
    AuditKind.SURFACE_FAILED: Entry(
        "a chat post failed", {"call": "the surface call", "error": "the error (masked)"}
    ),
    AuditKind.SCHEDULER_LEADER: Entry(
        "this process became the scheduler's leader", {"process": "the process"}
    ),
    AuditKind.AUDIT_KEY_ROTATED: Entry(
        "the bot started with another signing key than the trail's last",
        {"key_id": "the new key's id", "retired_key": "the old key's id, or null"},
    ),
    AuditKind.AUDIT_KEY_DROPPED: Entry(
        "the bot started with no signing key where the trail was signed",
        {"retired_key": "the key retired"},
    ),
}
CATALOGUE |= {k: Entry(what, fields) for k, (what, fields) in TASK_ENTRIES.items()}


def markdown() -> str:
    """docs/audit.md: every kind in the enum's order, its meaning and its data fields."""
    out = [
        "# The audit vocabulary",
        "",
        "Every kind of row the bot writes to the audit trail (`audit_event.kind`), and the "
        "fields of its `data` (canonical JSON). Every row also has `seq`, `at` (ISO 8601 "
        "UTC), `run_id` (or null), `actor` (TEAM:USER, console:NAME or `system`), "
        "`prev_hash` and `hash`.",
        "",
        f"Generated from `bot/domain/audit_vocabulary.py` by `{REGENERATE}`; "
        "a test fails when the two differ. A kind or field is never renamed in place: the "
        "old name is kept readable (see the end).",
    ]
    for kind in AuditKind:
        entry = CATALOGUE[kind]
        out += ["", f"## `{kind.value}`", "", entry.what[0].upper() + entry.what[1:] + "."]
        if entry.fields:
            out.append("")
            out += [f"- `{name}`: {meaning}" for name, meaning in entry.fields.items()]
    out += [
        "",
        "## Older names",
        "",
        "A trail keeps the rows an older bot wrote, under the names it used; the bot reads "
        "them as today's kind (`bot.domain.audit_kinds.read_kind` and `read_data`):",
        "",
    ]
    out += [f"- `{old}`: read as `{new.value}`" for old, new in RENAMED.items()]
    out += [
        "",
        "`click.refused` (before c605e77) had `decision` (continue, rollback, retry), `tick` "
        "(the item) or `abort: true` where `action.refused` has `action` (and `item`).",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
