"""`cutover serve`: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on CUTOVER_HTTP_PORT.

HTTP mode serves Bolt's POST /slack/events (request signatures and the 5-minute
timestamp window are checked by Bolt: a forged or stale request gets 401) and
GET /healthz, on a threaded server: one slow request never holds up another.
GET /metrics is on a listener of its own (`make_metrics_server`, CUTOVER_METRICS_HOST and
_PORT, loopback by default): the Slack port faces the internet, the metrics do not.
Both modes run the scheduler (`bot.scheduler`, unless CUTOVER_SCHEDULER_ENABLED=false):
scheduled-cutover notices, gate reminders, monitoring rounds; one process leads.
"""

from __future__ import annotations

import gc
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot import metrics
from bot.ports import EnginePort, RunPagesPort
from bot.settings import Settings
from bot.slack.app import CutoverSlackApp
from bot.slack.surface import SlackSurface
from phases.secrets import GLOBAL_MASKER

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"  # Prometheus text format (bot/metrics.py)
RUN_PAGE = re.compile(r"/runs/(\d{1,9})")  # the run page (bot/runpage/serve.py), with ?token=
_TOKEN_IN_LINE = re.compile(r"token=[^&\s]*")
MAX_BODY = 1024 * 1024  # Slack's payloads are far smaller
REFUSALS_PER_WINDOW, REFUSAL_WINDOW_SECONDS = 5, 60.0


