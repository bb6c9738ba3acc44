"""The composition root: the one place that builds the database, the engine, a surface and the
scheduler and wires them together. The CLI, `cutover serve`, the console, the demo and the
tests all build through here; nothing below it builds its own collaborators.

Layers, top to bottom: docs/layers.md, generated from the import-linter contracts in
pyproject.toml (tests/test_layers_doc.py keeps the two in step).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from slack_bolt.error import BoltError
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.handler import RetryHandler

from bot import audit_guard, metrics
from bot.audit import Signer
from bot.console import Console, ConsoleSurface, TerminalLogHandler, console_actor
from bot.engine import Engine, ReplicaInUse
from bot.isolation import make_non_dumpable, refuse_exposed_secret_files, step_user
from bot.runpage.serve import RunPages
from bot.runpage.tokens import RunLinks
from bot.scheduler import start_scheduler
from bot.settings import Settings, secret_settings
from bot.slack.app import CutoverSlackApp
from bot.slack.server import (
    EVENTS_PATH,
    ConfigError,
    Service,
    make_http_server,
    make_metrics_server,
    mode,
    settle_memory,
)
from bot.slack.socket_health import SocketHealth
from bot.slack.surface import SlackSurface
from bot.slack.transport import make_client
from bot.store.db import Database
from bot.store.rate_slots import SharedSlots
from bot.store.reads import Reads, run_counts
from bot.store.replays import SeenRequests
from bot.store.surface_rows import SurfaceRows
from phases.checks.base import Clock, StepContext, StepUser
from phases.runbook import EnvironmentSpec, Runbook, load_runbook
from phases.secrets import GLOBAL_MASKER, Masker, install_log_masking

log = logging.getLogger(__name__)


def open_database(settings: Settings) -> Database:
    """The bot's database as the settings name it, its schema made or upgraded (migrations,
    bot/store/migrate.py): replicas starting together take turns under an advisory lock. The
    settings' secrets are masked, and rows are signed when an audit key is configured.

    Before anything is appended, the trail is checked against the checkpoint of the last
    head this bot signed, and the key's life recorded (bot/audit_guard.py): AuditTrailRefused
    or AuditKeyError stop the start."""
    GLOBAL_MASKER.add_all(secret_settings(settings))
    db = Database(settings.database_url)
    if settings.audit_key_file is not None:
        db.audit_signer = Signer.from_file(settings.audit_key_file)
        GLOBAL_MASKER.add_all(db.audit_signer.secrets())  # printed by anything: masked
    db.upgrade()
    path = settings.audit_checkpoint_file or audit_guard.default_checkpoint_path(
        settings.audit_key_file
    )
    if path is not None:
        db.audit_checkpoint = audit_guard.CheckpointFile(path, db.audit_signer, db.safe_url)
    audit_guard.at_start(
        db, db.audit_signer, db.audit_checkpoint, allow_unsigned=settings.audit_allow_unsigned
    )
    return db


# ---------------------------------------------------------------------------- trust boundary


def isolate(settings: Settings, runbook: Runbook) -> StepUser | None:
    """Puts the runbook's programs outside the bot's trust, before anything runs: this process
    non-dumpable, its secret files closed to others, and the user steps run as
    (bot/isolation.py). IsolationError when that cannot hold."""
    make_non_dumpable()
    refuse_exposed_secret_files([Path(".env").absolute()])  # the key file: Signer.from_file
    user = step_user(settings.step_user, runbook, extra_groups=settings.step_groups)
    if user is not None:
        log.info("runbook steps run as user %s (uid %s)", user.name, user.uid)
    return user


def step_contexts(user: StepUser | None, clock: Clock | None = None) -> Any:
    """The engine's context factory: every step's context names the user it runs as (and,
    given one, the clock the engine runs on: the demo's)."""

    def make(_env: EnvironmentSpec, dry_run: bool, masker: Masker) -> StepContext:
        if clock is not None:
            return StepContext(dry_run=dry_run, masker=masker, run_as=user, clock=clock)
        return StepContext(dry_run=dry_run, masker=masker, run_as=user)

    return make


def start_checkpointer(db: Database, settings: Settings) -> threading.Event | None:
    """Moves the audit checkpoint forward periodically (set the event to stop it)."""
    if db.audit_checkpoint is None:
        return None
    return audit_guard.start_checkpointer(
        db, db.audit_checkpoint, settings.audit_checkpoint_seconds
    )


# ---------------------------------------------------------------------------- console


def console_engine(
    db: Database, runbook: Runbook, out: TextIO = sys.stdout, **engine_options: Any
) -> Engine:
    """An engine whose surface is this terminal; phases run inline, between prompts."""
    holder: list[Engine] = []
    engine = Engine(
        db,
        runbook,
        surface=ConsoleSurface(lambda: holder[0], out, reads=Reads(db, runbook)),
        background=False,
        **engine_options,
    )
    holder.append(engine)
    return engine


def run_console(
    settings: Settings,
    runbook: Runbook,
    as_user: str | None,
    clock: Clock | None = None,
    console: type[Console] = Console,
) -> int:
    """`cutover console` (and the demo, with its clock and its prompt): the engine on this
    terminal, with the scheduler."""
    run_as = isolate(settings, runbook)
    db = open_database(settings)
    options: dict[str, Any] = {"clock": clock} if clock is not None else {}
    engine = console_engine(
        db,
        runbook,
        workers=settings.workers,
        context_factory=step_contexts(run_as, clock),
        **options,
    )
    assert isinstance(engine.surface, ConsoleSurface)
    # Log lines from any thread go above the prompt, never onto it.
    root = logging.getLogger()
    handler = TerminalLogHandler(engine.surface.terminal)
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    saved, root.handlers = root.handlers, [handler]
    install_log_masking()  # no secret in a log line at the terminal either
    scheduler = start_scheduler(engine, db, settings)  # notices, gate timeouts, monitoring
    checkpointer = start_checkpointer(db, settings)
    try:
        # When a run ends, its record is due at once: one tick prints it before the prompt.
        return console(
            engine,
            console_actor(as_user),
            on_run_end=lambda: scheduler.scheduler.tick(),
            reads=engine.surface.reads,
        ).loop()
    finally:
        if checkpointer is not None:
            checkpointer.set()
        scheduler.stop()
        engine.shutdown()
        root.handlers = saved


# ---------------------------------------------------------------------------- Slack


def slack_credentials(settings: Settings) -> tuple[str, str]:
    """The bot token and signing secret; ConfigError when the mode needs one that is unset."""
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
    return token, secret


def build_service(
    settings: Settings,
    *,
    db: Database | None = None,
    runbook: Runbook | None = None,
    handlers: list[RetryHandler] | None = None,
    run_as: StepUser | None = None,
    clock: Clock | None = None,
) -> Service:
    """The engine with a Slack surface and the Bolt app, as `cutover serve` runs them; the
    runbook's programs run as `run_as` (None: the bot's own user). `clock`: what Slack post
    pacing waits on (None: the system's; tests pass one that fast-forwards)."""
    token, secret = slack_credentials(settings)
    for value in (token, secret, settings.slack_app_token):  # never in chat, never in logs
        if value:
            GLOBAL_MASKER.add(value if isinstance(value, str) else value.get_secret_value())
    if db is None:
        db = open_database(settings)
    runbook = runbook or load_runbook(settings.runbook)
    client = make_client(token, settings.slack_api_url, handlers)
    surface = SlackSurface(client, clock=clock)
    surface.run_links = RunLinks.from_settings(settings)  # "Run page" buttons, if configured
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
        context_factory=step_contexts(run_as),
    )
    reads, rows = Reads(db, runbook), SurfaceRows(db)
    surface.bind(engine, reads, rows, SharedSlots(db, surface.slot_clock()))
    slack = CutoverSlackApp(
        engine,
        surface,
        reads=reads,
        rows=rows,
        seen=SeenRequests(db),
        slots=SharedSlots(db),
        token=token,
        signing_secret=secret,
        client=client,
    )
    return Service(engine, surface, slack)


