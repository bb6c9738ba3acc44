"""Scheduled cutovers: T-24h readiness, T-1h stakeholder notice, T-0 reminder; once each,
across restarts; late when missed; on SQLite and the real PostgreSQL, with a controllable
clock (tests call Scheduler.tick; nothing sleeps for hours)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot import audit
from bot.app import console_engine
from bot.console import Console
from bot.engine import Engine
from bot.scheduler import Scheduler
from bot.schedules import ScheduleError, ScheduleService
from bot.store.db import Database
from bot.store.models import AuditEvent, Gate, Schedule, ScheduledEvent
from bot.store.reads import Reads, open_gate_id
from bot.surface import Actor
from commands.handlers import CommandService
from commands.parser import Schedule as ScheduleCmd
from commands.parser import ScheduleList, Unschedule, UsageError, parse
from tests.schedule_helpers import (
    ALICE,
    BOB,
    MALLORY,
    START,
    RecordingSurface,
    clock_at,
    make_engine,
    schedule_runbook,
    set_clock,
)
from tests.servers import ManualClock

H = timedelta(hours=1)


def audit_rows(db: Database, kind: str) -> list[dict[str, object]]:
    with db.session() as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.kind == kind)).all()
    return [json.loads(r.data) for r in rows]


def restarted(db: Database, engine: Engine, clock: ManualClock) -> tuple[Engine, RecordingSurface]:
    """A new process: fresh pool, engine, surface and scheduler on the same database."""
    engine.shutdown()
    db.dispose()
    return make_engine(Database(db.url), engine.runbook, clock)


def schedule(engine: Engine, **kw: object) -> Schedule:
    return ScheduleService(engine).create(
        "prod", START, ALICE, stakeholders=str(kw.get("stakeholders", "#launch"))
    )


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "schedule prod 2026-03-01T14:00Z",
            ScheduleCmd("prod", START, None),
        ),
        (
            "schedule prod 2026-03-01T15:00+01:00 --stakeholders #launch",
            ScheduleCmd("prod", START, "#launch"),
        ),
        (
            "schedule prod 2026-03-01T14:00:00+00:00 --stakeholders <#C0LAUNCH|launch>",
            ScheduleCmd("prod", START, "C0LAUNCH"),
        ),
        ("schedule list", ScheduleList()),
        ("unschedule 3", Unschedule(3)),
        ("unschedule #3", Unschedule(3)),
    ],
)
def test_schedule_grammar(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text,problem",
    [
        ("schedule prod 2026-03-01T14:00", "has no time zone"),
        ("schedule prod 2026-03-01 14:00Z", "schedule needs an environment and a time"),
        ("schedule prod tomorrow", "is not an ISO 8601 time"),
        ("schedule prod", "schedule needs an environment and a time"),
        ("schedule prod 2026-03-01T14:00Z --stakeholders", "--stakeholders needs a channel"),
        ("schedule prod 2026-03-01T14:00Z --stakeholders '#a b'", "is not a channel"),
        ("schedule prod 2026-03-01T14:00Z --force", "unknown option '--force'"),
        ("schedule list all", "schedule list takes no arguments"),
        ("unschedule", "unschedule needs a schedule number"),
    ],
)
def test_wrong_schedule_arguments_get_usage(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(text)
    assert problem in str(err.value) and "Usage:" in str(err.value)


def test_past_time_is_refused_by_the_parser_and_the_service(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="is in the past"):
        parse("schedule prod 2026-03-01T14:00Z", now=START + H)
    engine, _ = make_engine(sqlite_db, schedule_runbook(tmp_path), clock_at(START + H))
    with pytest.raises(ScheduleError, match="is in the past"):
        schedule(engine)
    with pytest.raises(ScheduleError, match="needs a time zone"):
        ScheduleService(engine).create("prod", datetime(2026, 3, 2, 14), ALICE)
    with pytest.raises(ScheduleError, match="only approvers of prod"):
        ScheduleService(engine).create("prod", START + 48 * H, MALLORY)


# --------------------------------------------------------------------------- the notices


def test_notices_fire_at_their_times_to_their_channels_once(db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 72 * H)
    engine, surface = make_engine(db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    scheduler = Scheduler(engine)

    assert scheduler.tick() == []
    set_clock(clock, START - 24 * H - timedelta(minutes=1))
    assert scheduler.tick() == []
    assert surface.of("scheduled_notice") == []

    # T-24h: the readiness phase as a dry run (actions only describe), with the checklist.
    set_clock(clock, START - 24 * H)
    assert scheduler.tick() == [f"schedule:{sched.id}:t-24h: sent"]
    assert scheduler.tick() == []
    [t24] = surface.scheduled()
    _, kind, channel, text = t24.args
    assert (kind, channel) == ("t-24h", "#cutover")
    assert "Readiness dry run (Readiness checks): ❌ 1 of 3 checks failed" in text
    assert "⏭️ touch a marker: dry run: would run touch" in text
    assert "✅ Secrets provisioned" in text and "❌ Database backup <1 hour old" in text
    assert "T-24 hours: preparation\n☐ Run readiness checker" in text
    assert not (tmp_path / "acted").exists()  # the dry run changed nothing
    [readiness] = audit_rows(engine.db, "readiness.checked")
    assert readiness["dry_run"] is True and readiness["phase"] == "readiness"

    # T-1h: stakeholders hear of it in their channel; the checklist goes to the run channel.
    set_clock(clock, START - H + timedelta(seconds=20))
    assert sorted(scheduler.tick()) == [
        f"schedule:{sched.id}:t-1h-checklist: sent",
        f"schedule:{sched.id}:t-1h: sent",
    ]
    [stake] = surface.scheduled("t-1h")
    assert stake.args[2] == "#launch"
    assert stake.args[3].splitlines()[:5] == [
        "📣 Production cutover starting in 1 hour",
        "Environment: prod",
        "Start: Sun 2026-03-01 14:00 UTC",
        "Expected duration: 15-20 min by its phases (the runbook's header says 2-4 hours)",
        "Where it runs: #cutover",
    ]
    [check] = surface.scheduled("t-1h-checklist")
    assert check.args[2] == "#cutover"
    assert "T-1 hour: final verification\n☐ Notify stakeholders" in check.args[3]
    assert "☐ Verify no users logged in (check active sessions)" in check.args[3]

    # T: the approvers are reminded, with a Start button; nothing starts by itself.
    set_clock(clock, START)
    assert scheduler.tick() == [f"schedule:{sched.id}:t-0: sent"]
    [reminder] = surface.of("start_reminder")
    sid, channel, text, approvers = reminder.args
    assert (sid, channel, approvers) == (sched.id, "#cutover", ["T1:U1", "T1:U2"])
    assert "Approvers T1:U1, T1:U2: press Start" in text and "never starts by itself" in text
    for later in (START + timedelta(minutes=5), START + 30 * H):
        set_clock(clock, later)
        assert scheduler.tick() == []
    assert len(surface.of("scheduled_notice")) == 3 and len(surface.of("start_reminder")) == 1
    with engine.db.session() as s:
        assert s.exec(select(ScheduledEvent.id)).all()  # rows exist
        assert {e.status for e in s.exec(select(ScheduledEvent))} == {"sent"}
    sent = audit_rows(engine.db, "notice.sent")
    assert sorted(str(d["kind"]) for d in sent) == ["t-0", "t-1h", "t-1h-checklist", "t-24h"]
    assert all(d["late"] is False for d in sent)
    assert audit.verify(engine.db) == []


def test_restart_between_t1h_and_t_does_not_resend(db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 30 * H)
    engine, surface = make_engine(db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    for when in (START - 24 * H, START - H):
        set_clock(clock, when)
        Scheduler(engine).tick()
    assert len(surface.scheduled()) == 3

    set_clock(clock, START - timedelta(minutes=30))
    engine2, surface2 = restarted(db, engine, clock)
    scheduler2 = Scheduler(engine2)
    assert scheduler2.tick() == []
    set_clock(clock, START - timedelta(minutes=1))
    assert scheduler2.tick() == []
    assert surface2.calls == []
    set_clock(clock, START)
    assert scheduler2.tick() == [f"schedule:{sched.id}:t-0: sent"]
    assert len(surface2.of("start_reminder")) == 1 and surface2.scheduled() == []
    assert len(audit_rows(engine2.db, "notice.sent")) == 4


def test_a_notice_missed_while_down_is_sent_late_once(db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 30 * H)
    engine, surface = make_engine(db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    set_clock(clock, START - 24 * H)
    Scheduler(engine).tick()
    # The bot is down from T-2h to T-20min: T-1h passes unseen.
    set_clock(clock, START - timedelta(minutes=20))
    engine2, surface2 = restarted(db, engine, clock)
    done = Scheduler(engine2).tick()
    assert sorted(done) == [
        f"schedule:{sched.id}:t-1h-checklist: sent late",
        f"schedule:{sched.id}:t-1h: sent late",
    ]
    [stake] = surface2.scheduled("t-1h")
    lines = stake.args[3].splitlines()
    assert lines[0] == (
        "⏰ Sent late: this notice was due at Sun 2026-03-01 13:00 UTC and is 40 min late "
        "(the bot was not running then)."
    )
    assert lines[1] == "📣 Production cutover starting in 20 min"
    assert Scheduler(engine2).tick() == []
    late = [d for d in audit_rows(engine2.db, "notice.sent") if d["late"]]
    assert sorted((str(d["kind"]), d["late_seconds"]) for d in late) == [
        ("t-1h", 2400),
        ("t-1h-checklist", 2400),
    ]
    assert len(surface2.scheduled("t-1h")) == 1


def test_after_the_start_time_only_the_start_reminder_is_sent_late(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 30 * H)
    engine, surface = make_engine(sqlite_db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    set_clock(clock, START + 2 * H)  # down through T-24h, T-1h and T
    assert sorted(Scheduler(engine).tick()) == [
        f"schedule:{sched.id}:t-0: sent late",
        f"schedule:{sched.id}:t-1h-checklist: skipped",
        f"schedule:{sched.id}:t-1h: skipped",
        f"schedule:{sched.id}:t-24h: skipped",
    ]
    [reminder] = surface.of("start_reminder")
    assert reminder.args[2].startswith("⏰ Sent late: this notice was due at Sun 2026-03-01 14:00")
    skipped = audit_rows(engine.db, "notice.skipped")
    assert {d["reason"] for d in skipped} == {"the start time passed before it was sent"}


def test_a_crash_between_claim_and_post_is_resent_after_the_lease_saying_so(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 2 * H)
    engine, surface = make_engine(sqlite_db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    set_clock(clock, START - H)
    surface.crash_on = "t-1h"
    with pytest.raises(SystemExit):
        Scheduler(engine, identity="proc-1").tick()
    with engine.db.session() as s:
        claimed = s.exec(select(ScheduledEvent).where(ScheduledEvent.kind == "t-1h")).one()
    assert (claimed.status, claimed.claimed_by) == ("claimed", "proc-1")

    engine2, surface2 = restarted(sqlite_db, engine, clock)
    scheduler2 = Scheduler(engine2, identity="proc-2", lease_seconds=300)
    set_clock(clock, START - H + timedelta(minutes=2))
    assert f"schedule:{sched.id}:t-1h: sent" not in scheduler2.tick()  # the lease holds
    assert surface2.scheduled("t-1h") == []
    set_clock(clock, START - H + timedelta(minutes=6))
    assert scheduler2.tick() == [f"schedule:{sched.id}:t-1h: sent late"]
    [stake] = surface2.scheduled("t-1h")
    assert "♻️ Possibly a repeat: an earlier attempt (proc-1, 13:00 UTC)" in stake.args[3]
    [reclaimed] = audit_rows(engine2.db, "notice.reclaimed")
    assert reclaimed["previous"] == "proc-1" and reclaimed["kind"] == "t-1h"


def test_a_failed_post_is_audited_and_retried(sqlite_db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 30 * H)
    engine, surface = make_engine(sqlite_db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    scheduler = Scheduler(engine)
    set_clock(clock, START - 24 * H)
    scheduler.tick()
    set_clock(clock, START - H)
    surface.fail_next = 1
    done = scheduler.tick()
    assert done == [
        f"schedule:{sched.id}:t-1h: failed (RuntimeError: chat API answered 503)",
        f"schedule:{sched.id}:t-1h-checklist: sent",
    ]
    [failed] = audit_rows(engine.db, "notice.failed")
    assert failed["final"] is False and failed["attempt"] == 1
    assert scheduler.tick() == [f"schedule:{sched.id}:t-1h: sent"]
    assert len(surface.scheduled("t-1h")) == 1


# --------------------------------------------------------------------------- start / cancel


def test_start_button_starts_once_and_only_for_an_approver(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 2 * H)
    engine, surface = make_engine(sqlite_db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    assert sched.id is not None
    set_clock(clock, START)
    Scheduler(engine).tick()
    service = ScheduleService(engine)
    refused = service.start(sched.id, MALLORY)
    assert refused.outcome == "refused" and "only approvers of prod may start" in refused.message
    started = service.start(sched.id, BOB)
    assert started.outcome == "started" and started.run_id is not None
    again = service.start(sched.id, ALICE)
    assert again.outcome == "already_started" and again.run_id == started.run_id
    with engine.db.session() as s:
        row = s.get(Schedule, sched.id)
    assert row is not None and (row.status, row.run_id) == ("started", started.run_id)
    assert open_gate_id(engine.db, started.run_id) is not None  # the run waits at phase 1


def test_start_typed_in_the_window_is_the_scheduled_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 3 * H)
    engine, _ = make_engine(sqlite_db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    commands = CommandService(engine, Reads(engine.db, engine.runbook))
    set_clock(clock, START - timedelta(minutes=30))
    reply = commands.execute(parse("start prod"), BOB, channel="#elsewhere")
    assert f"(scheduled cutover #{sched.id})" in reply.text
    # A run started some other way is linked by the scheduler's tick.
    other = ScheduleService(engine).create("prod", START + 72 * H, ALICE)
    set_clock(clock, START + 72 * H - timedelta(minutes=10))
    assert reply.run_id is not None
    engine.abort("prod", BOB, "test")
    run = engine.start_run("prod", BOB)
    assert f"schedule #{other.id}: run #{run.id} started by hand" in Scheduler(engine).tick()


def test_unschedule_stops_every_notice(db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 30 * H)
    engine, surface = make_engine(db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    assert sched.id is not None
    with pytest.raises(ScheduleError, match="already has cutover"):
        ScheduleService(engine).create("prod", START + 3 * H, ALICE)
    with pytest.raises(ScheduleError, match="only approvers of prod"):
        ScheduleService(engine).cancel(sched.id, MALLORY)
    text = ScheduleService(engine).cancel(sched.id, BOB)
    assert "cancelled by bob" in text
    for when in (START - 24 * H, START - H, START):
        set_clock(clock, when)
        assert Scheduler(engine).tick() == []
    assert surface.calls == []
    with engine.db.session() as s:
        assert {e.status for e in s.exec(select(ScheduledEvent))} == {"cancelled"}
    with pytest.raises(ScheduleError, match="is cancelled"):
        ScheduleService(engine).cancel(sched.id, BOB)


def test_schedule_commands_at_the_console(sqlite_db: Database, tmp_path: Path) -> None:
    runbook = schedule_runbook(tmp_path, env={"approvers": ["console:alice"]})
    clock = clock_at(START - 48 * H)
    out = io.StringIO()
    engine = console_engine(sqlite_db, runbook, out, clock=clock)
    lines = [
        "/cutover schedule prod 2026-03-01T14:00 --stakeholders #launch",
        "/cutover schedule prod 2026-02-01T14:00Z",
        "/cutover schedule prod 2026-03-01T15:00+01:00 --stakeholders #launch",
        "/cutover schedule list",
        "/cutover unschedule 1",
        "/cutover schedule list",
    ]
    alice = Actor("console:alice", "alice")
    Console(engine, alice, io.StringIO("\n".join(lines) + "\n"), out).loop()
    text = out.getvalue()
    assert "has no time zone; add Z (UTC)" in text
    assert "is in the past" in text
    assert "Cutover of prod scheduled for Sun 2026-03-01 14:00 UTC as #1 by alice." in text
    assert "Run channel: #cutover; stakeholders: #launch." in text
    assert "#1 prod at Sun 2026-03-01 14:00 UTC — scheduled" in text
    assert "t-24h due 14:00 UTC · t-1h due 13:00 UTC" in text
    assert "Scheduled cutover #1 of prod at Sun 2026-03-01 14:00 UTC cancelled by alice" in text
    assert "#1 prod at Sun 2026-03-01 14:00 UTC — cancelled" in text


def test_console_surface_prints_scheduled_notices(sqlite_db: Database, tmp_path: Path) -> None:
    runbook = schedule_runbook(tmp_path)
    clock = clock_at(START - 2 * H)
    out = io.StringIO()
    engine = console_engine(sqlite_db, runbook, out, clock=clock)
    schedule(engine)
    set_clock(clock, START)
    Scheduler(engine).tick()
    text = out.getvalue()
    assert "[#launch] 📣 Production cutover starting in" not in text  # T-1h passed at T
    assert "[#cutover] 🚦 It is time: Production cutover scheduled for" in text


# --------------------------------------------------------------------------- gate timeouts


def test_a_waiting_gate_is_reminded_then_escalated_and_never_approved(
    db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, surface = make_engine(db, schedule_runbook(tmp_path), clock)
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    gate_id = open_gate_id(engine.db, run.id)
    assert gate_id is not None
    scheduler = Scheduler(engine)

    set_clock(clock, START + timedelta(minutes=19))
    assert scheduler.tick() == []
    set_clock(clock, START + timedelta(minutes=20))
    assert scheduler.tick() == [f"gate #{gate_id}: gate-reminder", f"gate:{gate_id}:reminder: sent"]
    [reminder] = surface.notices("Reminder")
    assert reminder.args[0] == run.id  # in the run's thread
    assert "waited 20 min for a decision (gate timeout 20 min). T1:U1, T1:U2:" in reminder.args[1]
    set_clock(clock, START + timedelta(minutes=39))
    assert scheduler.tick() == []
    set_clock(clock, START + timedelta(minutes=40))
    assert scheduler.tick() == [
        f"gate #{gate_id}: gate-escalation",
        f"gate:{gate_id}:escalation: sent",
    ]
    [escalation] = surface.notices("Escalation")
    assert escalation.args[0] is None and escalation.args[2] == "#cutover"  # the channel itself
    assert "2× the 20 min gate timeout" in escalation.args[1]
    assert "never approves by itself" in escalation.args[1]
    set_clock(clock, START + 10 * H)
    assert scheduler.tick() == []
    with engine.db.session() as s:
        gate = s.get(Gate, gate_id)
    assert gate is not None and gate.status == "open" and gate.decided_by is None
    assert gate.reminded_at is not None and gate.escalated_at is not None
    kinds = [e.kind for e in audit.events(engine.db, run.id)]
    assert kinds.count("gate.reminded") == 1 and kinds.count("gate.escalated") == 1
    assert "gate.decided" not in kinds and "gate.vote" not in kinds
    # A person still decides as usual.
    assert engine.decide(gate_id, BOB, "rollback", reason="timed out").outcome == "rolled_back"


def test_a_gate_decided_before_its_reminder_is_posted_gets_none(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, surface = make_engine(sqlite_db, schedule_runbook(tmp_path), clock)
    run = engine.start_run("prod", ALICE)
    gate_id = open_gate_id(engine.db, run.id or 0)
    assert gate_id is not None
    set_clock(clock, START + timedelta(minutes=25))
    scheduler = Scheduler(engine)
    scheduler._gate_timeouts(engine.now())  # the reminder is due …
    engine.decide(gate_id, BOB, "rollback", reason="x")  # … and the gate is decided meanwhile
    assert f"gate:{gate_id}:reminder: skipped" in scheduler.tick()
    assert surface.notices("Reminder") == []


def test_every_event_key_is_unique(sqlite_db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 3 * H)
    engine, _ = make_engine(sqlite_db, schedule_runbook(tmp_path), clock)
    sched = schedule(engine)
    with engine.db.session() as s:
        rows = s.exec(select(ScheduledEvent).where(ScheduledEvent.schedule_id == sched.id)).all()
    assert sorted(r.kind for r in rows) == ["t-0", "t-1h", "t-1h-checklist", "t-24h"]
    # T-24h was already past when it was scheduled: due at once, not late.
    t24 = next(r for r in rows if r.kind == "t-24h")
    assert t24.due_at == START - 3 * H
