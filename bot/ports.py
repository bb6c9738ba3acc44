"""What a surface (Slack, the console, the commands) is handed by the wiring, as Protocols.

A surface never imports the engine, the store, the audit module or a database library
(issue 19; the import-linter contract "Surfaces import neither the engine nor the store"
holds it, directly or indirectly). The wiring (bot/app.py) builds the concrete things and
hands them over as:

- `EnginePort`: the engine's use cases a surface calls (decide, tick, start a revert, …),
  its runbook, masker and clock, and its audited refusals;
- `ReadsPort`: every read (bot.store.reads.Reads); `SurfaceRowsPort`: the rows a chat
  surface keeps for itself (bot.store.surface_rows.SurfaceRows); `SeenRequestsPort`: Slack
  requests already received (bot.store.replays.SeenRequests);
- `Services`: the scheduled cutovers (`SchedulesPort`: bot.schedules.ScheduleService), the
  pre-cutover checklists (`ChecklistsPort`: bot.checklists.Checklists) and the post-cutover
  tasks (`PostTasksPort`: bot.post_tasks.PostTasks);
- `RunPagesPort`: the run pages `serve` answers (bot.runpage.serve.RunPages).

Plain data crossing these ports is here too (`Scope`, `TickResult`, `StartResult`, the keys
of a surface's rows) or in bot.domain (`Decision`, `EngineError`) and the view modules.

Pure: this module imports only the standard library, bot.domain, bot.surface, the view
modules (bot.views, bot.signoffs, bot.post_task_view, bot.notices) and phases."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from bot.domain.actor import Actor
from bot.domain.decisions import Decision, DecisionName
from bot.domain.freezes import Frozen
from bot.notices import ItemState
from bot.post_task_view import TasksView
from bot.signoffs import RunSignoffState, SignoffView
from bot.surface import Surface
from bot.views import GateView, Kept, Posted, RunView, ScheduleView
from phases.runbook import EnvironmentSpec, Runbook
from phases.secrets import Masker


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


# ---------------------------------------------------------------- the engine


class HeldLock(Protocol):
    """An environment's lock (bot.engine.locks.LockView)."""

    @property
    def environment(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def locked_by(self) -> str: ...
    @property
    def locked_at(self) -> datetime: ...
    def text(self) -> str: ...


class RunNotify(Protocol):
    """The engine's calls to its surface that a surface may make too (a redraw)."""

    def run_changed(self, run_id: int) -> None: ...


class EnginePort(Protocol):
    """What a surface asks of the engine (bot.engine.Engine): each use case checks
    permission and the runbook's rules when the request arrives, and audits a refusal."""

    @property
    def runbook(self) -> Runbook: ...
    @property
    def masker(self) -> Masker: ...
    @property
    def surface(self) -> Surface: ...
    @property
    def notify(self) -> RunNotify: ...

    def now(self) -> datetime: ...
    def environment(self, name: str) -> EnvironmentSpec: ...
    def frozen(self, env_name: str, at: datetime | None = None) -> Frozen | None: ...
    def locks(self) -> Sequence[HeldLock]: ...
    def gate_run(self, gate_id: int) -> tuple[int, str] | None: ...
    def revert_target(self, env_name: str) -> int | None: ...
    def revert_refusal(self, run_id: int) -> str | None: ...
    def refuse(
        self, actor: Actor, action: str, reason: str, *, run_id: int | None = None, **data: Any
    ) -> str: ...

    # A gate: decisions, break-glass, manual ticks.
    def decide(
        self,
        gate_id: int,
        actor: Actor,
        decision: DecisionName,
        reason: str | None = None,
        *,
        attempt: int | None = None,
    ) -> Decision: ...
    def override(self, gate_id: int, actor: Actor, justification: str) -> Decision: ...
    def tick(
        self, gate_id: int, item_id: str, actor: Actor, value: str | None = None
    ) -> Decision: ...

    # An environment or a run.
    def lock(self, env_name: str, actor: Actor, reason: str) -> Decision: ...
    def unlock(self, env_name: str, actor: Actor) -> Decision: ...
    def abort(self, env_name: str, actor: Actor, reason: str) -> Decision: ...
    def revert(
        self, env_name: str, actor: Actor, reason: str, *, run_id: int | None = None
    ) -> Decision: ...
    def sign_off(
        self, run_id: int, criterion_id: str, actor: Actor, note: str | None = None
    ) -> Decision: ...
    def sign_off_run(self, run_id: int, actor: Actor, note: str | None = None) -> Decision: ...
    def add_note(self, run_id: int, actor: Actor, text: str) -> Decision: ...
    def add_deviation(self, run_id: int, actor: Actor, text: str) -> Decision: ...

    # The surface's own messages, and the process.
    def set_surface_ref(
        self,
        ref: str | None,
        *,
        run_id: int | None = None,
        gate_id: int | None = None,
        replacing: str | None = None,
    ) -> str: ...
    def record_surface_failure(self, call: str, error: str, run_id: int | None) -> None: ...
    def recover(self) -> list[str]: ...
    def shutdown(self, wait: bool = True) -> None: ...


# ---------------------------------------------------------------- the services


@dataclass(frozen=True)
class Scope:
    """What a pre-cutover checklist belongs to: a scheduled cutover, or the next
    unscheduled start of an environment."""

    environment: str
    schedule_id: int | None = None

    @property
    def key(self) -> str:
        return f"schedule:{self.schedule_id}" if self.schedule_id else f"env:{self.environment}"

    @property
    def target(self) -> str:
        """What a person types to name it: `/cutover tick 3 …` or `/cutover tick prod …`."""
        return str(self.schedule_id) if self.schedule_id else self.environment

    @property
    def label(self) -> str:
        if self.schedule_id:
            return f"scheduled cutover #{self.schedule_id} of {self.environment}"
        return f"the next unscheduled start of {self.environment}"


@dataclass(frozen=True)
class TickResult:
    changed: bool
    message: str


@dataclass(frozen=True)
class StartResult:
    outcome: Literal["started", "refused", "already_started", "unknown"]
    message: str
    run_id: int | None = None


class BookedSchedule(Protocol):
    """A scheduled cutover as booked (the store's `Schedule` row, read-only here)."""

    @property
    def id(self) -> int | None: ...
    @property
    def environment(self) -> str: ...
    @property
    def start_at(self) -> datetime: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def stakeholders(self) -> str | None: ...
    @property
    def created_by(self) -> str: ...
    @property
    def status(self) -> str: ...


class PreflightReport(Protocol):
    """A preflight's result (bot.schedules.PreflightResult): its report, and what failed."""

    @property
    def text(self) -> str: ...
    @property
    def failed(self) -> Sequence[object]: ...


class SchedulesPort(Protocol):
    """Scheduled cutovers: book, cancel, list, preflight and start them
    (bot.schedules.ScheduleService)."""

    def create(
        self,
        env_name: str,
        start_at: datetime,
        actor: Actor,
        *,
        stakeholders: str | None = None,
        channel: str | None = None,
    ) -> BookedSchedule: ...
    def cancel(self, schedule_id: int, actor: Actor) -> str: ...
    def listing(
        self, include_past: bool = False
    ) -> Sequence[tuple[BookedSchedule, Sequence[object]]]: ...
    def list_text(self) -> str: ...
    def blocking(self, env_name: str) -> BookedSchedule | None: ...
    def preflight(
        self,
        env_name: str,
        stage: str,
        schedule_id: int | None = None,
        quorum: str | None = None,
    ) -> PreflightReport: ...
    def scope(self, target: str | int) -> Scope: ...
    def start_env(
        self,
        env_name: str,
        actor: Actor,
        *,
        channel: str | None = None,
        dry_run: bool = False,
        group_members: Collection[str] | None = None,
        emergency: str | None = None,
        ref: str | None = None,
    ) -> StartResult: ...
    def start(
        self,
        schedule_id: int,
        actor: Actor,
        group_members: Collection[str] | None = None,
        *,
        ref: str | None = None,
    ) -> StartResult: ...


class ChecklistsPort(Protocol):
    """The pre-cutover items that gate Start (bot.checklists.Checklists)."""

    def states(self, scope: Scope, starter: Actor | None = None) -> list[ItemState]: ...
    def missing(self, scope: Scope, starter: Actor | None = None) -> list[ItemState]: ...
    def tick(
        self, scope: Scope, item_id: str, actor: Actor, note: str | None = None
    ) -> TickResult: ...
    def untick(self, scope: Scope, item_id: str, actor: Actor) -> TickResult: ...


class PostTasksPort(Protocol):
    """Post-cutover tasks marked done (bot.post_tasks.PostTasks)."""

    def done(self, run_id: int, task_id: str, actor: Actor) -> Decision: ...
    def command_tick(
        self, target: str, item: str, actor: Actor, *, untick: bool = False
    ) -> Decision | None: ...


@dataclass(frozen=True)
class Services:
    """The services the wiring builds for the surfaces (bot.app.services)."""

    schedules: SchedulesPort
    checklists: ChecklistsPort
    post_tasks: PostTasksPort


# ---------------------------------------------------------------- the run pages


class PageAnswer(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def body(self) -> str: ...
    @property
    def refused(self) -> str | None: ...


class RunPagesPort(Protocol):
    """GET /runs/N (bot.runpage.serve.RunPages)."""

    def answer(self, run_id: int, token: str | None) -> PageAnswer: ...
