"""`cutover`: the command line.

Every user error is one line on stderr and an exit code for its class, never a traceback:

    0    ok
    1    problem found (`audit verify`: the chain is broken; `serve`/`console`: the trail is
         shorter than, or differs from, the last head this bot signed and posted)
    2    bad usage: an unknown flag, a missing or malformed argument, an unknown environment,
         a refused argument (`audit lockdown` on a role it must not lock down), a run or
         step `logs` does not know
    3    database unavailable: the server is down, the file cannot be opened
    4    bad configuration: a malformed database URL or one of an unsupported database
         (postgres:// and postgresql:// are taken as postgresql+psycopg://), an invalid setting
    5    runbook unusable: the file is missing or unreadable, or it is not a valid runbook
    6    database not ready: no cutover schema there (a wrong URL or path?), or an older one;
         `cutover db upgrade` makes or upgrades it. Read commands never create tables.
    130  interrupted (Ctrl-C)
    141  output closed early (`cutover audit export | head -1`): stops quietly
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from bot import audit, preflight
from bot.audit_guard import AuditTrailRefused
from bot.db import Database, DatabaseUnavailable, SchemaNotReady
from bot.isolation import IsolationError, step_user
from bot.settings import DatabaseURLError, Settings, secret_settings
from bot.text import in_words, plural
from phases.runbook import Runbook, RunbookError, load_runbook
from phases.secrets import GLOBAL_MASKER, install_log_masking

log = logging.getLogger("cutover")

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_CONFIG = 4
EXIT_RUNBOOK = 5
EXIT_SCHEMA = 6
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141

EXIT_CODES = """exit codes:
  0 ok                 1 problem found           2 bad usage or argument
  3 database down      4 bad configuration (URL) 5 runbook missing or invalid
  6 no schema: run `cutover db upgrade`          130 interrupted
  141 output closed early"""


def package_version() -> str:
    try:
        return version("cutover-bot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """argparse with one line, not usage plus error, for a bad flag or argument."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see: {self.prog} --help)\n")


class _RunbookUnusable(Exception):
    """The runbook file could not be loaded (missing, unreadable or invalid)."""


def _common(*, runbook: bool, database: bool) -> _Parser:
    """The global options, also accepted after the subcommand (`cutover status --runbook F`)."""
    common = _Parser(add_help=False)
    if runbook:
        common.add_argument(
            "--runbook", type=Path, default=argparse.SUPPRESS, help="runbook YAML file"
        )
    if database:
        common.add_argument("--database-url", default=argparse.SUPPRESS, help="database URL")
    return common


