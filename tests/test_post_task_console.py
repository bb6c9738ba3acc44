"""Post-cutover tasks at the console (issue 24): the list comes as text with the command for
each task; its owner (or an approver) types `/cutover tick RUN TASK`; anyone else is refused,
saying who may; a task done stays done."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from bot.app import console_engine
from bot.console import Console
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.surface import Actor
from tests.post_task_helpers import T0, completed_run, tasks_runbook
from tests.servers import ManualClock

TASK = {"id": "announce", "text": "Send launch announcement", "owner": "console:olga"}


def type_as(db: Database, runbook: object, who: str, lines: list[str]) -> str:
    out = io.StringIO()
    clock = ManualClock((T0 + timedelta(hours=1)).timestamp())
    engine = console_engine(db, runbook, out, clock=clock)  # type: ignore[arg-type]
    Console(engine, Actor(f"console:{who}", who), io.StringIO("\n".join(lines) + "\n"), out).loop()
    return out.getvalue()


def test_the_console_lists_the_tasks_and_the_owner_ticks_one_by_command(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = tasks_runbook(tmp_path, tasks=[TASK])
    _, _, _, run_id = completed_run(sqlite_db, runbook)
    out = io.StringIO()
    engine = console_engine(sqlite_db, runbook, out)
    Scheduler(engine).tick(T0 + timedelta(minutes=1))
    assert (
        "⬜ Send launch announcement — open, owner console:olga, due by 2026-03-03 09:00 UTC"
        f" — /cutover tick {run_id} announce" in out.getvalue()
    )

    said = type_as(sqlite_db, runbook, "mallory", [f"/cutover tick {run_id} announce"])
    assert "only the task's owner (console:olga) or an approver of prod may mark" in said
    said = type_as(sqlite_db, runbook, "olga", [f"/cutover tick {run_id} announce"] * 2)
    assert "Send launch announcement: done" in said
    assert "was marked done by console:olga at 2026-03-02 10:00 UTC; it counts once" in said
    said = type_as(sqlite_db, runbook, "olga", [f"/cutover untick {run_id} announce"])
    assert "a post-cutover task marked done stays done" in said
