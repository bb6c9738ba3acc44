"""The `cutover` argument parser, assembled from each command group's subcommands."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bot.cli import audit_cmd, db_cmd, runbook_cmd, runs, sessions
from bot.cli.exits import EXIT_CODES
from bot.cli.options import Parser, common


def package_version() -> str:
    try:
        return version("cutover-bot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    both = common(runbook=True, database=True)
    rb_only = common(runbook=True, database=False)
    db_only = common(runbook=False, database=True)
    p = Parser(
        prog="cutover",
        description="Run a production cutover runbook with people in the loop.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    p.add_argument("--runbook", type=Path, help="runbook YAML (default: $CUTOVER_RUNBOOK)")
    p.add_argument("--database-url", help="database URL (default: $CUTOVER_DATABASE_URL)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In this order in `cutover --help`.
    sessions.add(sub, both)
    runbook_cmd.add(sub, rb_only)
    runs.add(sub, both, db_only)
    audit_cmd.add(sub, db_only)
    db_cmd.add(sub, db_only)
    return p
