"""GET /runs/N on `cutover serve`'s port: the page, to a request whose token opens that run.

Everything else gets a bare 403 (no token, a bad or expired one, another run's, or no secret
configured): the page is never public by accident, and a refusal says nothing a guesser could
use. Like /slack/events it is bounded: at most PER_MINUTE pages a minute and BUSY rendered at
once for the whole process (each reads the run's rows and verifies them), past which it
answers 429 or 503 at once instead of queuing work; refusals are logged by the server's
rate-limited refusal log, never with the token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot.runpage import page, render, tokens
from bot.store.db import Database
from phases.runbook import Runbook
from phases.secrets import GLOBAL_MASKER

PER_MINUTE = 60
BUSY = 2
HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": render.CSP,
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",  # the token is in the URL: never sent onwards
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}
TEXT = {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    refused: str | None = None  # why, for the server's log (never shown)


class RunPages:
    """Answers /runs/N requests; `now` is injectable (a test's clock expires a token)."""

    def __init__(
        self,
        db: Database,
        runbook: Runbook,
        secret: str | None,
        public_keys: dict[str, Ed25519PublicKey] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        per_minute: int = PER_MINUTE,
        busy: int = BUSY,
    ) -> None:
        self.db, self.runbook, self.secret = db, runbook, secret
        self.public_keys, self.now = public_keys, now
        self.per_minute = per_minute
        self._slots = threading.BoundedSemaphore(busy)
        self._lock = threading.Lock()
        self._window, self._served = 0.0, 0

    def _admit(self) -> bool:
        """At most per_minute pages in each minute (a fixed window: simple, and enough to
        keep a link pasted into a busy channel from turning into a load test)."""
        now = time.monotonic()
        with self._lock:
            if now - self._window >= 60:
                self._window, self._served = now, 0
            if self._served >= self.per_minute:
                return False
            self._served += 1
            return True

    def answer(self, run_id: int, token: str | None) -> Answer:
        why = tokens.refusal(self.secret, token, run_id, self.now())
        if why is not None:
            return Answer(403, TEXT, "forbidden\n", why)
        if not self._admit():
            return Answer(429, {**TEXT, "retry-after": "60"}, "too many requests\n", "rate")
        if not self._slots.acquire(blocking=False):
            return Answer(503, {**TEXT, "retry-after": "5"}, "busy\n", "busy")
        try:
            try:
                built = page.build(self.db, self.runbook, run_id, self.public_keys, self.now())
            except KeyError:
                return Answer(404, TEXT, "no such run\n", "no such run")
            return Answer(200, HEADERS, render.render(built, GLOBAL_MASKER.mask))
        finally:
            self._slots.release()
