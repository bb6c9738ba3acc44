"""The Home tab kept up to date: whoever opened Home recently (kept in the database) gets it
republished when a run starts, a gate opens or is decided, or a run ends, through one
background thread, at most once per person per few seconds, never on a click's path."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot.slack.home import HomeRefresher
from bot.store.db import Database
from bot.store.models import HomeViewer
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_slack_home import text_of


def test_a_home_left_open_follows_the_run_from_start_to_end(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.service.slack.homes.per_user = 0.3  # quick test; the default is 5 s
        bot.open_home("U3")
        assert "Run #" not in text_of(bot.home("U3"))  # nothing has run yet
        with sqlite_db.session() as s:
            assert [(v.user_id, v.team_id) for v in s.exec(select(HomeViewer))] == [("U3", "T1")]

        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        wait_for(
            lambda: (
                f"Run #{run_id} · staging" in text_of(bot.home("U3"))
                and "waiting at phase 1/3" in text_of(bot.home("U3"))
            ),
            "U3's Home to show the run waiting at its first gate, without reopening it",
        )
        _, key = bot.command("abort staging --reason 'wrong build'", user="U2")
        bot.reply(key)
        wait_for(
            lambda: "wrong build" in text_of(bot.home("U3")).split("Last 10 cutovers")[-1],
            "U3's Home to show the run ended",
        )
        assert bot.standin.home("U1") is None  # U1 never opened Home: nothing published for them
        assert bot.standin.problems == []


def test_refreshes_are_at_most_one_per_person_per_interval_and_never_block_the_caller() -> None:
    publishes: dict[str, list[float]] = defaultdict(list)
    drawn = [0]
    slow = threading.Event()

    in_flight = [0]

    def publish(user: str, team: str, data: dict[str, Any]) -> bool:
        publishes[user].append(time.monotonic())
        in_flight[0] += 1
        slow.wait(0.2)  # a slow views.publish
        in_flight[0] -= 1
        return True

    def draw() -> dict[str, Any]:
        drawn[0] += 1
        return {"type": "home", "blocks": []}

    homes = HomeRefresher(
        lambda: [("U1", "T1"), ("U2", "T1"), ("W3", "E1")], draw, publish, per_user=0.5, spacing=0
    )
    try:
        homes.published_now("U2")  # U2 just opened Home: not republished within 0.5 s
        longest = 0.0
        returned_mid_publish = 0
        end = time.monotonic() + 1.6
        while time.monotonic() < end:  # a burst of changes: clicks, votes, phases
            t0 = time.monotonic()
            homes.poke()
            longest = max(longest, time.monotonic() - t0)
            returned_mid_publish += in_flight[0] > 0
            time.sleep(0.01)
        wait_for(lambda: not homes._dirty, "the last refresh round", timeout=5)
        time.sleep(0.6)
    finally:
        homes.close()
    # Never blocks: pokes returned while a (slow) publish was under way, and none took as
    # long as one publish (a timing bound loose enough for a loaded machine).
    assert returned_mid_publish > 0
    assert longest < 0.2, f"poke() took {longest * 1000:.1f} ms"
    for user in ("U1", "U2", "W3"):
        times = publishes[user]
        assert len(times) >= 2, (user, times)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 0.5 - 0.01, (user, gaps)
    # About 160 pokes came to a handful of publishes (each person about once per 0.5 s over
    # ~2.2 s), and Home was drawn only for rounds that published something.
    total = sum(len(t) for t in publishes.values())
    assert total <= 3 * 6 and drawn[0] <= total
