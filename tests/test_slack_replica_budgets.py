"""Two `cutover serve` replicas on one PostgreSQL and one Slack workspace share Slack's budgets.

Slack's rate limits are per app per workspace (per channel for chat.postMessage), not per
replica: the stand-in keeps them once for every bot that calls it. Each replica here is a
whole bot (its own engine, its own database connections, its own surface and Home
refresher) on the same database and the same stand-in. In the posting test one clock runs
SPEED times faster than real time for the stand-in's limits and both bots' pacing (and their
shared budget): the same limits, kept in a tenth of the time. The Home tests run on the
wall clock, their spacings shortened instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.slack.pacing import POST_INTERVAL
from bot.store.db import Database
from bot.store.rate_slots import SharedSlots
from phases.checks.base import SystemClock
from standins.slack import SlackStandIn
from tests.slack_harness import CHANNEL, TOKEN, Bot, running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_slack_home import text_of

pytestmark = [pytest.mark.postgres, pytest.mark.serial]  # gaps in wall time: run alone

SPEED = 10.0  # the stand-in's rate clock runs this much faster than real time


@contextmanager
def two_replicas(pg_db: Database, tmp_path: Path, standin: SlackStandIn) -> Iterator[list[Bot]]:
    """Two bots on the database of `pg_db` (each with its own connections), one stand-in."""
    url = pg_db.engine.url.render_as_string(hide_password=False)
    runbook = small_runbook(tmp_path)
    with ExitStack() as stack:
        bots = []
        for _ in range(2):
            db = Database(url)
            stack.callback(db.dispose)
            bots.append(stack.enter_context(running_bot(db, runbook, standin)))
        yield bots


class ScaledClock:
    """`phases.checks.base.Clock` running SPEED times faster than the wall: its sleeps take a
    SPEED-th of their time."""

    def __init__(self) -> None:
        self.t0, self.m0 = time.time(), time.monotonic()

    def now(self) -> float:
        return self.t0 + SPEED * (time.time() - self.t0)

    def monotonic(self) -> float:
        return self.m0 + SPEED * (time.monotonic() - self.m0)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / SPEED)


def fast_standin() -> SlackStandIn:
    return SlackStandIn(TOKEN, clock=ScaledClock()).start()


def test_two_replicas_posting_in_one_channel_keep_to_its_one_post_a_second(
    pg_db: Database, tmp_path: Path
) -> None:
    standin = fast_standin()
    try:
        with two_replicas(pg_db, tmp_path, standin) as bots:
            for bot in bots:
                assert bot.service.surface.pacer.interval == POST_INTERVAL  # on the fast clock

            def post(bot: Bot, name: str) -> None:
                for i in range(5):
                    bot.service.surface.notice(None, f"{name} notice {i}", channel=CHANNEL)

            threads = [
                threading.Thread(target=post, args=(bot, name))
                for bot, name in zip(bots, ("replica A", "replica B"), strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        posts = standin.api_calls("chat.postMessage")
        refused = [c for c in posts if c.status == 429]
        assert refused == [], f"{len(refused)} posts answered 429 out of {len(posts)}"
        assert len([c for c in posts if c.answer.get("ok")]) == 10
        assert standin.problems == []
    finally:
        standin.stop()


class StampedClock(threading.local):
    """`time.monotonic` (one clock for both replicas: one process) that keeps, per thread, the
    value it last gave: the "now" the database compared a slot with."""

    last = 0.0

    def __call__(self) -> float:
        self.last = time.monotonic()
        return self.last


class SlotsSeen:
    """`Slots` over a `SharedSlots` on a `StampedClock` that keeps, for each views.publish
    slot taken, when it begins: the clock's "now" plus the wait the database answered."""

    def __init__(self, inner: SharedSlots, clock: StampedClock, taken: list[float]) -> None:
        self.inner, self.clock, self.taken = inner, clock, taken

    def reserve(self, key: str, interval: float) -> float:
        wait = self.inner.reserve(key, interval)
        if key == "views.publish":
            self.taken.append(self.clock.last + wait)  # list.append: atomic
        return wait

    def take(self, key: str, interval: float) -> float:
        return self.inner.take(key, interval)

    def hold(self, key: str, seconds: float) -> None:
        self.inner.hold(key, seconds)

    def free(self, key: str) -> None:
        self.inner.free(key)


