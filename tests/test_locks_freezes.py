"""Locks and change freezes (issue 20, item 3), on PostgreSQL through Slack (signed requests,
the stand-in) and the console: who may lock, the audit rows, and the refusals (a start on a
locked environment, a start or a schedule in a freeze); an emergency start in a freeze is a
break-glass (a justification each, the override quorum)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.app import console_engine
from bot.console import Console
from bot.domain import freezes
from bot.engine.locks import EmergencyPending
from bot.record import build_record, record_text
from bot.store.db import Database
from bot.surface import Actor
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.trail_checker import check_record, exported_rows


def all_rows(db: Database, kind: str) -> list[dict[str, Any]]:
    """Every audit row of `kind`, of every run and of none (a lock belongs to no run)."""
    out = []
    for line in audit.export(db, None, "jsonl").splitlines():
        r = json.loads(line)
        if r["kind"] == kind:
            out.append({**r["data"], "actor": r["actor"], "run": r["run_id"]})
    return out


def frozen_runbook(tmp_path: Path) -> Any:
    """staging is frozen every day of the week, all day (a freeze always in force)."""
    runbook = small_runbook(tmp_path)
    data = runbook.model_dump(mode="json", exclude_none=True)
    data["freezes"] = [
        {
            "id": "launch-week",
            "reason": "marketing launch",
            "by": "release management",
            "timezone": "Europe/Berlin",
            "weekly": {
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "start": "00:00",
                "end": "00:00",
            },
            "environments": ["staging"],
        }
    ]
    return type(runbook).model_validate(data)


def test_lock_unlock_and_locks_by_approvers_only_and_a_locked_environment_refuses_start(
    pg_db: Database, tmp_path: Path
) -> None:
    with running_bot(pg_db, small_runbook(tmp_path)) as bot:
        _, key = bot.command("lock staging --reason 'db maintenance'", user="U9")
        assert "only approvers of staging may lock" in bot.reply(key)
        _, key = bot.command("lock staging --reason 'db maintenance'", user="U1")
        assert "staging locked by" in bot.reply(key)
        _, key = bot.command("lock staging --reason 'again'", user="U2")
        assert "staging is locked by T1:U1" in bot.reply(key) or "locked by <@U1>" in bot.reply(key)
        _, key = bot.command("start staging", user="U2")
        said = bot.reply(key)
        assert "staging is locked" in said and "db maintenance" in said
        assert "/cutover unlock staging" in said
        _, key = bot.command("locks", user="U9")  # anyone may look
        assert "db maintenance" in bot.reply(key)
        _, key = bot.command("status staging", user="U9")
        assert "🔒" in bot.reply(key)
        _, key = bot.command("unlock staging", user="U9")
        assert "only approvers" in bot.reply(key)
        _, key = bot.command("unlock staging", user="U2")
        assert "unlocked" in bot.reply(key)
        _, key = bot.command("start staging", user="U2")
        wait_for(lambda: bot.latest_run(), "a run")
        (locked,) = all_rows(pg_db, "env.locked")
        assert (locked["actor"], locked["reason"]) == ("T1:U1", "db maintenance")
        (unlocked,) = all_rows(pg_db, "env.unlocked")
        assert unlocked["actor"] == "T1:U2"
        refused = [r["action"] for r in all_rows(pg_db, "action.refused")]
        assert refused.count("lock") == 1 and refused.count("unlock") == 1
        assert "start" in refused


def test_a_freeze_refuses_start_and_schedule_saying_who_why_until(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = frozen_runbook(tmp_path)
    with running_bot(pg_db, runbook) as bot:
        _, key = bot.command("start staging", user="U1")
        said = bot.reply(key)
        assert "change freeze 'launch-week' declared by release management" in said
        assert "marketing launch" in said and "until" in said
        assert "--emergency --reason" in said
        later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%MZ")
        _, key = bot.command(f"schedule staging {later}", user="U1")
        assert "change freeze 'launch-week'" in bot.reply(key)
        _, key = bot.command("start staging --dry-run", user="U1")  # changes nothing
        wait_for(lambda: bot.latest_run(), "a dry run")
        refused = all_rows(pg_db, "action.refused")
        assert {r["action"] for r in refused} >= {"start", "schedule"}


def test_an_emergency_start_in_a_freeze_needs_the_override_quorum_each_with_a_reason(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = frozen_runbook(tmp_path)
    with running_bot(pg_db, runbook) as bot:
        _, key = bot.command("start staging --emergency --reason 'payment outage fix'", user="U9")
        assert "only approvers of staging may start" in bot.reply(key)
        _, key = bot.command("start staging --emergency --reason 'payment outage fix'", user="U1")
        assert "1/2 override approvals" in bot.reply(key)
        _, key = bot.command("start staging --emergency --reason 'me again'", user="U1")
        assert "you already asked" in bot.reply(key)  # the requester alone never starts it
        assert all_rows(pg_db, "run.started") == []
        _, key = bot.command("start staging --emergency --reason 'confirmed outage'", user="U2")
        run_id = bot.latest_run()
        (broke,) = all_rows(pg_db, "freeze.overridden")
        assert broke["run"] == run_id and broke["approvers"] == ["T1:U1", "T1:U2"]
        assert broke["justifications"] == [
            "T1:U1: payment outage fix",
            "T1:U2: confirmed outage",
        ]
        # Spent: a later emergency start in the same freeze needs its own votes.
        bot.command("abort staging --reason done", user="U1")
        wait_for(lambda: bot.run(run_id).status in ("cancelled", "rolled_back"), "the abort")
        _, key = bot.command("start staging --emergency --reason 'again'", user="U3")
        assert "1/2 override approvals" in bot.reply(key)


def test_weekly_windows_merge_and_a_date_range_reads_in_its_own_zone(tmp_path: Path) -> None:
    runbook = small_runbook(tmp_path)
    data = runbook.model_dump(mode="json", exclude_none=True)
    data["freezes"] = [
        {
            "id": "weekend",
            "reason": "no weekend changes",
            "timezone": "America/New_York",
            "weekly": {"days": ["sat", "sun"], "start": "00:00", "end": "00:00"},
        },
        {
            "id": "new-year",
            "reason": "year end",
            "timezone": "Europe/Berlin",
            "start": "2026-12-31T18:00",
            "end": "2027-01-01T06:00",
        },
    ]
    rb = type(runbook).model_validate(data)
    saturday = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)  # 10:00 in New York
    hit = freezes.frozen(rb, "staging", saturday)
    assert hit is not None and hit.freeze.id == "weekend"
    assert hit.until == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # Monday 00:00 EDT
    assert freezes.frozen(rb, "staging", datetime(2026, 3, 9, 5, 0, tzinfo=UTC)) is None
    eve = freezes.frozen(rb, "staging", datetime(2026, 12, 31, 17, 30, tzinfo=UTC))
    assert eve is not None and eve.until == datetime(2027, 1, 1, 5, 0, tzinfo=UTC)
    assert freezes.frozen(rb, "staging", datetime(2026, 12, 31, 16, 59, tzinfo=UTC)) is None


def test_the_console_locks_and_refuses_a_start_while_locked(
    pg_db: Database, tmp_path: Path
) -> None:
    out = io.StringIO()
    engine = console_engine(pg_db, small_runbook(tmp_path), out)
    lines = [
        "/cutover lock staging --reason 'vendor window'",
        "/cutover start staging",
        "/cutover locks",
        "/cutover unlock staging",
    ]
    Console(
        engine, Actor("console:alice", "alice"), io.StringIO("\n".join(lines) + "\n"), out
    ).loop()
    text = out.getvalue()
    assert "staging locked by alice: vendor window" in text
    assert "staging is locked by console:alice" in text and "vendor window" in text
    assert "unlocked by alice" in text
    assert all_rows(pg_db, "run.started") == []


def test_a_record_after_an_emergency_start_passes_the_trail_check(
    pg_db: Database, tmp_path: Path
) -> None:
    """The record's lines stay justified by the trail when a run broke a freeze."""
    runbook = frozen_runbook(tmp_path)
    out = io.StringIO()
    engine = console_engine(pg_db, runbook, out)
    with pytest.raises(EmergencyPending):
        engine.start_run("staging", Actor("console:alice", "alice"), emergency="outage")
    run = engine.start_run("staging", Actor("T1:U2", team="T1"), emergency="confirmed")
    assert run.id is not None
    text = record_text(build_record(pg_db, runbook, run.id), runbook)
    assert "🟥 started during the change freeze launch-week" in text
    check_record(text, exported_rows(pg_db, run.id), runbook)
