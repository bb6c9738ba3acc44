"""A local stand-in for Slack: the Web API at /api/<method> and response_url posts at /respond/<id>.

It checks each call as Slack would and answers as Slack does ({"ok": true, "ts": …}):
the bearer token, each method's required arguments, Block Kit limits per field and in
total (`msg_blocks_too_long` past BLOCK_TEXT_LIMIT characters of block text), `msg_too_long`
on chat.update / chat.postEphemeral text over 4,000 characters, channel membership
(`not_in_channel` for a public channel the bot was not invited to, `channel_not_found`
for a DM, a private channel it is not in or an unknown id/name), channels whose admins
restrict posting (`restricted_action`, `restricted_action_read_only_channel`,
`restricted_action_thread_only_channel` for a top-level post,
`restricted_action_non_threadable_channel` for a thread reply,
`restricted_action_thread_locked`), a free workspace past its limit
(`message_limit_exceeded`), a channel *name* with an org-wide token (`team_not_found`)
and each method's rate
tier (HTTP 429 + Retry-After; chat.postMessage one per second per channel with a short
burst). Sources: /work/shared/reference/slack-platform.md A2, A3, A5.

Views as Slack takes them: `views.open` exchanges a trigger_id the stand-in handed out with
a slash command or a click (`trigger()`), once (`exchanged_trigger_id`), within 3 seconds
(`expired_trigger_id`; a trigger it never issued is `invalid_trigger_id`), and refuses a
view past the view object's limits (title/submit/close ≤ 24 characters, ≤ 100 blocks,
private_metadata ≤ 3000, callback_id ≤ 255; docs.slack.dev/reference/views/modal-views)
or malformed (`invalid_arguments` with response_metadata.messages, as Slack answers);
`views.publish` takes a `home` view for one user, `not_enabled` when the app has no Home
tab (views.publish error list, slack-api-ref mirror). On an Enterprise Grid org-wide
install (`org_token=True`), usergroups.users.list without `team_id` is refused
(`missing_argument`): its `team_id` is "Required if org token is used" (docs.slack.dev
usergroups.users.list arguments), and `missing_argument` is "A required argument is
missing." in the usergroups methods' error tables (slack-api-ref mirror, usergroups.list).
conversations.list (pages, `types`, only channels the token can see, `missing_scope`
without channels:read / groups:read) and conversations.info answer as Slack does (see
`_list`); `rename()` renames a channel as an admin would (its id stays).
conversations.members (who is in a channel; the Home tab shows a person the runs of the
channels they are in) takes a channel id only, answers `channel_not_found` for a private
channel the bot is not in, and pages with `limit` (≤ 1000) and `next_cursor` (slack-api-ref
conversations.members; Tier 4).
It records every call, keeps each message's current text and blocks (so a test
reads the parent message and each checkpoint as people would see them), and can
be told to fail the next N calls (of one method) with 429 + Retry-After, 500 or an error.

Also here: signing request bodies exactly as Slack does (v0 HMAC-SHA256), and the
slash-command and block_actions bodies Slack sends.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from phases.checks.base import Clock
from standins.fast_clock import FastClock

# ---------------------------------------------------------------------- Block Kit checks

BLOCK_TYPES = {"section", "header", "context", "actions", "divider", "image", "input", "rich_text"}
INPUT_ELEMENTS = {
    "plain_text_input",
    "static_select",
    "datepicker",
    "timepicker",
    "datetimepicker",
    "conversations_select",
    "channels_select",
    "checkboxes",
}
VIEW_TEXT = 24  # modal title, submit and close: plain_text, at most 24 characters
VIEW_BLOCKS = 100
PRIVATE_METADATA = 3000
CALLBACK_ID = 255
BUTTON_URL = 3000  # a link button's url (docs.slack.dev button element: "Maximum length 3000")
VIEW_BYTES = 250_000  # view_too_large: "greater than 250kb"
TRIGGER_SECONDS = 3.0


def _text_obj(obj: Any, where: str, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: text object missing"]
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    problems = []
    if obj.get("type") not in kinds:
        problems.append(f"{where}: text type must be one of {kinds}, got {obj.get('type')!r}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{where}: text must be a non-empty string")
    elif len(text) > limit:
        problems.append(f"{where}: text is {len(text)} characters, more than {limit}")
    return problems


def _confirm(obj: Any, where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: confirm must be an object"]
    return (
        _text_obj(obj.get("title"), f"{where}.title", 100, plain_only=True)
        + _text_obj(obj.get("text"), f"{where}.text", 300)
        + _text_obj(obj.get("confirm"), f"{where}.confirm", 30, plain_only=True)
        + _text_obj(obj.get("deny"), f"{where}.deny", 30, plain_only=True)
        + (
            [f"{where}: style {obj['style']!r}"]
            if "style" in obj and obj["style"] not in ("primary", "danger")
            else []
        )
    )


def _option(obj: Any, where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: option must be an object"]
    problems = _text_obj(obj.get("text"), f"{where}.text", 75)
    value = obj.get("value")
    if not isinstance(value, str) or not value or len(value) > 150:
        problems.append(f"{where}: option value must be 1-150 characters")
    if "description" in obj:
        problems += _text_obj(obj["description"], f"{where}.description", 75)
    return problems


def _element(el: Any, where: str) -> list[str]:
    if not isinstance(el, dict):
        return [f"{where}: element must be an object"]
    problems = []
    action_id = el.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > 255):
        problems.append(f"{where}: action_id longer than 255 characters")
    kind = el.get("type")
    if kind == "button":
        problems += _text_obj(el.get("text"), f"{where}.text", 75, plain_only=True)
        value = el.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            problems.append(f"{where}: button value longer than 2000 characters")
        if "style" in el and el["style"] not in ("primary", "danger"):
            problems.append(f"{where}: button style {el['style']!r}")
        url = el.get("url")
        if "url" in el and (not isinstance(url, str) or not 1 <= len(url) <= BUTTON_URL):
            problems.append(f"{where}: button url must be 1-{BUTTON_URL} characters")
        if "confirm" in el:
            problems += _confirm(el["confirm"], f"{where}.confirm")
    elif kind == "checkboxes":
        options = el.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= 10:
            problems.append(f"{where}: checkboxes need 1-10 options")
            options = []
        for i, opt in enumerate(options):
            problems += _option(opt, f"{where}.options[{i}]")
        for i, opt in enumerate(el.get("initial_options") or []):
            if opt not in options:
                problems.append(f"{where}.initial_options[{i}] does not match an option exactly")
        if "initial_options" in el and not el["initial_options"]:
            problems.append(f"{where}: initial_options must not be empty")
        if "confirm" in el:
            problems += _confirm(el["confirm"], f"{where}.confirm")
    elif kind in ("image", "mrkdwn", "plain_text"):
        pass
    elif kind in INPUT_ELEMENTS:
        problems += _input_element(el, where)
    else:
        problems.append(f"{where}: unsupported element type {kind!r}")
    return problems


def _input_element(el: dict[str, Any], where: str) -> list[str]:
    """The elements of a modal's input blocks (Block Kit element references)."""
    kind, problems = el["type"], []
    if "placeholder" in el:
        problems += _text_obj(el["placeholder"], f"{where}.placeholder", 150, plain_only=True)
    if kind == "plain_text_input":
        for key, top in (("min_length", 3000), ("max_length", 3000)):
            n = el.get(key)
            if n is not None and (not isinstance(n, int) or not 0 <= n <= top):
                problems.append(f"{where}: {key} must be 0-{top}")
        initial = el.get("initial_value")
        if initial is not None and not isinstance(initial, str):
            problems.append(f"{where}: initial_value must be a string")
    elif kind == "static_select":
        options = el.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= 100:
            problems.append(f"{where}: static_select needs 1-100 options")
            options = []
        for i, opt in enumerate(options):
            problems += _option(opt, f"{where}.options[{i}]")
        if "initial_option" in el and el["initial_option"] not in options:
            problems.append(f"{where}.initial_option does not match an option exactly")
    elif kind == "datepicker" and "initial_date" in el:
        problems += (
            []
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(el["initial_date"]))
            else [f"{where}: initial_date must be YYYY-MM-DD"]
        )
    elif kind == "datetimepicker" and "initial_date_time" in el:
        # "a UNIX timestamp in seconds … in the format of 10 digits" (datetime picker element)
        initial = el["initial_date_time"]
        ok = isinstance(initial, int) and not isinstance(initial, bool)
        problems += (
            []
            if ok and 10**9 <= initial < 10**10
            else [f"{where}: initial_date_time must be a 10-digit UNIX time (an integer)"]
        )
    elif kind == "timepicker" and "initial_time" in el:
        problems += (
            []
            if re.fullmatch(r"\d{2}:\d{2}", str(el["initial_time"]))
            else [f"{where}: initial_time must be HH:mm"]
        )
    return problems


