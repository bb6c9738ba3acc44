"""Runs the bot as `cutover serve` does (HTTP mode, in-process on 127.0.0.1:0) against the stand-in.

Requests go over real HTTP with bodies signed as Slack signs them; the bot's Web
API calls go to `SlackStandIn`, which checks each one.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlencode

from sqlmodel import select

from bot.app import build_service, run_pages
from bot.settings import Settings
from bot.slack.server import Service, make_http_server
from bot.slack.transport import retry_handlers
from bot.store.db import Database
from bot.store.models import Gate, Run
from phases.runbook import Runbook
from standins.slack import (
    Message,
    OpenedView,
    Sent,
    SlackStandIn,
    block_actions_body,
    button_action,
    checkbox_action,
    input_values,
    post_signed,
    slash_body,
    view_submission_payload,
)

TOKEN = "xoxb-standin-0123456789-secret-bot-token"
SECRET = "standin-signing-secret-9f8e7d6c5b4a"
TEAM = "T1"
CHANNEL = "C0CUTOVER"

T = TypeVar("T")
_BOT_KEYS = itertools.count()


def wait_for(check: Callable[[], T], what: str, timeout: float = 15.0, poll: float = 0.02) -> T:
    """Polls check until it is truthy; each look at the stand-in is an HTTP request."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


