"""T-1h items that gate Start, and preflight at schedule, T-24h and start: the runbook marks
what must be done (ticked by an approver, or checked by the bot) before Start works; a
failing preflight refuses the start before any run exists. On SQLite and PostgreSQL, on a
controllable clock (the scheduler is driven by `Scheduler.tick(now)`)."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.cli import main
from bot.engine import Engine
from bot.scheduler import Scheduler
from bot.schedules import ScheduleService
from bot.store.db import Database
from bot.store.models import AuditEvent, Run
from bot.store.reads import Reads
from bot.surface import Actor
from commands.handlers import CommandService, Reply
from commands.parser import ChecklistCmd, TickCmd, UntickCmd, UsageError, parse
from phases.runbook import RunbookError
from tests.schedule_helpers import (
    ALICE,
    BOB,
    MALLORY,
    START,
    clock_at,
    make_engine,
    schedule_runbook,
    set_clock,
    true_check,
)
from tests.servers import ManualClock
from tests.test_preflight import host, runbook_for, target  # noqa: F401  (fixtures)

H, MIN = timedelta(hours=1), timedelta(minutes=1)
ITEMS = ["maintenance-page", "no-users", "final-backup"]


def gated_pre_cutover(**t1: Any) -> dict[str, Any]:
    return {
        "t_minus_24h": {
            "title": "T-24 hours: preparation",
            "phase": "readiness",
            "items": ["Run readiness checker"],
        },
        "t_minus_1h": {
            "title": "T-1 hour: final verification",
            "phase": "readiness",
            "items": [
                'Notify stakeholders - "Production cutover starting in 1 hour"',
                {"id": "maintenance-page", "text": "Stop incoming traffic", "gates_start": True},
                {"id": "no-users", "text": "Verify no users logged in", "gates_start": True},
                {
                    "id": "final-backup",
                    "text": "Final database backup",
                    "gates_start": True,
                    "check": "readiness/backup",
                },
            ],
            **t1,
        },
    }


def gated(tmp_path: Path, **kw: Any) -> Any:
    return schedule_runbook(tmp_path, extra={"pre_cutover": gated_pre_cutover()}, **kw)


def backup_present(tmp_path: Path) -> None:
    """The readiness phase's `backup` check (test -e) passes from now on."""
    (tmp_path / "no-such-backup").write_text("", encoding="utf-8")


def say(engine: Engine, text: str, actor: Actor = ALICE) -> Reply:
    return CommandService(engine, Reads(engine.db, engine.runbook)).execute(parse(text), actor)


def rows(db: Database, kind: str) -> list[dict[str, Any]]:
    with db.session() as s:
        found = s.exec(select(AuditEvent).where(AuditEvent.kind == kind)).all()
    return [json.loads(r.data) for r in found]


def runs(db: Database) -> list[Run]:
    with db.session() as s:
        return list(s.exec(select(Run)))


def scheduled(engine: Engine, clock: ManualClock) -> int:
    sched = ScheduleService(engine).create("prod", START, ALICE, stakeholders="#launch")
    set_clock(clock, START)
    assert sched.id is not None
    return sched.id


# --------------------------------------------------------------------------- the runbook