# What the SDK's own models fail with: a validator's SlackObjectFormationError, or a
# constructor given a value of the wrong shape.
SDK_ERRORS = (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError)


def sdk_block_problems(blocks: list[Any]) -> list[str]:
    """Each block as slack_sdk's Block Kit models read it (`Block.parse`, then `to_dict()`,
    which runs every validator of the block and of what it holds): a field past its length,
    too many elements, a block type the SDK does not know. A second opinion, kept apart from
    the hand-written checks above, so a limit either side misses still fails a test."""
    problems = []
    for i, raw in enumerate(blocks):
        where = f"blocks[{i}]"
        try:
            parsed = Block.parse(raw)
            if parsed is None:
                problems.append(f"{where}: slack_sdk: unknown block type")
                continue
            parsed.to_dict()
        except SDK_ERRORS as exc:
            problems.append(f"{where}: slack_sdk: {exc}")
    return problems


def sdk_view_problems(view: dict[str, Any]) -> list[str]:
    """The view as slack_sdk's `View` model reads it (title/submit/close ≤ 24 characters,
    1-100 blocks, private_metadata ≤ 3000, callback_id ≤ 255, and every block's own
    validators), in Slack's style."""
    try:
        View(**view).to_dict()
    except SDK_ERRORS as exc:
        return [f"[ERROR] slack_sdk: {exc} [json-pointer:/view]"]
    return []


def respond_problem(args: dict[str, Any]) -> str | None:
    """What Slack answers a response_url post it refuses (the body of its 400), or None."""
    blocks = args.get("blocks")
    if not args.get("text") and not blocks and not args.get("delete_original"):
        return "no_text"
    if blocks is not None and block_problems(blocks):
        return "invalid_blocks"
    return None


