"""The App Home tab: active runs (phase, who the gate waits for), upcoming scheduled cutovers,
the last ten cutovers with their outcome; drawn when a person opens it, within Slack's view
limits, masked like every other exit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.store.db import Database
from bot.surface import Actor
from standins.slack import Message, SlackStandIn, block_text_chars, view_problems
from tests.slack_harness import TOKEN, running_bot, wait_for
from tests.small_runbook import small_runbook

SECRET = "hunter2-very-secret-jwt-value"


def text_of(view: dict[str, object]) -> str:
    return Message("", "", "", view["blocks"], None).all_text()  # type: ignore[arg-type]


def test_home_tab_shows_active_runs_waiting_for_whom_upcoming_and_recent_outcomes(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path, quorum=2)) as bot:
        bot.command("start staging", user="U1")
        first = bot.latest_run()
        bot.checkpoint(first, 1)
        _, key = bot.command("abort staging --reason 'wrong build'", user="U2")
        bot.reply(key)
        wait_for(lambda: bot.run(first).ended_at is not None, "the first run to end")

        bot.command("start staging", user="U1")
        second = wait_for(lambda: (r := bot.latest_run()) != first and r, "a second run")
        one = bot.checkpoint(second, 1)
        bot.click(one, "gate_continue", user="U2")
        bot.wait_text(one, "1/2")
        at = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%MZ")
        _, key = bot.command(f"schedule staging {at}", user="U2")
        assert "scheduled" in bot.reply(key)

        sent = bot.open_home("U3")
        assert sent.status == 200 and sent.seconds < 1.5
        home = bot.home("U3")
        assert view_problems(home, "home") == []
        assert [p for p in bot.standin.problems if p.startswith("views.")] == []  # none refused
        text = text_of(home)
        assert "Active runs" in text and "Upcoming" in text and "Last 10 cutovers" in text
        assert f"Run #{second} · staging" in text and "waiting at phase 1/3 Phase one" in text
        assert "<@U1>" in text and "<@U3>" in text and "<@U2>" not in text.split("Upcoming")[0]
        assert "(1/2 approved)" in text
        assert "#1 · staging" in text and "<!date^" in text
        recent = text.split("Last 10 cutovers")[1]
        assert f"Run #{first} · staging" in recent and "cancelled" in recent
        assert "wrong build" in recent
        assert bot.standin.problems == []


def test_home_tab_is_redrawn_each_time_it_is_opened(sqlite_db: Database, tmp_path: Path) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.open_home("U1")
        assert "No cutover is running" in text_of(bot.home("U1"))
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        bot.open_home("U1")
        wait_for(lambda: f"Run #{run_id}" in text_of(bot.home("U1")), "the run on the Home tab")


def test_home_tab_stays_within_the_view_limits_with_long_history_and_masks_secrets(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        engine = bot.engine
        engine.masker.add(SECRET)
        alice = Actor.slack("T1", "U1")
        for i in range(12):
            run = engine.start_run("staging", alice, channel="C0CUTOVER")
            assert run.id is not None
            engine.abort("staging", alice, f"#{i} leaked {SECRET} " + "x" * 480)
            wait_for(lambda r=run.id: bot.run(r).ended_at is not None, "the run to end")
        bot.open_home("U1")
        home = bot.home("U1")
        assert view_problems(home, "home") == []
        assert [p for p in bot.standin.problems if p.startswith("views.")] == []  # none refused
        assert len(home["blocks"]) <= 100 and block_text_chars(home["blocks"]) < 11_000
        text = text_of(home)
        assert SECRET not in json.dumps(home) and "#11 leaked" in text
        assert "#0 leaked" not in text and "#1 leaked" not in text  # the last ten only


# ------------------------------------------------- who sees what: their environments only

PRIVATE = "G0WARROOM"  # the private channel the staging environment posts in


def private_env_bot(sqlite_db: Database, tmp_path: Path) -> Any:
    """staging posts in a private channel (U5 is in it, U7 is not; approvers U1–U3 of T1);
    one of its runs ended with a rollback reason, another is waiting at its first gate, and
    one is scheduled from the private channel."""
    runbook = small_runbook(tmp_path, env={"channel": PRIVATE, "slack_team": "T1"})
    standin = SlackStandIn(TOKEN).start()
    standin.add_channel(PRIVATE, "war-room", private=True, members=("U1", "U5"))
    standin.set_members("C0CUTOVER", "U1", "U5", "U7")
    return runbook, standin


def staged(bot: Any) -> int:
    bot.command("start staging", user="U1")
    first = bot.latest_run()
    bot.checkpoint(first, 1)
    _, key = bot.command("abort staging --reason 'customer data leak in the dump'", user="U2")
    bot.reply(key)
    wait_for(lambda: bot.run(first).ended_at is not None, "the first run to end")
    bot.command("start staging", user="U1")
    second = wait_for(lambda: (r := bot.latest_run()) != first and r, "a second run")
    bot.checkpoint(second, 1)
    at = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%MZ")
    _, key = bot.command(f"schedule staging {at}", user="U2", channel=PRIVATE)
    assert "scheduled" in bot.reply(key)
    return int(second)


def test_home_shows_a_private_channel_environment_to_a_member_of_that_channel(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook, standin = private_env_bot(sqlite_db, tmp_path)
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            second = staged(bot)
            bot.open_home("U5")
            text = text_of(bot.home("U5"))
            assert f"Run #{second} · staging" in text
            assert "customer data leak" in text and "📅 *#1 · staging*" in text
            assert bot.standin.problems == []
    finally:
        standin.stop()


def test_home_hides_a_private_channel_environment_from_someone_not_in_it(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook, standin = private_env_bot(sqlite_db, tmp_path)
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            staged(bot)
            bot.open_home("U7")  # in #cutover, where the commands were typed; not in the room
            text = text_of(bot.home("U7"))
            assert "staging" not in text and "customer data leak" not in text
            assert "No cutover is running" in text and "Nothing scheduled" in text
            assert "No cutover has finished yet" in text
    finally:
        standin.stop()


def test_home_hides_an_environment_from_another_workspace(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """U5 of another workspace is not U5 of T1 (a U… id is one workspace's)."""
    runbook, standin = private_env_bot(sqlite_db, tmp_path)
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            staged(bot)
            bot.open_home("U5", team="T2")
            text = text_of(bot.home("U5"))
            assert "staging" not in text and "customer data leak" not in text
    finally:
        standin.stop()


def test_home_shows_an_approver_their_environment_without_being_in_its_channel(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook, standin = private_env_bot(sqlite_db, tmp_path)
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            second = staged(bot)
            bot.open_home("U3")  # an approver of staging, not in the war room
            text = text_of(bot.home("U3"))
            assert f"Run #{second} · staging" in text and "customer data leak" in text
    finally:
        standin.stop()


def test_a_refreshed_home_stays_each_persons_own(sqlite_db: Database, tmp_path: Path) -> None:
    runbook, standin = private_env_bot(sqlite_db, tmp_path)
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            bot.service.slack.homes.per_user = 0.3  # quick test; the default is 5 s
            bot.open_home("U5")
            bot.open_home("U7")
            bot.home("U5"), bot.home("U7")
            second = staged(bot)
            wait_for(
                lambda: f"Run #{second} · staging" in text_of(bot.home("U5")),
                "U5's Home to follow the run",
            )
            assert "staging" not in text_of(bot.home("U7"))
    finally:
        standin.stop()
