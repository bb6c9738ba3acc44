"""Bolt middleware and the replay guard: who sent a request, and whether it came before.

`Identify` runs after Bolt's signature check and puts the person and the request's
signature in the context; `ReplayGuard` refuses the same signed request twice, after the
ack (bot.slack.dispatch), so no database call delays an answer to Slack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from slack_bolt import BoltContext, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from bot.ports import SEEN, TOO_OLD, SeenRequestsPort
from bot.slack.payloads import actor_from_body

log = logging.getLogger(__name__)

ALREADY_RECEIVED = "That request was already received; nothing was done again."
UNAVAILABLE = "The bot's database is unavailable; nothing was done. Try again."
TOO_OLD_TEXT = (
    "That request was signed too long ago to be told apart from a replay (this bot's clock "
    "may be off); nothing was done. Try again."
)
NO_IDENTITY = "Slack did not say who you are (no team or user id); nothing was done."
Signed = tuple[str | None, str | None]  # a request's signature and its signed timestamp


class ReplayGuard:
    """Refuses the same signed request twice, across restarts and replicas (the database).

    Only requests that passed Bolt's signature check get here, so a forger cannot fill it.
    Socket Mode requests carry no signature and are not checked here. Time is the
    database's (bot.ports.SeenRequestsPort, the store's SeenRequests): replicas' clocks
    may disagree.
    """

    def __init__(self, seen: SeenRequestsPort) -> None:
        self.seen_requests = seen

    def refusal(self, signature: str | None, signed_at: str | None = None) -> str | None:
        """None if this signature is new (it is recorded now); else what to tell the person."""
        if not signature:
            return None
        when = None
        if signed_at and signed_at.isdigit():
            when = datetime.fromtimestamp(int(signed_at), UTC)
        verdict = self.seen_requests.receive(signature, when)
        if verdict == SEEN:
            log.warning("replayed Slack request ignored")
            return ALREADY_RECEIVED
        if verdict == TOO_OLD:
            log.warning("Slack request older than the replay window (by the database's clock)")
            return TOO_OLD_TEXT
        return None


class Identify(Middleware):
    """After Bolt's signature check: puts the person (team or enterprise + user) and the
    request's signature in the context. Replays are refused after the ack, where the work
    starts (`Dispatcher.guard`), so no database call delays an answer to Slack.
    A class, not a function middleware: Bolt builds no keyword arguments for it."""

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # noqa: A002
    ) -> BoltResponse | None:
        sig = (req.headers.get("x-slack-signature") or [""])[0]
        req.context["signature"] = sig or None
        req.context["signed_at"] = (req.headers.get("x-slack-request-timestamp") or [""])[0]
        actor = actor_from_body(req.body)
        if actor is not None:
            req.context["actor"] = actor
        return next()


def signed(context: BoltContext) -> Signed:
    """(signature, its X-Slack-Request-Timestamp) of the request, for the replay guard."""
    signature, at = context.get("signature"), context.get("signed_at")
    return (
        signature if isinstance(signature, str) else None,
        at if isinstance(at, str) else None,
    )
