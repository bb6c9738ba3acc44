"""The console surface: a person types /cutover start and answers at the prompt, on SQLite."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from bot.app import console_engine
from bot.console import Console
from bot.store.db import Database
from bot.surface import Actor
from tests.conftest import STEP_USER
from tests.small_runbook import small_runbook


def drive(db: Database, tmp_path: Path, lines: list[str], who: str = "alice") -> str:
    out = io.StringIO()
    engine = console_engine(db, small_runbook(tmp_path), out)
    Console(engine, Actor(f"console:{who}", who), io.StringIO("\n".join(lines) + "\n"), out).loop()
    return out.getvalue()


def test_console_walks_a_run_from_start_to_completion(sqlite_db: Database, tmp_path: Path) -> None:
    out = drive(
        sqlite_db,
        tmp_path,
        [
            "/cutover start staging",
            "c",
            "c",
            "tick browser",
            "c",
            "c",
            "/cutover status staging",
        ],
    )
    assert "Run #1 of staging started by alice." in out
    assert "Phase 1: Phase one" in out and "Checkpoint: one ok" in out
    assert "tick every manual step first: browser" in out
    assert "[x] (by alice) browser" not in out  # ticks show on the next checkpoint view
    assert "Run #1 · staging · completed" in out
    assert "approved by alice" in out and "console:alice" not in out


def test_console_rollback_is_reported(sqlite_db: Database, tmp_path: Path) -> None:
    out = drive(sqlite_db, tmp_path, ["/cutover start staging", "r smoke tests red", "yes"])
    assert "Rollback finished; every step passed." in out
    assert "rolled back" in out and (tmp_path / "rolled-back").exists()


def test_console_user_who_is_not_an_approver_cannot_start(
    sqlite_db: Database, tmp_path: Path
) -> None:
    out = drive(sqlite_db, tmp_path, ["/cutover start staging"], who="mallory")
    assert "only approvers of staging may start a run there" in out


def test_console_wrong_argument_prints_usage(sqlite_db: Database, tmp_path: Path) -> None:
    out = drive(sqlite_db, tmp_path, ["/cutover start"])
    assert "start needs exactly one environment" in out and "Usage:" in out


def test_cutover_console_command_runs_as_a_program(tmp_path: Path) -> None:
    rb = small_runbook(tmp_path)
    del rb
    env = {
        **os.environ,
        "CUTOVER_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
        "CUTOVER_RUNBOOK": str(tmp_path / "small.yml"),
        "CUTOVER_STEP_USER": STEP_USER,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--as", "alice"],
        input="/cutover start staging\nc\n/cutover status\nquit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Phase 2: Phase two" in proc.stdout
    assert "Run #1 · staging · waiting for a decision" in proc.stdout


def test_console_abort_without_reason_asks_for_one_then_for_a_yes(
    sqlite_db: Database, tmp_path: Path
) -> None:
    out = drive(
        sqlite_db,
        tmp_path,
        [
            "/cutover start staging",
            "/cutover abort staging",
            "",
            "/cutover abort staging",
            "vendor outage",
            "yes",
        ],
    )
    assert out.count("Reason for the rollback") == 2 and "Rollback not started." in out
    from bot.store.reads import run_view

    engine = console_engine(sqlite_db, small_runbook(tmp_path), io.StringIO())
    view = run_view(sqlite_db, engine.runbook, 1)
    assert view is not None and "vendor outage" in (view.rollback_reason or "")


def test_console_continue_with_a_comment_puts_it_in_the_audit_trail(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json

    from bot import audit

    drive(sqlite_db, tmp_path, ["/cutover start staging", "c relay latency fine"])
    votes = [json.loads(e.data) for e in audit.events(sqlite_db, 1) if e.kind == "gate.vote"]
    assert votes[0]["comment"] == "relay latency fine"


def test_console_bare_schedule_asks_for_each_field_and_says_what_is_wrong(
    sqlite_db: Database, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d")
    out = drive(
        sqlite_db,
        tmp_path,
        [
            "/cutover schedule",
            "nowhere",
            "staging",
            "2020-01-01",
            "10:00",
            "UTC",
            day,
            "09:30",
            "Europe/Berlin",
            "",
            "/cutover schedule list",
        ],
    )
    assert "'nowhere' is not an environment of the runbook" in out
    assert "is in the past" in out
    assert "Cutover of staging scheduled for" in out and "#1 staging at" in out


def test_console_schedule_refuses_a_local_time_the_clocks_skip_and_asks_again(
    sqlite_db: Database, tmp_path: Path
) -> None:
    from tests.schedule_helpers import next_transition

    gap = next_transition(gap=True).isoformat()
    fine = next_transition(gap=True) + __import__("datetime").timedelta(days=1)
    out = drive(
        sqlite_db,
        tmp_path,
        [
            "/cutover schedule",
            "staging",
            gap,
            "02:30",
            "Europe/Berlin",
            fine.isoformat(),
            "02:30",
            "Europe/Berlin",
            "",
            "/cutover schedule list",
        ],
    )
    assert f"{gap} 02:30 in Europe/Berlin does not exist" in out
    assert f"{gap} 01:30 UTC (as CET, +01:00)" in out and f"{gap} 00:30 UTC" in out
    assert "Cutover of staging scheduled for" in out and "#1 staging at" in out