def block_problems(blocks: Any, max_blocks: int = 50) -> list[str]:
    """What Slack would reject in a message's blocks (invalid_blocks), as readable lines;
    `max_blocks`: 50 in a message, 100 in a modal or a Home tab. Checked twice: by hand,
    field by field, and by slack_sdk's Block Kit models (`sdk_block_problems`)."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return ["blocks: not JSON"]
    if not isinstance(blocks, list):
        return ["blocks: must be an array"]
    problems = sdk_block_problems(blocks)
    if len(blocks) > max_blocks:
        problems.append(f"blocks: {len(blocks)} blocks, more than {max_blocks}")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            problems.append(f"{where}: unknown block type")
            continue
        bid = block.get("block_id")
        if bid is not None:
            if not isinstance(bid, str) or not bid or len(bid) > 255:
                problems.append(f"{where}: block_id must be 1-255 characters")
            elif bid in block_ids:
                problems.append(f"{where}: duplicate block_id {bid!r}")
            else:
                block_ids.add(bid)
        kind = block["type"]
        if kind == "input":
            problems += _text_obj(block.get("label"), f"{where}.label", 2000, plain_only=True)
            if "hint" in block:
                problems += _text_obj(block["hint"], f"{where}.hint", 2000, plain_only=True)
            element = block.get("element")
            if not isinstance(element, dict) or element.get("type") not in INPUT_ELEMENTS:
                problems.append(f"{where}: input needs an input element")
            else:
                problems += _element(element, f"{where}.element")
        elif kind == "header":
            problems += _text_obj(block.get("text"), f"{where}.text", 150, plain_only=True)
        elif kind == "section":
            if "text" in block or "fields" not in block:
                problems += _text_obj(block.get("text"), f"{where}.text", 3000)
            fields = block.get("fields") or []
            if len(fields) > 10:
                problems.append(f"{where}: more than 10 fields")
            for j, f in enumerate(fields):
                problems += _text_obj(f, f"{where}.fields[{j}]", 2000)
            if "accessory" in block:
                problems += _element(block["accessory"], f"{where}.accessory")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}: context needs 1-10 elements")
                elements = []
            for j, el in enumerate(elements):
                if isinstance(el, dict) and el.get("type") in ("mrkdwn", "plain_text"):
                    problems += _text_obj(el, f"{where}.elements[{j}]", 3000)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                problems.append(f"{where}: actions need 1-25 elements")
                elements = []
            seen: set[str] = set()
            for j, el in enumerate(elements):
                problems += _element(el, f"{where}.elements[{j}]")
                aid = el.get("action_id") if isinstance(el, dict) else None
                if aid is not None:
                    if aid in seen:
                        problems.append(f"{where}: duplicate action_id {aid!r} in one block")
                    seen.add(aid)
    return problems


# Slack's cumulative limit is undocumented: rejections are reported at 13,297 characters
# of markdown-block text (bolt-js #2509, a maintainer: "12,000 text characters with a
# buffer for block containers") and at 11,341 summed `.text` characters (bolt-js #2867).
# The stand-in refuses above 11,000 — below the lowest reported rejection — so a message
# it accepts is one Slack is reported to accept.
BLOCK_TEXT_LIMIT = 11_000
UPDATE_TEXT_LIMIT = 4_000  # chat.update / chat.postEphemeral `text` (msg_too_long)
POST_TEXT_LIMIT = 40_000


def view_problems(view: Any, kind: str) -> list[str]:
    """What Slack refuses in a view (`modal` for views.open, `home` for views.publish), in
    Slack's own style: "[ERROR] … [json-pointer:/view/…]"."""
    if not isinstance(view, dict):
        return ["[ERROR] view must be a JSON object [json-pointer:/view]"]
    problems: list[str] = []

    def err(text: str, pointer: str) -> None:
        problems.append(f"[ERROR] {text} [json-pointer:/view{pointer}]")

    if view.get("type") != kind:
        err(f"type must be {kind!r}", "/type")
    if kind == "modal":
        for key in ("title", "submit", "close"):
            if key == "title" or key in view:
                for p in _text_obj(view.get(key), key, VIEW_TEXT, plain_only=True):
                    err(p, f"/{key}")
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and "submit" not in view:
            err("submit is required when an input block is in the view", "/submit")
    metadata = view.get("private_metadata")
    if metadata is not None and (not isinstance(metadata, str) or len(metadata) > PRIVATE_METADATA):
        err(f"must be a string of at most {PRIVATE_METADATA} characters", "/private_metadata")
    for key in ("callback_id", "external_id"):
        value = view.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > CALLBACK_ID):
            err(f"must be a string of at most {CALLBACK_ID} characters", f"/{key}")
    if not isinstance(view.get("blocks"), list):
        err("blocks must be an array", "/blocks")
    else:
        found = block_problems(view["blocks"], max_blocks=VIEW_BLOCKS)
        for p in found:
            err(p, "/blocks")
        if not found:  # the blocks' own SDK problems are named above, block by block
            problems += sdk_view_problems(view)
    return problems


def block_text_chars(blocks: Any) -> int:
    """Every `text` string of a block tree, summed (how the reports above count)."""
    if isinstance(blocks, dict):
        return sum(
            len(v) if k == "text" and isinstance(v, str) else block_text_chars(v)
            for k, v in blocks.items()
        )
    if isinstance(blocks, list):
        return sum(block_text_chars(v) for v in blocks)
    return 0


# ---------------------------------------------------------------------- rate tiers

PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
TIERS = {  # slack-api-ref docs.slack.dev/methods/*.json rate_limits
    "chat.update": 3,
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "usergroups.users.list": 2,
    "conversations.members": 4,
    "conversations.list": 2,
    "conversations.info": 3,
    "auth.test": 4,
    "views.open": 4,
    "views.publish": 4,
}
POST_BURST = 3  # chat.postMessage: "1 per second; short bursts >1 allowed … no guarantee"


class _Bucket:
    """A token bucket: `capacity` calls at once, refilled at `rate` per second of `clock`."""

    def __init__(self, capacity: float, rate: float, clock: Clock) -> None:
        self.capacity, self.rate, self.clock = capacity, rate, clock
        self.tokens, self.at = capacity, clock.monotonic()

    def take(self) -> int | None:
        """None if the call may go; otherwise the Retry-After (whole seconds) to send."""
        now = self.clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return max(1, math.ceil((1 - self.tokens) / self.rate))


@dataclass
class Channel:
    id: str
    name: str
    private: bool = False
    member: bool = True  # the bot was invited
    members: tuple[str, ...] = ()  # the people in it (conversations.members)
    # How the workspace's admins set the channel up; each is an error Slack answers a post
    # with (chat.postMessage error list, A5): "read_only" (restricted_action_read_only_channel),
    # "restricted" (restricted_action: posting limited to some members), "thread_only"
    # (restricted_action_thread_only_channel: no top-level posts), "non_threadable"
    # (restricted_action_non_threadable_channel: no thread replies).
    posting: str | None = None
    locked_threads: set[str] = field(default_factory=set)  # restricted_action_thread_locked
    archived: bool = False


# ---------------------------------------------------------------------- the stand-in


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    status: int
    answer: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # on the stand-in's clock


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    updates: int = 0
    deleted: bool = False

    def all_text(self) -> str:
        """Every text a person sees in the message, joined (for assertions)."""
        out: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("text"), str):
                    out.append(node["text"])
                for k, v in node.items():
                    if k != "text" or not isinstance(v, str):
                        walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(self.blocks)
        return "\n".join(out) if out else self.text

    def element(self, action_id: str) -> tuple[str, dict[str, Any]]:
        """(block_id, element) of the first interactive element with this action_id."""
        for block in self.blocks:
            for el in block.get("elements", []) if block.get("type") == "actions" else []:
                if el.get("action_id") == action_id:
                    return block.get("block_id", ""), el
        raise LookupError(f"no {action_id} in message {self.ts}")

    def action_ids(self) -> list[str]:
        return [
            el.get("action_id", "")
            for b in self.blocks
            if b.get("type") == "actions"
            for el in b.get("elements", [])
        ]


