"""A clock whose waits return at once: Slack pacing and rate limits, fast-forwarded.

The bot's Slack surface paces posts (1.1 s per channel) and waits out Retry-After on the
clock it is given; the Slack stand-in refills its rate-limit buckets and stamps each call
on its own clock. Given the same `FastClock`, a wait of the bot moves time on for both at
once: the stand-in sees the posts spaced as Slack wants them (its checks are unchanged),
and the test does not spend that time. Time never runs slower than the wall's: real time
passing still counts, so timeouts measured on it hold.

Tests of pacing itself in wall time give the stand-in the system clock instead.

A wait for something real to happen (a container turning healthy while a log line is
awaited on the same clock) still needs some real time: `FastClock(real=0.25)` spends a
quarter of each wait really waiting and skips the rest.
"""

from __future__ import annotations

import threading
import time


class FastClock:
    """`phases.checks.base.Clock`: wall time plus every sleep so far (sleeps take no time, or
    only their `real` share of it)."""

    def __init__(self, real: float = 0.0) -> None:
        if not 0.0 <= real <= 1.0:
            raise ValueError("real is the share of each wait spent waiting: 0 to 1")
        self._real = real
        self._ahead = 0.0  # seconds of waiting skipped on this clock
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._ahead

    def monotonic(self) -> float:
        return time.monotonic() + self._ahead

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._ahead += seconds * (1.0 - self._real)
        time.sleep(max(0.0, seconds) * self._real)  # 0: a wait still lets other threads run

    @property
    def skipped(self) -> float:
        """Seconds of waiting fast-forwarded so far."""
        return self._ahead
