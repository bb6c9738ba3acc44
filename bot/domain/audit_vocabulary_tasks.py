"""The audit vocabulary of post-cutover tasks (bot/post_tasks.py), merged into
`audit_vocabulary.CATALOGUE`: (what the row means, its data fields)."""

from __future__ import annotations

from bot.domain.audit_kinds import AuditKind

_TASKS = "[{id, text, owner}]: owner a qualified user id, a user group id, or null (approvers)"

ENTRIES: dict[AuditKind, tuple[str, dict[str, str]]] = {
    AuditKind.POST_TASKS_OPENED: (
        "a completed run's post-cutover tasks were listed (the checklist posted with it)",
        {
            "tasks": _TASKS,
            "due_at": "the deadline: the run's end + 24 h (ISO 8601 UTC)",
            "remind_every_minutes": "how often open tasks are reminded until then",
        },
    ),
    AuditKind.POST_TASK_DONE: (
        "a person marked a post-cutover task done (the row's actor); once per task",
        {
            "task": "the task's id",
            "owner": "the task's owner, or null",
            "as": "owner | approver: why this person may mark it done",
        },
    ),
    AuditKind.POST_TASKS_REMINDED: (
        "a reminder round of open post-cutover tasks became due (its notice.sent or "
        "notice.skipped row says whether it went out)",
        {
            "round": "1, 2, …: the round (the run's end + round × the interval)",
            "tasks": "the ids of the tasks open then",
            "owners": "whom it reminds (owners; null: the approvers)",
        },
    ),
    AuditKind.POST_TASKS_ESCALATED: (
        "post-cutover tasks were still open at the deadline: named in the run's channel and "
        "to the stakeholders (they stay open; the bot never marks one done)",
        {"tasks": "the ids of the tasks open at the deadline", "due_at": "the deadline"},
    ),
}
