"""A run lives in its environment's channel; where the bot cannot post, no run starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bot.store.db import Database
from bot.store.models import Run
from standins.slack import SlackStandIn
from tests.slack_harness import CHANNEL, TOKEN, running_bot, wait_for
from tests.small_runbook import small_runbook


def test_a_run_is_posted_in_the_environments_channel_with_a_link_where_it_was_typed(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0HOME"})
    with running_bot(sqlite_db, runbook) as bot:
        bot.standin.add_channel("C0HOME", "staging-cutover")
        _, key = bot.command("start staging", user="U1", channel="D0DM")  # typed in a DM
        assert "Its messages are in <#C0HOME>" in bot.reply(key)
        run_id = bot.latest_run()
        parent = bot.parent(run_id)
        assert parent.channel == "C0HOME" and bot.checkpoint(run_id, 1).channel == "C0HOME"
        wait_for(lambda: "Cutover run" in bot.fresh(parent).all_text(), "the parent drawn")
        assert len(bot.standin.parents()) == 1  # the "starting…" message became the parent
        assert bot.standin.problems == []


def test_a_channel_without_the_bot_refuses_the_start_and_says_how_to_invite_it(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0HOME"})
    with running_bot(sqlite_db, runbook) as bot:
        bot.standin.add_channel("C0HOME", "staging-cutover", member=False)
        _, key = bot.command("start staging", user="U1")
        reply = bot.reply(key)
        assert "/invite @cutover-bot" in reply and "<#C0HOME>" in reply
        assert "No run was started" in reply
        assert bot.gates(1) == [] and bot.standin.parents() == []
        bot.standin.invite("C0HOME")  # invited: the environment was left free
        _, key = bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        assert bot.parent(run_id).channel == "C0HOME"


def test_a_start_typed_in_a_dm_without_an_environment_channel_is_refused(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        _, key = bot.command("start staging", user="U1", channel="D0DM")
        reply = bot.reply(key)
        assert "channel_not_found" in reply and "No run was started" in reply
        _, key = bot.command("status", user="U1", channel=CHANNEL)
        assert bot.reply(key) == "No active cutover run."


def test_a_checkpoint_calls_the_approvers_who_have_not_voted_and_the_parent_names_them(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, quorum=2, env={"approver_groups": ["S0OPS"]})
    with running_bot(sqlite_db, runbook) as bot:
        bot.standin.usergroups["S0OPS"] = ["U5"]
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        assert "Waiting for <@U1>, <@U2>, <@U3>, <!subteam^S0OPS>" in one.all_text()
        bot.wait_text(bot.parent(run_id), "waiting for <@U1>, <@U2>")
        bot.click(one, "gate_continue", user="U2")
        bot.wait_text(one, "Waiting for <@U1>, <@U3>, <!subteam^S0OPS>")


# Each error Slack answers for a channel its admins restrict, and a word the advice must hold.
REFUSING_CHANNELS = [
    ("restricted", "restricted_action", "workspace admin"),
    ("read_only", "restricted_action_read_only_channel", "read-only"),
    ("thread_only", "restricted_action_thread_only_channel", "top-level"),
    ("non_threadable", "restricted_action_non_threadable_channel", "allows threads"),
]


@pytest.mark.parametrize(("posting", "error", "advice"), REFUSING_CHANNELS)
def test_a_channel_that_refuses_the_bots_posts_refuses_the_start_before_any_step_runs(
    sqlite_db: Database, tmp_path: Path, posting: str, error: str, advice: str
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0HOME"})
    with running_bot(sqlite_db, runbook) as bot:
        bot.standin.add_channel("C0HOME", "staging-cutover", posting=posting)
        _, key = bot.command("start staging", user="U1")
        reply = bot.reply(key)
        assert error in reply and advice in reply and "No run was started" in reply
        assert "/invite" not in reply  # inviting the bot again changes nothing here
        assert _runs(sqlite_db) == 0 and bot.standin.parents() == []


def test_a_workspace_past_its_message_limit_refuses_the_start(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.standin.message_limit_reached = True
        _, key = bot.command("start staging", user="U1")
        reply = bot.reply(key)
        assert "message_limit_exceeded" in reply and "cutover console" in reply
        assert _runs(sqlite_db) == 0


def test_a_channel_name_with_an_org_wide_token_asks_for_the_channel_id(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "#staging-cutover"})
    standin = SlackStandIn(TOKEN, org_token=True).start()
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            bot.standin.add_channel("C0HOME", "staging-cutover")
            _, key = bot.command("start staging", user="U1")
            reply = bot.reply(key)
            assert "team_not_found" in reply and "channel's id" in reply
            assert _runs(sqlite_db) == 0
    finally:
        standin.stop()


@pytest.mark.parametrize("error", ["fatal_error", "internal_error", "service_unavailable"])
def test_slack_failing_rather_than_refusing_lets_the_start_go_on(
    sqlite_db: Database, tmp_path: Path, error: str
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.standin.fail_next(
            1, status=200, retry_after=None, method="chat.postMessage", error=error
        )
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)  # posted once Slack answers again


def _runs(db: Database) -> int:
    with db.session() as s:
        return len(list(s.exec(select(Run.id))))
