"""The verbs that read what a run left: audit, logs, record."""

from __future__ import annotations

from datetime import datetime

from bot.views import parse_address
from commands.parser.command_types import AuditCmd, Command, LogsCmd, RecordCmd
from commands.parser.usage import UsageError
from commands.parser.words import number


def audit(rest: list[str], now: datetime | None) -> Command:
    if len(rest) != 1 or number(rest[0]) is None:
        raise UsageError("audit needs a run number, e.g. /cutover audit 12")
    return AuditCmd(number(rest[0]) or 0)


def logs(rest: list[str], now: datetime | None) -> Command:
    if not 1 <= len(rest) <= 2 or number(rest[0]) is None:
        raise UsageError(
            "logs needs a run number and, to read one step, PHASE/STEP, e.g. "
            "/cutover logs 12 build/npm-build"
        )
    if len(rest) == 2 and parse_address(rest[1]) is None:
        raise UsageError(
            f"{rest[1]!r} is not PHASE/STEP; write e.g. build/npm-build, or "
            "build/npm-build#2 for the phase's second attempt"
        )
    return LogsCmd(number(rest[0]) or 0, rest[1] if len(rest) == 2 else None)


def record(rest: list[str], now: datetime | None) -> Command:
    if len(rest) != 1 or number(rest[0]) is None:
        raise UsageError("record needs a run number, e.g. /cutover record 12")
    return RecordCmd(number(rest[0]) or 0)


VERBS = {"audit": audit, "logs": logs, "record": record}