class RefusalLog:
    """Refused requests are logged as one short line each, at most REFUSALS_PER_WINDOW a
    window, then one line counting the rest: never a body, a header value or a path, so an
    attacker can neither fill the log nor write a line of their own into it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._logged = 0
        self._dropped = 0

    def refused(self, status: int, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= REFUSAL_WINDOW_SECONDS:
                dropped, self._dropped = self._dropped, 0
                self._window_start, self._logged = now, 0
                if dropped:
                    log.warning("%s more requests refused in the last minute", dropped)
            if self._logged >= REFUSALS_PER_WINDOW:
                self._dropped += 1
                return
            self._logged += 1
        log.warning("request refused (%s): %s", status, reason)


class ConfigError(ValueError):
    """A missing or wrong setting; the message names the environment variable."""


@dataclass
class Service:
    """What `cutover serve` runs: the engine (built by bot/app.py), its Slack surface and the
    Bolt app."""

    engine: EnginePort
    surface: SlackSurface
    slack: CutoverSlackApp

    @property
    def app(self) -> App:
        return self.slack.app

    def close(self) -> None:
        self.slack.close()
        self.engine.shutdown(wait=True)


def mode(settings: Settings) -> str:
    return "socket" if settings.slack_app_token is not None else "http"


def unreadable(body: Any) -> str | None:
    """What, in a parsed body, Bolt's payload helpers would index blindly and crash on.

    Slack never sends these shapes; refusing them before dispatch keeps a malformed
    (even a correctly signed) request from reaching any listener.
    """
    if not isinstance(body, dict):
        return "the body must be a JSON object or a form"
    kind = body.get("type")
    if kind in ("block_actions", "interactive_message") or "actions" in body:
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "actions must be a non-empty list"
        if not all(isinstance(a, dict) for a in actions):
            return "each action must be an object"
        if kind == "block_actions" and not all(
            isinstance(a.get("action_id"), str) for a in actions
        ):
            return "each action needs a string action_id"
    for key in ("view", "message", "user", "team", "channel", "container"):
        if key in body and body[key] is not None and not isinstance(body[key], dict | str):
            return f"{key} must be an object"
    if "event" in body and not isinstance(body["event"], dict):
        return "event must be an object"
    if "command" in body and not isinstance(body.get("text") or "", str):
        return "text must be a string"
    return None


class _Handler(BaseHTTPRequestHandler):
    server: BoltHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may stall mid-request (or idle on keep-alive)

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == HEALTH_PATH and not self.server.metrics_only:
            problem = self.server.health() if self.server.health is not None else None
            text = {"content-type": ["text/plain; charset=utf-8"]}
            if problem is not None:  # the Docker HEALTHCHECK reads the status alone
                self._send(503, text, problem + "\n")
            else:
                self._send(200, text, "ok\n")
        elif path == METRICS_PATH and self.server.metrics_only:
            body = metrics.render().decode("utf-8")
            self._send(200, {"content-type": [metrics.CONTENT_TYPE]}, body)
        elif (page := RUN_PAGE.fullmatch(path)) and not self.server.metrics_only:
            self._run_page(int(page[1]), urlsplit(self.path).query)
        else:
            self._send(404, {"content-type": ["text/plain; charset=utf-8"]}, "not found\n")

    def _run_page(self, run_id: int, query: str) -> None:
        pages = self.server.run_pages
        if pages is None:  # no CUTOVER_RUNPAGE_SECRET: no page is ever shown
            self.server.refusals.refused(403, "run page not configured")
            self._send(403, {"content-type": ["text/plain; charset=utf-8"]}, "forbidden\n")
            return
        found = parse_qs(query[:1000]).get("token") or []
        answer = pages.answer(run_id, found[0] if found else None)
        if answer.refused is not None:
            self.server.refusals.refused(answer.status, f"run page: {answer.refused}")
        self._send(answer.status, answer.headers, answer.body)

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        app = self.server.bolt_app
        if parts.path != EVENTS_PATH or app is None:
            self._drain()
            self._send(404, {"content-type": ["text/plain; charset=utf-8"]}, "not found\n")
            return
        self._events(app, parts)  # in flight since it was accepted (process_request)

    def _events(self, app: App, parts: SplitResult) -> None:
        text = {"content-type": ["text/plain; charset=utf-8"]}
        if self.headers.get("Transfer-Encoding"):  # Slack always sends a Content-Length
            self.close_connection = True
            self.server.refusals.refused(411, "no Content-Length")
            self._send(411, text, "length required\n")
            return
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:  # refused unread: a 2 MB body costs nothing
            self.close_connection = True
            if length > MAX_BODY:
                self.server.refusals.refused(413, "body too large")
                self._send(413, text, "too large\n")
            else:
                self.server.refusals.refused(400, "bad Content-Length")
                self._send(400, text, "bad Content-Length\n")
            return
        try:
            raw = self.rfile.read(length)
        except TimeoutError:  # the body never came: drop the connection, keep the thread
            self.close_connection = True
            return
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.server.refusals.refused(400, "body not UTF-8")
            self._send(400, text, "not UTF-8\n")
            return
        verifier = self.server.verifier
        if verifier is not None and not _signed(
            verifier,
            body,
            self.headers.get("X-Slack-Request-Timestamp") or "",
            self.headers.get("X-Slack-Signature") or "",
        ):  # checked here, before Bolt, whose own refusal logs the whole body
            self.server.refusals.refused(401, "bad signature or timestamp")
            self._send(401, {"content-type": ["application/json"]}, '{"error":"invalid request"}')
            return
        headers: dict[str, str | Sequence[str]] = {
            k.lower(): self.headers.get_all(k) or [] for k in self.headers
        }
        try:
            request = BoltRequest(body=body, query=parts.query, headers=headers)
            problem = unreadable(request.body)
        except Exception as exc:  # not JSON, or JSON that is not an object
            problem = f"malformed body ({type(exc).__name__})"
        if problem is not None:  # not from Slack: refused before any middleware or listener
            self.server.refusals.refused(400, problem)
            self._send(400, text, problem + "\n")
            return
        try:
            resp = app.dispatch(request)
        except Exception as exc:  # Bolt's own error handling could not read the body either
            self.server.refusals.refused(400, f"Bolt could not read it ({type(exc).__name__})")
            self._send(400, text, "malformed body\n")
            return
        self._send(resp.status, resp.headers, resp.body)

    def _drain(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY:
            try:
                self.rfile.read(int(length))
                return
            except TimeoutError:
                pass
        self.close_connection = True

    def _send(self, status: int, headers: dict[str, list[str]] | dict, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        for name, values in headers.items():
            if name.lower() in ("content-length", "connection"):
                continue
            for value in values if isinstance(values, list | tuple) else [values]:
                self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        line = format % args  # the request line is the client's: clipped, one line
        line = _TOKEN_IN_LINE.sub("token=…", line)  # a run page link's token is a key
        log.debug("http %s %r", self.address_string(), line[:200])


class BoltHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of clicks must not overflow the listen backlog

    def __init__(
        self,
        address: tuple[str, int],
        bolt_app: App | None,
        in_flight: AbstractContextManager[object] | None = None,
        metrics_only: bool = False,
    ) -> None:
        self.bolt_app = bolt_app
        # Why /healthz must answer 503 (Socket Mode down too long: bot/slack/socket_health.py).
        self.health: Callable[[], str | None] | None = None
        self.metrics_only = metrics_only  # /metrics alone; the Slack server never has it
        self.run_pages: RunPagesPort | None = None  # GET /runs/N (set by serve when configured)
        self.in_flight = in_flight or nullcontext()
        self.refusals = RefusalLog()
        secret = getattr(bolt_app, "_signing_secret", None) if bolt_app is not None else None
        self.verifier = SignatureVerifier(secret) if secret else None
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away is routine; anything else is logged, masked (not stderr)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("http client %s went away: %r", client_address, exc)
            return
        trace = "".join(traceback.format_exception(exc)) if exc is not None else "?"
        log.error("http request from %s failed: %s", client_address, GLOBAL_MASKER.mask(trace))

    def process_request(self, request: Any, client_address: Any) -> None:
        """A connection counts as in flight from the moment it is accepted, before its thread
        reads the request: the requests of a burst are seen at once (acks first)."""
        self.in_flight.__enter__()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.in_flight.__exit__(None, None, None)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.in_flight.__exit__(None, None, None)

    @property
    def url(self) -> str:
        host = self.server_address[0]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{self.server_port}"


def _signed(verifier: SignatureVerifier, body: str, timestamp: str, signature: str) -> bool:
    """The signature check, where a missing or non-numeric timestamp is a bad request like any
    unsigned one (slack_sdk's `is_valid` raises on `int("")`, which killed the handler)."""
    try:
        int(timestamp)
    except ValueError:
        return False
    try:
        return verifier.is_valid(body, timestamp, signature)
    except (ValueError, TypeError, OverflowError):
        return False


def settle_memory() -> None:
    """Once started: the ~120,000 objects of imports and set-up leave the garbage collector's
    view, whose full passes over them otherwise stop every thread for ~40 ms now and then."""
    gc.collect()
    gc.freeze()


def make_http_server(
    bolt_app: App | None,
    host: str,
    port: int,
    in_flight: AbstractContextManager[object] | None = None,
) -> BoltHTTPServer:
    """Bolt's /slack/events (None: /healthz only) on host:port; port 0 picks a free one.

    `in_flight` is entered around each /slack/events request (CutoverSlackApp.acks_first:
    the work of earlier requests waits while answers are being sent).
    """
    return BoltHTTPServer((host, port), bolt_app, in_flight)


def make_metrics_server(host: str, port: int) -> BoltHTTPServer:
    """GET /metrics alone, on its own address (loopback by default): what the bot is doing
    (runs, gates, Slack errors) is for the operator's Prometheus, not for the Slack port."""
    return BoltHTTPServer((host, port), None, metrics_only=True)