@dataclass
class OpenedView:
    """A modal Slack shows a person (views.open), as the app sent it."""

    id: str
    user: str
    team: str
    view: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    def input_blocks(self) -> list[dict[str, Any]]:
        return [b for b in self.view.get("blocks", []) if b.get("type") == "input"]

    def text(self) -> str:
        return Message("", "", "", self.view.get("blocks", []), None).all_text()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


REQUIRED = {
    "chat.postMessage": ("channel",),
    "chat.update": ("channel", "ts"),
    "chat.postEphemeral": ("channel", "user"),
    "chat.delete": ("channel", "ts"),
    "usergroups.users.list": ("usergroup",),
    "conversations.members": ("channel",),
    "conversations.list": (),
    "conversations.info": ("channel",),
    "auth.test": (),
    "apps.connections.open": (),
    "views.open": ("view",),
    "views.publish": ("user_id", "view"),
}


DEFAULT_CHANNELS = (Channel("C0CUTOVER", "cutover"), Channel("C0LAUNCH", "launch"))
# The manifest's bot scopes (manifest.yml); a test takes one away to see Slack's answer.
DEFAULT_SCOPES = frozenset(
    {"commands", "chat:write", "usergroups:read", "channels:read", "groups:read"}
)
LIST_TYPES = ("public_channel", "private_channel", "mpim", "im")


