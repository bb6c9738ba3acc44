"""The composition root: the one place that builds the database, the engine, a surface and the
scheduler and wires them together. The CLI, `cutover serve`, the console, the demo and the
tests all build through here; nothing below it builds its own collaborators.

Layers, top to bottom (checked by import-linter, see pyproject.toml):
cli → demo → app → surfaces (slack, console) → commands → scheduler → schedules, record →
engine → text → views, audit, store, notices → db → models → surface protocol → domain →
settings → phases.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any, TextIO

from slack_bolt.error import BoltError
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.handler import RetryHandler

from bot import metrics
from bot.audit import Signer
from bot.console import Console, ConsoleSurface, TerminalLogHandler, console_actor
from bot.db import Database
from bot.engine import Engine, ReplicaInUse
from bot.scheduler import start_scheduler
from bot.settings import Settings, secret_settings
from bot.slack.app import CutoverSlackApp
from bot.slack.server import (
    EVENTS_PATH,
    ConfigError,
    Service,
    make_http_server,
    mode,
    settle_memory,
)
from bot.slack.surface import SlackSurface, make_client
from bot.views import run_counts
from phases.runbook import Runbook, load_runbook
from phases.secrets import GLOBAL_MASKER, install_log_masking

log = logging.getLogger(__name__)


def open_database(settings: Settings) -> Database:
    """The bot's database as the settings name it, its schema made or upgraded (migrations,
    bot/migrate.py): replicas starting together take turns under an advisory lock. The
    settings' secrets are masked, and rows are signed when an audit key is configured."""
    GLOBAL_MASKER.add_all(secret_settings(settings))
    db = Database(settings.database_url)
    if settings.audit_key_file is not None:
        db.audit_signer = Signer.from_file(settings.audit_key_file)
    db.upgrade()
    return db


# ---------------------------------------------------------------------------- console


def console_engine(
    db: Database, runbook: Runbook, out: TextIO = sys.stdout, **engine_options: Any
) -> Engine:
    """An engine whose surface is this terminal; phases run inline, between prompts."""
    holder: list[Engine] = []
    engine = Engine(
        db,
        runbook,
        surface=ConsoleSurface(lambda: holder[0], out),
        background=False,
        **engine_options,
    )
    holder.append(engine)
    return engine


def run_console(settings: Settings, runbook: Runbook, as_user: str | None) -> int:
    """`cutover console` (and the demo): the engine on this terminal, with the scheduler."""
    db = open_database(settings)
    engine = console_engine(db, runbook, workers=settings.workers)
    assert isinstance(engine.surface, ConsoleSurface)
    # Log lines from any thread go above the prompt, never onto it.
    root = logging.getLogger()
    handler = TerminalLogHandler(engine.surface.terminal)
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    saved, root.handlers = root.handlers, [handler]
    install_log_masking()  # no secret in a log line at the terminal either
    scheduler = start_scheduler(engine, db, settings)  # notices, gate timeouts, monitoring
    try:
        # When a run ends, its record is due at once: one tick prints it before the prompt.
        return Console(
            engine, console_actor(as_user), on_run_end=lambda: scheduler.scheduler.tick()
        ).loop()
    finally:
        scheduler.stop()
        engine.shutdown()
        root.handlers = saved


# ---------------------------------------------------------------------------- Slack


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
        db = open_database(settings)
    runbook = runbook or load_runbook(settings.runbook)
    client = make_client(token, settings.slack_api_url, handlers)
    surface = SlackSurface(client)
    for api in surface.api_clients():  # API errors and 429s on /metrics
        metrics.instrument_slack_client(api)
    engine = Engine(
        db,
        runbook,
        surface=surface,
        background=True,
        workers=settings.workers,
        replica_id=settings.replica_id,
        lease_seconds=settings.lease_seconds,
    )
    surface.bind(engine)
    slack = CutoverSlackApp(engine, surface, token=token, signing_secret=secret, client=client)
    return Service(engine, surface, slack)


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
    try:
        service.engine.claim_replica()  # before recover(): it trusts the replica id
    except ReplicaInUse as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        service.engine.shutdown(wait=False)
        return 4
    for line in service.engine.recover():
        log.info("recovered: %s", line)
    # A phase or rollback whose replica died is taken over once its lease lapses.
    service.engine.start_reaper()
    service.slack.resync()  # messages a crash or an outage left unposted
    settle_memory()
    how = mode(settings)
    # HTTP mode: Bolt and /healthz. Socket Mode: /healthz only, for the container's health check.
    http = make_http_server(
        service.app if how == "http" else None,
        settings.http_host,
        settings.http_port,
        service.slack.acks_first,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()
        threading.Thread(target=http.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    socket_handler = None
    # Notices of scheduled cutovers, gate reminders, monitoring rounds, cutover records.
    # Every process runs one; with several on one PostgreSQL an advisory lock makes one lead.
    scheduler = start_scheduler(service.engine, service.engine.db, settings)
    db = service.engine.db
    metrics.watch(lambda: run_counts(db), lambda: scheduler.is_leader)
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
        scheduler.stop()
        service.close()
    return 0
