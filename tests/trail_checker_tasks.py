"""The record's "Post-cutover tasks" lines against the trail (issue 24): each task as the
`post_tasks.opened` row listed it, done by whom and when (`post_task.done`, the first one for
the task), open (no such row, none escalated), or overdue (`post_tasks.escalated` names it).
Reads only exported rows, never the bot's code."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.trail_checker import Checker, Row, Trail

SECTION = "Post-cutover tasks"


def _owner(owner: Any) -> str:
    if owner is None:
        return "the approvers"
    return f"group {owner}" if str(owner).startswith("S") else str(owner)


def _stamp(iso: str) -> str:
    return f"{iso[:10]} {iso[11:16]}"


def add_task_rules(c: Checker) -> None:
    from tests.trail_checker import Unjustified

    def opened(t: Trail) -> Row:
        rows = t.of("post_tasks.opened")
        if len(rows) != 1:
            raise Unjustified(f"{len(rows)} post_tasks.opened rows")
        return rows[0]

    def task(t: Trail, text: str) -> dict[str, Any]:
        for item in opened(t).data.get("tasks", []):
            if item.get("text") == text:
                return dict(item)
        raise Unjustified(f"the listed tasks have no {text!r}")

    def dones(t: Trail, task_id: str) -> list[Row]:
        return t.of("post_task.done", task=task_id)

    def escalations(t: Trail, task_id: str) -> list[Row]:
        return [r for r in t.of("post_tasks.escalated") if task_id in r.data.get("tasks", [])]

    @c.add(r"Post-cutover tasks:")
    def heading(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return (opened(t).seq,)

    @c.add(
        r"✅ (.+) — done by (\S+) at (\d{4}-\d\d-\d\d \d\d:\d\d) UTC( \(after the deadline\))?",
        SECTION,
    )
    def done(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        text, who, stamp, late = m.groups()
        item = task(t, text)
        rows = dones(t, item["id"])
        if not rows or rows[0].actor != who or _stamp(rows[0].at) != stamp:
            raise Unjustified(f"the first post_task.done of {item['id']!r} is not {who} at {stamp}")
        before = [r for r in escalations(t, item["id"]) if r.seq < rows[0].seq]
        if bool(late) != bool(before):
            raise Unjustified("after the deadline or not: the escalation rows say otherwise")
        return (opened(t).seq, rows[0].seq, *(r.seq for r in before))

    @c.add(r"⬜ (.+) — open, owner (.+), due by (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", SECTION)
    def still_open(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        text, owner, due = m.groups()
        item = task(t, text)
        if _owner(item.get("owner")) != owner or _stamp(opened(t).data["due_at"]) != due:
            raise Unjustified(f"the listed owner or deadline of {item['id']!r} differs")
        t.none("done or escalated", dones(t, item["id"]) + escalations(t, item["id"]), [opened(t)])
        return (opened(t).seq,)

    @c.add(
        r"⚠️ (.+) — overdue: open at the deadline \((\d{4}-\d\d-\d\d \d\d:\d\d) UTC\), "
        r"owner (.+)",
        SECTION,
    )
    def overdue(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        text, due, owner = m.groups()
        item = task(t, text)
        rows = escalations(t, item["id"])
        if _stamp(opened(t).data["due_at"]) != due or _owner(item.get("owner")) != owner:
            raise Unjustified(f"the listed owner or deadline of {item['id']!r} differs")
        t.none("done", dones(t, item["id"]), rows)
        return t.one("the escalation", rows)

    c.must_cite.append(("post_task.done", lambda r: True))
