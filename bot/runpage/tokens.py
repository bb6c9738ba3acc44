"""Signed, expiring links to one run's page: `RUN.EXPIRES.MAC`, the MAC an HMAC-SHA256 of
the run and the expiry under a server secret (CUTOVER_RUNPAGE_SECRET). A link is scoped to
its run (a token of run 3 opens no other page) and expires (default 7 days): it may be
forwarded with a change ticket, and stops working without anyone revoking it. Changing the
secret revokes every link at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from bot.settings import Settings

DEFAULT_DAYS = 7.0
_TOKEN = re.compile(r"(\d{1,9})\.(\d{1,12})\.([0-9a-f]{64})")


def _mac(secret: str, run_id: int, expires: int) -> str:
    body = f"cutover-runpage:{run_id}:{expires}".encode()
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(secret: str, run_id: int, now: datetime, days: float = DEFAULT_DAYS) -> str:
    """A token that opens run `run_id`'s page until now + `days`."""
    if not secret:
        raise ValueError("the run page secret is empty: set CUTOVER_RUNPAGE_SECRET")
    expires = int((now + timedelta(days=days)).timestamp())
    return f"{run_id}.{expires}.{_mac(secret, run_id, expires)}"


def refusal(secret: str | None, token: str | None, run_id: int, now: datetime) -> str | None:
    """Why `token` does not open run `run_id`'s page (None: it does). The reason is for the
    server's log only: the person gets a bare 403, which tells a guesser nothing."""
    if not secret:
        return "no run page secret is configured"
    if not token:
        return "no token"
    m = _TOKEN.fullmatch(token)
    if m is None:
        return "malformed token"
    run, expires, mac = int(m[1]), int(m[2]), m[3]
    if not hmac.compare_digest(mac, _mac(secret, run, expires)):
        return "bad signature"
    if run != run_id:
        return "token of another run"
    if expires <= now.timestamp():
        return "expired token"
    return None


def expires_at(token: str) -> datetime | None:
    m = _TOKEN.fullmatch(token)
    return datetime.fromtimestamp(int(m[2]), UTC) if m else None


def link(base_url: str, secret: str, run_id: int, now: datetime, days: float = DEFAULT_DAYS) -> str:
    """The page's URL under `base_url` (CUTOVER_PUBLIC_URL), with its token."""
    token = sign(secret, run_id, now, days)
    return f"{base_url.rstrip('/')}/runs/{run_id}?token={quote(token)}"


class RunLinks:
    """Makes run page links for surfaces (Slack buttons, `/cutover record`): configured only
    when both the public address and the secret are (`from_settings` gives None otherwise,
    and no surface offers a link that could not open)."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        days: float = DEFAULT_DAYS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url, self._secret, self.days, self.now = base_url, secret, days, now

    def for_run(self, run_id: int) -> str:
        return link(self.base_url, self._secret, run_id, self.now(), self.days)

    @classmethod
    def from_settings(cls, settings: Settings) -> RunLinks | None:
        if not settings.public_url or settings.runpage_secret is None:
            return None
        secret = settings.runpage_secret.get_secret_value()
        return cls(settings.public_url, secret, settings.runpage_link_days)
