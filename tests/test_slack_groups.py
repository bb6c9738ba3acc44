"""Approver user groups are read from Slack once per burst, never per click, and a lookup
Slack refuses never tells a member they are not an approver."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.store.db import Database
from standins.slack import SlackStandIn
from tests.slack_harness import TOKEN, Bot, running_bot, wait_for
from tests.small_runbook import small_runbook

GROUP = "S0APPROVE"
MEMBERS = [f"U{100 + i}" for i in range(50)]
STRANGERS = [f"U{200 + i}" for i in range(20)]


def group_runbook(tmp_path: Path):  # type: ignore[no-untyped-def]
    return small_runbook(tmp_path, approvers=[], env={"approver_groups": [GROUP]})


def lookups(bot: Bot) -> int:
    return len(bot.standin.api_calls("usergroups.users.list"))


def test_fifty_member_and_twenty_stranger_clicks_cost_a_handful_of_group_lookups(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, group_runbook(tmp_path)) as bot:
        bot.standin.usergroups[GROUP] = list(MEMBERS)
        bot.command("start staging", user=MEMBERS[0])
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        people = MEMBERS + STRANGERS
        with ThreadPoolExecutor(16) as pool:
            keys = [
                k for _, k in pool.map(lambda u: bot.click(one, "gate_continue", user=u), people)
            ]
        bot.wait_text(one, "*Approved* by")
        wait_for(  # everyone but the one whose click decided the gate gets an answer
            lambda: sum(1 for k in keys if bot.standin.replies(k)) == len(people) - 1,
            "an answer to every other click",
        )
        replies = {
            u: str(bot.standin.replies(k)[0]["text"]) if bot.standin.replies(k) else ""
            for u, k in zip(people, keys, strict=True)
        }
        assert lookups(bot) <= 3
        assert not any("not an approver" in replies[u] for u in MEMBERS)
        assert not any("couldn't check" in r for r in replies.values())
        assert all(
            "not an approver" in replies[u] or "already approved" in replies[u] for u in STRANGERS
        )


def test_a_rate_limited_lookup_asks_a_member_to_try_again_never_says_not_an_approver(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, group_runbook(tmp_path)) as bot:
        bot.standin.usergroups[GROUP] = ["U7"]
        bot.command("start staging", user="U7")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.service.slack.groups.forget()  # nothing cached, and Slack says wait 30 s
        bot.standin.fail_next(5, status=429, retry_after=30, method="usergroups.users.list")
        before = lookups(bot)
        sent, key = bot.click(one, "gate_continue", user="U7")
        reply = bot.reply(key)
        assert "couldn't check your group membership" in reply and "not an approver" not in reply
        assert sent.seconds < 1.0
        _, key = bot.click(one, "gate_continue", user="U7")  # within the Retry-After: no call
        assert "couldn't check your group membership" in bot.reply(key)
        assert lookups(bot) == before + 1
        assert bot.gates(run_id)[0].status == "open"


def test_a_recent_list_is_used_while_slack_refuses_the_lookup(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, group_runbook(tmp_path)) as bot:
        bot.standin.usergroups[GROUP] = ["U7"]
        bot.command("start staging", user="U7")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.service.slack.groups.ttl = 0.0  # the list is stale, but younger than stale_for
        bot.standin.fail_next(5, status=500, retry_after=None, method="usergroups.users.list")
        bot.click(one, "gate_continue", user="U7")
        bot.wait_text(one, "*Approved* by <@U7>")


def test_a_member_who_left_the_group_loses_approval_when_the_list_expires(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, group_runbook(tmp_path)) as bot:
        bot.standin.usergroups[GROUP] = ["U7", "U8"]
        bot.command("start staging", user="U7")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.standin.usergroups[GROUP] = ["U7"]  # U8 left the group
        bot.service.slack.groups.forget()  # as after the cache's ttl (60 s)
        _, key = bot.click(one, "gate_continue", user="U8")
        assert "not an approver" in bot.reply(key)
        wait_for(lambda: bot.gates(run_id)[0].status == "open", "the gate still open")


def test_grid_org_token_group_lookups_pass_the_environments_team_id(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """An org-wide (Enterprise Grid) token's usergroups.users.list needs team_id; the
    environment's slack_team is the workspace the group lives in."""
    standin = SlackStandIn(TOKEN, org_token=True).start()
    try:
        book = small_runbook(
            tmp_path, approvers=[], env={"approver_groups": [GROUP], "slack_team": "T1"}
        )
        with running_bot(sqlite_db, book, standin) as bot:
            bot.standin.usergroups[GROUP] = ["W0ALICE"]
            bot.command("start staging", user="W0ALICE")
            run_id = bot.latest_run()
            bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="W0ALICE")
            wait_for(lambda: bot.gates(run_id)[0].status == "approved", "the approval")
            calls = bot.standin.api_calls("usergroups.users.list")
            assert calls and all(c.args.get("team_id") == "T1" for c in calls)
            assert bot.standin.problems == []
    finally:
        standin.stop()


