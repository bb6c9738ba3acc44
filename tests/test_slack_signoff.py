"""Sign-off in Slack: when the last phase begins, the run's thread gets a message with a
"Sign off" button per criterion bound to `signoff` and a note field; a click is checked
when it arrives, counted once, audited, and redraws the message without that button."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.record import build_record, record_text
from bot.slack.signoff import NOTE_ACTION, NOTE_BLOCK
from bot.store.db import Database
from bot.surface import Actor
from standins.slack import Message, block_actions_payload, button_action, post_signed
from tests.slack_harness import SECRET, TEAM, Bot, running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_signoff import runbook


def signoff_message(bot: Bot, run_id: int) -> Message:
    """The run's sign-off message, once posted in its thread."""
    parent = bot.parent(run_id)

    def posted() -> Message | None:
        for m in bot.standin.thread(f"{parent.channel}:{parent.ts}"):
            if m.text.startswith(f"Sign-off of run #{run_id}"):
                return m
        return None

    return wait_for(posted, f"the sign-off message of run #{run_id}")


def sign(bot: Bot, message: Message, criterion: str, user: str, note: str = "") -> str:
    """Clicks "Sign off" of `criterion` as `user`, with `note` typed in the message's field;
    returns the bot's answer to the clicker."""
    key = f"sign-{criterion}-{user}-{note[:5]}-{message.ts}"
    payload = block_actions_payload(
        message,
        button_action(message, f"signoff:{criterion}"),
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


def signed(db: Database, run_id: int) -> list[dict[str, Any]]:
    return [
        {**json.loads(e.data), "actor": e.actor}
        for e in audit.events(db, run_id)
        if e.kind == AuditKind.CRITERION_SIGNED_OFF
    ]


def test_sign_off_button_per_criterion_only_approvers_once_each_then_gone(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, runbook(tmp_path)) as bot:
        bot.command("start prod", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        message = signoff_message(bot, run_id)
        assert message.action_ids() == ["signoff:admin", "signoff:payment"]
        assert message.element("signoff:admin")[1]["value"] == f"{run_id}:admin"
        assert any(b["type"] == "input" and b["block_id"] == NOTE_BLOCK for b in message.blocks)

        assert "not an approver for prod" in sign(bot, message, "admin", "U9")
        assert signed(sqlite_db, run_id) == []

        answer = sign(bot, message, "admin", "U2", note="logged in as admin")
        assert (
            answer == "✅ Signed off: Admin access verified: signed off. The record will show it."
        )
        fresh = bot.wait_text(message, "signed off by <@U2>")
        assert fresh.action_ids() == ["signoff:payment"]  # the signed one lost its button
        assert "“logged in as admin”" in fresh.all_text()

        # The same click again (a stale copy of the message): counted once.
        assert "it counts once" in sign(bot, message, "admin", "U2")
        assert signed(sqlite_db, run_id) == [
            {"criterion": "admin", "note": "logged in as admin", "actor": "T1:U2"}
        ]

        sign(bot, fresh, "payment", "U1")
        done = bot.wait_text(message, "Every criterion is signed off.")
        assert done.action_ids() == [] and not any(b["type"] == "input" for b in done.blocks)

        bot.click(bot.checkpoint(run_id, 2), "gate_continue", user="U2")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
        text = record_text(build_record(sqlite_db, bot.engine.runbook, run_id), bot.engine.runbook)
        assert "✅ Admin access verified — signed off by T1:U2" in text
        assert "✅ Payment webhook confirmed — signed off by T1:U1" in text


def test_a_click_after_a_rollback_is_refused_and_the_buttons_go(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, runbook(tmp_path)) as bot:
        bot.command("start prod", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        message = signoff_message(bot, run_id)
        bot.checkpoint(run_id, 2)  # the last phase ran; its checkpoint is open
        gate = bot.gates(run_id)[1].id
        assert gate is not None
        bot.engine.decide(gate, Actor("T1:U2", "u2"), "rollback", reason="errors")
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback")
        # the run's end takes the buttons away, before anyone clicks
        assert bot.wait_text(message, "there is nothing to sign off.").action_ids() == []
        answer = sign(bot, message, "admin", "U2")
        assert f"run #{run_id} is rolled back: there is nothing to sign off" in answer
        gone = bot.wait_text(message, "there is nothing to sign off.")
        assert gone.action_ids() == []
        assert signed(sqlite_db, run_id) == []


def test_a_runbook_without_signoff_criteria_posts_no_signoff_message(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        for n in (1, 2, 3):
            gate = bot.checkpoint(run_id, n)
            if n == 2:
                bot.tick(gate, ["browser"], user="U2")
                bot.wait_text(gate, "ticked by <@U2>")
            bot.click(gate, "gate_continue", user="U2")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
        parent = bot.parent(run_id)
        texts = [m.text for m in bot.standin.thread(f"{parent.channel}:{parent.ts}")]
        assert texts and not any(t.startswith("Sign-off of run") for t in texts)


def test_a_group_approver_signs_off_by_typed_command_too(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """The command is checked as the button is: a member of an approver group is an approver."""
    book = runbook(tmp_path, env={"approver_groups": ["S0SIGN"]})
    with running_bot(sqlite_db, book) as bot:
        bot.standin.usergroups["S0SIGN"] = ["U7"]
        bot.command("start prod", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        signoff_message(bot, run_id)
        _, key = bot.command(f"signoff {run_id} admin --note 'checked by hand'", user="U7")
        assert "not an approver" not in bot.reply(key)
        assert signed(sqlite_db, run_id) == [
            {"criterion": "admin", "note": "checked by hand", "actor": "T1:U7"}
        ]
        _, key = bot.command(f"signoff {run_id} payment", user="U9")
        assert "not an approver" in bot.reply(key)
