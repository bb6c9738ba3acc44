"""What a surface (Slack, the console, the commands) is handed to read and to keep its own
rows, as Protocols: a surface never holds the database, the engine's `db` or the store's
classes (issue 19). The wiring (bot/app.py) builds the store's `Reads` and `SurfaceRows`
and hands them over as these.

Pure: this module imports only the standard library, bot.domain, the view modules
(bot.views, bot.signoffs, bot.post_task_view) and phases.runbook."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bot.post_task_view import TasksView
from bot.signoffs import RunSignoffState, SignoffView
from bot.views import GateView, Kept, Posted, RunView, ScheduleView
from phases.runbook import Runbook


class AuditLine(Protocol):
    """One row of the audit trail, as a surface reads it."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def data(self) -> str: ...  # JSON


class ReadsPort(Protocol):
    """Every read a surface makes (bot.store.reads.Reads), each in a transaction of its own."""

    @property
    def runbook(self) -> Runbook: ...

    def run_view(self, run_id: int) -> RunView | None: ...
    def gate_view(self, gate_id: int) -> GateView | None: ...
    def active_runs(self, environment: str | None = None) -> list[int]: ...
    def latest_run(self, environment: str) -> int | None: ...
    def recent_runs(self, limit: int = 10) -> list[int]: ...
    def gate_ids(self, run_id: int) -> list[int]: ...
    def open_gate_id(self, run_id: int) -> int | None: ...
    def run_counts(self) -> dict[str, int]: ...
    def run_known(self, run_id: int) -> bool: ...
    def schedule_view(self, schedule_id: int) -> ScheduleView | None: ...
    def tasks_view(self, run_id: int) -> TasksView | None: ...
    def signoff_view(self, run_id: int) -> SignoffView | None: ...
    def run_signoff_state(self, run_id: int) -> RunSignoffState | None: ...
    def audit_events(self, run_id: int) -> Sequence[AuditLine]: ...
    def outputs(self, run_id: int) -> list[Kept]: ...
    def find_output(self, run_id: int, address: str) -> Kept | str: ...
    def output_of(self, step_run_id: int) -> Kept | None: ...


class SeenRequestsPort(Protocol):
    """Signed Slack requests already received (bot.store.replays.SeenRequests), on the
    database's clock: `receive` answers FIRST (recorded now), SEEN or TOO_OLD."""

    def receive(self, signature: str, signed_at: datetime | None = None) -> str: ...


# What SeenRequestsPort.receive answers.
FIRST, SEEN, TOO_OLD = "first", "seen", "too_old"


class SurfaceRowsPort(Protocol):
    """The rows a chat surface keeps for itself (bot.store.surface_rows.SurfaceRows): where
    it posted the messages it edits later, and who opened its Home tab, when."""

    def posted(self, key: str) -> Posted | None: ...
    def remember_post(
        self, key: str, ref: str, *, run_id: int | None = None, body: str | None = None
    ) -> str: ...
    def replace_post(self, key: str, ref: str, *, body: str | None = None) -> None: ...
    def home_opened(self, user: str, team: str, at: datetime) -> None: ...
    def home_recent(self, since: datetime, limit: int) -> list[tuple[str, str]]: ...
    def home_drawing_version(self) -> int: ...
    def home_shown(self, user: str, team: str) -> tuple[int | None, str | None]: ...
    def home_published(self, user: str, team: str, version: int, view_hash: str | None) -> bool: ...
    def home_forget_hash(self, user: str, team: str, stale: str) -> None: ...


# ---------------------------------------------------------------- the keys of those rows


def checklist_key(schedule_id: int) -> str:
    """The T-1h checklist of a scheduled cutover (the key of its scheduled_event row)."""
    return f"schedule:{schedule_id}:t-1h-checklist"


def signoff_key(run_id: int) -> str:
    """The sign-off message of a run."""
    return f"run:{run_id}:signoff"


def viewer_team(team: str | None, enterprise: str | None) -> str:
    """The workspace a person opened Home from, as `home_opened` keeps it: `T…`, or `T…/E…`
    on Enterprise Grid (the enterprise decides what an org-wide `W…` user may see)."""
    return f"{team or ''}/{enterprise}" if enterprise else team or ""


def parse_viewer_team(value: str) -> tuple[str, str | None]:
    """(team, enterprise or None) of a `viewer_team()` value."""
    team, _, enterprise = value.partition("/")
    return team or enterprise, enterprise or None
