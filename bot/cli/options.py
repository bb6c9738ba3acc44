"""The parser's parts: one-line usage errors, the global options, the subcommand helper."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bot.cli.exits import EXIT_CODES, EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """argparse with one line, not usage plus error, for a bad flag or argument."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see: {self.prog} --help)\n")


class RunbookUnusable(Exception):
    """The runbook file could not be loaded (missing, unreadable or invalid)."""


def common(*, runbook: bool, database: bool) -> Parser:
    """The global options, also accepted after the subcommand (`cutover status --runbook F`)."""
    common = Parser(add_help=False)
    if runbook:
        common.add_argument(
            "--runbook", type=Path, default=argparse.SUPPRESS, help="runbook YAML file"
        )
    if database:
        common.add_argument("--database-url", default=argparse.SUPPRESS, help="database URL")
    return common


def command(
    parent: argparse._SubParsersAction[Parser],
    name: str,
    summary: str,
    description: str,
    parents: Sequence[Parser] = (),
) -> Parser:
    return parent.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, width=78),
        parents=list(parents),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
