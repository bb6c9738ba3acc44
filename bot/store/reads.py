"""`Reads`: every read a surface makes (Slack, the console, the commands), bound to the
database and the runbook, so a surface never holds the database: `reads.run_view(run_id)`,
`reads.gate_view(gate_id)`, `reads.tasks_view(run_id)`, … (issue 19, "one Reads object for
the surfaces"). The wiring (bot/app.py) builds it; a surface sees it as `bot.ports.ReadsPort`.

Each read opens its own transaction through the store's door (`Store.tx()`); the queries
live in the modules named for what they read (read_runs, read_gates, read_signoffs,
read_tasks) and are importable as functions taking the database (or the Store) too, for the
modules below the surfaces (the engine, the scheduler, the record) and the tests."""

from __future__ import annotations

from collections.abc import Sequence

from bot.ports import AuditLine
from bot.post_task_view import TasksView
from bot.signoffs import RunSignoffState, SignoffView
from bot.store import audit_rows, step_outputs
from bot.store.db import Database
from bot.store.read_door import door
from bot.store.read_gates import gate_view, read_tick_marks
from bot.store.read_runs import (
    active_runs,
    gate_ids,
    latest_run,
    open_gate_id,
    recent_runs,
    run_counts,
    run_view,
    schedule_view,
)
from bot.store.read_signoffs import run_signoff_state, signoff_view
from bot.store.read_tasks import tasks_view
from bot.store.unit import Store
from bot.views import GateView, Kept, RunView, ScheduleView
from phases.runbook import Runbook

__all__ = [
    "Reads",
    "active_runs",
    "gate_ids",
    "gate_view",
    "latest_run",
    "open_gate_id",
    "read_tick_marks",
    "recent_runs",
    "run_counts",
    "run_signoff_state",
    "run_view",
    "schedule_view",
    "signoff_view",
    "tasks_view",
]


class Reads:
    """The read models, bound to a database (or its Store) and the runbook they are drawn by."""

    def __init__(self, db: Database | Store, runbook: Runbook) -> None:
        self.store = door(db)
        self.runbook = runbook

    # ------------------------------------------------------------------ runs and gates

    def run_view(self, run_id: int) -> RunView | None:
        return run_view(self.store, self.runbook, run_id)

    def gate_view(self, gate_id: int) -> GateView | None:
        return gate_view(self.store, self.runbook, gate_id)

    def active_runs(self, environment: str | None = None) -> list[int]:
        return active_runs(self.store, environment)

    def latest_run(self, environment: str) -> int | None:
        return latest_run(self.store, environment)

    def recent_runs(self, limit: int = 10) -> list[int]:
        return recent_runs(self.store, limit)

    def gate_ids(self, run_id: int) -> list[int]:
        return gate_ids(self.store, run_id)

    def open_gate_id(self, run_id: int) -> int | None:
        return open_gate_id(self.store, run_id)

    def run_counts(self) -> dict[str, int]:
        return run_counts(self.store)

    def run_known(self, run_id: int) -> bool:
        return step_outputs.run_known(self.store.db, run_id)

    # ------------------------------------------------------------------ schedules

    def schedule_view(self, schedule_id: int) -> ScheduleView | None:
        return schedule_view(self.store, schedule_id)

    # ------------------------------------------------------------------ after a run

    def tasks_view(self, run_id: int) -> TasksView | None:
        return tasks_view(self.store, run_id)

    def signoff_view(self, run_id: int) -> SignoffView | None:
        return signoff_view(self.store, self.runbook, run_id)

    def run_signoff_state(self, run_id: int) -> RunSignoffState | None:
        return run_signoff_state(self.store, run_id)

    # ------------------------------------------------------------------ the trail, outputs

    def audit_events(self, run_id: int) -> Sequence[AuditLine]:
        """The run's audit rows, oldest first."""
        with self.store.tx() as tx:
            return audit_rows.events(tx, run_id)

    def outputs(self, run_id: int) -> list[Kept]:
        """Every step of the run that kept output, in the order they ran (no text)."""
        return step_outputs.listing(self.store.db, run_id)

    def find_output(self, run_id: int, address: str) -> Kept | str:
        """The kept output at PHASE/STEP[#ATTEMPT], or why there is none."""
        return step_outputs.find(self.store.db, run_id, address)

    def output_of(self, step_run_id: int) -> Kept | None:
        """One step's kept output with its text, whichever run it belongs to."""
        return step_outputs.by_step_run(self.store.db, None, step_run_id)
