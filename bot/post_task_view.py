"""The state of a run's post-cutover tasks, read from its audit trail only: which tasks were
listed (`post_tasks.opened`, with their owners and the deadline), who marked each done and
when (`post_task.done`), which were still open at the deadline (`post_tasks.escalated`).

Every surface draws from this (Slack's checklist with a Done button per task, the console's
text, the reminders) and the cutover record's "Post-cutover tasks" lines are made here, so
each word of them comes from a row a test finds in the trail (tests/trail_checker.py).
The rows are read by the store (bot/store/read_tasks.py); this module holds the plain data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from bot.domain.audit_kinds import AuditKind

KINDS = (
    AuditKind.POST_TASKS_OPENED,
    AuditKind.POST_TASK_DONE,
    AuditKind.POST_TASKS_ESCALATED,
)


@runtime_checkable
class PostTaskSurface(Protocol):
    """A surface that shows the tasks as a checklist it redraws (Slack); any other surface is
    told them as text (`tasks_text`) and people answer with `/cutover tick RUN TASK`."""

    def post_tasks_changed(self, run_id: int) -> None: ...


@dataclass(frozen=True)
class TaskState:
    id: str
    text: str
    owner: str | None
    done_by: str | None = None
    done_at: str | None = None  # ISO 8601 UTC, as the audit row has it
    overdue: bool = False  # still open at the deadline (escalated), whatever came after

    @property
    def is_open(self) -> bool:
        return self.done_by is None


@dataclass(frozen=True)
class TasksView:
    run_id: int
    environment: str
    due_at: datetime
    remind_every_minutes: int
    tasks: tuple[TaskState, ...]
    escalated_at: str | None = None

    def task(self, task_id: str) -> TaskState | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    @property
    def open(self) -> list[TaskState]:
        return [t for t in self.tasks if t.is_open]


def view_of(run_id: int, environment: str, events: Iterable[Any]) -> TasksView | None:
    opened: dict[str, Any] | None = None
    done: dict[str, tuple[str, str]] = {}
    escalated: tuple[set[str], str] | None = None
    for ev in events:
        data = json.loads(ev.data) if isinstance(ev.data, str) else ev.data
        if ev.kind == AuditKind.POST_TASKS_OPENED and opened is None:
            opened = data
        elif ev.kind == AuditKind.POST_TASK_DONE:
            done.setdefault(str(data.get("task")), (ev.actor, ev.at))
        elif ev.kind == AuditKind.POST_TASKS_ESCALATED and escalated is None:
            escalated = ({str(t) for t in data.get("tasks", [])}, ev.at)
    if opened is None:
        return None
    tasks: list[TaskState] = []
    for t in opened.get("tasks", []):
        task_id = str(t["id"])
        by, at = done.get(task_id) or (None, None)
        overdue = escalated is not None and task_id in escalated[0]
        tasks.append(TaskState(task_id, str(t["text"]), t.get("owner"), by, at, overdue))
    return TasksView(
        run_id,
        environment,
        datetime.fromisoformat(str(opened["due_at"])),
        int(opened.get("remind_every_minutes") or 0),
        tuple(tasks),
        escalated[1] if escalated else None,
    )


def owner_text(owner: str | None) -> str:
    if owner is None:
        return "the approvers"
    return f"group {owner}" if owner.startswith("S") else owner


def _at(iso: str) -> str:
    return f"{iso[:10]} {iso[11:16]} UTC"


def task_line(task: TaskState, view: TasksView) -> str:
    """A task's line in the record (and the console's text): done by whom and when, open,
    or overdue (still open at the deadline)."""
    due = _at(view.due_at.isoformat())
    if task.done_by is not None and task.done_at is not None:
        late = " (after the deadline)" if task.overdue else ""
        return f"✅ {task.text} — done by {task.done_by} at {_at(task.done_at)}{late}"
    if task.overdue:
        return (
            f"⚠️ {task.text} — overdue: open at the deadline ({due}), owner {owner_text(task.owner)}"
        )
    return f"⬜ {task.text} — open, owner {owner_text(task.owner)}, due by {due}"


def task_lines(view: TasksView | None) -> list[str]:
    return [task_line(t, view) for t in view.tasks] if view is not None else []


def tasks_text(view: TasksView) -> str:
    """The checklist as text, for a surface without buttons (the console)."""
    by = view.due_at.strftime("%a %Y-%m-%d %H:%M UTC")
    lines = [
        f"📝 Post-cutover tasks for run #{view.run_id} (within 24 h, by {by}): its owner or "
        "an approver marks each done:"
    ]
    for t in view.tasks:
        how = f" — /cutover tick {view.run_id} {t.id}" if t.is_open else ""
        lines.append(task_line(t, view) + how)
    return "\n".join(lines)


def open_list(tasks: Iterable[TaskState]) -> str:
    return "\n".join(f"• {t.text} — {owner_text(t.owner)} (`{t.id}`)" for t in tasks)
