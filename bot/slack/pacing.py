"""When a new message may be posted: one post per second per channel (`Pacer`, on a budget
every replica shares in the database: bot.store.rate_slots), waited for *before* the run's
lock is taken, and one lock per run, so a run's parent and checkpoints are posted once and
edited in order. A 429 is waited out with the lock released."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from bot.slack.outbox import Pacer, RateLimited, SlackCallFailed
from phases.checks.base import Clock

# chat.postMessage: "one message per second per channel" (Slack's rate-limit page); a
# little more between posts, so jitter on the way never makes two land in one second.
POST_INTERVAL = 1.1

T = TypeVar("T")


class RunPacing:
    """The channels' post slots (`pacer`) and the runs' locks."""

    def __init__(self, pacer: Pacer, clock: Clock) -> None:
        self.pacer = pacer
        self.clock = clock
        self._locks: dict[int, threading.RLock] = {}
        self._guard = threading.Lock()

    def lock(self, run_id: int) -> threading.RLock:
        """One lock per run: the parent and its checkpoints are posted once, edited in order."""
        with self._guard:
            return self._locks.setdefault(run_id, threading.RLock())

    def posting(self, run_id: int, channel: str | None, post: Callable[[], T]) -> T | None:
        """Runs `post` under the run's lock, in the channel's next post slot; a 429 is waited
        out with the lock released, then `post` runs again (it re-reads what is posted)."""
        for attempt in range(4):
            if channel:
                self.pacer.wait(channel)
            try:
                with self.lock(run_id):
                    return post()
            except RateLimited as exc:
                if attempt == 3:
                    raise SlackCallFailed(exc.method, "ratelimited", 429) from None
                if channel:
                    self.pacer.hold(channel, exc.retry_after)
                self.clock.sleep(exc.retry_after)
        return None
