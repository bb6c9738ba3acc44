"""The completion message's Revert… button (issue 20, item 2): drawn on a completed run while
its revert window is open, it opens a form with a required reason and goes through the same
rules as `/cutover revert` (approvals.may_revert), re-checked when the click and the form
arrive; on PostgreSQL, through signed requests against the Slack stand-in, and the console's
equivalent (`/cutover revert ENV` asks for the reason at the prompt)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot.slack.blocks import REVERT
from bot.store.db import Database
from bot.store.models import AuditEvent, RunStatus
from bot.surface import Actor
from tests.servers import ManualClock
from tests.slack_harness import Bot, running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_revert import COMPLETE, complete_with_votes, console, run_row, type_in


def revert_refusals(db: Database) -> list[dict[str, Any]]:
    with db.session() as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.kind == "action.refused")).all()
    return [
        {**json.loads(e.data), "actor": e.actor}
        for e in rows
        if json.loads(e.data).get("action") == "revert"
    ]


def completed(bot: Bot) -> Any:
    complete_with_votes(bot.engine, bot.db, starter=Actor("T1:U1", "u1"))
    return bot.wait_text(bot.parent(1), "Revert…")


def test_the_revert_button_opens_a_form_whose_reason_is_required_and_starts_the_revert(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0CUTOVER"})
    with running_bot(pg_db, runbook) as bot:
        message = completed(bot)
        _, key = bot.click(message, REVERT, user="U9")  # a stranger: no form
        assert "you are not an approver for staging" in bot.reply(key)
        assert bot.standin.opened("U9") == []
        bot.click(message, REVERT, user="U2")
        form = bot.modal("U2")
        assert form.view["callback_id"] == "cutover_revert"
        assert "Revert run #1 of staging" in form.text()
        empty = bot.submit(form, {"reason": ""})
        assert "Say why you revert" in json.dumps(empty.json())
        assert run_row(pg_db, 1).status == RunStatus.COMPLETED
        bot.submit(form, {"reason": "5xx errors since launch"})
        wait_for(lambda: bot.latest_run() == 2, "the revert run")
        wait_for(lambda: run_row(pg_db, 2).status == RunStatus.ROLLED_BACK, "the revert")
        assert run_row(pg_db, 2).reverts_run_id == 1
        [refused] = revert_refusals(pg_db)
        assert refused["actor"] == "T1:U9"
        # Reverted: the completion message no longer offers it.
        wait_for(lambda: REVERT not in bot.fresh(message).action_ids(), "the button to go")


def test_a_click_after_the_window_is_refused_audited_and_the_button_removed(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0CUTOVER"})
    with running_bot(pg_db, runbook) as bot:
        message = completed(bot)
        bot.engine.clock = ManualClock(time.time() + 24 * 3600 + 120)  # the window closed
        _, key = bot.click(message, REVERT, user="U2")
        assert "more than 24 h ago (the runbook's revert_window_hours)" in bot.reply(key)
        assert bot.standin.opened("U2") == []
        wait_for(lambda: REVERT not in bot.fresh(message).action_ids(), "the button to go")
        [refused] = revert_refusals(pg_db)
        assert refused["actor"] == "T1:U2" and "revert refused" in refused["reason"]
        assert bot.latest_run() == 1


def test_a_form_sent_after_a_later_run_started_is_refused_on_the_form(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0CUTOVER"})
    with running_bot(pg_db, runbook) as bot:
        message = completed(bot)
        bot.click(message, REVERT, user="U2")
        form = bot.modal("U2")
        bot.command("start staging --dry-run", user="U1")  # a later run, while the form is open
        wait_for(lambda: bot.latest_run() == 2, "the later run")
        sent = bot.submit(form, {"reason": "errors"})
        assert "run #2 of staging started after run #1" in json.dumps(sent.json())
        assert bot.latest_run() == 2 and run_row(pg_db, 2).reverts_run_id is None


def test_revert_without_a_reason_opens_the_form_in_slack(pg_db: Database, tmp_path: Path) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0CUTOVER"})
    with running_bot(pg_db, runbook) as bot:
        completed(bot)
        bot.command("revert staging", user="U2")
        form = bot.modal("U2")
        assert form.view["callback_id"] == "cutover_revert"
        bot.submit(form, {"reason": "errors up"})
        wait_for(lambda: bot.latest_run() == 2, "the revert run")
        wait_for(lambda: run_row(pg_db, 2).status == RunStatus.ROLLED_BACK, "the revert")


def test_the_console_offers_the_revert_and_asks_for_its_reason(
    pg_db: Database, tmp_path: Path
) -> None:
    engine, out, _ = console(pg_db, tmp_path)
    said = type_in(engine, out, COMPLETE)
    assert "To undo it within 24 h: /cutover revert staging (asks for the reason)." in said
    said = type_in(engine, out, ["/cutover revert staging", ""])
    assert "Not reverted." in said
    said = type_in(engine, out, ["/cutover revert staging", "errors since launch"])
    assert "revert of run #1 asked for and approved by alice (run #2, 1/1)" in said
    wait_for(lambda: run_row(pg_db, 2).status == RunStatus.ROLLED_BACK, "the revert")
    assert "errors since launch" in (run_row(pg_db, 2).rollback_reason or "")
    assert isinstance(out, io.StringIO)