def test_two_replicas_refreshing_home_publish_within_one_views_publish_budget(
    pg_db: Database, tmp_path: Path
) -> None:
    spacing = 0.2
    standin = SlackStandIn(TOKEN, clock=SystemClock()).start()
    taken: list[float] = []
    clock = StampedClock()
    try:
        with two_replicas(pg_db, tmp_path, standin) as bots:
            for bot in bots:
                homes = bot.service.slack.homes
                homes.spacing = homes.per_user = spacing
                # The budget on this process's monotonic clock (both replicas share it), so
                # each slot's beginning can be kept exactly; the database still orders them.
                shared = SharedSlots(bot.db, clock=clock)
                homes.slots = SlotsSeen(shared, clock, taken)
            for user in ("U1", "U2", "U3"):
                bots[0].open_home(user)
                bots[0].home(user)
            start = time.monotonic()
            while time.monotonic() - start < 2.5:  # changes on both replicas, all along
                for bot in bots:
                    bot.service.slack.homes.poke()
                time.sleep(0.02)
            time.sleep(spacing)
        at = sorted(c.at for c in standin.api_calls("views.publish", ok=True))
        gaps = [b - a for a, b in zip(at, at[1:], strict=False)]
        assert len(at) >= 8, at  # both kept publishing
        # One budget: every publish of either replica took a slot of it, and its slots are
        # at least a spacing apart (two replicas each on its own budget would take slots at
        # the same moments).
        slots = sorted(taken)
        assert len(slots) >= len(at), (slots, at)
        slot_gaps = [round(b - a, 4) for a, b in zip(slots, slots[1:], strict=False)]
        assert min(slot_gaps) >= spacing - 1e-6, slot_gaps
        # Seen from Slack: in all, no faster than one publish per spacing. (Not each gap: a
        # publish slowed on its way after its slot arrives closer to the next one.)
        assert len(at) <= (at[-1] - at[0]) / spacing + 2, [round(g, 3) for g in gaps]
        assert standin.api_calls("views.publish", ok=False) == []
    finally:
        standin.stop()


def test_a_slow_publish_from_one_replica_never_overwrites_a_newer_home_from_another(
    pg_db: Database, tmp_path: Path
) -> None:
    standin = SlackStandIn(TOKEN, clock=SystemClock()).start()
    try:
        with two_replicas(pg_db, tmp_path, standin) as (a, b):
            for bot in (a, b):
                bot.service.slack.homes.per_user = 0.2
                bot.service.slack.homes.spacing = 0.05
            a.open_home("U3")
            assert "Nothing scheduled" in text_of(a.home("U3"))
            time.sleep(0.3)  # past U3's per-person interval

            standin.hold_next("views.publish", 1.0)  # replica A's next publish is slow
            a.service.slack.homes.poke()
            assert standin.held_arrived.wait(10), "replica A's publish never left"

            at = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%MZ")
            _, key = b.command(f"schedule staging {at}", user="U2")
            assert "scheduled" in b.reply(key)
            b.service.slack.homes.poke()  # replica B saw it change: a newer drawing

            wait_for(
                lambda: "📅" in text_of(standin.home("U3") or {"blocks": []}),
                "U3's Home to show the schedule",
            )
            time.sleep(1.3)  # replica A's slow publish has landed (or been refused) by now
            final = text_of(standin.home("U3") or {"blocks": []})
        assert "📅" in final and "Nothing scheduled" not in final
        # In the order Slack applied them, once a drawing with the schedule was up, none
        # without it came after.
        shown = [("📅" in text_of(view)) for user, view, _ in standin.published if user == "U3"]
        assert shown == sorted(shown), shown
    finally:
        standin.stop()
