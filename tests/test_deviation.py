"""`/cutover deviation RUN TEXT`: a person adds a "Deviations from Runbook" entry to the
record (the runbook's Notes section), audited with who and when; the typed text is decoded
once (Slack's `&amp;`), masked and unable to ping anyone, and every record line it makes is
checked against the audit trail."""

from __future__ import annotations

import json
from pathlib import Path

from bot import audit
from bot.record import build_record, record_text
from bot.store.db import Database
from bot.store.reads import Reads
from commands.handlers import CommandService
from commands.parser import parse
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_success_criteria import BOB, MALLORY, started
from tests.trail_checker import check_record, exported_rows


def deviations(db: Database, run_id: int) -> list[tuple[str, str]]:
    return [
        (e.actor, json.loads(e.data)["text"])
        for e in audit.events(db, run_id)
        if e.kind == "record.deviation"
    ]


def test_a_deviation_typed_in_the_console_reaches_the_record_with_who_and_when(
    sqlite_db: Database, tmp_path: Path
) -> None:
    criteria = [{"id": "admin", "text": "Admin access verified", "signoff": True}]
    engine, run_id, gate = started(sqlite_db, tmp_path, criteria)
    engine.masker.add("hunter2-db-password")
    service = CommandService(engine, Reads(engine.db, engine.runbook))
    said = "Phase 3 built on the old host by hand (password hunter2-db-password), <!channel>"
    reply = service.execute(parse(f"/cutover deviation {run_id} '{said}'"), BOB)
    assert reply.text.startswith(f"deviation added to run #{run_id}'s record: Phase 3 built")
    refused = service.execute(parse(f"/cutover deviation {run_id} 'not mine'"), MALLORY)
    assert "not an approver" in refused.text
    [(who, text)] = deviations(sqlite_db, run_id)
    assert who == "T1:U2" and "hunter2" not in text and "<!channel>" not in text
    engine.sign_off(run_id, "admin", BOB)
    engine.decide(gate, BOB, "continue")

    text = record_text(build_record(sqlite_db, engine.runbook, run_id), engine.runbook)
    lines = text.splitlines()
    start = lines.index("Deviations from Runbook:")
    assert lines[start + 1] == f"- {text_of(sqlite_db, run_id)} (added by T1:U2 at 14:00 UTC)"
    check_record(text, exported_rows(sqlite_db, run_id), engine.runbook)


def text_of(db: Database, run_id: int) -> str:
    [(_, text)] = deviations(db, run_id)
    return text


def test_a_deviation_needs_a_run_and_text() -> None:
    from commands.parser import UsageError

    for typed in ("/cutover deviation", "/cutover deviation 12", "/cutover deviation x y"):
        try:
            parse(typed)
        except UsageError as exc:
            assert exc.problem.startswith("deviation needs a run number and what was done")
        else:
            raise AssertionError(f"{typed!r} was accepted")


def test_a_deviation_typed_in_slack_is_decoded_once(sqlite_db: Database, tmp_path: Path) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        bot.command(f"deviation {run_id} DNS TTL &lt; 60 s &amp; set by hand &amp;amp;", user="U2")
        wait_for(lambda: deviations(sqlite_db, run_id), "the deviation")
        [(who, text)] = deviations(sqlite_db, run_id)
        assert who == "T1:U2"
        assert text == "DNS TTL < 60 s & set by hand &amp;"  # decoded once, not twice
