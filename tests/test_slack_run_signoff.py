"""The cutover's sign-off in Slack: once the run completes, its thread's sign-off message
names the people the environment's `signoff` names with a "Sign off" button; a click (a real
signed interaction against the Slack stand-in) is checked when it arrives, counted once
however often it comes, audited, and the message shows who signed and when; a group member
signs by command too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.record import build_record, record_text
from bot.slack.signoff import NOTE_ACTION, NOTE_BLOCK, RUN_SIGNOFF_ACTION
from bot.store.db import Database
from standins.slack import Message, block_actions_payload, button_action, post_signed
from tests.schedule_helpers import write_runbook
from tests.slack_harness import SECRET, TEAM, Bot, running_bot, wait_for
from tests.test_run_signoff import data
from tests.test_slack_signoff import signoff_message
from tests.trail_checker import check_record, exported_rows


def click_sign_off(bot: Bot, message: Message, user: str, note: str = "", n: int = 0) -> str:
    """Clicks the cutover's "Sign off" as `user`, with `note` typed; the bot's answer."""
    key = f"run-sign-{user}-{n}-{message.ts}"
    payload = block_actions_payload(
        message,
        button_action(message, RUN_SIGNOFF_ACTION),
        user=user,
        team=TEAM,
        response_url=bot.standin.response_url(key),
    )
    payload["state"] = {
        "values": {NOTE_BLOCK: {NOTE_ACTION: {"type": "plain_text_input", "value": note or None}}}
    }
    sent = post_signed(bot.url, urlencode({"payload": json.dumps(payload)}), SECRET)
    assert sent.status == 200
    return bot.reply(key)


def signed(db: Database, run_id: int) -> list[Any]:
    return [e for e in audit.events(db, run_id) if e.kind == AuditKind.RUN_SIGNED_OFF]


def completed_run(bot: Bot) -> int:
    bot.command("start prod", user="U1")
    run_id = bot.latest_run()
    bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
    wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
    return run_id


def test_sign_off_button_only_for_the_people_named_once_each_then_gone(
    sqlite_db: Database, tmp_path: Path
) -> None:
    book = write_runbook(tmp_path, data({"by": ["U3", "U4"], "quorum": 2}, slack_team="T1"))
    with running_bot(sqlite_db, book) as bot:
        run_id = completed_run(bot)
        message = signoff_message(bot, run_id)
        assert message.action_ids() == [RUN_SIGNOFF_ACTION]
        assert message.element(RUN_SIGNOFF_ACTION)[1]["value"] == str(run_id)
        assert "2 of <@U3>, <@U4> sign it off" in message.all_text()

        assert "not one of the people named to sign off prod" in click_sign_off(bot, message, "U2")
        assert signed(sqlite_db, run_id) == []

        answer = click_sign_off(bot, message, "U3", note="dashboards green")
        assert (
            answer
            == f"✅ run #{run_id}: your sign-off is recorded (1 of 2 needed). The record shows it."
        )
        fresh = bot.wait_text(message, "signed off by <@U3>")
        assert "“dashboards green”" in fresh.all_text()
        assert fresh.action_ids() == [RUN_SIGNOFF_ACTION]  # one more is needed

        # The same click again (a double click, a stale copy): counted once.
        assert "it counts once" in click_sign_off(bot, message, "U3", n=1)
        assert len(signed(sqlite_db, run_id)) == 1

        click_sign_off(bot, fresh, "U4")
        done = bot.wait_text(message, "The cutover is signed off.")
        assert done.action_ids() == [] and not any(b["type"] == "input" for b in done.blocks)

        text = record_text(build_record(sqlite_db, bot.engine.runbook, run_id), bot.engine.runbook)
        check_record(text, exported_rows(sqlite_db, run_id), bot.engine.runbook)
        [line] = [x for x in text.splitlines() if x.startswith("Sign-Off:")]
        assert line.startswith("Sign-Off: T1:U3 at ") and "(signed off, 2 needed)" in line


def test_a_member_of_a_signoff_group_signs_off_by_button_and_command(
    sqlite_db: Database, tmp_path: Path
) -> None:
    book = write_runbook(tmp_path, data({"groups": ["S0SIGN"], "quorum": 2}, slack_team="T1"))
    with running_bot(sqlite_db, book) as bot:
        bot.standin.usergroups["S0SIGN"] = ["U7", "U8"]
        run_id = completed_run(bot)
        message = signoff_message(bot, run_id)
        assert "a member of <!subteam^S0SIGN>" in message.all_text()
        assert "not one of the people named" in click_sign_off(bot, message, "U9")
        assert "1 of 2 needed" in click_sign_off(bot, message, "U7")
        _, key = bot.command(f"signoff {run_id} --note 'checked by hand'", user="U8")
        assert f"run #{run_id}: signed off (2 of 2 needed)" in bot.reply(key)
        assert [e.actor for e in signed(sqlite_db, run_id)] == ["T1:U7", "T1:U8"]
