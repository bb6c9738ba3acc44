"""Whether the Socket Mode connection is alive, for /healthz, /metrics and the container.

Slack recycles Socket Mode connections and slack_sdk's client reconnects by itself, so a
short gap is normal; a long one means no slash command or click reaches the bot while it
still looks healthy. A watcher samples the client every `interval` seconds: once it has been
disconnected for longer than `bound` seconds, /healthz answers 503 (and the Docker
HEALTHCHECK turns unhealthy); it answers 200 again as soon as the client is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class SocketHealth:
    def __init__(
        self,
        is_connected: Callable[[], bool],
        bound: float,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._is_connected, self.bound, self.interval, self._clock = (
            is_connected,
            bound,
            interval,
            clock,
        )
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._stop = threading.Event()

    def sample(self) -> None:
        """Looks at the connection once (the watcher does, every `interval`)."""
        try:
            up = bool(self._is_connected())
        except Exception:  # noqa: BLE001 - a client that cannot say is not connected
            up = False
        now = self._clock()
        with self._lock:
            if up and self._down_since is not None:
                log.info("Socket Mode connection back after %.0f s", now - self._down_since)
                self._down_since = None
            elif not up and self._down_since is None:
                log.warning("Socket Mode connection lost; reconnecting")
                self._down_since = now

    def down_for(self) -> float:
        """Seconds the connection has been down (0 while it is up)."""
        with self._lock:
            since = self._down_since
        return 0.0 if since is None else max(self._clock() - since, 0.0)

    def problem(self) -> str | None:
        """Why /healthz must answer 503, or None."""
        down = self.down_for()
        if down > self.bound:
            return (
                f"Socket Mode disconnected for {down:.0f} s (more than {self.bound:g} s): "
                "no command or click reaches this bot"
            )
        return None

    def start(self) -> SocketHealth:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self.sample()
        threading.Thread(target=loop, name="socket-health", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
