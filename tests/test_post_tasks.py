"""Post-cutover tasks (issue 24), the scheduler's part, on SQLite and PostgreSQL with the
injectable clock: a completed run lists its tasks with their owners; the owner or an
approver marks each done, once; open tasks are reminded every interval until the run's end +
24 h, then escalated in the run's channel and to the stakeholders, never dropped and never
marked done by the bot; the record says each task's state, every line from the trail."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.post_tasks import PostTasks
from bot.record import build_record, record_text
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.reads import tasks_view
from tests.post_task_helpers import (
    APPROVER,
    DOCS,
    OPS,
    OWNER,
    STRANGER,
    T0,
    completed_run,
    tasks_runbook,
)
from tests.schedule_helpers import set_clock
from tests.trail_checker import check_record, exported_rows

H = timedelta(hours=1)


def kinds(db: Database, run_id: int, kind: str) -> list[dict[str, object]]:
    return [
        {**json.loads(e.data), "actor": e.actor} for e in audit.events(db, run_id) if e.kind == kind
    ]


def test_a_completed_run_lists_its_tasks_with_owners_and_a_command_each(
    db: Database, tmp_path: Path
) -> None:
    engine, surface, clock, run_id = completed_run(db, tasks_runbook(tmp_path))
    set_clock(clock, T0 + timedelta(minutes=1))
    assert Scheduler(engine).tick() == [
        f"run #{run_id}: record due",
        f"record:{run_id}: sent",
        f"tasks:{run_id}: sent",
    ]
    [opened] = kinds(db, run_id, AuditKind.POST_TASKS_OPENED)
    assert opened["tasks"] == [
        {"id": "announce", "text": "Send launch announcement", "owner": "T1:U3"},
        {"id": "alerting", "text": "Configure alerting", "owner": "S0OPS"},
        {"id": DOCS, "text": "Update documentation with actual production URLs", "owner": None},
    ]
    assert opened["due_at"] == "2026-03-03T09:00:00+00:00"
    assert opened["remind_every_minutes"] == 240
    [listed] = surface.notices("📝 Post-cutover tasks")
    assert listed.args[0] == run_id
    lines = listed.args[1].splitlines()
    assert lines[0] == (
        f"📝 Post-cutover tasks for run #{run_id} (within 24 h, by Tue 2026-03-03 09:00 UTC): "
        "its owner or an approver marks each done:"
    )
    assert lines[1] == (
        "⬜ Send launch announcement — open, owner T1:U3, due by 2026-03-03 09:00 UTC"
        f" — /cutover tick {run_id} announce"
    )
    assert "owner group S0OPS" in lines[2] and "owner the approvers" in lines[3]


def test_the_owner_or_an_approver_marks_a_task_done_once_and_nobody_else(
    db: Database, tmp_path: Path
) -> None:
    engine, _surface, clock, run_id = completed_run(db, tasks_runbook(tmp_path))
    set_clock(clock, T0 + timedelta(minutes=1))
    Scheduler(engine).tick()
    tasks = PostTasks(engine)

    refused = tasks.done(run_id, "announce", STRANGER)
    assert refused.outcome == "refused"
    assert refused.message == (
        "only the task's owner (T1:U3) or an approver of prod may mark "
        "'Send launch announcement' done; nothing was recorded"
    )
    [refusal] = kinds(db, run_id, AuditKind.ACTION_REFUSED)
    assert refusal["action"] == "post_task" and refusal["item"] == "announce"

    set_clock(clock, T0 + 2 * H)
    assert tasks.done(run_id, "announce", OWNER).outcome == "ticked"
    again = tasks.done(run_id, "announce", APPROVER)  # a double click, or another person
    assert again.outcome == "already_decided"
    assert again.message == (
        "'Send launch announcement' was marked done by T1:U3 at 2026-03-02 11:00 UTC; "
        "it counts once"
    )
    assert tasks.done(run_id, "alerting", OPS).outcome == "ticked"  # a member of the group
    assert tasks.done(run_id, DOCS, APPROVER).outcome == "ticked"  # nobody's: an approver's
    assert [
        (d["task"], d["actor"], d["as"]) for d in kinds(db, run_id, AuditKind.POST_TASK_DONE)
    ] == [
        ("announce", "T1:U3", "owner"),
        ("alerting", "T1:U4", "owner"),
        (DOCS, "T1:U2", "approver"),
    ]


def test_open_tasks_are_reminded_each_interval_then_escalated_at_t_plus_24h(
    db: Database, tmp_path: Path
) -> None:
    runbook = tasks_runbook(tmp_path, post_cutover_reminder_hours=6)
    engine, surface, clock, run_id = completed_run(db, runbook)
    scheduler = Scheduler(engine)
    set_clock(clock, T0 + timedelta(minutes=1))
    scheduler.tick()
    set_clock(clock, T0 + 6 * H - timedelta(minutes=1))
    assert [d for d in scheduler.tick() if "task" in d] == []
    PostTasks(engine).done(run_id, "announce", OWNER)

    set_clock(clock, T0 + 6 * H)
    assert scheduler.tick() == [
        f"run #{run_id}: task-reminder",
        f"tasks:{run_id}:reminder:1: sent",
    ]
    assert scheduler.tick() == []  # once per round
    [reminder] = surface.notices("⏰ Reminder")
    assert reminder.args[0] == run_id  # in the run's thread
    text = reminder.args[1]
    assert "Send launch announcement" not in text  # done: not reminded
    assert "• Configure alerting — group S0OPS (`alerting`)" in text
    assert "Owners (group S0OPS, the approvers)" in text

    for hours in (12, 18):
        set_clock(clock, T0 + hours * H)
        assert f"tasks:{run_id}:reminder:{hours // 6}: sent" in scheduler.tick()
    set_clock(clock, T0 + 24 * H)
    assert scheduler.tick() == [
        f"run #{run_id}: task-escalation",
        f"tasks:{run_id}:escalation: sent",
    ]
    [escalation, fed] = surface.notices("🚨 Overdue")
    assert escalation.args[0] is None and escalation.args[2] == "C0CUTOVER"  # the channel
    assert fed.args[2] == "C0LAUNCH"  # and the stakeholders
    assert "the bot never does" in escalation.args[1]
    set_clock(clock, T0 + 30 * H)
    assert scheduler.tick() == []  # no more reminders past the deadline
    assert len(surface.notices("⏰ Reminder")) == 3
    [escalated] = kinds(db, run_id, AuditKind.POST_TASKS_ESCALATED)
    assert escalated["tasks"] == ["alerting", DOCS]
    view = tasks_view(db, run_id)
    assert view is not None and [t.id for t in view.open] == ["alerting", DOCS]  # never done

    PostTasks(engine).done(run_id, "alerting", OPS)  # late, but done
    text = record_text(build_record(db, runbook, run_id), runbook)
    assert "Post-cutover tasks:" in text
    assert "- ✅ Send launch announcement — done by T1:U3 at 2026-03-02 14:59 UTC" in text
    assert (
        "- ✅ Configure alerting — done by T1:U4 at 2026-03-03 15:00 UTC (after the deadline)"
        in text
    )
    assert (
        "- ⚠️ Update documentation with actual production URLs — overdue: open at the deadline "
        "(2026-03-03 09:00 UTC), owner the approvers" in text
    )
    check_record(text, exported_rows(db, run_id), runbook)


def test_the_record_posted_at_the_end_shows_every_task_open(db: Database, tmp_path: Path) -> None:
    runbook = tasks_runbook(tmp_path)
    engine, surface, clock, run_id = completed_run(db, runbook)
    set_clock(clock, T0 + timedelta(minutes=1))
    Scheduler(engine).tick()
    posted = surface.notices("📋 Cutover record")[0]  # in the thread (then to stakeholders)
    assert posted.args[0] == run_id
    assert (
        "- ⬜ Send launch announcement — open, owner T1:U3, due by 2026-03-03 09:00 UTC"
        in posted.args[1]
    )
    check_record(posted.args[1], exported_rows(db, run_id), runbook)


def test_every_task_done_stops_the_reminders_and_nothing_is_escalated(
    db: Database, tmp_path: Path
) -> None:
    engine, surface, clock, run_id = completed_run(db, tasks_runbook(tmp_path))
    scheduler = Scheduler(engine)
    set_clock(clock, T0 + timedelta(minutes=1))
    scheduler.tick()
    tasks = PostTasks(engine)
    for task, who in (("announce", OWNER), ("alerting", OPS), (DOCS, APPROVER)):
        assert tasks.done(run_id, task, who).outcome == "ticked"
    for hours in (4, 8, 24, 48):
        set_clock(clock, T0 + hours * H)
        assert scheduler.tick() == []
    assert surface.notices("⏰ Reminder") == [] and surface.notices("🚨 Overdue") == []


def test_a_dry_run_or_a_runbook_without_tasks_lists_none(db: Database, tmp_path: Path) -> None:
    engine, surface, clock, run_id = completed_run(db, tasks_runbook(tmp_path, tasks=[]))
    set_clock(clock, T0 + timedelta(minutes=1))
    assert Scheduler(engine).tick() == [f"run #{run_id}: record due", f"record:{run_id}: sent"]
    assert tasks_view(db, run_id) is None and surface.notices("📝") == []
