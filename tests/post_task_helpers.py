"""A completed run with post-cutover tasks, on a controllable clock: for the scheduler, the
record and the Slack tests of issue 24."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from phases.runbook import Runbook
from tests.schedule_helpers import (
    RecordingSurface,
    clock_at,
    make_engine,
    true_check,
    write_runbook,
)
from tests.servers import ManualClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # when the run completes
OWNER = Actor("T1:U3", "olga")  # owns "announce"
OPS = Actor("T1:U4", "oscar", frozenset({"S0OPS"}))  # in group S0OPS: owns "alerting"
APPROVER = Actor("T1:U2", "bob")
STRANGER = Actor("T1:U9", "mallory")
TASKS: list[Any] = [
    {"id": "announce", "text": "Send launch announcement", "owner": "U3"},
    {"id": "alerting", "text": "Configure alerting", "owner": "S0OPS"},
    "Update documentation with actual production URLs",
]
DOCS = "update-documentation-with-actual-product"


def tasks_runbook(tmp_path: Path, tasks: list[Any] | None = None, **extra: Any) -> Runbook:
    data: dict[str, Any] = {
        "name": "Tasks runbook",
        "version": "1",
        "phases": [
            {
                "id": "one",
                "name": "Phase one",
                "estimate_minutes": 1,
                "checkpoint": "ok",
                "checks": [true_check()],
            }
        ],
        "post_cutover_tasks": TASKS if tasks is None else tasks,
        "environments": {
            "prod": {
                "domain": "prod.test",
                "base_url": "https://prod.test",
                "channel": "C0CUTOVER",
                "stakeholders": "C0LAUNCH",
                "slack_team": "T1",
                "approvers": ["U1", "U2"],
            }
        },
        **extra,
    }
    return write_runbook(tmp_path, data, "tasks.yml")


def completed_run(
    db: Database, runbook: Runbook, clock: ManualClock | None = None
) -> tuple[Engine, RecordingSurface, ManualClock, int]:
    """Run #1 of prod, started 10 minutes before T0 and completed at T0."""
    from datetime import timedelta

    clock = clock or clock_at(T0 - timedelta(minutes=10))
    engine, surface = make_engine(db, runbook, clock)
    run = engine.start_run("prod", Actor("T1:U1", "alice"))
    assert run.id is not None
    gate = open_gate_id(db, run.id)
    assert gate is not None
    clock.set(T0.timestamp())
    assert engine.decide(gate, APPROVER, "continue").outcome == "approved"
    return engine, surface, clock, run.id