def run_pages(settings: Settings, engine: Engine) -> RunPages | None:
    """GET /runs/N, when CUTOVER_RUNPAGE_SECRET is set (else every request gets 403); the
    pages verify signatures with the bot's own key, when it signs."""
    if settings.runpage_secret is None:
        return None
    signer = engine.db.audit_signer
    keys = {signer.key_id: signer.public_key} if signer is not None else None
    return RunPages(engine.db, engine.runbook, settings.runpage_secret.get_secret_value(), keys)


def serve(settings: Settings) -> int:
    """Runs until SIGTERM / Ctrl-C. Returns the exit code."""
    scrape = None
    if settings.metrics_port:
        where = f"{settings.metrics_host}:{settings.metrics_port}"
        try:
            scrape = make_metrics_server(settings.metrics_host, settings.metrics_port)
        except OSError as exc:
            print(
                f"cannot listen for /metrics on {where}: {exc.strerror or exc}; set "
                "CUTOVER_METRICS_PORT to a free port (0 turns /metrics off)",
                file=sys.stderr,
            )
            return 2
        threading.Thread(target=scrape.serve_forever, name="metrics", daemon=True).start()
        log.info("/metrics on %s/metrics", scrape.url)
    try:
        slack_credentials(settings)
        runbook = load_runbook(settings.runbook)
        service = build_service(settings, runbook=runbook, run_as=isolate(settings, runbook))
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
    http.run_pages = run_pages(settings, service.engine)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()
        threading.Thread(target=http.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    socket_handler = None
    socket_health: SocketHealth | None = None
    # Notices of scheduled cutovers, gate reminders, monitoring rounds, cutover records.
    # Every process runs one; with several on one PostgreSQL an advisory lock makes one lead.
    scheduler = start_scheduler(service.engine, service.engine.db, settings)
    db = service.engine.db
    checkpointer = start_checkpointer(db, settings)
    metrics.watch(lambda: run_counts(db), lambda: scheduler.is_leader)
    try:
        if how == "socket":
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            assert settings.slack_app_token is not None
            socket_handler = SocketModeHandler(
                service.app, settings.slack_app_token.get_secret_value()
            )
            socket_handler.connect()
            client = socket_handler.client
            socket_health = SocketHealth(client.is_connected, settings.socket_down_seconds)
            http.health = socket_health.start().problem
            metrics.watch_socket(socket_health.down_for)
            log.info("connected to Slack in Socket Mode; /healthz on port %s", http.server_port)
        else:
            log.info("listening on %s%s", http.url, EVENTS_PATH)
        http.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if socket_health is not None:
            socket_health.stop()
        if socket_handler is not None:
            socket_handler.close()
        http.server_close()
        if scrape is not None:
            scrape.shutdown()
            scrape.server_close()
        if checkpointer is not None:
            checkpointer.set()
        scheduler.stop()
        service.close()
    return 0