class SlackStandIn:
    """channels: the workspace's channels (the bot is in #cutover and #launch by default);
    rate_limits: False only for a bench that measures something else. `clock`: what the
    rate limits and each call's `at` are measured on; by default a `FastClock`, which a bot
    given the same clock (tests.slack_harness) fast-forwards as it waits; a test of pacing
    in wall time passes `SystemClock()`. The rate limits are the workspace's: every
    replica of the bot talking to one stand-in shares them, as on Slack."""

    def __init__(
        self,
        token: str,
        *,
        team_id: str = "T1",
        bot_user: str = "UBOT",
        channels: tuple[Channel, ...] = DEFAULT_CHANNELS,
        rate_limits: bool = True,
        org_token: bool = False,
        home_tab: bool = True,
        scopes: frozenset[str] = DEFAULT_SCOPES,
        clock: Clock | None = None,
    ) -> None:
        self.token, self.team_id, self.bot_user = token, team_id, bot_user
        self.clock: Clock = clock or FastClock()
        self.scopes = set(scopes)  # the bot token's scopes (missing_scope without one)
        self.org_token = org_token  # an Enterprise Grid org-wide install's token
        self.home_tab = home_tab  # the manifest's features.app_home.home_tab_enabled
        self.message_limit_reached = False  # a free workspace past its message limit
        self.slow: dict[str, float] = {}  # method → seconds before it answers
        self.triggers: dict[str, tuple[float, str, str]] = {}  # id → (issued, user, team)
        self.used_triggers: set[str] = set()
        self.views: dict[str, OpenedView] = {}
        self.homes: dict[str, dict[str, Any]] = {}  # user → the Home tab last published
        # Every Home published, in the order Slack applied them: (user, view, its hash).
        self.published: list[tuple[str, dict[str, Any], str]] = []
        self._hashes: dict[str, str] = {}  # user → the hash of their Home view (views.publish)
        # method → seconds the next call of it is held before Slack applies it (a slow call
        # on its way), and an event set once that call arrived.
        self._held: dict[str, float] = {}
        self.held_arrived = threading.Event()
        self.calls: list[Call] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []  # response_url posts
        self.refused_responses: list[tuple[str, dict[str, Any]]] = []  # answered 400
        self.ephemerals: list[dict[str, Any]] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.problems: list[str] = []
        self.usergroups: dict[str, list[str]] = {}
        self.channels: dict[str, Channel] = {c.id: copy.copy(c) for c in channels}
        self.rate_limits = rate_limits
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._ghosts = 0
        self.app_token: str | None = None  # set by tests.socket_standin
        self.socket_url: str | None = None
        self._fail: deque[tuple[int, int | None, str | None, str | None]] = deque()
        self._lock = threading.Lock()
        self._clock = itertools.count(1)
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(  # a short poll: stop() returns in ~10 ms, not 0.5 s
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # ------------------------------------------------------------------ control

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, key: str) -> str:
        return f"{self.base}/respond/{key}"

    def start(self) -> SlackStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(
        self,
        n: int,
        status: int = 429,
        retry_after: int | None = 1,
        *,
        method: str | None = None,
        error: str | None = None,
    ) -> None:
        """The next n Web API calls (of `method`, if given) answer `status` (429 with
        Retry-After, 500), or HTTP 200 with `{"ok": false, "error": error}`."""
        with self._lock:
            self._fail.extend([(status, retry_after, method, error)] * n)

    def take_then_fail_next_post(self) -> None:
        """The next chat.postMessage is posted, but answered 500 (as when Slack's answer is
        lost on the way): a retry posts the message a second time."""
        with self._lock:
            self._ghosts += 1

    def hold_next(self, method: str, seconds: float) -> None:
        """The next call of `method` waits `seconds` on its way before Slack applies it (a
        slow network, a slow Slack): a later call may overtake it. `held_arrived` is set
        when it arrives."""
        with self._lock:
            self._held[method] = seconds
            self.held_arrived.clear()

    def trigger(self, user: str, team: str = "T1") -> str:
        """A trigger_id as Slack puts in a slash command or a click: good once, for 3 s."""
        with self._lock:
            tid = f"{int(time.time())}.{next(self._clock)}.{secrets.token_hex(8)}"
            self.triggers[tid] = (time.monotonic(), user, team)
            return tid

    def opened(self, user: str | None = None) -> list[OpenedView]:
        """The modals opened so far (for `user`), oldest first."""
        with self._lock:
            return [copy.deepcopy(v) for v in self.views.values() if user is None or v.user == user]

    def home(self, user: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self.homes.get(user))

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        private: bool = False,
        member: bool = True,
        members: tuple[str, ...] = (),
        posting: str | None = None,
    ) -> None:
        with self._lock:
            self.channels[channel_id] = Channel(
                channel_id, name, private, member, members=members, posting=posting
            )

    def set_members(self, channel_id: str, *users: str) -> None:
        """Who is in the channel (people join and leave; the bot's own membership aside)."""
        with self._lock:
            self.channels[channel_id].members = tuple(users)

    def admin_delete(self, ref: str) -> None:
        """An admin (or a retention policy) deletes a message: chat.update then answers
        `message_not_found`."""
        channel, _, ts = ref.partition(":")
        with self._lock:
            self.messages[(channel, ts)].deleted = True

    def rename(self, channel_id: str, name: str) -> None:
        """An admin renames the channel: its id stays, its old #name finds nothing."""
        with self._lock:
            self.channels[channel_id].name = name

    def invite(self, channel_id: str) -> None:
        """`/invite @cutover-bot` in that channel."""
        with self._lock:
            self.channels[channel_id].member = True

    # ------------------------------------------------------------------ reading

    def api_calls(self, method: str | None = None, ok: bool | None = None) -> list[Call]:
        with self._lock:
            return [
                c
                for c in self.calls
                if (method is None or c.method == method)
                and (ok is None or bool(c.answer.get("ok")) == ok)
            ]

    def message(self, ref: str) -> Message:
        """A snapshot of the message as it is now (as a person's client last drew it)."""
        channel, _, ts = ref.partition(":")
        with self._lock:
            return copy.deepcopy(self.messages[(channel, ts)])

    def parents(self) -> list[Message]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self.messages.values()
                if m.thread_ts is None and not m.deleted
            ]

    def thread(self, ref: str) -> list[Message]:
        channel, _, ts = ref.partition(":")
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self.messages.values()
                if m.channel == channel and m.thread_ts == ts and not m.deleted
            ]

    def replies(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for k, body in self.responses if k == key]

    def everything_sent(self) -> str:
        """Every argument of every call and every response_url post, as one string."""
        with self._lock:
            return json.dumps(
                [c.args for c in self.calls] + [b for _, b in self.responses], ensure_ascii=False
            )

    # ------------------------------------------------------------------ the API

    def _new_ts(self) -> str:
        return f"{1_700_000_000 + next(self._clock)}.{next(self._clock):06d}"

    def _channel(self, channel: str) -> Channel | None:
        """The channel an id or a #name names, or None (channel_not_found)."""
        if channel.startswith("#"):
            name = channel[1:].lower()
            return next((c for c in self.channels.values() if c.name == name), None)
        return self.channels.get(channel)

    def _limited(self, method: str, args: dict[str, Any]) -> int | None:
        """Retry-After seconds if this call is over its method's rate tier."""
        if not self.rate_limits:
            return None
        if method == "chat.postMessage":  # per channel
            key, capacity, rate = (method, str(args.get("channel"))), float(POST_BURST), 1.0
        elif method in TIERS:  # per method, for the whole workspace
            per_minute = PER_MINUTE[TIERS[method]]
            key, capacity, rate = (method, ""), float(per_minute), per_minute / 60
        else:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, rate, self.clock)
        return bucket.take()

    def _forced(self, method: str) -> tuple[int, int | None, str | None] | None:
        for i, (status, retry_after, only, error) in enumerate(self._fail):
            if only is None or only == method:
                del self._fail[i]
                return status, retry_after, error
        return None

    def api(self, method: str, args: dict[str, Any], auth: str | None) -> tuple[int, dict, dict]:
        """(status, headers, answer) for one Web API call."""
        with self._lock:
            forced = self._forced(method)
            retry_after = None if forced else self._limited(method, args)
            if forced or retry_after is not None:
                status, error = (forced[0], forced[2]) if forced else (429, None)
                if forced:
                    retry_after = forced[1]
                headers = (
                    {"Retry-After": str(retry_after)}
                    if status == 429 and retry_after is not None
                    else {}
                )
                error = error or ("ratelimited" if status == 429 else "fatal_error")
                answer = {"ok": False, "error": error}
                self.calls.append(Call(method, args, status, answer, self.clock.monotonic()))
                return status, headers, answer
            answer = self._answer(method, args, auth)
            if self._ghosts and method == "chat.postMessage" and answer.get("ok"):
                self._ghosts -= 1  # taken, but the answer is lost: the caller sees a 500
                answer = {"ok": False, "error": "fatal_error"}
                self.calls.append(Call(method, args, 500, answer, self.clock.monotonic()))
                return 500, {}, answer
            if not answer.get("ok"):
                self.problems.append(f"{method}: {answer.get('error')} {answer.get('errors', '')}")
            self.calls.append(Call(method, args, 200, answer, self.clock.monotonic()))
            return 200, {}, answer

    def _answer(self, method: str, args: dict[str, Any], auth: str | None) -> dict[str, Any]:
        token = (auth or "").removeprefix("Bearer ").strip() or args.get("token")
        if not token:
            return {"ok": False, "error": "not_authed"}
        if method == "apps.connections.open":  # Socket Mode: an app-level token (xapp-…)
            if not self.app_token or token != self.app_token or not self.socket_url:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, "url": self.socket_url}
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}
        if method not in REQUIRED:
            return {"ok": False, "error": "unknown_method"}
        missing = [a for a in REQUIRED[method] if not args.get(a)]
        if missing:
            return {"ok": False, "error": "invalid_arguments", "errors": [f"missing {missing}"]}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://standin.slack.test/",
                "team": "Stand-in",
                "user": "cutover",
                "team_id": self.team_id,
                "user_id": self.bot_user,
                "bot_id": "BSTANDIN",
                "is_enterprise_install": False,
            }
        if method in ("views.open", "views.publish"):
            return self._views(method, args)
        if method == "usergroups.users.list":
            if self.org_token and not args.get("team_id"):
                # An org-wide token must say which workspace (see the module's docstring).
                return {
                    "ok": False,
                    "error": "missing_argument",
                    "response_metadata": {"messages": ["[ERROR] missing required field: team_id"]},
                }
            group = args["usergroup"]
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(self.usergroups[group])}
        if method == "conversations.list":
            return self._list(args)
        if self.org_token and str(args["channel"]).startswith("#"):
            # An org-wide token cannot tell which workspace a channel *name* is in.
            return {"ok": False, "error": "team_not_found"}
        if method == "conversations.members":
            return self._members(args)
        if method == "conversations.info":
            return self._info(args)
        found = self._channel(str(args["channel"]))
        if found is None:
            return {"ok": False, "error": "channel_not_found"}
        channel = found.id
        if method in ("chat.postMessage", "chat.postEphemeral") and not found.member:
            # A private channel or a DM the bot is not in looks like no channel at all.
            private = found.private or channel.startswith(("D", "G"))
            return {"ok": False, "error": "channel_not_found" if private else "not_in_channel"}
        if method == "chat.postMessage":
            refused = self._posting_refused(found, args.get("thread_ts"))
            if refused:
                return {"ok": False, "error": refused}
        if method == "chat.delete":
            msg = self.messages.get((channel, str(args["ts"])))
            if msg is None or msg.deleted:
                return {"ok": False, "error": "message_not_found"}
            msg.deleted = True
            return {"ok": True, "channel": channel, "ts": msg.ts}
        text, blocks = args.get("text"), args.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        limit = POST_TEXT_LIMIT if method == "chat.postMessage" else UPDATE_TEXT_LIMIT
        if text is not None and (not isinstance(text, str) or len(text) > limit):
            return {"ok": False, "error": "msg_too_long"}
        if blocks is not None:
            problems = block_problems(blocks)
            if problems:
                return {"ok": False, "error": "invalid_blocks", "errors": problems}
            if block_text_chars(blocks) > BLOCK_TEXT_LIMIT:
                return {"ok": False, "error": "msg_blocks_too_long"}
        if method == "chat.postEphemeral":
            self.ephemerals.append({"channel": channel, **args})
            return {"ok": True, "message_ts": self._new_ts()}
        if method == "chat.postMessage":
            thread_ts = args.get("thread_ts")
            if thread_ts and (channel, thread_ts) not in self.messages:
                return {"ok": False, "error": "thread_not_found"}
            ts = self._new_ts()
            msg = Message(channel, ts, text or "", blocks or [], thread_ts)
            self.messages[(channel, ts)] = msg
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"type": "message", "text": msg.text, "ts": ts, "bot_id": "BSTANDIN"},
            }
        # chat.update
        msg = self.messages.get((channel, str(args["ts"])))
        if msg is None or msg.deleted:
            return {"ok": False, "error": "message_not_found"}
        msg.text, msg.blocks, msg.updates = text or "", blocks or [], msg.updates + 1
        return {"ok": True, "channel": channel, "ts": msg.ts, "text": msg.text}

    def _posting_refused(self, found: Channel, thread_ts: Any) -> str | None:
        """The error Slack answers a post in a channel its admins restricted, or None."""
        if self.message_limit_reached:
            return "message_limit_exceeded"  # a free workspace past its message limit
        if found.posting == "read_only":
            return "restricted_action_read_only_channel"
        if found.posting == "restricted":
            return "restricted_action"
        if found.posting == "thread_only" and not thread_ts:
            return "restricted_action_thread_only_channel"
        if found.posting == "non_threadable" and thread_ts:
            return "restricted_action_non_threadable_channel"
        if thread_ts and str(thread_ts) in found.locked_threads:
            return "restricted_action_thread_locked"
        return None

    def _missing(self, scope: str) -> dict[str, Any]:
        return {
            "ok": False,
            "error": "missing_scope",
            "needed": scope,
            "provided": ",".join(sorted(self.scopes)),
        }

    def _visible(self, found: Channel) -> bool:
        """Public channels are all listed; a private one only to its members."""
        return not found.private or found.member

    def _conversation(self, found: Channel) -> dict[str, Any]:
        return {
            "id": found.id,
            "name": found.name,
            "is_channel": not found.private,
            "is_group": False,
            "is_private": found.private,
            "is_archived": found.archived,
            "is_member": found.member,
            "context_team_id": self.team_id,
        }

    def _list(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.list as Slack answers it (slack-api-ref conversations.list; Tier 2):
        `types` a comma-separated subset of public_channel, private_channel, mpim, im
        (default public_channel; anything else `invalid_types`); each type needs its read
        scope (`missing_scope` with `needed`); private channels only the bot is in; pages of
        `limit` (1-1000, default 100) with `response_metadata.next_cursor` (empty on the
        last page; a cursor it never gave is `invalid_cursor`); `exclude_archived`. An
        org-wide token must say which workspace (`team_id`: `missing_argument`)."""
        if self.org_token and not args.get("team_id"):
            return {
                "ok": False,
                "error": "missing_argument",
                "response_metadata": {"messages": ["[ERROR] missing required field: team_id"]},
            }
        types = [t.strip() for t in str(args.get("types") or "public_channel").split(",")]
        if not types or any(t not in LIST_TYPES for t in types):
            return {"ok": False, "error": "invalid_types"}
        for kind, scope in (
            ("public_channel", "channels:read"),
            ("private_channel", "groups:read"),
        ):
            if kind in types and scope not in self.scopes:
                return self._missing(scope)
        try:
            limit = int(args.get("limit") or 100)
        except ValueError:
            return {"ok": False, "error": "invalid_limit"}
        if not 1 <= limit <= 1000:
            return {"ok": False, "error": "invalid_limit"}
        cursor = str(args.get("cursor") or "")
        if cursor and not re.fullmatch(r"list:\d+", cursor):
            return {"ok": False, "error": "invalid_cursor"}
        start = int(cursor.removeprefix("list:")) if cursor else 0
        archived_out = str(args.get("exclude_archived", "")).lower() in ("1", "true")
        shown = [
            c
            for c in sorted(self.channels.values(), key=lambda c: c.id)
            if c.id.startswith(("C", "G"))
            and ("private_channel" if c.private else "public_channel") in types
            and self._visible(c)
            and not (archived_out and c.archived)
        ]
        page = shown[start : start + limit]
        more = start + limit < len(shown)
        return {
            "ok": True,
            "channels": [self._conversation(c) for c in page],
            "response_metadata": {"next_cursor": f"list:{start + limit}" if more else ""},
        }

    def _info(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.info: an id only; a private channel the bot is not in, or a name, is
        `channel_not_found`; the read scope of the channel's kind is needed."""
        found = self.channels.get(str(args["channel"]))
        if found is None or not self._visible(found):
            return {"ok": False, "error": "channel_not_found"}
        scope = "groups:read" if found.private else "channels:read"
        if scope not in self.scopes:
            return self._missing(scope)
        return {"ok": True, "channel": self._conversation(found)}

    def _members(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.members as Slack answers it: an id only (a #name is no channel), a
        private channel the bot is not in is `channel_not_found`, a DM has no member list
        for this method here, and the list comes in pages (`limit` ≤ 1000, default 100;
        `response_metadata.next_cursor` empty on the last page)."""
        found = self.channels.get(str(args["channel"]))
        if found is None or (found.private and not found.member):
            return {"ok": False, "error": "channel_not_found"}
        if found.id.startswith("D"):
            return {"ok": False, "error": "method_not_supported_for_channel_type"}
        try:
            limit = int(args.get("limit") or 100)
            start = int(str(args.get("cursor") or "0").removeprefix("members:"))
        except ValueError:
            return {"ok": False, "error": "invalid_cursor"}
        if not 1 <= limit <= 1000:
            return {"ok": False, "error": "invalid_limit"}
        page = list(found.members[start : start + limit])
        more = start + limit < len(found.members)
        return {
            "ok": True,
            "members": page,
            "response_metadata": {"next_cursor": f"members:{start + limit}" if more else ""},
        }

    def _views(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        raw = args["view"]
        if isinstance(raw, str):  # a form-encoded call sends the view as a JSON string
            try:
                view = json.loads(raw)
            except ValueError:
                return {"ok": False, "error": "invalid_arguments"}
        else:  # a JSON body (slack_sdk's views_open/views_publish) carries it as an object
            view = raw
        if len(json.dumps(view, ensure_ascii=False).encode()) > VIEW_BYTES:
            return {"ok": False, "error": "view_too_large"}
        problems = view_problems(view, "modal" if method == "views.open" else "home")
        if problems:
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": problems},
            }
        if method == "views.publish":
            user = str(args["user_id"])
            if not re.fullmatch(r"[UW][A-Z0-9]{1,20}", user):
                return {
                    "ok": False,
                    "error": "invalid_arguments",
                    "response_metadata": {"messages": ["invalid `user_id`"]},
                }
            if not self.home_tab:
                return {"ok": False, "error": "not_enabled"}
            # `hash`: "A string that represents view state to protect against possible race
            # conditions"; hash_conflict: "the provided hash doesn't match the current stored
            # value" (views.publish arguments and errors). Each publish gets a new hash.
            given = args.get("hash")
            if given and given != self._hashes.get(user):
                return {"ok": False, "error": "hash_conflict"}
            new_hash = f"{int(time.time())}.{next(self._clock)}"
            self._hashes[user] = new_hash
            self.homes[user] = view
            self.published.append((user, view, new_hash))
            return {"ok": True, "view": {**view, "id": f"VH{user}", "hash": new_hash}}
        tid = args.get("trigger_id")
        if not tid:
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": ["[ERROR] missing required field: trigger_id"]},
            }
        issued = self.triggers.get(str(tid))
        if not re.fullmatch(r"\d+\.\d+\.[0-9a-f]+", str(tid)) or issued is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        if tid in self.used_triggers:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if time.monotonic() - issued[0] > TRIGGER_SECONDS:
            return {"ok": False, "error": "expired_trigger_id"}
        self.used_triggers.add(str(tid))
        view_id = f"V{next(self._clock):08d}"
        self.views[view_id] = OpenedView(view_id, issued[1], issued[2], view)
        return {"ok": True, "view": {**view, "id": view_id, "team_id": issued[2]}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # As Slack's edge (and any web server) does: an answer's body is not held
                # back behind its headers on a kept-alive connection (Nagle's algorithm
                # against the client's delayed ACK: up to 40 ms a call).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def _args(self) -> dict[str, Any]:
                parts = urlsplit(self.path)
                args: dict[str, Any] = dict(parse_qsl(parts.query))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                if raw and "json" in ctype:
                    args.update(json.loads(raw))
                elif raw:
                    args.update(dict(parse_qsl(raw.decode())))
                return args

            def _send(self, status: int, answer: Any, headers: dict | None = None) -> None:
                data = (
                    json.dumps(answer).encode() if not isinstance(answer, str) else answer.encode()
                )
                self.send_response(status)
                ctype = (
                    "application/json; charset=utf-8"
                    if not isinstance(answer, str)
                    else "text/plain"
                )
                self.send_header("Content-Type", ctype)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self.do_POST()

            def do_POST(self) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                args = self._args()
                if path.startswith("/api/"):
                    pause = standin.slow.get(path[len("/api/") :], 0.0)
                    with standin._lock:
                        held = standin._held.pop(path[len("/api/") :], 0.0)
                    if held:
                        standin.held_arrived.set()
                    if pause or held:  # a slow Slack (lookups past a trigger's 3 s)
                        time.sleep(pause + held)
                    status, headers, answer = standin.api(
                        path[len("/api/") :], args, self.headers.get("Authorization")
                    )
                    self._send(status, answer, headers)
                elif path.startswith("/respond/"):
                    # As an incoming webhook: blocks Slack refuses are a 400 whose body
                    # names the error, and nothing is shown.
                    refused = respond_problem(args)
                    if refused is not None:
                        with standin._lock:
                            standin.refused_responses.append((path[len("/respond/") :], args))
                        self._send(400, refused)
                        return
                    with standin._lock:
                        standin.responses.append((path[len("/respond/") :], args))
                    self._send(200, "ok")
                else:
                    self._send(404, {"ok": False, "error": "not_found"})

        return Handler


# ---------------------------------------------------------------------- Slack's side of a request


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """X-Slack-Request-Timestamp and X-Slack-Signature: v0=HMAC-SHA256(secret, v0:ts:body)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Sent:
    status: int
    body: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def post_signed(
    url: str,
    body: str,
    secret: str,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    retry_num: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
) -> Sent:
    headers = {"Content-Type": content_type, **sign(secret, body, timestamp)}
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    start = time.monotonic()
    resp = httpx.post(url, content=body.encode(), headers=headers, timeout=10)
    return Sent(resp.status_code, resp.text, time.monotonic() - start)


def slash_body(
    text: str,
    *,
    user: str,
    team: str,
    channel: str,
    response_url: str,
    user_name: str = "",
    trigger_id: str | None = None,
    enterprise: str | None = None,
) -> str:
    """The form body Slack POSTs for `/cutover TEXT` (with `enterprise`: as typed in a
    workspace of an Enterprise Grid org, `enterprise_id` set)."""
    fields = slash_fields(
        text,
        user=user,
        team=team,
        channel=channel,
        response_url=response_url,
        user_name=user_name,
        trigger_id=trigger_id,
    )
    if enterprise:
        fields.update(enterprise_id=enterprise, enterprise_name="Org")
    return urlencode(fields)


def slash_fields(
    text: str,
    *,
    user: str,
    team: str,
    channel: str,
    response_url: str,
    user_name: str = "",
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The fields of `/cutover TEXT` (a form over HTTP; a JSON payload in Socket Mode)."""
    return dict(
        {
            "token": "deprecated-verification-token",
            "team_id": team,
            "team_domain": "standin",
            "channel_id": channel,
            "channel_name": "cutover",
            "user_id": user,
            "user_name": user_name or user.lower(),
            "command": "/cutover",
            "text": text,
            "api_app_id": "ASTANDIN",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or f"{int(time.time())}.1.{user}",
        }
    )


def block_actions_body(
    message: Message,
    action: dict[str, Any],
    *,
    user: str,
    team: str,
    response_url: str,
    user_name: str = "",
    enterprise: str | None = None,
    trigger_id: str | None = None,
) -> str:
    """The `payload=<json>` form body Slack POSTs when someone clicks in a message (with
    `enterprise`: as on Enterprise Grid, the org id in `team.enterprise_id`)."""
    payload = block_actions_payload(
        message,
        action,
        user=user,
        team=team,
        response_url=response_url,
        user_name=user_name,
        enterprise=enterprise,
        trigger_id=trigger_id,
    )
    return urlencode({"payload": json.dumps(payload)})


def block_actions_payload(
    message: Message,
    action: dict[str, Any],
    *,
    user: str,
    team: str,
    response_url: str,
    user_name: str = "",
    enterprise: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """The block_actions payload of a click (see block_actions_body)."""
    return {
        "type": "block_actions",
        "user": {
            "id": user,
            "username": user_name or user.lower(),
            "name": user_name or user.lower(),
            "team_id": team,
        },
        "api_app_id": "ASTANDIN",
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
            **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
        },
        "trigger_id": trigger_id or f"{int(time.time())}.2.{user}",
        "team": {
            "id": team,
            "domain": "standin",
            **({"enterprise_id": enterprise, "enterprise_name": "Org"} if enterprise else {}),
        },
        "enterprise": {"id": enterprise, "name": "Org"} if enterprise else None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": "cutover"},
        "message": {
            "type": "message",
            "subtype": "bot_message",
            "text": message.text,
            "ts": message.ts,
            "bot_id": "BSTANDIN",
            "blocks": message.blocks,
            **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
        },
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
    }


def button_action(message: Message, action_id: str) -> dict[str, Any]:
    """The `actions[0]` Slack sends for a click on this message's button."""
    block_id, el = message.element(action_id)
    return {
        "action_id": action_id,
        "block_id": block_id,
        "text": el["text"],
        "value": el.get("value"),
        "type": "button",
        **({"style": el["style"]} if "style" in el else {}),
    }


def checkbox_action(message: Message, selected: list[str]) -> dict[str, Any]:
    """The `actions[0]` for a checkbox click leaving the options whose value ends :ITEM checked."""
    block_id, el = message.element("gate_tick")
    chosen = [o for o in el["options"] if o["value"].rsplit(":", 1)[-1] in selected]
    return {
        "action_id": "gate_tick",
        "block_id": block_id,
        "type": "checkboxes",
        "selected_options": chosen,
    }


def view_submission_payload(
    opened: OpenedView,
    values: dict[str, dict[str, dict[str, Any]]],
    *,
    user: str,
    team: str,
    enterprise: str | None = None,
) -> dict[str, Any]:
    """The view_submission payload Slack sends when a person presses a modal's submit
    (docs.slack.dev/reference/interaction-payloads/view-interactions-payload)."""
    view = opened.view
    return {
        "type": "view_submission",
        "team": {
            "id": team,
            "domain": "standin",
            **({"enterprise_id": enterprise, "enterprise_name": "Org"} if enterprise else {}),
        },
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "ASTANDIN",
        "token": "deprecated-verification-token",
        "trigger_id": f"{int(time.time())}.3.{secrets.token_hex(6)}",
        "view": {
            "id": opened.id,
            "team_id": team,
            "type": "modal",
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": values},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": False,
            "notify_on_close": False,
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": opened.id,
            "app_id": "ASTANDIN",
            "external_id": "",
            "app_installed_team_id": team,
            "bot_id": "BSTANDIN",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": {"id": enterprise, "name": "Org"} if enterprise else None,
    }


def input_values(opened: OpenedView, typed: dict[str, Any]) -> dict[str, Any]:
    """`view.state.values` as Slack fills it from what a person typed or picked, by action_id
    (a select's value, a date `YYYY-MM-DD`, a time `HH:mm`, a datetimepicker's UNIX time in
    seconds, a channel id; None: left empty)."""
    values: dict[str, Any] = {}
    for block in opened.input_blocks():
        el = block["element"]
        aid, kind = el.get("action_id", ""), el["type"]
        given = typed.get(aid, el.get("initial_value"))
        if kind == "plain_text_input":
            state: dict[str, Any] = {"type": kind, "value": given or None}
        elif kind == "static_select":
            chosen = typed.get(aid)
            option = next((o for o in el["options"] if o["value"] == chosen), None)
            state = {"type": kind, "selected_option": option or el.get("initial_option")}
        elif kind == "datepicker":
            state = {"type": kind, "selected_date": typed.get(aid, el.get("initial_date"))}
        elif kind == "timepicker":
            state = {"type": kind, "selected_time": typed.get(aid, el.get("initial_time"))}
        elif kind == "datetimepicker":
            # The instant picked in the person's own Slack time zone, as UNIX seconds.
            picked = typed.get(aid, el.get("initial_date_time"))
            state = {"type": kind, "selected_date_time": int(picked) if picked else None}
        elif kind == "conversations_select":
            state = {"type": kind, "selected_conversation": typed.get(aid)}
        elif kind == "channels_select":
            state = {"type": kind, "selected_channel": typed.get(aid)}
        else:
            state = {"type": kind}
        values[block["block_id"]] = {aid: state}
    return values
