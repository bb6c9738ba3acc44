"""Success criteria declared in the runbook, each bound to what shows it; the record says
what was not verified and never reads a rolled-back run as one without issues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.record import build_record, record_text
from bot.store.db import Database
from bot.store.reads import Reads, open_gate_id
from phases.runbook import RunbookError
from tests.schedule_helpers import (
    ALICE,
    BOB,
    MALLORY,
    START,
    clock_at,
    make_engine,
    true_check,
    write_runbook,
)
from tests.trail_checker import check_record, exported_rows


def runbook(tmp_path: Path, criteria: list[Any], check_ok: bool = True) -> Any:
    argv = ["true"] if check_ok else ["false"]
    return write_runbook(
        tmp_path,
        {
            "name": "Criteria",
            "phases": [
                {
                    "id": "smoke",
                    "name": "Smoke",
                    "estimate_minutes": 5,
                    "checkpoint": "smoke passes",
                    "checks": [
                        {
                            "id": "health",
                            "name": "health",
                            "kind": "command",
                            "params": {"argv": argv},
                        }
                    ],
                }
            ],
            "rollback": [true_check("undo") | {"kind": "run"}],
            "success_criteria": criteria,
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": "http://127.0.0.1:9",
                    "approvers": ["T1:U1", "T1:U2"],
                }
            },
        },
    )


def started(db: Database, tmp_path: Path, criteria: list[Any], check_ok: bool = True) -> Any:
    """A run at its only gate: its last phase has run, sign-offs are asked for."""
    engine, _ = make_engine(db, runbook(tmp_path, criteria, check_ok=check_ok), clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    gate = open_gate_id(db, run.id)
    assert gate is not None
    return engine, run.id, gate


def finish(db: Database, tmp_path: Path, criteria: list[Any], decide: str = "continue") -> Any:
    engine, run_id, gate = started(db, tmp_path, criteria, check_ok=decide == "continue")
    engine.decide(gate, BOB, decide, reason="smoke failed" if decide == "rollback" else None)
    return engine, run_id


def test_a_criterion_bound_to_a_check_is_met_by_its_result(
    sqlite_db: Database, tmp_path: Path
) -> None:
    criteria = [{"id": "h", "text": "Health ok", "check": "smoke/health"}]
    engine, run_id = finish(sqlite_db, tmp_path, criteria)
    [c] = build_record(sqlite_db, engine.runbook, run_id).criteria
    assert c.verdict == "yes" and c.evidence.startswith("smoke/health pass:")


def test_a_criterion_bound_to_nothing_is_not_verified_and_said_plainly(
    sqlite_db: Database, tmp_path: Path
) -> None:
    criteria = ["Health check passing", {"id": "h", "text": "Health ok", "check": "smoke/health"}]
    engine, run_id = finish(sqlite_db, tmp_path, criteria)
    rec = build_record(sqlite_db, engine.runbook, run_id)
    unbound = rec.criteria[0]
    assert unbound.verdict == "not verified"
    assert unbound.evidence == "the runbook binds it to no check or sign-off"
    text = record_text(rec, engine.runbook)
    check_record(text, exported_rows(sqlite_db, run_id), engine.runbook)
    assert "Success criteria: 1 met, 0 not met, 1 not verified" in text
    assert "Not verified by anyone or anything: Health check passing" in text


def test_a_rolled_back_run_never_reports_no_issues(sqlite_db: Database, tmp_path: Path) -> None:
    engine, run_id = finish(sqlite_db, tmp_path, [], decide="rollback")
    rec = build_record(sqlite_db, engine.runbook, run_id)
    issues = rec.note("Issues Encountered")
    assert isinstance(issues, list) and "none" not in issues
    assert issues[0] == "rolled back: smoke failed"
    assert any("rollback was not verified" in i for i in issues)


def test_a_signoff_criterion_nobody_signed_off_is_not_verified(
    sqlite_db: Database, tmp_path: Path
) -> None:
    criteria = [{"id": "admin", "text": "Admin access verified", "signoff": True}]
    engine, run_id = finish(sqlite_db, tmp_path, criteria)
    assert build_record(sqlite_db, engine.runbook, run_id).criteria[0].verdict == "not verified"
    # The run has ended: its record is written, and a late sign-off would not be true of it.
    assert engine.sign_off(run_id, "admin", BOB).outcome == "refused"
    assert build_record(sqlite_db, engine.runbook, run_id).criteria[0].verdict == "not verified"


def test_a_signoff_criterion_waits_for_an_approver(sqlite_db: Database, tmp_path: Path) -> None:
    criteria = [{"id": "admin", "text": "Admin access verified", "signoff": True}]
    engine, run_id, gate = started(sqlite_db, tmp_path, criteria)
    assert engine.sign_off(run_id, "admin", MALLORY).outcome == "refused"
    assert engine.sign_off(run_id, "admin", BOB, note="saw /admin stats").outcome == "ticked"
    engine.decide(gate, BOB, "continue")
    c = build_record(sqlite_db, engine.runbook, run_id).criteria[0]
    assert c.verdict == "yes"
    assert c.evidence == "signed off by T1:U2 at 14:00 UTC: saw /admin stats"


@pytest.mark.parametrize(
    ("criterion", "problem"),
    [
        ({"id": "x", "text": "x", "check": "smoke/nope"}, "phase 'smoke' has no step 'nope'"),
        ({"id": "x", "text": "x", "check": "nope/health"}, "no phase 'nope'"),
        ({"id": "x", "text": "x", "monitoring": "smoke/health"}, "has no monitor rounds"),
        ({"id": "x", "text": "x", "check": "smoke/health", "signoff": True}, "one of"),
    ],
)
def test_a_criterion_bound_to_something_missing_is_a_runbook_error(
    tmp_path: Path, criterion: dict[str, Any], problem: str
) -> None:
    with pytest.raises(RunbookError, match=problem):
        runbook(tmp_path, [criterion])


def test_signoff_and_note_by_command_reach_the_record(sqlite_db: Database, tmp_path: Path) -> None:
    from commands.handlers import CommandService
    from commands.parser import parse

    criteria = [{"id": "admin", "text": "Admin access verified", "signoff": True}]
    engine, run_id, gate = started(sqlite_db, tmp_path, criteria)
    service = CommandService(engine, Reads(engine.db, engine.runbook))
    reply = service.execute(parse(f"/cutover signoff {run_id} admin --note 'stats shown'"), BOB)
    assert reply.text == "Admin access verified: signed off"
    engine.decide(gate, BOB, "continue")
    service.execute(parse(f"/cutover note {run_id} 'DNS took 20 min at 9.9.9.9'"), BOB)
    refused = service.execute(parse(f"/cutover note {run_id} hi"), MALLORY)
    assert "approver" in refused.text
    rec = build_record(sqlite_db, engine.runbook, run_id)
    assert rec.criteria[0].verdict == "yes"
    assert rec.people_notes == ["T1:U2 at 14:00 UTC: DNS took 20 min at 9.9.9.9"]
    text = record_text(rec, engine.runbook)
    assert "Notes:\n- T1:U2 at 14:00 UTC: DNS took 20 min" in text
    check_record(text, exported_rows(sqlite_db, run_id), engine.runbook)
    unknown = service.execute(parse(f"/cutover signoff {run_id} payment"), BOB)
    assert "no success criterion 'payment'; this runbook has: admin" in unknown.text
