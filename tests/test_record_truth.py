"""The record says only what the audit trail shows: several runs driven through the engine
(completed; rolled back after a Retry; aborted while a phase executes; with refusals and
ticks), each record checked line by line against the exported audit rows by
`tests.trail_checker`. And the T-1h stakeholder notice quotes the T-24h readiness dry run,
never a one-check `/cutover tick` run. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.checklists import Checklists, Scope
from bot.engine import Engine
from bot.record import build_record, record_text
from bot.scheduler import Scheduler
from bot.schedules import ScheduleService
from bot.store.db import Database
from bot.store.models import Run
from bot.store.reads import open_gate_id
from phases.runbook import Runbook, RunbookError
from tests.schedule_helpers import (
    ALICE,
    BOB,
    MALLORY,
    START,
    clock_at,
    make_engine,
    set_clock,
    true_check,
    write_runbook,
)
from tests.servers import ManualClock
from tests.test_start_gate import backup_present, gated
from tests.trail_checker import Unjustified, check_record, exported_rows, t1_notice_rules

MIN = timedelta(minutes=1)


def truth_runbook(tmp_path: Path, slow: bool = False) -> Runbook:
    """Three phases like the runbook's: one acts, two has the browser tests (manual steps
    `admin` and `payment`, as the runbook's Notes template names them) and a check a file
    can fail; no notes_fields, so the record uses the runbook's own template."""
    two_checks: list[dict[str, Any]] = [
        {
            "id": "flag",
            "name": "flag file absent",
            "kind": "command",
            "params": {"argv": ["test", "!", "-e", str(tmp_path / "fail-two")]},
        }
    ]
    if slow:  # a real command that is still running when the abort comes
        two_checks.insert(
            0,
            {
                "id": "slow",
                "name": "slow check",
                "kind": "command",
                "params": {"argv": ["sleep", "1"]},
            },
        )
    return write_runbook(
        tmp_path,
        {
            "name": "Truth runbook",
            "version": "3",
            "phases": [
                {
                    "id": "one",
                    "name": "Deploy",
                    "estimate_minutes": 1,
                    "checkpoint": "deployed",
                    "actions": [
                        {
                            "id": "act",
                            "name": "act",
                            "kind": "run",
                            "params": {"argv": ["touch", str(tmp_path / "acted")]},
                        }
                    ],
                    "checks": [true_check()],
                },
                {
                    "id": "two",
                    "name": "Browser tests",
                    "estimate_minutes": 5,
                    "checkpoint": "the browser tests pass",
                    "manual": [
                        {"id": "admin", "text": "Admin logs in"},
                        {"id": "payment", "text": "Pay an invoice"},
                    ],
                    "checks": two_checks,
                },
                {
                    "id": "three",
                    "name": "Public access",
                    "estimate_minutes": 1,
                    "checkpoint": "public",
                    "checks": [true_check("dns", "DNS resolves")],
                },
            ],
            "rollback": [
                {
                    "id": "mark",
                    "name": "mark rolled back",
                    "kind": "run",
                    "params": {"argv": ["touch", str(tmp_path / "rolled-back")]},
                }
            ],
            "success_criteria": [
                {"id": "payment", "text": "Payment webhook tested", "manual": "two/payment"},
                {"id": "dns", "text": "DNS resolving globally", "check": "three/dns"},
                {"id": "stats", "text": "Admin stats seen", "signoff": True},
                "Memory usage stable",
            ],
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": "http://127.0.0.1:9",
                    "approvers": ["T1:U1", "T1:U2"],
                }
            },
        },
    )


def gate(engine: Engine, run_id: int) -> int:
    found = open_gate_id(engine.db, run_id)
    assert found is not None, "no open gate"
    return found


def checked(engine: Engine, run_id: int) -> str:
    """The run's record, checked line by line against its exported audit rows."""
    text = record_text(build_record(engine.db, engine.runbook, run_id), engine.runbook)
    findings = check_record(text, exported_rows(engine.db, run_id), engine.runbook)
    assert len(findings) == len(text.splitlines())
    return text


