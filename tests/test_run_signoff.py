"""Sign-off of a completed cutover by the people its environment names (`signoff:`): asked
once when the run completes (in the transaction that completes it), given only by those
people (checked when it arrives), once per person, audited; the record's Sign-Off line says
who signed and when, or who is awaited, or that nobody was asked; never inferred from who
approved the last checkpoint. Each record is checked line by line against the trail."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.app import console_engine
from bot.console import Console
from bot.domain.audit_kinds import AuditKind
from bot.record import build_record, record_text
from bot.record_feed import ended_feed
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from phases.runbook import RunbookError
from tests.schedule_helpers import (
    ALICE,
    BOB,
    START,
    clock_at,
    make_engine,
    true_check,
    write_runbook,
)
from tests.trail_checker import check_ended_feed, check_record, exported_rows

CAROL = Actor("T1:U3", "carol")
DAVE = Actor("T1:U4", "dave")


def data(signoff: dict[str, Any] | None = None, **env: Any) -> dict[str, Any]:
    phase = {"estimate_minutes": 1, "checkpoint": "ok", "checks": [true_check()]}
    prod: dict[str, Any] = {
        "domain": "prod.test",
        "base_url": "http://127.0.0.1:9",
        "channel": "C0CUTOVER",
        "approvers": ["T1:U1", "T1:U2"],
        **env,
    }
    if signoff is not None:
        prod["signoff"] = signoff
    return {
        "name": "Signed",
        "phases": [{"id": "smoke", "name": "Smoke test", **phase}],
        "rollback": [true_check("undo") | {"kind": "run"}],
        "success_criteria": [{"id": "smoke", "text": "Smoke test passed", "check": "smoke/ok"}],
        "notes_fields": ["Date", "Sign-Off"],
        "environments": {"prod": prod},
    }


def completed(db: Database, tmp_path: Path, signoff: dict[str, Any] | None, **env: Any) -> Any:
    engine, surface = make_engine(
        db, write_runbook(tmp_path, data(signoff, **env)), clock_at(START)
    )
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    assert engine.decide(open_gate_id(db, run.id) or 0, BOB, "continue").outcome == "approved"
    return engine, surface, run.id


def kinds(db: Database, run_id: int, kind: str) -> list[Any]:
    return [e for e in audit.events(db, run_id) if e.kind == kind]


def sign_off_line(engine: Any, run_id: int) -> str:
    text = record_text(build_record(engine.db, engine.runbook, run_id), engine.runbook)
    check_record(text, exported_rows(engine.db, run_id), engine.runbook)
    [line] = [x for x in text.splitlines() if x.startswith("Sign-Off:")]
    return line


# ------------------------------------------------------------------ the runbook's schema


def test_a_signoff_that_names_nobody_is_refused_with_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="signoff names nobody: list people in `by`"):
        write_runbook(tmp_path, data({"quorum": 1}))


def test_a_signoff_by_display_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="signoff.by 'alice' must be a Slack user id"):
        write_runbook(tmp_path, data({"by": ["alice"]}))


def test_a_signoff_quorum_the_named_people_cannot_reach_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="signoff.quorum 3 can never be reached"):
        write_runbook(tmp_path, data({"by": ["T1:U3", "T1:U4"], "quorum": 3}))


# ------------------------------------------------------------------ asked, given, counted


def test_completion_asks_the_named_people_in_the_same_transaction(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, surface, run_id = completed(sqlite_db, tmp_path, {"by": ["T1:U3", "T1:U4"]})
    rows = [e for e in audit.events(sqlite_db, run_id)]
    done = next(i for i, e in enumerate(rows) if e.kind == AuditKind.RUN_COMPLETED)
    assert rows[done + 1].kind == AuditKind.RUN_SIGNOFF_REQUESTED
    assert rows[done + 1].data == '{"by":["T1:U3","T1:U4"],"groups":[],"quorum":1}'
    told = [c.args[1] for c in surface.of("notice") if c.args[1].startswith("✍️")]
    assert told == [
        f"✍️ Sign-off of run #{run_id}: 1 more of T1:U3, T1:U4 to sign it off with "
        f"`/cutover signoff {run_id} [--note TEXT]`."
    ]


def test_only_a_named_person_may_sign_off_and_a_refusal_is_audited(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _, run_id = completed(sqlite_db, tmp_path, {"by": ["T1:U3"]})
    refused = engine.sign_off_run(run_id, BOB)  # an approver, but not named
    assert refused.outcome == "refused"
    assert refused.message == (
        "you are not one of the people named to sign off prod (its signoff); nothing was recorded"
    )
    [row] = kinds(sqlite_db, run_id, AuditKind.ACTION_REFUSED)
    assert row.actor == "T1:U2" and '"action":"run_signoff"' in row.data
    assert kinds(sqlite_db, run_id, AuditKind.RUN_SIGNED_OFF) == []
    assert engine.sign_off_run(run_id, CAROL, "looks good").outcome == "ticked"


def test_a_running_run_is_not_signed_off_before_it_completes(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _ = make_engine(
        sqlite_db, write_runbook(tmp_path, data({"by": ["T1:U3"]})), clock_at(START)
    )
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    refused = engine.sign_off_run(run.id, CAROL)
    assert refused.outcome == "refused"
    assert "the cutover is signed off once it has completed" in refused.message
    assert kinds(sqlite_db, run.id, AuditKind.RUN_SIGNED_OFF) == []


def test_a_double_click_signs_off_once(db: Database, tmp_path: Path) -> None:
    engine, _, run_id = completed(db, tmp_path, {"by": ["T1:U3", "T1:U4"], "quorum": 2})
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def click() -> None:
        barrier.wait()
        outcomes.append(engine.sign_off_run(run_id, CAROL).outcome)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_voted"] * 3 + ["ticked"]
    assert len(kinds(db, run_id, AuditKind.RUN_SIGNED_OFF)) == 1
    assert engine.sign_off_run(run_id, DAVE).message == f"run #{run_id}: signed off (2 of 2 needed)"


def test_with_self_approval_off_the_starter_may_not_sign_off_their_own_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _, run_id = completed(
        sqlite_db, tmp_path, {"by": ["T1:U1", "T1:U3"]}, allow_self_approval=False, quorum=1
    )
    refused = engine.sign_off_run(run_id, ALICE)
    assert refused.outcome == "refused" and "forbids approving your own run" in refused.message
    assert engine.sign_off_run(run_id, CAROL).outcome == "ticked"


def test_a_dry_run_is_not_asked_and_takes_no_signoff(sqlite_db: Database, tmp_path: Path) -> None:
    engine, _ = make_engine(
        sqlite_db, write_runbook(tmp_path, data({"by": ["T1:U3"]})), clock_at(START)
    )
    run = engine.start_run("prod", ALICE, dry_run=True)
    assert run.id is not None
    engine.decide(open_gate_id(sqlite_db, run.id) or 0, BOB, "continue")
    assert kinds(sqlite_db, run.id, AuditKind.RUN_SIGNOFF_REQUESTED) == []
    assert engine.sign_off_run(run.id, CAROL).outcome == "refused"
    assert sign_off_line(engine, run.id) == "Sign-Off: — (no sign-off asked: a dry run)"


# ------------------------------------------------------------------ the record's line


def test_the_record_names_who_signed_off_and_when(db: Database, tmp_path: Path) -> None:
    engine, _, run_id = completed(db, tmp_path, {"by": ["T1:U3", "T1:U4"], "quorum": 2})
    engine.sign_off_run(run_id, DAVE, "checked the dashboards")
    engine.sign_off_run(run_id, CAROL)
    assert sign_off_line(engine, run_id) == (
        "Sign-Off: T1:U4 at 14:00 UTC, T1:U3 at 14:00 UTC (signed off, 2 needed)"
    )


def test_the_record_says_who_is_still_awaited(sqlite_db: Database, tmp_path: Path) -> None:
    engine, _, run_id = completed(sqlite_db, tmp_path, {"by": ["T1:U3", "T1:U4"], "quorum": 2})
    assert sign_off_line(engine, run_id) == (
        "Sign-Off: — (not signed off: awaiting 2 more of T1:U3, T1:U4)"
    )
    engine.sign_off_run(run_id, CAROL)
    assert sign_off_line(engine, run_id) == (
        "Sign-Off: — (not signed off: awaiting 1 more of T1:U4; signed so far: T1:U3 at 14:00 UTC)"
    )


def test_a_runbook_that_names_nobody_says_no_signoff_was_asked_never_who_approved(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _, run_id = completed(sqlite_db, tmp_path, None)
    assert kinds(sqlite_db, run_id, AuditKind.RUN_SIGNOFF_REQUESTED) == []
    line = sign_off_line(engine, run_id)
    assert line == "Sign-Off: — (no sign-off asked: the runbook names nobody to sign off prod)"
    assert "T1:U2" not in line  # who approved the last checkpoint is no sign-off
    refused = engine.sign_off_run(run_id, CAROL)
    assert refused.outcome == "refused" and "names nobody to sign off prod" in refused.message


def test_a_group_member_signs_off(sqlite_db: Database, tmp_path: Path) -> None:
    engine, _, run_id = completed(sqlite_db, tmp_path, {"groups": ["S0SIGN"]})
    assert engine.sign_off_run(run_id, CAROL).outcome == "refused"
    member = Actor("T1:U7", "gina", frozenset({"S0SIGN"}))
    assert engine.sign_off_run(run_id, member).outcome == "ticked"
    assert sign_off_line(engine, run_id) == "Sign-Off: T1:U7 at 14:00 UTC (signed off, 1 needed)"


def test_console_asks_as_text_and_signs_off_with_the_command(
    sqlite_db: Database, tmp_path: Path
) -> None:
    book = data({"by": ["console:carol"]}, approvers=["console:alice"])
    out = io.StringIO()
    engine = console_engine(sqlite_db, write_runbook(tmp_path, book), out)
    lines = ["/cutover start prod", "c", "/cutover signoff 1 --note all green"]
    Console(
        engine, Actor("console:alice", "alice"), io.StringIO("\n".join(lines) + "\n"), out
    ).loop()
    assert "1 more of console:carol to sign it off with `/cutover signoff 1 [--note TEXT]`" in (
        out.getvalue()
    )
    assert "not one of the people named to sign off prod" in out.getvalue()
    out2 = io.StringIO()
    Console(
        engine,
        Actor("console:carol", "carol"),
        io.StringIO("/cutover signoff 1 --note all green\n/cutover signoff 1\n"),
        out2,
    ).loop()
    assert "run #1: signed off (1 of 1 needed)" in out2.getvalue()
    assert "you signed off run #1 at" in out2.getvalue() and "it counts once" in out2.getvalue()
    [row] = kinds(sqlite_db, 1, AuditKind.RUN_SIGNED_OFF)
    assert '"note":"all green"' in row.data


def test_a_run_past_a_failed_criterion_shows_a_signoff_only_with_the_criterion_named(
    db: Database, tmp_path: Path
) -> None:
    """A real run goes on past a ❌ criterion only by an override (the approvers' decision);
    the record still names the unmet criterion and who went past it, awaited or signed."""
    book = data({"by": ["T1:U3"]})
    book["phases"][0]["checks"] = [
        {"id": "ok", "name": "false", "kind": "command", "params": {"argv": ["false"]}}
    ]
    book["phases"][0]["checks"][0]["overridable"] = True
    engine, _ = make_engine(db, write_runbook(tmp_path, book), clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    gate = open_gate_id(db, run.id) or 0
    engine.override(gate, ALICE, "the check is broken, not the service")
    assert engine.override(gate, BOB, "agreed: verified by hand").outcome == "overridden"
    past = "success criteria not met: smoke (overridden (break-glass) by "
    line = sign_off_line(engine, run.id)
    assert line.startswith(f"Sign-Off: — (not signed off: {past}")
    assert line.endswith("checkpoint smoke); awaiting 1 more of T1:U3)")
    assert engine.sign_off_run(run.id, CAROL).outcome == "ticked"
    line = sign_off_line(engine, run.id)
    assert line.startswith(f"Sign-Off: T1:U3 at 14:00 UTC (signed off, 1 needed; {past}")
    ended = ended_feed(build_record(db, engine.runbook, run.id))
    assert ended is not None and ended.startswith(
        f"⚠️ prod: cutover ended with 1 success criterion not met (run #{run.id})."
    )
    check_ended_feed(ended, exported_rows(db, run.id), engine.runbook)
