"""Channel names of the runbook (`channel: "#nostrmaxi-cutover"`) as channel ids.

A name breaks when the channel is renamed, and an org-wide (Enterprise Grid) token cannot
post by name at all (`team_not_found`). So a name is looked up once per process with
conversations.list (public and private channels the bot can see, every page; the
`channels:read` and `groups:read` scopes) and the id is kept: every later post goes to the
id, which survives a rename. `cutover runbook check` warns of each name (write the id).

A name Slack does not list (a private channel the bot is not in, a typo, a channel renamed
before this process looked it up) or a listing Slack refuses (`missing_scope`) leaves the
name as it is, logged once with what to fix; Slack's answer to the post then says the rest.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
LIST_TYPES = "public_channel,private_channel"
LIST_LIMIT = 200  # per page: Slack's pagination guidance is 100-200
LIST_PAGES = 50  # 10,000 channels at most per lookup
RETRY_SECONDS = 300.0  # a name not found is looked up again after this long, not per post


def is_channel_id(channel: str) -> bool:
    return bool(CHANNEL_ID.fullmatch(channel))


def channel_name(channel: str) -> str:
    """`#Nostrmaxi-Cutover` → `nostrmaxi-cutover` (Slack names are lowercase)."""
    return channel.strip().removeprefix("#").lower()


class ChannelDirectory:
    """Names → ids, learned from one conversations.list listing and kept for the process."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._ids: dict[str, str] = {}
        self._missed: dict[str, float] = {}  # name → when a listing did not have it
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def resolve(self, channel: str, team: str | None = None) -> str:
        """The id of `channel` (an id is returned as it is); the name itself when Slack
        does not say (see the module's docstring). `team`: the workspace, for an org token."""
        if not channel or is_channel_id(channel):
            return channel
        name = channel_name(channel)
        with self._lock:
            known = self._ids.get(name)
            if known is not None:
                return known
            missed = self._missed.get(name)
            if missed is not None and time.monotonic() - missed < RETRY_SECONDS:
                return channel
            try:
                self._ids.update(self._list(team))
            except SlackApiError as exc:
                resp = exc.response
                status = resp.status_code if resp is not None else 0
                if status != 429 and status < 500:  # Slack refused: not again for a while
                    self._missed[name] = time.monotonic()
                self._warn(name, _problem(exc))
                return channel
            except Exception as exc:  # Slack unreachable: the next post asks again
                log.warning("cannot list channels to find #%s: %s", name, exc)
                return channel
            known = self._ids.get(name)
            if known is None:
                self._missed[name] = time.monotonic()
                self._warn(
                    name,
                    "Slack lists no such channel I can see (renamed, archived, or private "
                    "without me in it)",
                )
                return channel
            log.info("channel #%s is %s; posting to the id from now on", name, known)
            return known

    def known(self) -> dict[str, str]:
        with self._lock:
            return dict(self._ids)

    def _list(self, team: str | None) -> dict[str, str]:
        """Every channel the token can see, name → id (conversations.list, every page)."""
        found: dict[str, str] = {}
        cursor: str | None = None
        for _ in range(LIST_PAGES):
            args: dict[str, Any] = {
                "types": LIST_TYPES,
                "exclude_archived": True,
                "limit": LIST_LIMIT,
            }
            if cursor:
                args["cursor"] = cursor
            if team:
                args["team_id"] = team
            resp = self.client.conversations_list(**args)
            for ch in resp.get("channels") or []:
                ok = isinstance(ch, dict) and isinstance(ch.get("id"), str)
                if ok and isinstance(ch.get("name"), str):
                    found[ch["name"].lower()] = ch["id"]
            meta = resp.get("response_metadata") or {}
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not cursor:
                break
        return found

    def _warn(self, name: str, problem: str) -> None:
        if name in self._warned:
            return
        self._warned.add(name)
        log.warning(
            "cannot find the id of channel #%s (%s); posting by name, which breaks when it is "
            "renamed and with an org-wide token: write the channel id in the runbook",
            name,
            problem,
        )


def _problem(exc: SlackApiError) -> str:
    resp = exc.response
    error = str((resp.get("error") if resp is not None else None) or "error")
    if error == "missing_scope":
        needed = resp.get("needed") if resp is not None else None
        return (
            f"missing_scope: add {needed or 'channels:read and groups:read'} to the app's "
            "scopes (manifest.yml) and reinstall it"
        )
    return error
