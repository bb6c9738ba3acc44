"""An environment's channel given by name (`channel: "#ops-cutover"`) is looked up once and
posted to by id, so a rename changes nothing; `runbook check` warns of the name (issue 18 #7).

Against the stand-in (standins/slack.py), whose conversations.list answers as Slack
does: pages, `types`, only the channels the token can see, `missing_scope` without
channels:read / groups:read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.cli import main
from bot.store.db import Database
from standins.slack import DEFAULT_SCOPES, SlackStandIn
from tests.slack_harness import TOKEN, running_bot, wait_for
from tests.small_runbook import small_runbook

OPS = "C0OPSCUTOVER"


def workspace(**kw: object) -> SlackStandIn:
    """A workspace with #ops-cutover among 250 other channels (more than one page), and a
    private channel the bot is not in."""
    standin = SlackStandIn(TOKEN, **kw)  # type: ignore[arg-type]
    for i in range(250):
        standin.add_channel(f"C1{i:08d}", f"team-{i}", member=False)
    standin.add_channel("G0SECRET01", "secret-plans", private=True, member=False)
    standin.add_channel(OPS, "ops-cutover")
    return standin.start()


def test_a_channel_given_by_name_is_looked_up_once_and_every_post_goes_to_its_id(
    sqlite_db: Database, tmp_path: Path
) -> None:
    standin = workspace()
    try:
        runbook = small_runbook(tmp_path, env={"channel": "#ops-cutover"})
        with running_bot(sqlite_db, runbook, standin) as bot:
            bot.command("start staging", user="U1")
            run_id = bot.latest_run()
            bot.checkpoint(run_id, 1)
            assert bot.run(run_id).channel == OPS  # the run keeps the id
            assert bot.parent(run_id).channel == OPS
            posts = standin.api_calls("chat.postMessage")
            assert posts and {c.args["channel"] for c in posts} == {OPS}  # never by name
            listed = standin.api_calls("conversations.list", ok=True)
            assert len(listed) == 2  # one lookup: both pages of 252 channels, 200 a page
            assert "cursor" not in listed[0].args and listed[1].args["cursor"]
            assert set(listed[0].args["types"].split(",")) == {"public_channel", "private_channel"}
            assert standin.problems == []
    finally:
        standin.stop()


def test_after_the_channel_is_renamed_the_next_run_still_reaches_it(
    sqlite_db: Database, tmp_path: Path
) -> None:
    standin = workspace()
    try:
        runbook = small_runbook(tmp_path, env={"channel": "#ops-cutover"})
        with running_bot(sqlite_db, runbook, standin) as bot:
            bot.command("start staging", user="U1")
            first = bot.latest_run()
            bot.checkpoint(first, 1)
            bot.command("abort staging --reason 'rename test'", user="U2")
            wait_for(lambda: bot.run(first).status != "running", "the first run to end")
            standin.rename(OPS, "ops-cutover-2027")  # an admin renames it; the id stays

            bot.command("start staging", user="U1")
            second = wait_for(lambda: (lambda r: r if r != first else None)(bot.latest_run()), "r2")
            bot.checkpoint(second, 1)
            assert bot.run(second).channel == OPS
            assert bot.parent(second).channel == OPS
            assert all(c.args["channel"] == OPS for c in standin.api_calls("chat.postMessage"))
            assert len(standin.api_calls("conversations.list")) == 2  # not looked up again
            assert [p for p in standin.problems if "channel_not_found" in p] == []
    finally:
        standin.stop()


def test_runbook_check_warns_that_a_channel_is_given_by_name_and_says_to_write_the_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small_runbook(tmp_path, env={"channel": "#ops-cutover", "stakeholders": "C0LAUNCH"})
    assert main(["runbook", "check", str(tmp_path / "small.yml")]) == 0  # a warning, not a refusal
    out = capsys.readouterr().out
    assert "warning: environment 'staging': channel '#ops-cutover' is given by name" in out
    assert "write the channel id instead" in out
    assert "stakeholders 'C0LAUNCH'" not in out  # an id is fine


def test_the_standin_lists_channels_as_slack_does() -> None:
    standin = workspace()
    try:
        client = WebClient(token=TOKEN, base_url=standin.api_url)
        first = client.conversations_list(limit=100)  # default types: public channels only
        assert len(first["channels"]) == 100 and first["response_metadata"]["next_cursor"]
        names: set[str] = set()
        cursor = None
        while True:
            page = client.conversations_list(
                types="public_channel,private_channel", limit=1000, cursor=cursor
            )
            names |= {c["name"] for c in page["channels"]}
            cursor = page["response_metadata"]["next_cursor"]
            if not cursor:
                break
        assert "ops-cutover" in names and "secret-plans" not in names  # not a member
        with pytest.raises(SlackApiError) as bad:
            client.conversations_list(types="channels")
        assert bad.value.response["error"] == "invalid_types"
        with pytest.raises(SlackApiError) as bad:
            client.conversations_list(cursor="made-up")
        assert bad.value.response["error"] == "invalid_cursor"
    finally:
        standin.stop()

    narrow = workspace(scopes=DEFAULT_SCOPES - {"channels:read"})
    try:
        client = WebClient(token=TOKEN, base_url=narrow.api_url)
        with pytest.raises(SlackApiError) as refused:
            client.conversations_list()
        assert refused.value.response["error"] == "missing_scope"
        assert refused.value.response["needed"] == "channels:read"
    finally:
        narrow.stop()


def test_without_channels_read_the_name_is_kept_and_the_log_says_which_scope_to_add(
    sqlite_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    standin = workspace(scopes=DEFAULT_SCOPES - {"channels:read"})
    try:
        runbook = small_runbook(tmp_path, env={"channel": "#ops-cutover"})
        with running_bot(sqlite_db, runbook, standin) as bot:
            bot.command("start staging", user="U1")
            run_id = bot.latest_run()
            bot.checkpoint(run_id, 1)  # posted by name: Slack takes a name from this token
            assert bot.parent(run_id).channel == OPS
        said = [r.getMessage() for r in caplog.records if "cannot find the id" in r.getMessage()]
        assert said and "channels:read" in said[0] and "write the channel id" in said[0]
    finally:
        standin.stop()


def test_with_an_org_wide_token_a_channel_name_is_looked_up_in_the_environments_workspace(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """An org-wide token cannot post by name (team_not_found), and lists channels only for
    a workspace it names: the environment's slack_team."""
    standin = workspace(org_token=True)
    try:
        runbook = small_runbook(tmp_path, env={"channel": "#ops-cutover", "slack_team": "T1"})
        with running_bot(sqlite_db, runbook, standin) as bot:
            bot.command("start staging", user="U1")
            run_id = bot.latest_run()
            bot.checkpoint(run_id, 1)
            assert bot.run(run_id).channel == OPS
            listed = standin.api_calls("conversations.list", ok=True)
            assert listed and all(c.args["team_id"] == "T1" for c in listed)
            assert [p for p in standin.problems if "team_not_found" in p] == []
    finally:
        standin.stop()
