"""Approver user groups, read from Slack (`usergroups.users.list`, Tier 2: ~20 calls a minute)
and cached, so a burst of clicks costs one lookup per group, not one per click.

- A fresh list (younger than `ttl`) is used as it is: a person who leaves a group loses
  approval within `ttl` seconds.
- One lookup per group is in flight at a time; clicks arriving meanwhile wait for it.
- When Slack rate-limits (429) or fails (5xx, network), no call is made again before its
  Retry-After (or `cooldown`), and the last list is used while it is younger than
  `stale_for`; older than that, membership is unknown (`GroupsUnknown`): the person is told
  to try again, never that they are not an approver.
- The lookups never sleep: the client given has no rate-limit retry handler, so no click
  thread waits on a Retry-After.
- Enterprise Grid: with an org-wide token, usergroups.users.list needs the workspace's
  `team_id` ("Required if org token is used"; a workspace token ignores it), so a list is
  looked up, and cached, per (group, team).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

# Errors that say the group itself is wrong (a runbook, scope or token problem), not that
# Slack is busy: the group counts as empty until the next lookup, the error is logged, and
# `problem()` says what to fix (to the person refused, and in preflight).
ADVICE = {
    "no_such_subteam": "Slack has no such user group: fix approver_groups in the runbook "
    "(a group id starts with S)",
    "missing_scope": "the app lacks the usergroups:read scope: add it to the manifest and "
    "reinstall the app",
    "plan_upgrade_required": "user groups need a paid Slack plan: list the approvers by id",
    "invalid_auth": "Slack refused the bot's token: check SLACK_BOT_TOKEN",
    "not_authed": "the bot sent no token: set SLACK_BOT_TOKEN",
    "token_revoked": "the bot's token was revoked: reinstall the app and set SLACK_BOT_TOKEN",
    "account_inactive": "the bot's token belongs to a deactivated app or user: reinstall it",
}
PERMANENT = frozenset(ADVICE)
UNKNOWN_TEXT = (
    "I couldn't check your group membership with Slack just now; nothing was done. "
    "Try again in a minute."
)


class GroupsUnknown(Exception):
    """The approver groups' members could not be read, and no recent list is at hand."""


class GroupsBroken(Exception):
    """A person found in no approver group while a group cannot be read for good: they may
    be an approver; the message says which group and what to fix."""


@dataclass(frozen=True)
class _Entry:
    users: tuple[str, ...]
    at: float


Fetch = Callable[[str, str | None], list[str]]  # (group, team_id or None) → user ids
Key = tuple[str, str | None]


class GroupCache:
    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl: float = 60.0,
        stale_for: float = 600.0,
        cooldown: float = 10.0,
        wait: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        what: str = "user group",
        permanent: frozenset[str] = PERMANENT,
    ) -> None:
        """`what` names the lists in logs; `permanent`: errors after which a list counts as
        empty until the next lookup. The same cache serves channel member lists (Home)."""
        self.what, self.permanent = what, permanent
        self.fetch, self.ttl, self.stale_for = fetch, ttl, stale_for
        self.cooldown, self.wait, self.clock = cooldown, wait, clock
        self._entries: dict[Key, _Entry] = {}
        self._blocked_until: dict[Key, float] = {}
        self._flights: dict[Key, Future[tuple[str, ...]]] = {}
        self._broken: dict[str, str] = {}  # group → the permanent error of its last lookup
        self._guard = threading.Lock()

    def forget(self) -> None:
        """Drops every list (the next click reads Slack again)."""
        with self._guard:
            self._entries.clear()
            self._blocked_until.clear()

    def problem(self, group: str) -> str | None:
        """Why the group's last lookup could not read it for good (counted as empty), with
        what to fix; None when it was read."""
        with self._guard:
            error = self._broken.get(group)
        if error is None:
            return None
        return f"{self.what} {group} cannot be read ({error}): {ADVICE.get(error, error)}"

    def members(self, group: str, team: str | None = None) -> tuple[str, ...]:
        """The group's user ids (in workspace `team`, for an org-wide token); raises
        GroupsUnknown (see the module's docstring)."""
        key: Key = (group, team)
        with self._guard:
            now = self.clock()
            entry = self._entries.get(key)
            if entry is not None and now - entry.at < self.ttl:
                return entry.users
            if now < self._blocked_until.get(key, 0.0):
                return self._stale(group, entry, now, "Slack asked to wait")
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
        if leader:
            self._lookup(key, flight)
        try:
            return flight.result(timeout=self.wait)
        except Exception as exc:
            with self._guard:
                return self._stale(group, self._entries.get(key), self.clock(), str(exc))

    def _stale(self, group: str, entry: _Entry | None, now: float, why: str) -> tuple[str, ...]:
        if entry is not None and now - entry.at < self.stale_for:
            return entry.users
        raise GroupsUnknown(f"cannot read {self.what} {group}: {why}")

    def _lookup(self, key: Key, flight: Future[tuple[str, ...]]) -> None:
        group = key[0]
        read = True
        try:
            users = tuple(u for u in self.fetch(*key) if isinstance(u, str))
        except SlackApiError as exc:
            resp = exc.response
            error = str(resp.get("error")) if resp is not None else "error"
            if error in self.permanent:
                log.warning(
                    "%s %s cannot be read (%s): counted as empty; %s",
                    self.what,
                    group,
                    error,
                    ADVICE.get(error, "check the runbook and the app's scopes"),
                )
                with self._guard:
                    self._broken[group] = error
                users, read = (), False
            else:
                self._failed(
                    key,
                    flight,
                    f"{error} (HTTP {getattr(resp, 'status_code', '?')})",
                    _retry_after(exc),
                )
                return
        except Exception as exc:  # network, timeouts
            self._failed(key, flight, type(exc).__name__, None)
            return
        with self._guard:
            if read:
                self._broken.pop(group, None)
            self._entries[key] = _Entry(users, self.clock())
            self._blocked_until.pop(key, None)
            del self._flights[key]
        flight.set_result(users)

    def _failed(
        self, key: Key, flight: Future[tuple[str, ...]], why: str, retry_after: float | None
    ) -> None:
        log.warning("cannot read %s %s: %s", self.what, key[0], why)
        with self._guard:
            self._blocked_until[key] = self.clock() + (retry_after or self.cooldown)
            del self._flights[key]
        flight.set_exception(GroupsUnknown(why))


def _retry_after(exc: SlackApiError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return float(value[0] if isinstance(value, list) else value)
            except (TypeError, ValueError):
                return None
    return None
