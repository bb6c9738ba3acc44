"""`main`: parse, configure, run the command's group, and map each error to its exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bot import audit
from bot.audit_guard import AuditTrailRefused
from bot.cli import audit_cmd, db_cmd, runbook_cmd, runs, sessions
from bot.cli.config import RunbookUnusable, configure_logging, settings_error, settings_from
from bot.cli.exits import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_PIPE_CLOSED,
    EXIT_PROBLEM,
    EXIT_RUNBOOK,
    EXIT_SCHEMA,
    EXIT_USAGE,
)
from bot.cli.parser import build_parser
from bot.isolation import IsolationError
from bot.settings import DatabaseURLError, Settings, secret_settings
from bot.store.db import DatabaseUnavailable, SchemaNotReady
from phases.runbook import RunbookError
from phases.secrets import GLOBAL_MASKER, install_log_masking

GROUPS = (sessions, runbook_cmd, runs, audit_cmd, db_cmd)


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
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"configuration error: {settings_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    install_log_masking()
    GLOBAL_MASKER.add_all(secret_settings(settings))
    # Request lines of the HTTP client are noise at a prompt; warnings still show.
    for noisy in ("httpx", "httpcore", "urllib3", "docker", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        code = dispatch(args, settings)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except RunbookUnusable as exc:
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


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    for group in GROUPS:
        if args.command in group.COMMANDS:
            return group.run(args, settings)
    raise AssertionError(args.command)
