"""`/cutover …` text to a command. One grammar for every surface.

Arguments are data: they are split like a shell would split them, but nothing
here or downstream ever hands them to a shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from datetime import datetime

from commands.parser import record_verbs, run_verbs, schedule_verbs, trail_verbs
from commands.parser.command_types import (
    Abort,
    AuditCmd,
    ChecklistCmd,
    Command,
    Deviation,
    EmergencyForm,
    Help,
    Lock,
    LocksCmd,
    LogsCmd,
    Note,
    RecordCmd,
    Revert,
    Schedule,
    ScheduleForm,
    ScheduleList,
    SignOff,
    Start,
    StatusCmd,
    TickCmd,
    Unlock,
    Unschedule,
    UntickCmd,
)
from commands.parser.times import (
    ZONE_NAME,
    FieldError,
    compose_time,
    epoch_time,
    local_instant,
    parse_time,
)
from commands.parser.usage import USAGE, UsageError
from commands.parser.words import CHANNEL, GIT_REF, NAME

# Each verb's reader, by command group; every one takes the words after the verb.
VERBS: dict[str, Callable[[list[str], datetime | None], Command]] = {
    **run_verbs.VERBS,
    **trail_verbs.VERBS,
    **schedule_verbs.VERBS,
    **record_verbs.VERBS,
}


def parse(text: str, now: datetime | None = None) -> Command:
    """One command. With `now`, a scheduled time not after it is refused here too."""
    text = text.strip()
    if text.startswith("/cutover"):
        text = text[len("/cutover") :].strip()
    try:
        args = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments: {exc}") from None
    if not args:
        return Help()
    verb, rest = args[0].lower(), args[1:]
    if verb in ("help", "-h", "--help"):
        return Help()
    read = VERBS.get(verb)
    if read is None:
        raise UsageError(f"unknown command {verb!r}")
    return read(rest, now)


__all__ = [
    "CHANNEL",
    "GIT_REF",
    "NAME",
    "USAGE",
    "VERBS",
    "ZONE_NAME",
    "Abort",
    "AuditCmd",
    "ChecklistCmd",
    "Command",
    "Deviation",
    "EmergencyForm",
    "FieldError",
    "Help",
    "Lock",
    "LocksCmd",
    "LogsCmd",
    "Note",
    "RecordCmd",
    "Revert",
    "Schedule",
    "ScheduleForm",
    "ScheduleList",
    "SignOff",
    "Start",
    "StatusCmd",
    "TickCmd",
    "Unlock",
    "Unschedule",
    "UntickCmd",
    "UsageError",
    "compose_time",
    "epoch_time",
    "local_instant",
    "parse",
    "parse_time",
]
