"""The verbs that add to a run's record: signoff, note, deviation."""

from __future__ import annotations

from datetime import datetime

from commands.parser.command_types import Command, Deviation, Note, SignOff
from commands.parser.usage import UsageError
from commands.parser.words import NAME, note_option, number


def signoff(rest: list[str], now: datetime | None) -> Command:
    if len(rest) >= 1 and number(rest[0]) is not None and rest[1:2] in ([], ["--note"]):
        return SignOff(number(rest[0]) or 0, None, note_option(rest[1:], "the run number"))
    if len(rest) < 2 or number(rest[0]) is None or not NAME.match(rest[1]):
        raise UsageError(
            "signoff needs a run number (the completed run) and maybe a criterion id, e.g. "
            "/cutover signoff 12, /cutover signoff 12 admin"
        )
    return SignOff(number(rest[0]) or 0, rest[1], note_option(rest[2:], "the criterion"))


def note(rest: list[str], now: datetime | None) -> Command:
    if len(rest) < 2 or number(rest[0]) is None or not " ".join(rest[1:]).strip():
        raise UsageError("note needs a run number and text, e.g. /cutover note 12 'DNS slow'")
    return Note(number(rest[0]) or 0, " ".join(rest[1:])[:500])


def deviation(rest: list[str], now: datetime | None) -> Command:
    if len(rest) < 2 or number(rest[0]) is None or not " ".join(rest[1:]).strip():
        raise UsageError(
            "deviation needs a run number and what was done differently, e.g. "
            "/cutover deviation 12 'skipped the staging smoke test: staging is down'"
        )
    return Deviation(number(rest[0]) or 0, " ".join(rest[1:])[:500])


VERBS = {"signoff": signoff, "note": note, "deviation": deviation}
