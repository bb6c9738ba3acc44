"""Slack's rate limits delay only what they limit: a rate-limited chat.update never holds up
the next checkpoint, and every decided gate loses its buttons once the outbox settles."""

from __future__ import annotations

import time
from pathlib import Path

from bot.store.db import Database
from phases.checks.base import SystemClock
from standins.slack import SlackStandIn
from tests.slack_harness import TOKEN, running_bot, wait_for
from tests.small_runbook import small_runbook


def test_four_429s_on_chat_update_delay_no_checkpoint_and_leave_no_live_buttons(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.standin.fail_next(4, status=429, retry_after=3, method="chat.update")
        clicked = time.monotonic()
        bot.click(one, "gate_continue", user="U2")
        bot.checkpoint(run_id, 2)
        assert time.monotonic() - clicked < 3.0  # not behind the 3 s Retry-Afters
        assert "gate_continue" in bot.fresh(one).action_ids()  # its redraw is still waiting
        assert bot.engine.redraws_idle(30)  # the engine has handed every redraw over
        assert bot.service.surface.outbox.settle(timeout=30)
        final = bot.fresh(one)
        assert final.action_ids() == [] and "*Approved* by <@U2>" in final.all_text()
        limited = [c for c in bot.standin.api_calls("chat.update") if c.status == 429]
        assert len(limited) == 4
        gaps = [b.at - a.at for a, b in zip(limited, limited[1:], strict=False)]
        assert all(g >= 2.9 for g in gaps)  # each Retry-After was honoured


def test_a_burst_of_posts_in_one_channel_keeps_to_one_a_second(
    sqlite_db: Database, tmp_path: Path
) -> None:
    standin = SlackStandIn(TOKEN, clock=SystemClock()).start()  # pacing in wall time
    try:
        with running_bot(sqlite_db, small_runbook(tmp_path), standin) as bot:
            bot.command("start staging", user="U1")
            run_id = bot.latest_run()
            bot.checkpoint(run_id, 1)
            surface = bot.service.surface
            start = bot.standin.clock.monotonic()
            for i in range(5):
                surface.notice(run_id, f"notice {i}")
            posts = [c for c in bot.standin.api_calls("chat.postMessage") if c.at >= start]
            assert [c.status for c in posts] == [200] * 5  # paced, so never refused
            assert all(b.at - a.at >= 0.95 for a, b in zip(posts, posts[1:], strict=False))
            wait_for(lambda: bot.run(run_id).status == "waiting", "the run waiting")
    finally:
        standin.stop()


def test_on_a_fast_clock_the_burst_is_paced_as_slack_sees_it_without_waiting(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """The seam the other Slack tests run on (standins.fast_clock): the bot's pacing waits move
    the stand-in's clock on instead of the wall's, so Slack still sees one post a second."""
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        surface = bot.service.surface
        assert surface.clock is bot.standin.clock
        start, wall = bot.standin.clock.monotonic(), time.monotonic()
        for i in range(5):
            surface.notice(run_id, f"notice {i}")
        posts = [  # these notices only: a late post of the run (another message) is paced apart
            c
            for c in bot.standin.api_calls("chat.postMessage")
            if c.at >= start and "notice " in str(c.args.get("text"))
        ]
        assert [c.status for c in posts] == [200] * 5  # paced, so never refused
        assert all(b.at - a.at >= 0.95 for a, b in zip(posts, posts[1:], strict=False))
        assert time.monotonic() - wall < 4.0  # 4.4 s of pacing, fast-forwarded
        wait_for(lambda: bot.run(run_id).status == "waiting", "the run waiting")