def section(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"{name}:") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("- "):
            break
        out.append(line[2:])
    return out


def completed_run(engine: Engine, clock: ManualClock) -> int:
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    one = gate(engine, run.id)
    assert engine.decide(one, MALLORY, "continue").outcome == "refused"  # not an approver
    set_clock(clock, START + 2 * MIN)
    assert engine.decide(one, BOB, "continue").outcome == "approved"
    two = gate(engine, run.id)
    assert engine.decide(two, BOB, "continue").outcome == "refused"  # unticked
    assert engine.decide(two, BOB, "continue").outcome == "refused"  # again
    set_clock(clock, START + 7 * MIN)
    assert engine.tick(two, "admin", BOB).outcome == "ticked"
    set_clock(clock, START + 9 * MIN)
    assert engine.tick(two, "payment", ALICE).outcome == "ticked"
    assert engine.decide(two, ALICE, "continue").outcome == "approved"
    set_clock(clock, START + 12 * MIN)
    last = gate(engine, run.id)  # the last phase began: sign-offs are asked for
    # Signed off while the run is live: an ended run takes no more sign-offs.
    assert engine.sign_off(run.id, "stats", BOB, note="saw /admin").outcome == "ticked"
    assert engine.decide(last, ALICE, "continue").outcome == "approved"
    assert engine.add_note(run.id, BOB, "the relay was slow").outcome == "ticked"
    return run.id