def test_grid_group_lookup_uses_the_clicks_team_when_slack_team_is_the_enterprise(
    sqlite_db: Database, tmp_path: Path
) -> None:
    standin = SlackStandIn(TOKEN, org_token=True).start()
    try:
        book = small_runbook(
            tmp_path, approvers=[], env={"approver_groups": [GROUP], "slack_team": "E0ORG"}
        )
        with running_bot(sqlite_db, book, standin) as bot:
            bot.standin.usergroups[GROUP] = ["W0ALICE"]
            bot.command("start staging", user="W0ALICE", team="T2", enterprise="E0ORG")
            run_id = bot.latest_run()
            one = bot.checkpoint(run_id, 1)
            bot.click(one, "gate_continue", user="W0ALICE", team="T2", enterprise="E0ORG")
            wait_for(lambda: bot.gates(run_id)[0].status == "approved", "the approval")
            calls = bot.standin.api_calls("usergroups.users.list")
            assert calls and all(c.args.get("team_id") == "T2" for c in calls)
    finally:
        standin.stop()


def test_a_group_slack_has_never_heard_of_is_named_to_the_person_not_called_not_an_approver(
    sqlite_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    book = small_runbook(tmp_path, approvers=["T1:U1"], env={"approver_groups": [GROUP]})
    with running_bot(sqlite_db, book) as bot:
        bot.standin.usergroups[GROUP] = ["U7"]
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        del bot.standin.usergroups[GROUP]  # an admin deleted the group meanwhile
        bot.service.slack.groups.forget()  # as after the cached list's ttl
        _, key = bot.click(one, "gate_continue", user="U7")
        reply = bot.reply(key)
        assert "no_such_subteam" in reply and "fix approver_groups" in reply
        assert "not an approver" not in reply
        assert bot.gates(run_id)[0].status == "open"
        assert any("no_such_subteam" in r.getMessage() for r in caplog.records)


def test_a_missing_scope_is_said_to_the_person_and_fails_preflight(
    sqlite_db: Database, tmp_path: Path
) -> None:
    from bot.schedules import ScheduleService

    book = small_runbook(tmp_path, approvers=["T1:U1"], env={"approver_groups": [GROUP]})
    with running_bot(sqlite_db, book) as bot:
        bot.standin.usergroups[GROUP] = ["U7"]
        bot.standin.fail_next(
            1, status=200, retry_after=None, method="usergroups.users.list", error="missing_scope"
        )
        result = ScheduleService(bot.engine).preflight("staging", "schedule")
        (item,) = [i for i in result.failed if i.what == "approver groups"]
        assert "missing_scope" in item.evidence and "usergroups:read" in item.evidence
        assert "usergroups:read" in result.text
        # Once the scope is there, the next lookup reads the group and preflight passes it.
        bot.service.slack.groups.forget()
        again = ScheduleService(bot.engine).preflight("staging", "schedule")
        assert not [i for i in again.failed if i.what == "approver groups"]