def _parser() -> argparse.ArgumentParser:
    both = _common(runbook=True, database=True)
    rb_only = _common(runbook=True, database=False)
    db_only = _common(runbook=False, database=True)
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="cutover",
        description="Run a production cutover runbook with people in the loop.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    p.add_argument("--runbook", type=Path, help="runbook YAML (default: $CUTOVER_RUNBOOK)")
    p.add_argument("--database-url", help="database URL (default: $CUTOVER_DATABASE_URL)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        parent: argparse._SubParsersAction[_Parser],
        name: str,
        summary: str,
        description: str,
        parents: Sequence[_Parser] = (),
    ) -> _Parser:
        return parent.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description, width=78),
            parents=list(parents),
            epilog=EXIT_CODES,
            formatter_class=fmt,
        )

    con = command(
        sub,
        "console",
        "run cutovers at this terminal (no Slack needed)",
        "Run cutovers at this terminal: /cutover commands at a prompt, checkpoints printed, "
        "decisions typed. You act as console:NAME.",
        [both],
    )
    con.add_argument("--as", dest="as_user", help="your console name (default: your login)")

    demo = command(
        sub,
        "demo",
        "start a local stand-in of NostrMaxi; open the console",
        "Start local stand-ins of a NostrMaxi deployment (HTTP, HTTPS, DNS, env file, backup) "
        "and open the console on runbooks/demo.yml.",
    )
    demo.add_argument("--as", dest="as_user", help="your console name (default: your login)")

    sv = command(
        sub,
        "serve",
        "run the Slack bot: Socket Mode if SLACK_APP_TOKEN is set, else HTTP",
        "Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else an HTTP server "
        "(/slack/events, /healthz). See docs/slack.md.",
        [both],
    )
    sv.add_argument("--port", type=int, help="HTTP port (default: $CUTOVER_HTTP_PORT or 3000)")
    sv.add_argument("--host", help="HTTP address (default: $CUTOVER_HTTP_HOST or 0.0.0.0)")

    rb = command(
        sub,
        "runbook",
        "validate a runbook and list its phases",
        "Work with runbook files.",
    )
    rb_sub = rb.add_subparsers(dest="runbook_command", required=True, metavar="ACTION")
    chk = command(
        rb_sub,
        "check",
        "validate a runbook; list phases, checks, decision points",
        "Validate a runbook file: every error names the file, the phase, the step and the "
        "field. When it is valid, list its phases with their actions, checks and manual steps.",
        [rb_only],
    )
    chk.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="the runbook to check (default: --runbook or $CUTOVER_RUNBOOK)",
    )
    chk.add_argument("--env", metavar="ENV", help="the environment to preflight")
    chk.add_argument(
        "--preflight",
        action="store_true",
        help="ask whether a cutover of --env could finish on this host: quorum, commands on "
        "PATH, folders, env files, database, newest backup restorable (exit 1 if not)",
    )

    st = command(
        sub,
        "status",
        "status of active runs",
        "Active runs: phase, elapsed time against the estimate, who approved what.",
        [both],
    )
    st.add_argument("env", nargs="?", metavar="ENV", help="only this environment")

    lg = command(
        sub,
        "logs",
        "what a run's steps printed (kept, masked)",
        "List the steps of run RUN that kept output, or print what one step printed: the "
        "last 64 KB of its stdout and stderr as they came, masked before it was kept (the "
        "environment's secrets show as [redacted]). PHASE/STEP is the newest attempt of the "
        "phase; PHASE/STEP#N its attempt N; rollback/STEP a rollback step. One line about it "
        "goes to stderr, the output itself to stdout.",
        [db_only],
    )
    lg.add_argument("run", type=int, metavar="RUN", help="the run number")
    lg.add_argument(
        "step", nargs="?", metavar="PHASE/STEP[#N]", help="the step to print (default: list)"
    )

    rc = command(
        sub,
        "record",
        "a run's cutover record, or its page as one HTML file",
        "Print run RUN's cutover record (the runbook's Notes, filled in from the audit trail). "
        "With --html, its run page instead: one self-contained HTML file (no external asset, "
        "no script) with the timeline, each gate's wait and deciders, every step's status and "
        "kept output (masked), the rollback, and the run's audit rows verified (signatures "
        "with CUTOVER_AUDIT_KEY_FILE's key or --public-key), to attach to a change ticket.",
        [both],
    )
    rc.add_argument("run", type=int, metavar="RUN", help="the run number")
    rc.add_argument("--html", action="store_true", help="the run page, as HTML on stdout")
    rc.add_argument(
        "--public-key",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="Ed25519 public key (PEM) the rows' signatures are checked with; repeat for "
        "rotated keys (default: the key of CUTOVER_AUDIT_KEY_FILE, if set)",
    )

    au = command(sub, "audit", "export or verify the audit trail", "Work with the audit trail.")
    au_sub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    ex = command(
        au_sub,
        "export",
        "export events (all, or one run's)",
        "Print the audit trail, all of it or one run's, as JSON lines or CSV.",
        [db_only],
    )
    ex.add_argument("run", nargs="?", type=int, metavar="RUN", help="only this run's events")
    ex.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    ve = command(
        au_sub,
        "verify",
        "recompute the hash chain; name every tampered row",
        "Recompute the audit trail's hash chain; name each edited, deleted or reordered row "
        "(exit 1 when there is one). With --public-key, also check each row's signature and "
        "name every unsigned or badly signed row (a row appended without the signing key), or "
        "a row a retired key signed. With --expect-head (a head posted in Slack at a run's "
        "end), also find rows cut from the end of the trail. Prints the head it verified.",
        [db_only],
    )
    ve.add_argument(
        "--public-key",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="Ed25519 public key (PEM) from `audit keygen`; repeat for rotated keys",
    )
    ve.add_argument(
        "--expect-head",
        action="append",
        default=[],
        type=_head,
        metavar="ROW:HASH",
        help="a chain head the trail must still hold (posted in Slack at each run's end, "
        "printed by an earlier verify): fails when the chain is shorter or differs there; "
        "repeat for several",
    )
    kg = command(
        au_sub,
        "keygen",
        "make an Ed25519 key pair that signs audit rows",
        "Write a new Ed25519 key pair: the private key (mode 600) for CUTOVER_AUDIT_KEY_FILE, "
        "the public key for `audit verify --public-key`. Never overwrites a file.",
    )
    kg.add_argument("--private-key", required=True, type=Path, metavar="FILE")
    kg.add_argument("--public-key", required=True, type=Path, metavar="FILE")
    lk = command(
        au_sub,
        "lockdown",
        "PostgreSQL: let ROLE run the bot but never UPDATE, DELETE or TRUNCATE audit rows",
        "PostgreSQL: grant ROLE what the bot needs, but never UPDATE, DELETE or TRUNCATE on "
        "the audit table.",
        [db_only],
    )
    lk.add_argument("--app-role", required=True, help="the role the bot connects as")
    lk.add_argument("--print", action="store_true", help="print the SQL; change nothing")

    dbp = command(sub, "db", "create or upgrade the bot's database", "The bot's own database.")
    db_sub = dbp.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    command(
        db_sub,
        "upgrade",
        "create the schema, or upgrade it to this version's",
        "Create the bot's tables in an empty database, or upgrade them to this version's "
        "schema, keeping every run and the audit trail. Safe to run again; replicas upgrading "
        "at once take turns (PostgreSQL advisory lock). `cutover serve` does this at start.",
        [db_only],
    )
    return p


