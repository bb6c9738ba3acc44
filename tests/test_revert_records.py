"""A revert in the records and the views (issue 20, item 2): the revert run's record names who
asked and who approved, the reverted run's record says by which run, when and by whom, each
line checked against the audit trail; `/cutover status` and Home show what a revert runs (its
restore and rollback steps), not the runbook's phases. On PostgreSQL, at the console and in
Slack (signed requests against the stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

from bot.record import build_record, record_text
from bot.store.db import Database
from bot.store.models import RunStatus
from bot.store.reads import Reads
from bot.surface import Actor
from commands.handlers import CommandService
from commands.parser import StatusCmd
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_revert import ALICE, complete_with_votes, console, run_row
from tests.trail_checker import check_record, exported_rows

BOB = Actor("T1:U2", "bob")


def record_of(engine: object, db: Database, run_id: int) -> str:
    runbook = engine.runbook  # type: ignore[attr-defined]
    text = record_text(build_record(db, runbook, run_id), runbook)
    check_record(text, exported_rows(db, run_id), runbook)  # every line from the trail
    return text


def test_both_records_name_who_asked_for_the_revert_and_who_approved_it(
    pg_db: Database, tmp_path: Path
) -> None:
    engine, _, _ = console(pg_db, tmp_path, quorum=2)
    complete_with_votes(engine, pg_db)
    asked = engine.revert("staging", ALICE, "5xx errors since launch")
    assert asked.outcome == "vote_recorded" and asked.run_id == 2
    assert engine.revert("staging", BOB, "agreed").outcome == "approved"
    wait_for(lambda: run_row(pg_db, 2).status == RunStatus.ROLLED_BACK, "the revert")
    revert = record_of(engine, pg_db, 2)
    assert (
        "Revert of run #1: asked for by console:alice at " in revert
        and ", approved by console:alice, T1:U2 at " in revert
        and revert.splitlines()[1].endswith(" — why: 5xx errors since launch")
    )
    original = record_of(engine, pg_db, 1)
    [line] = [x for x in original.splitlines() if x.startswith("Reverted by run #2")]
    assert "asked for by console:alice, approved by console:alice, T1:U2 at " in line
    assert line.endswith(" — why: 5xx errors since launch")
    assert "Rollback Triggered: NO" in original  # the original completed; #2 undid it


def test_a_revert_cancelled_before_its_quorum_says_so_and_the_record_checks(
    pg_db: Database, tmp_path: Path
) -> None:
    engine, _, _ = console(pg_db, tmp_path, quorum=2)
    complete_with_votes(engine, pg_db)
    asked = engine.revert("staging", ALICE, "errors up")
    assert asked.run_id == 2
    assert engine.abort("staging", ALICE, "false alarm").outcome == "cancelled"
    text = record_of(engine, pg_db, 2)
    assert "not approved (it never reached its quorum of 2) — why: errors up" in text
    assert "cancelled by console:alice at " in text
    assert "(no action had run: nothing to roll back)" in text
    assert not any(x.startswith("Reverted by") for x in record_of(engine, pg_db, 1).splitlines())


def test_status_of_a_revert_shows_its_restore_and_rollback_steps_not_the_phases(
    pg_db: Database, tmp_path: Path
) -> None:
    engine, _, _ = console(pg_db, tmp_path, quorum=2)
    complete_with_votes(engine, pg_db)
    engine.revert("staging", ALICE, "errors up")
    pending = (
        CommandService(engine, Reads(engine.db, engine.runbook))
        .execute(StatusCmd("staging"), ALICE)
        .text
    )
    assert "⏪ Revert of run #1: its restore and rollback steps" in pending
    assert "○ rollback/mark mark rolled back: not run yet" in pending
    assert "Phase one" not in pending and "estimated" not in pending
    engine.revert("staging", BOB, "agreed")
    wait_for(lambda: run_row(pg_db, 2).status == RunStatus.ROLLED_BACK, "the revert")
    done = (
        CommandService(engine, Reads(engine.db, engine.runbook))
        .execute(StatusCmd("staging"), ALICE)
        .text
    )
    assert "✅ rollback/mark mark rolled back: " in done
    assert "Phase one" not in done


def test_home_and_the_run_message_of_a_revert_show_its_steps(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, quorum=2, env={"channel": "C0CUTOVER"})
    with running_bot(pg_db, runbook) as bot:
        complete_with_votes(bot.engine, pg_db, starter=Actor("T1:U3", "carol"))
        bot.command("revert staging --reason 'errors up'", user="U1")
        wait_for(lambda: bot.latest_run() == 2, "the revert run")
        message = bot.wait_text(bot.parent(2), "Revert of run #1")
        assert "rollback/mark" in message.all_text() and "Phase one" not in message.all_text()
        bot.open_home("U1")
        home = wait_for(
            lambda: "revert of run #1" in json.dumps(bot.standin.home("U1") or {}), "Home"
        )
        text = json.dumps(bot.standin.home("U1"), ensure_ascii=False)
        assert home and "revert waiting for its approvers" in text
        assert "0/1 restore and rollback steps run" in text
        assert "phase 3/3" not in text
