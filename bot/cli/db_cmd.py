"""`cutover db upgrade`: create the bot's schema, or upgrade it to this version's."""

from __future__ import annotations

import argparse

from bot.cli.options import Parser, command
from bot.settings import Settings
from bot.store.db import Database

COMMANDS = ("db",)


def add(sub: argparse._SubParsersAction[Parser], db_only: Parser) -> None:
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


def run(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url)
    before, after = db.upgrade()
    if before == after:
        print(f"database {db.safe_url}: schema is up to date (revision {after})")
    else:
        print(f"database {db.safe_url}: schema upgraded from {before or 'none'} to {after}")
    return 0
