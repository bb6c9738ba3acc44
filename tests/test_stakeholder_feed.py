"""The stakeholders' channel hears the start, each phase passed, the end or the rollback,
and the record: one short message each, nothing in between."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.schedule_helpers import (
    ALICE,
    BOB,
    START,
    clock_at,
    make_engine,
    true_check,
    write_runbook,
)
from tests.trail_checker import check_ended_feed, exported_rows

STAKEHOLDERS = "C0STAKEHOLDERS"


def runbook(tmp_path: Path, ok: bool = True, **more: Any) -> Any:
    prod = more.pop("prod", {})
    return write_runbook(
        tmp_path,
        more
        | {
            "name": "Feed",
            "estimated_duration": "2-4 hours",
            "phases": [
                {
                    "id": "smoke",
                    "number": 6,
                    "name": "Smoke test",
                    "estimate_minutes": 5,
                    "checkpoint": "ok",
                    "checks": [
                        {
                            "id": "c",
                            "name": "c",
                            "kind": "command",
                            "params": {"argv": ["true" if ok else "false"]},
                        }
                    ],
                }
            ],
            "rollback": [true_check("undo") | {"kind": "run"}],
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": "http://127.0.0.1:9",
                    "channel": "C0RUN",
                    "stakeholders": STAKEHOLDERS,
                    "approvers": ["T1:U1", "T1:U2"],
                    **prod,
                }
            },
        },
    )


def feed(surface: Any) -> list[str]:
    return [c.args[1] for c in surface.of("notice") if c.args[2:] == (STAKEHOLDERS,)]


def test_start_phase_passed_completion_and_record_reach_the_stakeholders(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, surface = make_engine(sqlite_db, runbook(tmp_path), clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    engine.decide(open_gate_id(sqlite_db, run.id) or 0, BOB, "continue")
    Scheduler(engine).tick()
    messages = feed(surface)
    assert messages[0] == (
        f"🚀 Feed: cutover of prod started by alice (run #{run.id}); expected 5 min by its phases "
        "(the runbook's header says 2-4 hours)."
    )
    assert messages[1] == f"✅ prod: Phase 6 (Smoke test) passed (run #{run.id})."
    assert messages[2] == (
        f"🎉 prod: cutover completed (run #{run.id}).\n"
        "Sign-Off: — (no sign-off asked: the runbook names nobody to sign off prod)"
    )
    check_ended_feed(messages[2], exported_rows(sqlite_db, run.id), engine.runbook)
    assert messages[3].startswith(f"📋 Cutover record — run #{run.id}, prod: completed")
    assert len(messages) == 4


def test_a_run_that_went_on_past_a_failed_criterion_is_told_as_ended_not_completed(
    db: Database, tmp_path: Path
) -> None:
    criteria = [{"id": "smoke", "text": "Smoke test passing", "check": "smoke/c"}]
    book = runbook(tmp_path, ok=False, success_criteria=criteria)
    engine, surface = make_engine(db, book, clock_at(START))
    run = engine.start_run("prod", ALICE, dry_run=True)  # a dry run may go on past a ❌
    assert run.id is not None
    engine.decide(open_gate_id(db, run.id) or 0, BOB, "continue")
    Scheduler(engine).tick()
    [ended] = [m for m in feed(surface) if m.startswith(("🎉", "⚠️"))]
    lines = ended.splitlines()
    assert lines[0] == (
        f"⚠️ prod: cutover ended with 1 success criterion not met (run #{run.id}, DRY RUN)."
    )
    assert "completed" not in ended
    assert lines[1] == "Success criteria: 0 met, 1 not met, 0 not verified"
    assert lines[2] == "❌ Smoke test passing — smoke/c fail: exit 1"
    assert lines[-1] == (
        "Sign-Off: — (not signed off: success criteria not met: smoke (continued past by "
        "T1:U2 at 14:00 UTC, checkpoint smoke))"
    )
    check_ended_feed(ended, exported_rows(db, run.id), engine.runbook)


def test_the_stakeholders_hear_who_signed_the_run_off_and_when(
    sqlite_db: Database, tmp_path: Path
) -> None:
    book = runbook(tmp_path, prod={"signoff": {"by": ["T1:U3"]}})
    engine, surface = make_engine(sqlite_db, book, clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    engine.decide(open_gate_id(sqlite_db, run.id) or 0, BOB, "continue")
    Scheduler(engine).tick()
    [ended] = [m for m in feed(surface) if m.startswith("🎉")]
    assert ended.splitlines()[-1] == "Sign-Off: — (not signed off: awaiting 1 more of T1:U3)"
    check_ended_feed(ended, exported_rows(sqlite_db, run.id), engine.runbook)
    engine.sign_off_run(run.id, Actor("T1:U3", "carol"))
    assert feed(surface)[-1] == f"✍️ prod: cutover run #{run.id} signed off by T1:U3 at 14:00 UTC."


def test_a_rollback_reaches_the_stakeholders_with_its_verdict(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, surface = make_engine(sqlite_db, runbook(tmp_path, ok=False), clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    engine.decide(open_gate_id(sqlite_db, run.id) or 0, BOB, "rollback", reason="smoke failed")
    Scheduler(engine).tick()
    messages = feed(surface)
    assert messages[1].startswith(
        f"↩️ prod: cutover rolled back (run #{run.id}: smoke failed). The old service's health "
        "was NOT verified"
    )
    assert "Rollback took 0 min 00 s (target" not in messages[1]  # no target in this runbook
    assert messages[2].startswith(f"📋 Cutover record — run #{run.id}, prod: rolled back")


def test_the_t1h_notice_carries_readiness_impact_rollback_plan_and_contacts() -> None:
    from bot.notices import t1_stakeholder_text
    from phases.runbook import load_runbook

    shipped = load_runbook(Path(__file__).resolve().parent.parent / "runbooks" / "nostrmaxi.yml")
    text = t1_stakeholder_text(
        3,
        "prod",
        START,
        START - timedelta(hours=1),
        shipped,
        "C0RUN",
        "T-24h readiness: all 6 checks passed",
    )
    lines = text.splitlines()
    assert "T-24h readiness: all 6 checks passed" in lines
    assert any(x.startswith("User impact: NostrMaxi is unavailable") for x in lines)
    assert (
        "Rollback plan within 15 min: Stop the new services; Start the old deployment again"
        in lines
    )
    assert any(
        x.startswith("Contacts: On-Call Admin:") and "support@lnbits.com" in x for x in lines
    )
