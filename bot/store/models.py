"""Database tables: a run's whole state lives here, not in process memory.

run ─< phase_run ─< step_run ── step_output (what the step printed, masked)
            └── gate ─< vote, manual_tick, override_vote (subject "gate:ID")
run ─< revert_vote; run.reverts_run_id → run (a revert and the completed run it undoes)
schedule ─< scheduled_event; phase_run ─< monitor_round (scheduled cutovers, monitoring).
message_ref: messages edited later that no row points at; home_viewer: who opened Home.
audit_event is append-only and hash-chained; audit_head holds the chain's tip.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from bot.domain.states import (
    EventStatus,
    GateStatus,
    PhaseStatus,
    RoundStatus,
    RunStatus,
    ScheduleStatus,
)

__all__ = [
    "AuditEvent",
    "AuditHead",
    "EventStatus",
    "Gate",
    "HomeViewer",
    "GateStatus",
    "ManualTick",
    "MessageRef",
    "MonitorRound",
    "OverrideVote",
    "EnvLock",
    "PhaseRun",
    "PhaseStatus",
    "RoundStatus",
    "RevertVote",
    "Run",
    "RunStatus",
    "Schedule",
    "ScheduleStatus",
    "ScheduledEvent",
    "SeenRequest",
    "StepOutput",
    "StepRun",
    "Vote",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Every datetime column: an aware datetime in, an aware UTC datetime out, on SQLite and
    PostgreSQL alike. PostgreSQL's timestamptz returns aware values; SQLite stores text and
    returns naive ones, which every reader had to patch. A naive datetime is refused: the
    bot cannot tell which clock it came from, and SQLite would store it as it is."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError(f"a datetime column needs an aware datetime, not {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


def _ts(*, nullable: bool = True, index: bool = False) -> Column:
    return Column(UTCDateTime(), nullable=nullable, index=index)


E = TypeVar("E", bound=enum.StrEnum)


class StatusType(TypeDecorator[E], Generic[E]):
    """A status column: stored as its plain text (the schema stays VARCHAR, no database
    enum type to migrate), read back as the state table's enum, and a value the table
    does not know is refused before it reaches the database."""

    impl = String
    cache_ok = True

    def __init__(self, enum_type: type[E]) -> None:
        super().__init__()
        self.enum_type = enum_type

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_type(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_type(value)


def _status(enum_type: type[E], default: E, *, index: bool = False) -> Any:
    return Field(
        default=default,
        sa_column=Column(StatusType(enum_type), nullable=False, index=index),
    )


class Run(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    environment: str = Field(index=True)
    # Set to the environment while the run is active, NULL after: a unique key
    # makes "one active run per environment" hold across processes.
    active_env: str | None = Field(default=None, unique=True)
    runbook_name: str
    runbook_digest: str
    status: RunStatus = _status(RunStatus, RunStatus.RUNNING, index=True)
    dry_run: bool = False
    requested_by: str  # "TEAM:USER" or "console:NAME"
    channel: str | None = None
    surface_ref: str | None = None  # chat surface's handle of the run's parent message
    phase_index: int = 0  # index of the phase now running or waiting
    # A revert run: the completed run whose changes it undoes (restore, rollback steps).
    reverts_run_id: int | None = Field(default=None, foreign_key="run.id", index=True)
    rollback_reason: str | None = None
    rolled_back_by: str | None = None
    # Claimed by the one thread that executes the rollback; taken over if its owner dies.
    rollback_started_at: datetime | None = Field(default=None, sa_column=_ts())
    # The process executing the run's phase or rollback, and until when its lease holds: it
    # renews the lease while it works; another replica takes over only once it has lapsed.
    owner: str | None = Field(default=None, index=True)
    lease_until: datetime | None = Field(default=None, sa_column=_ts())
    # The fencing token: incremented by every take-over of the lease; the holder's writes are
    # conditional on the epoch it took (bot/engine/core.py).
    lease_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    started_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    ended_at: datetime | None = Field(default=None, sa_column=_ts())


class PhaseRun(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("run_id", "phase_index", "attempt"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    phase_id: str
    phase_index: int
    attempt: int = 1
    status: PhaseStatus = _status(PhaseStatus, PhaseStatus.RUNNING)
    executor: str | None = None  # the claim that runs this attempt (see PhaseClaim)
    started_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    # When its first action was about to begin (None: claimed, no action begun; a phase of
    # checks only never sets it). Written fenced, before that action starts (Leases.standing).
    began_at: datetime | None = Field(default=None, sa_column=_ts())
    # The action that began last (its step id), written with began_at and before each later
    # action (None with began_at set: claimed by a version that marks the first one only).
    began_step: str | None = None
    # The claim was made by a version that writes began_at (false: claimed before r0012, or
    # by an older replica beside a newer one: an unset began_at then proves nothing).
    marks_begin: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    ended_at: datetime | None = Field(default=None, sa_column=_ts())


class StepRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    phase_run_id: int | None = Field(default=None, foreign_key="phaserun.id", index=True)
    section: str  # actions | checks | rollback | restore | monitor
    step_id: str
    name: str
    status: str
    evidence: str = Field(sa_column=Column(Text))
    duration_ms: int = 0
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class StepOutput(SQLModel, table=True):
    """The tail of what a step printed (a command's stdout and stderr as they came), masked
    before it was written, in the transaction of its step_run row: `cutover logs`, the
    checkpoint's Show output and the last lines quoted under a failing step."""

    __tablename__ = "step_output"
    id: int | None = Field(default=None, primary_key=True)
    step_run_id: int = Field(foreign_key="steprun.id", unique=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    section: str
    step_id: str
    text: str = Field(sa_column=Column(Text, nullable=False))  # at most TAIL_BYTES, masked
    truncated: bool = False  # earlier output was not kept
    bytes: int = 0  # what the step printed in all (kept or not)
    last_lines: str = Field(default="", sa_column=Column(Text, nullable=False))  # quoted


class Gate(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    phase_run_id: int = Field(foreign_key="phaserun.id", unique=True)
    phase_id: str
    attempt: int = 1
    status: GateStatus = _status(GateStatus, GateStatus.OPEN, index=True)
    checks_passed: bool = False
    note: str | None = None  # e.g. why the phase was interrupted
    quorum: int = 1
    decided_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_column=_ts())
    surface_ref: str | None = None
    opened_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    reminded_at: datetime | None = Field(default=None, sa_column=_ts())
    escalated_at: datetime | None = Field(default=None, sa_column=_ts())


class Vote(SQLModel, table=True):
    """One Continue vote per person per gate: the unique key makes a double click count once."""

    __table_args__ = (UniqueConstraint("gate_id", "actor"),)
    id: int | None = Field(default=None, primary_key=True)
    gate_id: int = Field(foreign_key="gate.id", index=True)
    actor: str
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class OverrideVote(SQLModel, table=True):
    """One approver's break-glass vote, with their justification (masked, one line): to pass
    over a gate's failed steps (subject "gate:ID") or a change freeze ("start:ENV:FREEZE").
    The unique key makes a double click or a Slack retry count once; an emergency start's
    votes are deleted by the transaction that starts its run (they are spent)."""

    __tablename__ = "override_vote"
    __table_args__ = (UniqueConstraint("subject", "actor"),)
    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(index=True, max_length=200)
    actor: str
    justification: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class EnvLock(SQLModel, table=True):
    """A lock on an environment (`/cutover lock ENV --reason …`): no run starts there while
    it stands. The environment is the key: shared by every replica, and two locks at once
    make one (the second is told who holds it)."""

    __tablename__ = "env_lock"
    environment: str = Field(primary_key=True, max_length=40)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    locked_by: str
    locked_at: datetime = Field(sa_column=_ts(nullable=False))


class RevertVote(SQLModel, table=True):
    """One approver's vote for a revert run: the unique key makes a double click count once."""

    __tablename__ = "revert_vote"
    __table_args__ = (UniqueConstraint("run_id", "actor"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    actor: str
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class RunSignoff(SQLModel, table=True):
    """One named person's sign-off of a completed run: the unique key makes a double click or
    a Slack retry count once (bot/engine/run_signoff.py)."""

    __tablename__ = "run_signoff"
    __table_args__ = (UniqueConstraint("run_id", "actor"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    actor: str
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ManualTick(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("gate_id", "item_id"),)
    id: int | None = Field(default=None, primary_key=True)
    gate_id: int = Field(foreign_key="gate.id", index=True)
    item_id: str
    actor: str
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    seq: int = Field(primary_key=True)  # assigned under the head lock: 1, 2, 3, … with no gap
    at: str  # ISO 8601 UTC, kept as text so the hash input is byte-exact
    run_id: int | None = Field(default=None, index=True)
    actor: str
    kind: str = Field(index=True)
    data: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON
    prev_hash: str
    hash: str


class AuditSignature(SQLModel, table=True):
    """The Ed25519 signature of one audit row's hash, made with a key the database never
    holds (`CUTOVER_AUDIT_KEY_FILE`): a row the bot's role inserts itself, with a correct
    hash, has none, and `cutover audit verify --public-key` names it."""

    __tablename__ = "audit_signature"
    # The key is (seq, signature), not seq: a row someone else inserted for a sequence number
    # the bot has not reached never blocks the bot's own signature of it (verify names it).
    seq: int = Field(primary_key=True)  # the audit_event row signed
    key_id: str  # the first 16 hex digits of the public key's SHA-256
    signature: str = Field(primary_key=True)  # hex, over the row's hash


class AuditHead(SQLModel, table=True):
    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = "0" * 64


# --------------------------------------------------------------------------- scheduled cutovers
#
# schedule ─< scheduled_event    (T-24h, T-1h, T-0 notices; also gate reminders and the
#                                  cutover record, which have no schedule)
# phase_run ─< monitor_round     (post-cutover monitoring rounds)


class Schedule(SQLModel, table=True):
    """A cutover planned for a time: the bot posts its notices; a person starts it."""

    __table_args__ = (UniqueConstraint("environment", "start_at"),)
    id: int | None = Field(default=None, primary_key=True)
    environment: str = Field(index=True)
    start_at: datetime = Field(sa_column=_ts(nullable=False))
    stakeholders: str | None = None  # channel of the T-1h stakeholder notice
    channel: str | None = None  # the run channel
    created_by: str
    status: ScheduleStatus = _status(ScheduleStatus, ScheduleStatus.SCHEDULED, index=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    cancelled_by: str | None = None


class ScheduledEvent(SQLModel, table=True):
    """One message the bot posts at a time, exactly once: claimed by a conditional UPDATE
    (status + attempts as the version), then posted, then marked sent with its audit row."""

    __tablename__ = "scheduled_event"
    __table_args__ = (UniqueConstraint("schedule_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)  # "schedule:3:t-1h", "gate:12:reminder", "record:7", …
    kind: str  # t-24h | t-1h | t-1h-checklist | t-0 | gate-reminder | gate-escalation | …
    schedule_id: int | None = Field(default=None, foreign_key="schedule.id", index=True)
    run_id: int | None = Field(default=None, index=True)
    gate_id: int | None = None
    due_at: datetime = Field(sa_column=_ts(nullable=False))
    status: EventStatus = _status(EventStatus, EventStatus.PENDING, index=True)
    attempts: int = 0  # bumped by every claim: the version a claim's UPDATE checks
    claimed_at: datetime | None = Field(default=None, sa_column=_ts())
    claimed_by: str | None = None
    sent_at: datetime | None = Field(default=None, sa_column=_ts())
    late_seconds: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))


class MonitorRound(SQLModel, table=True):
    """One round of a monitoring phase's checks; the row is the claim to run it."""

    __tablename__ = "monitor_round"
    __table_args__ = (UniqueConstraint("phase_run_id", "round"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    phase_run_id: int = Field(foreign_key="phaserun.id", index=True)
    round: int  # 0-based slot: due at window start + offset(round)
    due_at: datetime = Field(sa_column=_ts(nullable=False))
    status: RoundStatus = _status(RoundStatus, RoundStatus.RUNNING)
    attempts: int = 1
    claimed_at: datetime | None = Field(default=None, sa_column=_ts())
    claimed_by: str | None = None
    ended_at: datetime | None = Field(default=None, sa_column=_ts())
    results: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list


class SeenRequest(SQLModel, table=True):
    """A signed Slack request already received: its signature, kept for the whole replay
    window, shared by every replica and kept across restarts (the primary key decides)."""

    __tablename__ = "seen_request"
    signature: str = Field(primary_key=True, max_length=200)
    expires_at: datetime = Field(sa_column=_ts(nullable=False))


class MessageRef(SQLModel, table=True):
    """A message the bot posted and edits later that no run or gate row points at (the T-1h
    checklist, a run's sign-off message): kept here so a restarted bot, or another replica,
    edits that message instead of posting a copy. The first post recorded wins."""

    __tablename__ = "message_ref"
    key: str = Field(
        primary_key=True, max_length=100
    )  # "schedule:3:t-1h-checklist", "run:7:signoff"
    ref: str  # "CHANNEL:TS"
    run_id: int | None = Field(default=None, index=True)
    # What the message was drawn from and is not in the database otherwise (the T-1h notice's
    # text with its dry-run results), masked: a redraw needs it.
    body: str | None = Field(default=None, sa_column=Column(Text))
    posted_at: datetime = Field(sa_column=_ts(nullable=False))


class HomeViewer(SQLModel, table=True):
    """Someone who opened the bot's Home tab, and when last: their Home is republished when a
    run changes (rate-limited), so it does not show a stale run until they reopen it."""

    __tablename__ = "home_viewer"
    user_id: str = Field(primary_key=True, max_length=40)  # U… or W…
    team_id: str = Field(primary_key=True, max_length=40)  # T… (or E… for an org-wide event)
    opened_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    # The drawing Slack shows them (its version: when it was drawn, in microseconds on the
    # database's clock) and the hash Slack gave that view: an older drawing, from a replica
    # whose publish was slow, never replaces a newer one (bot.store.home_viewers).
    shown_version: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    view_hash: str | None = Field(default=None, max_length=100)


class RateSlot(SQLModel, table=True):
    """One rate budget every replica shares (bot.store.rate_slots): a channel's posts, a Web
    API method's tier, a person's Home. `next_at`: seconds, on the database's clock, before
    which its next call may not go."""

    __tablename__ = "rate_slot"
    name: str = Field(primary_key=True, max_length=200)  # "post:C…", "views.publish", …
    next_at: float = Field(sa_column=Column(Float, nullable=False))


class Replica(SQLModel, table=True):
    """The live process of each replica id (CUTOVER_REPLICA_ID), renewing its heartbeat on the
    database's clock: a second process started with an id a live one holds refuses to start
    (it would declare that one's phases interrupted); a restarted replica, whose predecessor's
    heartbeat went stale, takes its place at once."""

    __tablename__ = "replica"
    id: str = Field(primary_key=True, max_length=200)
    incarnation: str = Field(max_length=300)  # the live process: "REPLICA#PID.RANDOM"
    heartbeat_at: datetime = Field(sa_column=_ts(nullable=False))