def test_a_completed_run_s_record_says_who_ticked_what_and_lists_refusals_apart(
    db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(db, truth_runbook(tmp_path), clock)
    run_id = completed_run(engine, clock)
    text = checked(engine, run_id)
    assert section(text, "Issues Encountered") == ["none"]
    assert "refused" not in "\n".join(section(text, "Issues Encountered"))
    assert (
        "Refused requests: 3 (the bot's rules said no; not issues) — "
        "1× continue by T1:U9 (you are not an approver for prod; nothing was changed); "
        "2× continue by T1:U2 (tick every manual step first: admin, payment)"
    ) in text.splitlines()
    assert "Admin Login Verified: YES — manual step two/admin ticked by T1:U2 at 14:07 UTC" in text
    assert (
        "Payment Test Completed: YES — manual step two/payment ticked by T1:U1 at 14:09 UTC" in text
    )
    assert "fill in by hand" not in text
    assert section(text, "Manual steps") == [
        "two/admin (attempt 1): ticked by T1:U2 at 14:07 UTC",
        "two/payment (attempt 1): ticked by T1:U1 at 14:09 UTC",
    ]
    assert "✅ Admin stats seen — signed off by T1:U2 at 14:12 UTC: saw /admin" in text


def test_a_run_rolled_back_after_a_retry_records_the_failures_the_retry_and_the_ticks(
    db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(db, truth_runbook(tmp_path), clock)
    (tmp_path / "fail-two").touch()
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    assert engine.decide(gate(engine, run.id), BOB, "continue").outcome == "approved"
    set_clock(clock, START + 4 * MIN)
    two = gate(engine, run.id)
    assert engine.tick(two, "admin", BOB).outcome == "ticked"
    assert engine.decide(two, BOB, "continue").outcome == "refused"  # its check failed
    set_clock(clock, START + 6 * MIN)
    assert engine.decide(two, BOB, "retry").outcome == "retried"
    set_clock(clock, START + 8 * MIN)
    again = gate(engine, run.id)
    assert engine.decide(again, BOB, "rollback", reason="flag stays").outcome == "rolled_back"

    text = checked(engine, run.id)
    issues = section(text, "Issues Encountered")
    assert issues[0] == "rolled back: flag stays"
    assert issues[1].startswith("two/flag FAIL: ") and issues[1].endswith(" (14:00 UTC, attempt 1)")
    assert issues[2] == "phase two retried by T1:U2 at 14:06 UTC"
    assert issues[3].startswith("two/flag FAIL: ") and issues[3].endswith(" (14:06 UTC, attempt 2)")
    assert issues[4] == "the rollback was not verified: the runbook has no rollback_checks"
    assert len(issues) == 5
    assert any(line.startswith("Refused requests: 1 ") for line in text.splitlines())
    assert section(text, "Manual steps") == [
        "two/admin (attempt 1): ticked by T1:U2 at 14:04 UTC",
        "two/payment (attempt 1): not ticked",
        "two/admin (attempt 2): not ticked",
        "two/payment (attempt 2): not ticked",
    ]
    # Judged at the checkpoint that stands: the Retry re-ran the phase after the tick.
    assert (
        "Admin Login Verified: NO — manual step two/admin was not ticked at its last "
        "checkpoint (attempt 2)"
    ) in text
    assert "Reason: flag stays" in text and "Rollback Triggered: YES" in text


def aborted_while_a_check_runs(db: Database, tmp_path: Path) -> tuple[Engine, int]:
    """A run BOB aborts at 14:03 ("payments down") while phase two's `sleep 1` check runs;
    returned once it is rolled back and its engine shut down."""
    clock = clock_at(START)
    engine, _ = make_engine(db, truth_runbook(tmp_path, slow=True), clock)
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    engine.background = True  # phase two runs on the pool, as under Slack
    assert engine.decide(gate(engine, run.id), BOB, "continue").outcome == "approved"
    time.sleep(0.2)  # phase two's `sleep 1` is running
    set_clock(clock, START + 3 * MIN)
    assert engine.abort("prod", BOB, "payments down").outcome == "rolled_back"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with db.session() as s:
            row = s.get(Run, run.id)
            if row is not None and row.status == "rolled_back":
                break
        time.sleep(0.05)
    engine.shutdown()
    return engine, run.id


def test_a_run_aborted_while_a_check_runs_records_the_abort(db: Database, tmp_path: Path) -> None:
    engine, run_id = aborted_while_a_check_runs(db, tmp_path)
    text = checked(engine, run_id)
    issues = section(text, "Issues Encountered")
    assert issues[0] == "rolled back: aborted: payments down"
    assert "aborted by T1:U2 at 14:03 UTC while a phase was executing" in issues
    assert "Rollback Triggered: YES" in text


def test_the_checker_refuses_a_record_that_claims_more_than_the_trail(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, truth_runbook(tmp_path), clock)
    run_id = completed_run(engine, clock)
    text = checked(engine, run_id)
    rows = exported_rows(sqlite_db, run_id)
    lies = [
        text.replace("ticked by T1:U2 at 14:07", "ticked by T1:U1 at 14:07"),  # who
        text.replace("ticked by T1:U1 at 14:09", "ticked by T1:U1 at 14:08"),  # when
        text.replace("Rollback Triggered: NO", "Rollback Triggered: YES"),
        text.replace("Issues Encountered:\n- none", "Issues Encountered:\n- two/flag FAIL: x"),
        text.replace("Refused requests: 3", "Refused requests: 2"),
        text.replace(  # a refusal listed as an issue
            "Issues Encountered:\n- none",
            "Issues Encountered:\n- continue by T1:U9 refused: you are not an approver for prod",
        ),
        text + "\nOld service verified healthy",  # a line no rule knows
        "\n".join(x for x in text.splitlines() if "two/admin" not in x),  # a tick left out
    ]
    for lie in lies:
        assert lie != text
        with pytest.raises(Unjustified):
            check_record(lie, rows, engine.runbook)


def test_the_t1h_notice_quotes_the_t24h_readiness_dry_run_not_a_later_tick_check(
    db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 30 * 60 * MIN)
    engine, surface = make_engine(db, gated(tmp_path), clock)
    sched = ScheduleService(engine).create("prod", START, ALICE, stakeholders="#launch")
    scheduler = Scheduler(engine)
    set_clock(clock, START - 24 * 60 * MIN)
    scheduler.tick()  # T-24h: the readiness dry run, its backup check fails
    backup_present(tmp_path)
    set_clock(clock, START - 2 * 60 * MIN)
    # `/cutover tick 1 final-backup`: a one-check readiness run, newer than the T-24h one.
    assert Checklists(engine).tick(Scope("prod", sched.id), "final-backup", BOB).changed
    set_clock(clock, START - 60 * MIN)
    scheduler.tick()
    [t1] = surface.scheduled("t-1h")
    [line] = [x for x in t1.args[3].splitlines() if x.startswith("T-24h readiness")]
    assert sched.id is not None
    findings = t1_notice_rules(sched.id).check(t1.args[3], exported_rows(db, None), engine.runbook)
    assert len(findings) == len(t1.args[3].splitlines())  # every line justified
    rows = [r for r in exported_rows(db, None) if r.kind == "readiness.checked"]
    [t24] = [r for r in rows if r.at.startswith("2026-02-28T14:00")]
    assert line == (
        f"T-24h readiness (the scheduled T-24h dry run of Readiness checks, "
        f"Sat 2026-02-28 14:00 UTC, audit row #{t24.seq}): 1 of 3 passed, 1 failed (backup), "
        "1 skipped"
    )
    # What it quotes is that row, and the row says it is the T-24h dry run: the later
    # one-check run of the tick and the T-1h checklist's dry run are not it.
    assert [r.data.get("trigger") for r in rows] == ["t-24h", "tick", "t-1h"]
    assert [len(r.data["results"]) for r in rows] == [3, 1, 3]
    # The checker refuses a line that quotes the tick's one-check run as the T-24h readiness.
    lie = t1.args[3].replace(f"audit row #{t24.seq}", f"audit row #{rows[1].seq}")
    with pytest.raises(Unjustified, match="not this schedule's T-24h readiness dry run"):
        t1_notice_rules(sched.id).check(lie, exported_rows(db, None), engine.runbook)


def test_a_notes_line_bound_to_a_manual_step_says_who_ticked_it(
    sqlite_db: Database, tmp_path: Path
) -> None:
    base = truth_runbook(tmp_path).model_dump(mode="json", exclude_none=True)
    base["notes_fields"] = ["Date", {"name": "Admin Login Verified", "manual": "two/admin"}]
    runbook = write_runbook(tmp_path, base, "bound.yml")
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, runbook, clock)
    run_id = completed_run(engine, clock)
    text = checked(engine, run_id)
    assert "Admin Login Verified: YES — manual step two/admin ticked by T1:U2 at 14:07 UTC" in text


def test_runbook_check_refuses_a_notes_line_bound_to_no_manual_step(tmp_path: Path) -> None:
    base = truth_runbook(tmp_path).model_dump(mode="json", exclude_none=True)
    base["notes_fields"] = [{"name": "Admin Login Verified", "manual": "two/nope"}]
    with pytest.raises(RunbookError, match="notes field 'Admin Login Verified': no manual step"):
        write_runbook(tmp_path, base, "bad.yml")


def test_a_dry_run_continued_past_a_failed_check_records_the_override(
    db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(db, truth_runbook(tmp_path), clock)
    (tmp_path / "fail-two").touch()
    run = engine.start_run("prod", ALICE, dry_run=True)
    assert run.id is not None
    assert engine.decide(gate(engine, run.id), BOB, "continue").outcome == "approved"
    two = gate(engine, run.id)
    for item in ("admin", "payment"):
        assert engine.tick(two, item, BOB).outcome == "ticked"
    set_clock(clock, START + 5 * MIN)
    assert engine.decide(two, BOB, "continue").outcome == "approved"
    assert engine.decide(gate(engine, run.id), BOB, "continue").outcome == "approved"

    text = checked(engine, run.id)
    assert text.splitlines()[0].startswith(f"📋 Cutover record — run #{run.id}, prod (DRY RUN):")
    issues = section(text, "Issues Encountered")
    assert issues[0].startswith("two/flag FAIL: ")
    assert issues[1] == (
        "phase two continued by T1:U2 at 14:05 UTC although its checks had not passed "
        "(override, dry run)"
    )
