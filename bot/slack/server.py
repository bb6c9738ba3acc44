"""`cutover serve`: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on CUTOVER_HTTP_PORT.

HTTP mode serves Bolt's POST /slack/events (request signatures and the 5-minute
timestamp window are checked by Bolt: a forged or stale request gets 401) and
GET /healthz, on a threaded server: one slow request never holds up another.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import urlsplit

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_bolt.request import BoltRequest
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.handler import RetryHandler

from bot.db import Database
from bot.engine import Engine
from bot.settings import Settings
from bot.slack.app import CutoverSlackApp
from bot.slack.surface import SlackSurface, make_client
from phases.runbook import Runbook, load_runbook
from phases.secrets import GLOBAL_MASKER

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY = 1024 * 1024  # Slack's payloads are far smaller


class ConfigError(ValueError):
    """A missing or wrong setting; the message names the environment variable."""


@dataclass
class Service:
    engine: Engine
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


def build_service(
    settings: Settings,
    *,
    db: Database | None = None,
    runbook: Runbook | None = None,
    handlers: list[RetryHandler] | None = None,
) -> Service:
    """The engine with a Slack surface and the Bolt app, as `cutover serve` runs them."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…)")
    token = settings.slack_bot_token.get_secret_value()
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    if mode(settings) == "http" and not secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set; HTTP mode needs it to verify Slack's requests "
            "(or set SLACK_APP_TOKEN for Socket Mode)"
        )
    for value in (token, secret, settings.slack_app_token):  # never in chat, never in logs
        if value:
            GLOBAL_MASKER.add(value if isinstance(value, str) else value.get_secret_value())
    if db is None:
        db = Database(settings.database_url)
        db.create_all()
    runbook = runbook or load_runbook(settings.runbook)
    client = make_client(token, settings.slack_api_url, handlers)
    surface = SlackSurface(client)
    engine = Engine(db, runbook, surface=surface, background=True, workers=settings.workers)
    surface.bind(engine)
    slack = CutoverSlackApp(engine, surface, token=token, signing_secret=secret, client=client)
    return Service(engine, surface, slack)


class _Handler(BaseHTTPRequestHandler):
    server: BoltHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == HEALTH_PATH:
            self._send(200, {"content-type": ["text/plain; charset=utf-8"]}, "ok\n")
        else:
            self._send(404, {"content-type": ["text/plain; charset=utf-8"]}, "not found\n")

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        app = self.server.bolt_app
        if parts.path != EVENTS_PATH or app is None:
            self._drain()
            self._send(404, {"content-type": ["text/plain; charset=utf-8"]}, "not found\n")
            return
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(413, {"content-type": ["text/plain; charset=utf-8"]}, "too large\n")
            return
        raw = self.rfile.read(length)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._send(400, {"content-type": ["text/plain; charset=utf-8"]}, "not UTF-8\n")
            return
        headers: dict[str, str | Sequence[str]] = {
            k.lower(): self.headers.get_all(k) or [] for k in self.headers
        }
        resp = app.dispatch(BoltRequest(body=body, query=parts.query, headers=headers))
        self._send(resp.status, resp.headers, resp.body)

    def _drain(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY:
            self.rfile.read(int(length))
        else:
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
        log.debug("http %s " + format, self.address_string(), *args)


class BoltHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of clicks must not overflow the listen backlog

    def __init__(self, address: tuple[str, int], bolt_app: App | None) -> None:
        self.bolt_app = bolt_app
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host = self.server_address[0]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{self.server_port}"


def make_http_server(bolt_app: App | None, host: str, port: int) -> BoltHTTPServer:
    """Bolt's /slack/events (None: /healthz only) on host:port; port 0 picks a free one."""
    return BoltHTTPServer((host, port), bolt_app)


def serve(settings: Settings) -> int:
    """Runs until SIGTERM / Ctrl-C. Returns the exit code."""
    try:
        service = build_service(settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (BoltError, SlackClientError, OSError) as exc:  # auth.test at start-up
        print(
            f"Slack did not accept the bot token, or {settings.slack_api_url} is unreachable: "
            f"{GLOBAL_MASKER.mask(str(exc))}",
            file=sys.stderr,
        )
        return 2
    for line in service.engine.recover():
        log.info("recovered: %s", line)
    service.slack.resync()  # messages a crash or an outage left unposted
    how = mode(settings)
    # HTTP mode: Bolt and /healthz. Socket Mode: /healthz only, for the container's health check.
    http = make_http_server(
        service.app if how == "http" else None, settings.http_host, settings.http_port
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()
        threading.Thread(target=http.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    socket_handler = None
    try:
        if how == "socket":
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            assert settings.slack_app_token is not None
            socket_handler = SocketModeHandler(
                service.app, settings.slack_app_token.get_secret_value()
            )
            socket_handler.connect()
            log.info("connected to Slack in Socket Mode; /healthz on port %s", http.server_port)
        else:
            log.info("listening on %s%s", http.url, EVENTS_PATH)
        http.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if socket_handler is not None:
            socket_handler.close()
        http.server_close()
        service.close()
    return 0
