"""Sign-off of success criteria by a person: asked for once when the last phase begins,
given only by approvers (checked when it arrives), counted once per person and criterion,
audited, refused for a run that rolled back, and shown in the record."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from bot import audit
from bot.app import console_engine
from bot.console import Console
from bot.domain.audit_kinds import AuditKind
from bot.record import build_record, record_text
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.schedule_helpers import (
    ALICE,
    BOB,
    MALLORY,
    START,
    RecordingSurface,
    clock_at,
    make_engine,
    true_check,
    write_runbook,
)
from tests.trail_checker import check_record, exported_rows


def runbook(
    tmp_path: Path, approvers: list[str] | None = None, env: dict[str, Any] | None = None
) -> Any:
    phase = {"estimate_minutes": 1, "checkpoint": "ok", "checks": [true_check()]}
    return write_runbook(
        tmp_path,
        {
            "name": "Sign",
            "phases": [
                {"id": "smoke", "name": "Smoke test", **phase},
                {"id": "monitoring", "name": "Post-cutover monitoring", **phase},
            ],
            "rollback": [true_check("undo") | {"kind": "run"}],
            "success_criteria": [
                {"id": "smoke", "text": "Smoke test passed", "check": "smoke/ok"},
                {"id": "admin", "text": "Admin access verified", "signoff": True},
                {"id": "payment", "text": "Payment webhook confirmed", "signoff": True},
            ],
            "notes_fields": ["Date", {"name": "Admin Login Verified", "criterion": "admin"}],
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": "http://127.0.0.1:9",
                    "channel": "C0CUTOVER",
                    "approvers": approvers or ["T1:U1", "T1:U2"],
                    "allow_self_approval": True,
                    **(env or {}),
                }
            },
        },
    )


def kinds(db: Database, run_id: int, kind: str) -> list[Any]:
    return [e for e in audit.events(db, run_id) if e.kind == kind]


def at_last_phase(db: Database, tmp_path: Path) -> tuple[Any, RecordingSurface, int]:
    """A run whose first checkpoint was approved: its last phase (monitoring) has begun."""
    engine, surface = make_engine(db, runbook(tmp_path), clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    assert kinds(db, run.id, AuditKind.SIGNOFF_REQUESTED) == []  # not yet: smoke test runs
    engine.decide(open_gate_id(db, run.id) or 0, BOB, "continue")
    return engine, surface, run.id


def test_signoff_is_asked_for_once_when_the_last_phase_begins(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, surface, run_id = at_last_phase(sqlite_db, tmp_path)
    asked = kinds(sqlite_db, run_id, AuditKind.SIGNOFF_REQUESTED)
    assert len(asked) == 1 and '"criteria":["admin","payment"]' in asked[0].data
    notices = [c.args[1] for c in surface.of("notice") if c.args[1].startswith("✍️")]
    assert notices == [
        f"✍️ Sign-off for run #{run_id} (prod): an approver vouches for each of these; the "
        "record shows who signed what.\n"
        f"❔ Admin access verified — `/cutover signoff {run_id} admin [--note TEXT]`\n"
        f"❔ Payment webhook confirmed — `/cutover signoff {run_id} payment [--note TEXT]`"
    ]
    engine.decide(open_gate_id(sqlite_db, run_id) or 0, BOB, "retry")  # the phase runs again
    assert len(kinds(sqlite_db, run_id, AuditKind.SIGNOFF_REQUESTED)) == 1


class SignoffRecordingSurface(RecordingSurface):
    def signoff_changed(self, run_id: int) -> None:
        self._add("signoff_changed", run_id)


def test_a_request_retried_after_its_commit_landed_shows_the_message_again_once_audited(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """db.retrying runs the request again when the COMMIT's answer was lost: the audit row
    is there already, and the message must still be shown (not skipped as 'asked')."""
    engine, _, run_id = at_last_phase(sqlite_db, tmp_path)
    surface = SignoffRecordingSurface()
    engine.surface = surface
    engine.request_signoffs(run_id)
    assert [c.args for c in surface.of("signoff_changed")] == [(run_id,)]
    assert len(kinds(sqlite_db, run_id, AuditKind.SIGNOFF_REQUESTED)) == 1


def test_only_an_approver_may_sign_off_and_a_refusal_is_audited(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _, run_id = at_last_phase(sqlite_db, tmp_path)
    refused = engine.sign_off(run_id, "admin", MALLORY)
    assert refused.outcome == "refused" and "not an approver" in refused.message
    assert kinds(sqlite_db, run_id, AuditKind.CRITERION_SIGNED_OFF) == []
    assert len(kinds(sqlite_db, run_id, AuditKind.ACTION_REFUSED)) == 1
    assert engine.sign_off(run_id, "admin", BOB).outcome == "ticked"


def test_a_double_click_signs_off_once(db: Database, tmp_path: Path) -> None:
    engine, _, run_id = at_last_phase(db, tmp_path)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def click() -> None:
        barrier.wait()
        outcomes.append(engine.sign_off(run_id, "admin", BOB, "logged in as admin").outcome)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_voted"] * 3 + ["ticked"]
    assert len(kinds(db, run_id, AuditKind.CRITERION_SIGNED_OFF)) == 1
    # Another approver's sign-off of the same criterion is theirs, counted too.
    assert engine.sign_off(run_id, "admin", ALICE).outcome == "ticked"
    assert len(kinds(db, run_id, AuditKind.CRITERION_SIGNED_OFF)) == 2


def test_a_run_that_rolled_back_takes_no_signoff(sqlite_db: Database, tmp_path: Path) -> None:
    engine, _, run_id = at_last_phase(sqlite_db, tmp_path)
    engine.decide(open_gate_id(sqlite_db, run_id) or 0, BOB, "rollback", reason="errors")
    refused = engine.sign_off(run_id, "admin", BOB)
    assert refused.outcome == "refused"
    assert refused.message == (
        f"run #{run_id} is rolled back: there is nothing to sign off; nothing was recorded"
    )
    assert kinds(sqlite_db, run_id, AuditKind.CRITERION_SIGNED_OFF) == []


def test_the_record_shows_who_signed_off_what_with_the_note_masked(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _, run_id = at_last_phase(sqlite_db, tmp_path)
    engine.masker.add("hunter2-admin-pw")
    engine.sign_off(run_id, "admin", BOB, "logged in with hunter2-admin-pw")
    engine.decide(open_gate_id(sqlite_db, run_id) or 0, ALICE, "continue")
    text = record_text(build_record(sqlite_db, engine.runbook, run_id), engine.runbook)
    check_record(text, exported_rows(sqlite_db, run_id), engine.runbook)
    assert "hunter2" not in text
    assert "✅ Admin access verified — signed off by T1:U2 at 14:00 UTC: logged in with" in text
    assert "❔ Payment webhook confirmed — nobody signed it off" in text
    assert "Admin Login Verified: YES — signed off by T1:U2" in text


def test_a_typed_sign_off_note_can_ping_nobody(sqlite_db: Database, tmp_path: Path) -> None:
    engine, _, run_id = at_last_phase(sqlite_db, tmp_path)
    engine.sign_off(run_id, "admin", BOB, "ok <!channel> ask <@U0BOSS> or T1:U0BOSS")
    engine.decide(open_gate_id(sqlite_db, run_id) or 0, ALICE, "continue")
    text = record_text(build_record(sqlite_db, engine.runbook, run_id), engine.runbook)
    check_record(text, exported_rows(sqlite_db, run_id), engine.runbook)
    assert "signed off by T1:U2" in text
    assert "<!channel>" not in text and "<@U0BOSS>" not in text and "T1:U0BOSS" not in text


def test_a_criterion_bound_to_a_check_cannot_be_signed_off(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _, run_id = at_last_phase(sqlite_db, tmp_path)
    try:
        engine.sign_off(run_id, "smoke", BOB)
    except Exception as exc:
        assert "is shown by smoke/ok, not by a sign-off" in str(exc)
    else:
        raise AssertionError("a check's criterion was signed off")


def test_console_asks_as_text_and_signs_off_with_the_command(
    sqlite_db: Database, tmp_path: Path
) -> None:
    out = io.StringIO()
    engine = console_engine(sqlite_db, runbook(tmp_path, ["console:alice"]), out)
    lines = [
        "/cutover start prod",
        "c",
        "/cutover signoff 1 admin --note checked the admin page",
        "/cutover signoff 1 admin",
        "c",
    ]
    Console(
        engine, Actor("console:alice", "alice"), io.StringIO("\n".join(lines) + "\n"), out
    ).loop()
    text = out.getvalue()
    assert "❔ Admin access verified — `/cutover signoff 1 admin [--note TEXT]`" in text
    assert "Admin access verified: signed off" in text
    assert "you signed off 'Admin access verified' at" in text and "it counts once" in text
    assert len(kinds(sqlite_db, 1, AuditKind.CRITERION_SIGNED_OFF)) == 1


def test_with_self_approval_off_the_requester_may_not_sign_off_their_own_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine, _ = make_engine(
        sqlite_db, runbook(tmp_path, env={"allow_self_approval": False}), clock_at(START)
    )
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    engine.decide(open_gate_id(sqlite_db, run.id) or 0, BOB, "continue")
    refused = engine.sign_off(run.id, "admin", ALICE)
    assert refused.outcome == "refused"
    assert refused.message == (
        "you started this run, and this environment forbids approving your own run: another "
        "approver signs off; nothing was recorded"
    )
    assert kinds(sqlite_db, run.id, AuditKind.CRITERION_SIGNED_OFF) == []
    [refusal] = kinds(sqlite_db, run.id, AuditKind.ACTION_REFUSED)
    assert refusal.actor == "T1:U1" and '"action":"signoff"' in refusal.data
    assert engine.sign_off(run.id, "admin", BOB).outcome == "ticked"


def test_a_run_that_completed_takes_no_more_signoffs(sqlite_db: Database, tmp_path: Path) -> None:
    engine, _, run_id = at_last_phase(sqlite_db, tmp_path)
    engine.sign_off(run_id, "admin", BOB)
    engine.decide(open_gate_id(sqlite_db, run_id) or 0, ALICE, "continue")
    refused = engine.sign_off(run_id, "payment", BOB)
    assert refused.outcome == "refused"
    assert refused.message == (
        f"run #{run_id} has ended (completed): sign-offs are taken while it runs; nothing "
        "was recorded"
    )
    assert len(kinds(sqlite_db, run_id, AuditKind.CRITERION_SIGNED_OFF)) == 1
