"""`cutover`: the command line. Exit codes: 0 ok, 1 problem found, 2 bad input, 3 database down."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import audit
from bot.db import Database, DatabaseUnavailable
from bot.settings import Settings
from phases.runbook import Runbook, RunbookError, load_runbook
from phases.secrets import install_log_masking

log = logging.getLogger("cutover")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cutover", description=__doc__)
    p.add_argument("--runbook", type=Path, help="runbook YAML (default: $CUTOVER_RUNBOOK)")
    p.add_argument("--database-url", help="database URL (default: $CUTOVER_DATABASE_URL)")
    sub = p.add_subparsers(dest="command", required=True)

    con = sub.add_parser("console", help="run cutovers at this terminal (no Slack needed)")
    con.add_argument("--as", dest="as_user", help="your console name (default: your login)")

    demo = sub.add_parser("demo", help="start a local stand-in of NostrMaxi; open the console")
    demo.add_argument("--as", dest="as_user", help="your console name (default: your login)")

    sv = sub.add_parser(
        "serve", help="run the Slack bot: Socket Mode if SLACK_APP_TOKEN is set, else HTTP"
    )
    sv.add_argument("--port", type=int, help="HTTP port (default: $CUTOVER_HTTP_PORT or 3000)")
    sv.add_argument("--host", help="HTTP address (default: $CUTOVER_HTTP_HOST or 0.0.0.0)")

    rb = sub.add_parser("runbook", help="validate a runbook and list its phases")
    rb.add_argument("action", choices=["check"])

    st = sub.add_parser("status", help="status of active runs")
    st.add_argument("env", nargs="?")

    au = sub.add_parser("audit", help="export or verify the audit trail")
    au_sub = au.add_subparsers(dest="audit_command", required=True)
    ex = au_sub.add_parser("export", help="export events (all, or one run's)")
    ex.add_argument("run", nargs="?", type=int)
    ex.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    au_sub.add_parser("verify", help="recompute the hash chain; name every tampered row")
    lk = au_sub.add_parser(
        "lockdown",
        help="PostgreSQL: let ROLE run the bot but never UPDATE, DELETE or TRUNCATE audit rows",
    )
    lk.add_argument("--app-role", required=True, help="the role the bot connects as")
    lk.add_argument("--print", action="store_true", help="print the SQL; change nothing")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if args.runbook:
        overrides["runbook"] = args.runbook
    if args.database_url:
        overrides["database_url"] = args.database_url
    return Settings(**overrides)  # type: ignore[arg-type]


def _runbook(settings: Settings) -> Runbook:
    return load_runbook(settings.runbook)


def _database(settings: Settings) -> Database:
    db = Database(settings.database_url)
    db.create_all()
    return db


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    install_log_masking()
    # Request lines of the HTTP client are noise at a prompt; warnings still show.
    for noisy in ("httpx", "httpcore", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return _dispatch(args, settings)
    except RunbookError as exc:
        print(f"runbook error: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "runbook":
        rb = _runbook(settings)
        print(
            f"{settings.runbook}: OK — {rb.name} v{rb.version}, environments: "
            f"{', '.join(sorted(rb.environments))}"
        )
        for i, ph in enumerate(rb.phases):
            print(
                f"  {rb.phase_number(i)}. {ph.name} [{ph.estimate_minutes}] — "
                f"{len(ph.actions)} actions, "
                f"{len(ph.checks)} checks, {len(ph.manual)} manual; on fail: {ph.on_fail}"
            )
        return 0
    if args.command == "audit":
        db = _database(settings)
        if args.audit_command == "export":
            sys.stdout.write(audit.export(db, args.run, args.format))
            return 0
        if args.audit_command == "lockdown":
            try:
                if args.print:
                    statements = audit.lockdown_statements(db, args.app_role)
                else:
                    statements = audit.lockdown(db, args.app_role)
            except audit.LockdownError as exc:
                print(f"lockdown refused: {exc}", file=sys.stderr)
                return 2
            print(";\n".join(statements) + ";")
            if not args.print:
                print(f"-- applied: {args.app_role} can no longer change or remove audit rows")
            return 0
        problems = audit.verify(db)
        if problems:
            print(f"audit chain BROKEN: {len(problems)} problem(s)")
            for prob in problems:
                print(f"  {prob}")
            return 1
        with db.session() as s:
            from bot.models import AuditHead

            head = s.get(AuditHead, 1)
        print(f"audit chain OK: {head.seq if head else 0} events verified")
        return 0
    if args.command == "status":
        from bot.engine import Engine
        from commands.handlers import CommandService

        engine = Engine(_database(settings), _runbook(settings), background=False)
        print(CommandService(engine).status(args.env))
        return 0
    if args.command == "console":
        return _console(settings, _runbook(settings), args.as_user)
    if args.command == "serve":
        from bot.slack.server import serve

        if args.port is not None:
            settings.http_port = args.port
        if args.host:
            settings.http_host = args.host
        return serve(settings)
    if args.command == "demo":
        from bot.demo import run_demo

        return run_demo(settings, args.as_user)
    raise AssertionError(args.command)


def _console(settings: Settings, runbook: Runbook, as_user: str | None) -> int:
    from bot.console import Console, console_actor, console_engine
    from bot.scheduler import start_scheduler

    db = _database(settings)
    engine = console_engine(db, runbook, workers=settings.workers)

    scheduler = start_scheduler(engine, db, settings)  # notices, gate timeouts, monitoring
    try:
        return Console(engine, console_actor(as_user)).loop()
    finally:
        scheduler.stop()
        engine.shutdown()


if __name__ == "__main__":
    sys.exit(main())
