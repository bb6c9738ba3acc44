"""What a parsed `/cutover …` command is: one frozen dataclass per verb, and their union."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Start:
    env: str
    dry_run: bool = False
    emergency: str | None = None  # break-glass in a change freeze: the justification
    ref: str | None = None  # ref=REF: the git branch, tag or commit this run deploys


@dataclass(frozen=True)
class Lock:
    env: str
    reason: str


@dataclass(frozen=True)
class Unlock:
    env: str


@dataclass(frozen=True)
class LocksCmd:
    pass


@dataclass(frozen=True)
class StatusCmd:
    env: str | None = None


@dataclass(frozen=True)
class Abort:
    env: str
    reason: str | None  # None: not given; a surface asks for it (Slack: a form)


@dataclass(frozen=True)
class Revert:
    env: str
    reason: str | None  # None: not given; a surface asks for it (Slack: a form)


@dataclass(frozen=True)
class EmergencyForm:
    """`/cutover start ENV --emergency` without --reason: the surface asks for the
    justification (Slack: a form; the console: a prompt)."""

    env: str


@dataclass(frozen=True)
class AuditCmd:
    run_id: int


@dataclass(frozen=True)
class LogsCmd:
    run_id: int
    step: str | None = None  # PHASE/STEP or PHASE/STEP#ATTEMPT; None: list them


@dataclass(frozen=True)
class RecordCmd:
    run_id: int


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Schedule:
    env: str
    start_at: datetime  # timezone-aware
    stakeholders: str | None = None  # channel of the T-1h stakeholder notice


@dataclass(frozen=True)
class ScheduleList:
    pass


@dataclass(frozen=True)
class ScheduleForm:
    """`/cutover schedule` with no arguments: the surface asks for each field."""


@dataclass(frozen=True)
class Unschedule:
    schedule_id: int


@dataclass(frozen=True)
class SignOff:
    run_id: int
    criterion: str | None  # None: the completed run itself (its environment's `signoff`)
    note: str | None = None


@dataclass(frozen=True)
class Note:
    run_id: int
    text: str


@dataclass(frozen=True)
class Deviation:
    """A "Deviations from Runbook" entry a person adds to a run's record."""

    run_id: int
    text: str


@dataclass(frozen=True)
class TickCmd:
    target: str  # a schedule number ("3") or an environment name
    item: str
    note: str | None = None


@dataclass(frozen=True)
class UntickCmd:
    target: str
    item: str


@dataclass(frozen=True)
class ChecklistCmd:
    target: str


Command = (
    Start
    | StatusCmd
    | Abort
    | Revert
    | EmergencyForm
    | AuditCmd
    | LogsCmd
    | RecordCmd
    | Help
    | Schedule
    | ScheduleList
    | ScheduleForm
    | Unschedule
    | SignOff
    | Note
    | Deviation
    | TickCmd
    | UntickCmd
    | ChecklistCmd
    | Lock
    | Unlock
    | LocksCmd
)