@pytest.mark.parametrize(
    "item,problem",
    [
        ({"text": "Maintenance page", "gates_start": True}, "needs an id"),
        ({"id": "x", "text": "t", "check": "readiness/backup"}, "add gates_start: true"),
        ({"id": "x", "text": "t", "gates_start": True, "fresh_minutes": 5}, "goes with check"),
        (
            {"id": "x", "text": "t", "gates_start": True, "check": "nope/backup"},
            "check 'nope/backup': no phase 'nope'",
        ),
        (
            {"id": "x", "text": "t", "gates_start": True, "check": "readiness/mark"},
            "phase 'readiness' has no check 'mark' (it is an action; bind a check)",
        ),
        (
            {"id": "x", "text": "t", "gates_start": True, "check": "deploy/ok"},
            "no pre-cutover dry run runs phase 'deploy'",
        ),
        ({"id": "x", "text": "t", "gates_start": "soon"}, "gates_start"),
        ({"id": "x", "text": "t", "gates_start": True, "tick_by": "bob"}, "tick_by"),
    ],
)
def test_runbook_check_refuses_a_malformed_start_marking(
    tmp_path: Path, item: dict[str, Any], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pre = gated_pre_cutover()
    pre["t_minus_1h"]["items"] = ["Notify stakeholders", item]
    with pytest.raises(RunbookError, match="pre_cutover") as caught:
        schedule_runbook(tmp_path, extra={"pre_cutover": pre})
    assert problem in str(caught.value)
    assert main(["runbook", "check", str(tmp_path / "sched.yml")]) == 5
    assert problem in capsys.readouterr().err


def test_repeated_item_ids_are_refused(tmp_path: Path) -> None:
    pre = gated_pre_cutover()
    pre["t_minus_24h"]["items"].append({"id": "no-users", "text": "again", "gates_start": True})
    with pytest.raises(RunbookError, match="checklist item id 'no-users' is repeated"):
        schedule_runbook(tmp_path, extra={"pre_cutover": pre})


def test_the_shipped_runbook_marks_the_t1h_items_that_gate_start() -> None:
    from phases.runbook import load_runbook

    rb = load_runbook(Path(__file__).resolve().parent.parent / "runbooks" / "nostrmaxi.yml")
    marked = {i.id: i.check for i in rb.start_items()}
    assert marked == {
        "maintenance-page": None,
        "no-users": None,
        "final-backup": "readiness/backup",
    }


# --------------------------------------------------------------------------- the gate


def test_start_is_refused_until_every_item_is_done_and_says_what_is_missing(
    db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 48 * H)
    engine, _ = make_engine(db, gated(tmp_path), clock)
    sid = scheduled(engine, clock)

    result = ScheduleService(engine).start(sid, ALICE)
    assert result.outcome == "refused" and result.run_id is None
    assert "Start refused: 3 pre-cutover items needed before Start are not done." in result.message
    assert (
        f"→ an approver ticks it once done: /cutover tick {sid} maintenance-page (or its box"
        in (result.message)
    )
    assert "☐ Stop incoming traffic [maintenance-page, approver]: not ticked" in result.message
    assert "❌ Final database backup [final-backup, bot]: check backup has not run yet" in (
        result.message
    )
    assert f"/cutover tick {sid} final-backup (the bot checks it now)" in result.message
    assert runs(db) == []
    [refusal] = rows(db, "action.refused")
    assert refusal["action"] == "start" and refusal["schedule"] == sid
    assert refusal["missing"] == ITEMS


def test_a_typed_tick_note_can_ping_nobody(sqlite_db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 48 * H)
    engine, _ = make_engine(sqlite_db, gated(tmp_path), clock)
    sid = scheduled(engine, clock)
    reply = say(engine, f"tick {sid} no-users --note 'done, ask <@U0BOSS> <!here>'", BOB)
    assert "ticked by bob" in reply.text
    listing = say(engine, f"checklist {sid}").text
    assert "done, ask" in listing
    assert "<@U0BOSS>" not in listing and "<!here>" not in listing


def test_ticks_survive_a_restart_and_then_start_works(db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 48 * H)
    engine, _ = make_engine(db, gated(tmp_path), clock)
    sid = scheduled(engine, clock)
    assert "ticked by console" not in say(engine, f"tick {sid} maintenance-page").text
    reply = say(engine, f"tick {sid} no-users --note 'sessions table empty'", BOB)
    assert "✅ Verify no users logged in [no-users] ticked by bob" in reply.text
    assert "Still needed before Start: final-backup" in reply.text
    backup_present(tmp_path)
    reply = say(engine, f"tick {sid} final-backup")
    assert "is checked by the bot: check backup pass now" in reply.text
    assert "Every item needed before Start is done." in reply.text

    engine.shutdown()
    db.dispose()
    engine, _ = make_engine(Database(db.url), engine.runbook, clock)  # another process
    listing = say(engine, f"checklist {sid}").text
    assert "3/3 done" in listing and "ticked by T1:U2" in listing
    assert "(sessions table empty)" in listing
    result = ScheduleService(engine).start(sid, ALICE)
    assert result.outcome == "started", result.message
    assert [p["stage"] for p in rows(engine.db, "preflight.checked")] == ["start"]


def test_only_an_approver_may_tick_and_the_refusal_is_audited(db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 48 * H)
    engine, _ = make_engine(db, gated(tmp_path), clock)
    sid = scheduled(engine, clock)
    reply = say(engine, f"tick {sid} no-users", MALLORY)
    assert "only approvers of prod may tick or untick its pre-cutover items" in reply.text
    assert [(r["action"], r["schedule"]) for r in rows(db, "action.refused")] == [("tick", sid)]
    assert rows(db, "checklist.ticked") == []


def test_an_untick_makes_start_wait_for_that_item_again(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 48 * H)
    engine, _ = make_engine(sqlite_db, gated(tmp_path), clock)
    sid = scheduled(engine, clock)
    backup_present(tmp_path)
    for item in ITEMS:
        say(engine, f"tick {sid} {item}")
    reply = say(engine, f"untick {sid} no-users", BOB)
    assert "☐ Verify no users logged in [no-users] unticked by bob" in reply.text
    assert "is not ticked" in say(engine, f"untick {sid} no-users").text
    result = ScheduleService(engine).start(sid, ALICE)
    assert result.outcome == "refused"
    assert "1 pre-cutover item needed before Start is not done" in result.message
    assert "[no-users, approver]: not ticked" in result.message
    assert "maintenance-page" not in result.message


def test_a_bot_checked_item_needs_a_passing_result_fresh_enough(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 48 * H)
    engine, surface = make_engine(sqlite_db, gated(tmp_path), clock)
    sid = ScheduleService(engine).create("prod", START, ALICE).id
    for item in ITEMS[:2]:
        say(engine, f"tick {sid} {item}")

    # The T-1h dry run runs the readiness checks: the backup check fails, and says why.
    set_clock(clock, START - H)
    Scheduler(engine).tick(START - H)
    [(_, _, _, text)] = [c.args for c in surface.scheduled("t-1h-checklist")]
    assert "Readiness dry run (Readiness checks): ❌ 1 of 3 checks failed" in text
    assert "2/3 done" in text and "❌ Final database backup [final-backup, bot]: check " in text
    set_clock(clock, START)
    refused = ScheduleService(engine).start(sid or 0, ALICE).message
    assert "check backup fail at 13:00 UTC" in refused and "fix it, then /cutover tick" in refused

    # Asked again once the backup is there: it passes, and counts for 60 minutes.
    backup_present(tmp_path)
    assert "check backup pass now" in say(engine, f"tick {sid} final-backup").text
    set_clock(clock, START + 61 * MIN)
    refused = ScheduleService(engine).start(sid or 0, ALICE).message
    assert "check backup pass at 14:00 UTC, older than 60 min" in refused
    assert "have it checked again" in refused
    say(engine, f"tick {sid} final-backup")
    assert ScheduleService(engine).start(sid or 0, ALICE).outcome == "started"


def test_an_unscheduled_start_is_gated_the_same_and_its_ticks_count_once(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, gated(tmp_path), clock)
    refused = say(engine, "start prod").text
    assert "Start refused: 3 pre-cutover items" in refused
    assert "/cutover tick prod maintenance-page" in refused
    backup_present(tmp_path)
    for item in ITEMS[:2]:
        assert "for the next unscheduled start of prod" in say(engine, f"tick prod {item}").text
    assert "is checked by the bot" in say(engine, "tick prod final-backup").text
    reply = say(engine, "start prod")
    assert reply.run_id is not None, reply.text
    say(engine, "abort prod --reason 'rehearsal over'")
    set_clock(clock, START + 10 * MIN)
    again = say(engine, "start prod").text  # the ticks were for that start
    assert "Start refused: 2 pre-cutover items" in again
    assert "maintenance-page" in again and "final-backup" not in again


def test_a_dry_run_is_not_gated(sqlite_db: Database, tmp_path: Path) -> None:
    engine, _ = make_engine(sqlite_db, gated(tmp_path), clock_at(START))
    reply = say(engine, "start prod --dry-run")
    assert reply.run_id is not None and "(dry run)" in reply.text
    assert rows(sqlite_db, "action.refused") == []


# --------------------------------------------------------------------------- preflight


def missing_tool_runbook(tmp_path: Path, **env: Any) -> Any:
    phases = [
        {
            "id": "deploy",
            "name": "Deploy",
            "estimate_minutes": 5,
            "checkpoint": "deployed",
            "actions": [
                {
                    "id": "build",
                    "name": "build",
                    "kind": "run",
                    "params": {"argv": ["no-such-tool-for-cutover", "build"]},
                }
            ],
            "checks": [true_check()],
        }
    ]
    return schedule_runbook(
        tmp_path,
        phases=phases,
        env=env,
        extra={"pre_cutover": None},
    )


def test_a_failing_preflight_refuses_start_before_any_run_exists(
    db: Database, tmp_path: Path
) -> None:
    engine, _ = make_engine(db, missing_tool_runbook(tmp_path), clock_at(START))
    refused = say(engine, "start prod").text
    assert "Start refused: preflight found 1 problem" in refused
    assert "❌ command no-such-tool-for-cutover: not on this host's PATH" in refused
    assert runs(db) == []
    [checked] = rows(db, "preflight.checked")
    assert checked["stage"] == "start" and checked["passed"] is False
    assert isinstance(checked["elapsed_ms"], int)
    [refusal] = rows(db, "action.refused")
    assert refusal["preflight"] == ["command no-such-tool-for-cutover"]
    # The environment was never held: a dry run (not preflighted) starts at once.
    assert say(engine, "start prod --dry-run").run_id is not None


def test_preflight_at_start_is_quick(sqlite_db: Database, tmp_path: Path) -> None:
    engine, _ = make_engine(sqlite_db, schedule_runbook(tmp_path), clock_at(START))
    assert say(engine, "start prod").run_id is not None
    [checked] = rows(sqlite_db, "preflight.checked")
    assert checked["passed"] and checked["elapsed_ms"] < 1000, checked


def test_preflight_at_start_with_a_database_and_a_backup_is_quick(
    sqlite_db: Database,
    tmp_path: Path,
    host: dict[str, Any],  # noqa: F811
) -> None:
    """The whole preflight a start waits for: quorum, PATH, folders, env file, a real
    PostgreSQL answering, pg_restore --list (and SHA-256) of the newest backup."""
    engine, _ = make_engine(sqlite_db, runbook_for(tmp_path, host), clock_at(START))
    result = ScheduleService(engine).preflight("prod", "start")
    assert result.failed == [], result.text
    assert result.elapsed_ms < 2000, result.text


def test_scheduling_warns_when_preflight_fails_and_schedules_anyway(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _ = make_engine(sqlite_db, missing_tool_runbook(tmp_path), clock_at(START - 48 * H))
    reply = say(engine, "schedule prod 2026-03-01T14:00Z")
    assert "scheduled for Sun 2026-03-01 14:00 UTC as #1" in reply.text
    assert "⚠️ Scheduled, but preflight fails now: fix this before T-0" in reply.text
    assert "❌ command no-such-tool-for-cutover" in reply.text
    assert [r["stage"] for r in rows(sqlite_db, "preflight.checked")] == ["schedule"]


def test_the_t24h_notice_carries_the_preflight(sqlite_db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 48 * H)
    engine, surface = make_engine(sqlite_db, missing_tool_runbook(tmp_path), clock)
    ScheduleService(engine).create("prod", START, ALICE)
    set_clock(clock, START - 24 * H)
    Scheduler(engine).tick(START - 24 * H)
    [(_, _, _, text)] = [c.args for c in surface.scheduled("t-24h")]
    assert "Preflight of prod: 2/3 passed, 1 failed" in text
    assert "❌ command no-such-tool-for-cutover" in text
    stages = [r["stage"] for r in rows(sqlite_db, "preflight.checked")]
    assert stages == ["t-24h"]


def test_preflight_at_start_never_shows_a_secret(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "pf-Secret-7Hq2"
    monkeypatch.setenv("CUTOVER_RUNBOOK_PF_DB_PASSWORD", secret)
    rb = missing_tool_runbook(
        tmp_path, database_url="postgresql://app:${CUTOVER_RUNBOOK_PF_DB_PASSWORD}@127.0.0.1:9/app"
    )
    engine, _ = make_engine(sqlite_db, rb, clock_at(START))
    refused = say(engine, "start prod").text
    assert "❌ database: unreachable" in refused and secret not in refused
    with sqlite_db.session() as s:
        assert all(secret not in r.data for r in s.exec(select(AuditEvent)))


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    "text,expected",
    [
        ("tick 3 no-users", TickCmd("3", "no-users")),
        ("tick #3 no-users --note 'n/a: hotfix'", TickCmd("3", "no-users", "n/a: hotfix")),
        ("tick prod no-users", TickCmd("prod", "no-users")),
        ("untick 3 no-users", UntickCmd("3", "no-users")),
        ("checklist prod", ChecklistCmd("prod")),
    ],
)
def test_tick_grammar(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text,problem",
    [
        ("tick 3", "tick needs a schedule number (or an environment) and an item id"),
        ("tick 3 No-Users", "tick needs a schedule number"),
        ("tick 3 no-users --reason x", "after the item only --note TEXT may follow"),
        ("tick 3 no-users --note ' '", "after the item only --note TEXT may follow"),
        ("signoff 12 admin --note ' '", "after the criterion only --note TEXT may follow"),
        ("signoff 12 admin extra", "after the criterion only --note TEXT may follow"),
        ("untick 3 no-users extra", "untick takes a target and an item id"),
        ("checklist", "checklist needs a schedule number or an environment"),
    ],
)
def test_tick_grammar_errors_say_what_to_type(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert problem in caught.value.problem


def test_ticking_an_unknown_item_names_the_ones_that_gate_start(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _ = make_engine(sqlite_db, gated(tmp_path), clock_at(START - 48 * H))
    sid = ScheduleService(engine).create("prod", START, ALICE).id
    reply = say(engine, f"tick {sid} coffee")
    assert "no pre-cutover item 'coffee' gates Start" in reply.text
    assert "maintenance-page, no-users, final-backup" in reply.text
    assert "no scheduled cutover #99" in say(engine, "tick 99 no-users").text


# --------------------------------------------------------------------------- Slack


def checklist_click(bot: Any, message: Any, selected: list[str], user: str) -> str:
    """Leaves the T-1h checklist's boxes whose item is in `selected` checked; the reply key."""
    block_id, el = message.element("checklist_tick")
    chosen = [o for o in el["options"] if o["value"].split(":", 1)[1] in selected]
    action = {
        "action_id": "checklist_tick",
        "block_id": block_id,
        "type": "checkboxes",
        "selected_options": chosen,
    }
    return str(bot._send(message, action, user, "T1")[1])


def checked(message: Any) -> list[str]:
    _, el = message.element("checklist_tick")
    return [o["value"].split(":", 1)[1] for o in el.get("initial_options", [])]


def test_slack_t1h_checklist_boxes_tick_and_untick_and_gate_the_start_button(
    sqlite_db: Database, tmp_path: Path
) -> None:
    from standins.slack import block_problems
    from tests.slack_harness import running_bot, wait_for

    clock = clock_at(START - 48 * H)
    with running_bot(sqlite_db, gated(tmp_path)) as bot:
        bot.engine.clock = clock
        _, key = bot.command("schedule prod 2026-03-01T14:00Z")
        assert "as #1" in bot.reply(key)
        set_clock(clock, START - H)
        Scheduler(bot.engine).tick(START - H)
        [message] = [m for m in bot.standin.parents() if "final checklist" in m.all_text()]
        assert block_problems(message.blocks) == []
        assert "Needed before Start: 0/3 done" in message.all_text()
        assert "[final-backup, bot]: check backup fail" in message.all_text()
        assert checked(message) == []

        # Not an approver: refused, audited, and the box is drawn unchecked again.
        key = checklist_click(bot, message, ["maintenance-page"], "U9")
        assert "only approvers of prod may tick" in bot.reply(key)
        assert wait_for(lambda: bot.fresh(message).updates >= 1, "redrawn")
        assert checked(bot.fresh(message)) == []

        key = checklist_click(bot, message, ["maintenance-page", "no-users"], "U1")
        assert "[no-users] ticked by" in bot.reply(key)
        fresh = bot.wait_text(message, "Needed before Start: 2/3 done")
        assert checked(fresh) == ["maintenance-page", "no-users"]
        assert block_problems(fresh.blocks) == []
        key = checklist_click(bot, fresh, ["maintenance-page"], "U2")
        assert "[no-users] unticked by" in bot.reply(key)
        assert checked(bot.wait_text(message, "Needed before Start: 1/3 done")) == [
            "maintenance-page"
        ]

        # A click on a copy drawn before someone else's tick changes only what this person
        # changed: no-users, ticked meanwhile by U1, is not unticked by U2's stale boxes.
        stale = copy.deepcopy(bot.fresh(message))  # shows maintenance-page only
        key = checklist_click(bot, bot.fresh(message), ["maintenance-page", "no-users"], "U1")
        assert "[no-users] ticked by" in bot.reply(key)
        bot.wait_text(message, "Needed before Start: 2/3 done")
        key = checklist_click(bot, stale, [], "U2")  # U2 unchecks maintenance-page
        assert "[maintenance-page] unticked by" in bot.reply(key)
        assert checked(bot.wait_text(message, "Needed before Start: 1/3 done")) == ["no-users"]
        # back to maintenance-page alone, on the message as drawn now
        key = checklist_click(bot, bot.fresh(message), ["maintenance-page", "no-users"], "U2")
        assert "[maintenance-page] ticked by" in bot.reply(key)
        bot.wait_text(message, "Needed before Start: 2/3 done")
        key = checklist_click(bot, bot.fresh(message), ["maintenance-page"], "U2")
        assert "[no-users] unticked by" in bot.reply(key)
        assert checked(bot.wait_text(message, "Needed before Start: 1/3 done")) == [
            "maintenance-page"
        ]

        # T-0: the Start button is refused with what is missing; nothing runs.
        set_clock(clock, START)
        Scheduler(bot.engine).tick(START)
        [reminder] = [m for m in bot.standin.parents() if m.action_ids() == ["schedule_start"]]
        _, key = bot.click(reminder, "schedule_start", user="U1")
        refused = bot.reply(key)
        assert "Start refused: 2 pre-cutover items" in refused and "no-users" in refused
        assert runs(sqlite_db) == []


# ---------------------------------------------- allow_self_approval: false covers Start's ticks


def no_self_approval(tmp_path: Path) -> Any:
    return gated(tmp_path, env={"allow_self_approval": False})


def test_with_self_approval_off_the_starter_alone_ticking_every_item_cannot_start(
    db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 48 * H)
    engine, _ = make_engine(db, no_self_approval(tmp_path), clock)
    sid = scheduled(engine, clock)
    backup_present(tmp_path)
    for item in ITEMS:
        say(engine, f"tick {sid} {item}", ALICE)
    result = ScheduleService(engine).start(sid, ALICE)
    assert result.outcome == "refused"
    assert "2 pre-cutover items needed before Start are not done" in result.message
    own = "ticked only by you (T1:U1): this environment forbids approving your own run"
    assert own in result.message
    assert f"another approver ticks it: /cutover tick {sid} no-users" in result.message
    assert runs(db) == []
    [refusal] = rows(db, "action.refused")
    assert refusal["missing"] == ["maintenance-page", "no-users"]


def test_with_self_approval_off_a_second_approvers_tick_lets_the_first_start(
    db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 48 * H)
    engine, _ = make_engine(db, no_self_approval(tmp_path), clock)
    sid = scheduled(engine, clock)
    backup_present(tmp_path)
    for item in ITEMS:
        say(engine, f"tick {sid} {item}", ALICE)
    assert "already ticked by you" in say(engine, f"tick {sid} no-users", ALICE).text
    for item in ("maintenance-page", "no-users"):
        reply = say(engine, f"tick {sid} {item}", BOB)
        assert f"[{item}] ticked by bob" in reply.text
    listing = say(engine, f"checklist {sid}").text
    assert "ticked by T1:U1 at" in listing and "T1:U2 at" in listing
    result = ScheduleService(engine).start(sid, ALICE)
    assert result.outcome == "started", result.message


def test_with_self_approval_off_another_approver_may_start_on_the_first_ones_ticks(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 48 * H)
    engine, _ = make_engine(sqlite_db, no_self_approval(tmp_path), clock)
    sid = scheduled(engine, clock)
    backup_present(tmp_path)
    for item in ITEMS:
        say(engine, f"tick {sid} {item}", ALICE)
    result = ScheduleService(engine).start(sid, BOB)
    assert result.outcome == "started", result.message


def test_with_self_approval_off_an_unscheduled_start_needs_another_approvers_ticks(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, no_self_approval(tmp_path), clock)
    backup_present(tmp_path)
    for item in ITEMS:
        say(engine, f"tick prod {item}", ALICE)
    reply = say(engine, "start prod", ALICE)
    assert "ticked only by you (T1:U1)" in reply.text
    assert runs(sqlite_db) == []