def _head(value: str) -> tuple[int, str]:
    try:
        return audit.parse_head(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    runbook = getattr(args, "file", None) or args.runbook
    if runbook:
        overrides["runbook"] = runbook
    if args.database_url:
        overrides["database_url"] = args.database_url
    return Settings(**overrides)  # type: ignore[arg-type]


def _settings_error(exc: ValidationError) -> str:
    """One line naming each bad setting by its environment variable, without its value."""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        var = name if name.isupper() else f"CUTOVER_{name.upper()}"
        parts.append(f"{var}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _runbook(settings: Settings) -> Runbook:
    try:
        return load_runbook(settings.runbook)
    except RunbookError as exc:
        raise _RunbookUnusable(str(exc)) from None


def _database(settings: Settings) -> Database:
    """The database for a command that only reads: it must be there; nothing is created.
    A configured audit key must be usable, whatever the command (a configuration error)."""
    GLOBAL_MASKER.add_all(secret_settings(settings))
    if settings.audit_key_file is not None:
        audit.Signer.from_file(settings.audit_key_file)
    db = Database(settings.database_url, must_exist=True)
    db.require_schema()
    return db


def _configure_logging(settings: Settings) -> None:
    """Logs go to stderr (journald, `docker logs`): a line each, or with CUTOVER_LOG_FORMAT=json
    one JSON object each (time, level, logger, message; an exception's traceback as exc_info)
    for a log pipeline. Secrets are masked either way (install_log_masking)."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        class MaskedJsonFormatter(JsonFormatter):
            """Tracebacks masked too: the JSON formatter formats exc_info itself."""

            def formatException(self, ei: Any) -> Any:  # noqa: N802
                text = super().formatException(ei)
                return GLOBAL_MASKER.mask(text) if isinstance(text, str) else text

        handler.setFormatter(
            MaskedJsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",  # ISO 8601, UTC
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly. Point stdout at /dev/null so the
        # interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE_CLOSED


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"configuration error: {_settings_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    _configure_logging(settings)
    install_log_masking()
    GLOBAL_MASKER.add_all(secret_settings(settings))
    # Request lines of the HTTP client are noise at a prompt; warnings still show.
    for noisy in ("httpx", "httpcore", "urllib3", "docker", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        code = _dispatch(args, settings)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except _RunbookUnusable as exc:
        print(f"runbook error: {exc}", file=sys.stderr)
        return EXIT_RUNBOOK
    except RunbookError as exc:  # the runbook loaded; an argument does not fit it
        print(f"cutover: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DatabaseURLError, audit.AuditKeyError, IsolationError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AuditTrailRefused as exc:
        print(f"audit trail refused: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except SchemaNotReady as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_SCHEMA
    except DatabaseUnavailable as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _step_user_item(settings: Settings, rb: Runbook) -> preflight.Item:
    """Preflight: who the runbook's programs would run as, or why the bot would refuse."""
    try:
        user = step_user(settings.step_user, rb, extra_groups=settings.step_groups)
    except IsolationError as exc:
        return preflight.Item("step user", "fail", str(exc))
    who = f"user {user.name} (uid {user.uid})" if user else "the bot's own user (not root)"
    return preflight.Item("step user", "pass", f"the runbook's programs run as {who}")


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "runbook":
        rb = _runbook(settings)
        if getattr(args, "preflight", False):
            if not args.env:
                raise RunbookError(
                    "--preflight needs --env ENV; this runbook defines: "
                    + ", ".join(sorted(rb.environments))
                )
            items = preflight.preflight(rb, args.env) + [_step_user_item(settings, rb)]
            print(preflight.report(items, args.env))
            return 1 if any(i.status == "fail" for i in items) else 0
        print(
            f"{settings.runbook}: OK — {rb.name} v{rb.version}, environments: "
            f"{', '.join(sorted(rb.environments))}"
        )
        for i, ph in enumerate(rb.phases):
            print(
                f"  {rb.phase_number(i)}. {ph.name} [{ph.estimate_minutes}] — "
                f"{plural(len(ph.actions), 'action')}, {plural(len(ph.checks), 'check')}"
                + (f" (+{len(ph.tick_checks)} after a tick)" if ph.tick_checks else "")
                + ", "
                f"{plural(len(ph.manual), 'manual step')}; on fail: {in_words(ph.on_fail)}"
            )
        gating = [
            f"{i.id} ({f'bot: {i.check}, passed within {i.fresh} min' if i.check else 'approver'})"
            for i in rb.start_items()
        ]
        if gating:
            print(f"  Needed before Start: {', '.join(gating)}")
        for warning in rb.warnings():
            print(f"  warning: {warning}")
        return 0
    if args.command == "audit" and args.audit_command == "keygen":
        kid = audit.keygen(args.private_key, args.public_key)
        print(
            f"key {kid}: private key {args.private_key} (set CUTOVER_AUDIT_KEY_FILE to it), "
            f"public key {args.public_key} (for `cutover audit verify --public-key`)"
        )
        return 0
    if args.command == "db":
        db = Database(settings.database_url)
        before, after = db.upgrade()
        if before == after:
            print(f"database {db.safe_url}: schema is up to date (revision {after})")
        else:
            print(f"database {db.safe_url}: schema upgraded from {before or 'none'} to {after}")
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
                return EXIT_USAGE
            print(";\n".join(statements) + ";")
            if not args.print:
                print(f"-- applied: {args.app_role} can no longer change or remove audit rows")
            return 0
        verified = audit.verify_chain(db)
        problems = list(verified.problems)
        for seq, digest in args.expect_head:
            problems += audit.check_expected_head(db, verified, seq, digest)
        if args.public_key:
            problems += audit.verify_signatures(db, audit.load_public_keys(args.public_key))
        head = f"head {verified.seq}:{verified.hash}"
        rows = f"rows 1..{verified.seq}" if verified.seq else "no rows (an empty trail)"
        if problems:
            print(f"audit chain BROKEN: {len(problems)} problem(s)")
            for prob in problems:
                print(f"  {prob}")
            print(f"read {rows}, {head}")
            return EXIT_PROBLEM
        signed = ", every row signed by a given key" if args.public_key else ""
        print(f"audit chain OK: {verified.seq} events verified{signed}")
        expected = (
            f"; it holds the expected head{'s' if len(args.expect_head) > 1 else ''} "
            + ", ".join(f"{seq}:{digest}" for seq, digest in args.expect_head)
            if args.expect_head
            else ""
        )
        print(f"verified {rows}, {head}{expected}")
        return 0
    if args.command == "logs":
        return _logs(_database(settings), args.run, args.step)
    if args.command == "record":
        return _record(settings, args.run, args.html, args.public_key)
    if args.command == "status":
        from bot.engine import Engine
        from commands.handlers import CommandService

        engine = Engine(_database(settings), _runbook(settings), background=False)
        print(engine.masker.mask(CommandService(engine).status(args.env)))
        return 0
    if args.command == "console":
        from bot.app import run_console

        return run_console(settings, _runbook(settings), args.as_user)
    if args.command == "serve":
        from bot.app import serve

        if args.port is not None:
            settings.http_port = args.port
        if args.host:
            settings.http_host = args.host
        return serve(settings)
    if args.command == "demo":
        from bot.demo import run_demo

        return run_demo(settings, args.as_user)
    raise AssertionError(args.command)


def _record(settings: Settings, run_id: int, html: bool, public_keys: list[Path]) -> int:
    """`cutover record RUN [--html]`: the record's text, or the run page (stdout)."""
    from bot.record import build_record, record_text
    from bot.runpage import page, render
    from bot.store import step_outputs

    db = _database(settings)
    rb = _runbook(settings)
    if not step_outputs.run_known(db, run_id):
        print(f"cutover: there is no run #{run_id} in this database", file=sys.stderr)
        return EXIT_USAGE
    if not html:
        print(GLOBAL_MASKER.mask(record_text(build_record(db, rb, run_id), rb)))
        return EXIT_OK
    keys = audit.load_public_keys(public_keys) if public_keys else None
    if keys is None and settings.audit_key_file is not None:
        signer = audit.Signer.from_file(settings.audit_key_file)
        keys = {signer.key_id: signer.public_key}
    sys.stdout.write(render.render(page.build(db, rb, run_id, keys), GLOBAL_MASKER.mask))
    return EXIT_OK


def _logs(db: Database, run_id: int, address: str | None) -> int:
    """`cutover logs`: a run's steps that kept output, or one step's output (stdout; what it
    is on stderr). An unknown run or step is bad usage (exit 2), saying what exists."""
    from bot.store import step_outputs

    mask = GLOBAL_MASKER.mask  # kept masked already; the bot's own tokens too, here
    if not step_outputs.run_known(db, run_id):
        print(f"cutover: there is no run #{run_id} in this database", file=sys.stderr)
        return EXIT_USAGE
    if address is None:
        kept = step_outputs.listing(db, run_id)
        if not kept:
            print(f"Run #{run_id} kept no step output.")
            return EXIT_OK
        print(f"Steps of run #{run_id} that kept output (oldest first):")
        width = max(len(k.address) for k in kept)
        for k in kept:
            more = ", earlier output not kept" if k.truncated else ""
            print(
                mask(
                    f"  {k.address:<{width}}  {k.status:<7} {step_outputs.size(k.bytes)} "
                    f"printed{more}  {k.name}"
                )
            )
        print(f"Print one: cutover logs {run_id} PHASE/STEP (its newest attempt) or PHASE/STEP#N")
        return EXIT_OK
    found = step_outputs.find(db, run_id, address)
    if isinstance(found, str):
        print(f"cutover: {mask(found)}", file=sys.stderr)
        return EXIT_USAGE
    print(mask(step_outputs.describe(found)), file=sys.stderr)
    text = mask(found.text)
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