class Bot:
    def __init__(self, service: Service, standin: SlackStandIn, url: str, db: Database) -> None:
        self.service, self.standin, self.url, self.db = service, standin, url, db
        self.engine = service.engine
        # Reply keys unique across bots: a restarted bot on the same stand-in must not read
        # the first bot's answers.
        self._keys = itertools.count(next(_BOT_KEYS) * 100_000 + 1)

    # ------------------------------------------------------------------ Slack → bot

    def command(
        self,
        text: str,
        user: str = "U1",
        team: str = TEAM,
        channel: str = CHANNEL,
        enterprise: str | None = None,
        **kw: Any,
    ) -> tuple[Sent, str]:
        """Types `/cutover TEXT` in `channel`; returns the HTTP answer and the response_url key."""
        key = f"cmd{next(self._keys)}"
        body = slash_body(
            text,
            user=user,
            team=team,
            channel=channel,
            response_url=self.standin.response_url(key),
            trigger_id=self.standin.trigger(user, team),
            enterprise=enterprise,
        )
        return post_signed(self.url, body, SECRET, **kw), key

    def click(
        self,
        message: Message,
        action_id: str,
        user: str = "U1",
        team: str = TEAM,
        enterprise: str | None = None,
        **kw: Any,
    ) -> tuple[Sent, str]:
        return self._send(
            message, button_action(message, action_id), user, team, enterprise=enterprise, **kw
        )

    def tick(
        self, message: Message, selected: list[str], user: str = "U1", team: str = TEAM
    ) -> tuple[Sent, str]:
        return self._send(message, checkbox_action(message, selected), user, team)

    def tick_block(
        self, message: Message, block_id: str, selected: list[str], user: str = "U1"
    ) -> tuple[Sent, str]:
        """Ticks options of one checkbox group (a checkpoint may hold several)."""
        block = next(b for b in message.blocks if b.get("block_id") == block_id)
        el = block["elements"][0]
        chosen = [o for o in el["options"] if o["value"].rsplit(":", 1)[-1] in selected]
        action = {
            "action_id": "gate_tick",
            "block_id": block_id,
            "type": "checkboxes",
            "selected_options": chosen,
        }
        return self._send(message, action, user, TEAM)

    def _send(
        self,
        message: Message,
        action: dict[str, Any],
        user: str,
        team: str,
        enterprise: str | None = None,
        **kw: Any,
    ) -> tuple[Sent, str]:
        key = f"act{next(self._keys)}"
        body = block_actions_body(
            message,
            action,
            user=user,
            team=team,
            response_url=self.standin.response_url(key),
            enterprise=enterprise,
            trigger_id=self.standin.trigger(user, team),
        )
        return post_signed(self.url, body, SECRET, **kw), key

    def open_home(self, user: str = "U1", team: str = TEAM) -> Sent:
        """The person opens the app's Home tab: Slack sends the app_home_opened event."""
        body = json.dumps(
            {
                "token": "deprecated-verification-token",
                "team_id": team,
                "api_app_id": "ASTANDIN",
                "event": {
                    "type": "app_home_opened",
                    "user": user,
                    "channel": "D0HOME",
                    "tab": "home",
                    "event_ts": f"{time.time():.6f}",
                },
                "type": "event_callback",
                "event_id": f"Ev{next(self._keys):08d}",
                "event_time": int(time.time()),
                "authorizations": [
                    {
                        "team_id": team,
                        "user_id": "UBOT",
                        "is_bot": True,
                        "is_enterprise_install": False,
                    }
                ],
            }
        )
        return post_signed(self.url, body, SECRET, content_type="application/json")

    def home(self, user: str = "U1", timeout: float = 10.0) -> dict[str, Any]:
        """The Home tab as last published for `user`."""
        return wait_for(lambda: self.standin.home(user), f"the Home tab of {user}", timeout)

    def modal(self, user: str = "U1", timeout: float = 10.0, after: int = 0) -> OpenedView:
        """The newest modal opened for `user`, once there are more than `after` of them."""
        return wait_for(
            lambda: (lambda v: v[-1] if len(v) > after else None)(self.standin.opened(user)),
            f"a modal for {user}",
            timeout,
        )

    def submit(
        self,
        opened: OpenedView,
        typed: dict[str, Any],
        user: str | None = None,
        team: str = TEAM,
        enterprise: str | None = None,
    ) -> Sent:
        """Presses the modal's submit with `typed` filled in (by action_id); the HTTP answer
        carries `response_action: errors` when the bot refuses the input."""
        payload = view_submission_payload(
            opened,
            input_values(opened, typed),
            user=user or opened.user,
            team=team,
            enterprise=enterprise,
        )
        body = urlencode({"payload": json.dumps(payload)})
        return post_signed(self.url, body, SECRET)

    # ------------------------------------------------------------------ reading state

    def reply(self, key: str, timeout: float = 10.0) -> str:
        """The text of the (first) response_url answer to one command or click."""
        replies = wait_for(lambda: self.standin.replies(key), f"a reply to {key}", timeout)
        return str(replies[0]["text"])

    def run(self, run_id: int) -> Run:
        with self.db.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
            return run

    def latest_run(self) -> int:
        def find() -> int | None:
            with self.db.session() as s:
                return s.exec(select(Run.id).order_by(Run.id.desc())).first()  # type: ignore[union-attr]

        return wait_for(find, "a run")

    def gates(self, run_id: int) -> list[Gate]:
        with self.db.session() as s:
            return list(s.exec(select(Gate).where(Gate.run_id == run_id).order_by(Gate.id)))

    def checkpoint(self, run_id: int, number: int) -> Message:
        """The posted checkpoint message of the run's `number`-th gate (1-based), once posted."""

        def posted() -> Message | None:
            gates = self.gates(run_id)
            if len(gates) < number or not gates[number - 1].surface_ref:
                return None
            return self.standin.message(gates[number - 1].surface_ref or "")

        return wait_for(posted, f"checkpoint {number} of run #{run_id}")

    def fresh(self, message: Message) -> Message:
        return self.standin.message(f"{message.channel}:{message.ts}")

    def parent(self, run_id: int) -> Message:
        ref = wait_for(lambda: self.run(run_id).surface_ref, f"parent message of run #{run_id}")
        return self.standin.message(ref)

    def wait_text(self, message: Message, needle: str, timeout: float = 10.0) -> Message:
        def has() -> Message | None:
            m = self.fresh(message)
            return m if needle in m.all_text() else None

        return wait_for(has, f"{needle!r} in message {message.ts}", timeout)


@contextmanager
def running_bot(
    db: Database, runbook: Runbook, standin: SlackStandIn | None = None, **more: Any
) -> Iterator[Bot]:
    """The bot, served over HTTP on 127.0.0.1:<free port>, talking to a stand-in Slack; its
    post pacing and Retry-After waits run on the stand-in's clock (by default one that
    fast-forwards: standins.fast_clock). `more`: further settings (e.g. public_url and
    runpage_secret: the run pages, served on the same port as `cutover serve` serves them)."""
    own = standin is None
    standin = standin or SlackStandIn(TOKEN).start()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=standin.api_url,
        **more,
    )
    service = build_service(
        settings,
        db=db,
        runbook=runbook,
        handlers=retry_handlers(backoff=0.05, server_errors=2),
        clock=standin.clock,  # the bot's pacing waits fast-forward the stand-in's limits
    )
    server = make_http_server(service.app, "127.0.0.1", 0)
    server.run_pages = run_pages(settings, service.engine)
    # A short poll: shutdown() returns in ~10 ms instead of serve_forever's default 0.5 s.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield Bot(service, standin, f"{server.url}/slack/events", db)
    finally:
        server.shutdown()
        server.server_close()
        service.close()
        if own:
            standin.stop()
