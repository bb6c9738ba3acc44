"""What every command reads first: settings, the runbook, the database, logging."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pydantic import ValidationError

from bot import audit
from bot.settings import Settings, secret_settings
from bot.store.db import Database
from phases.runbook import Runbook, RunbookError, load_runbook
from phases.secrets import GLOBAL_MASKER


class RunbookUnusable(Exception):
    """The runbook file could not be loaded (missing, unreadable or invalid)."""


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    runbook = getattr(args, "file", None) or args.runbook
    if runbook:
        overrides["runbook"] = runbook
    if args.database_url:
        overrides["database_url"] = args.database_url
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_error(exc: ValidationError) -> str:
    """One line naming each bad setting by its environment variable, without its value."""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        var = name if name.isupper() else f"CUTOVER_{name.upper()}"
        parts.append(f"{var}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def load_runbook_file(settings: Settings) -> Runbook:
    try:
        return load_runbook(settings.runbook)
    except RunbookError as exc:
        raise RunbookUnusable(str(exc)) from None


def read_database(settings: Settings) -> Database:
    """The database for a command that only reads: it must be there; nothing is created.
    A configured audit key must be usable, whatever the command (a configuration error)."""
    GLOBAL_MASKER.add_all(secret_settings(settings))
    if settings.audit_key_file is not None:
        audit.Signer.from_file(settings.audit_key_file)
    db = Database(settings.database_url, must_exist=True)
    db.require_schema()
    return db


def configure_logging(settings: Settings) -> None:
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
