"""The verbs of scheduled cutovers and their checklist: schedule, unschedule, tick, untick."""

from __future__ import annotations

from datetime import datetime

from commands.parser.command_types import (
    ChecklistCmd,
    Command,
    Schedule,
    ScheduleForm,
    ScheduleList,
    TickCmd,
    Unschedule,
    UntickCmd,
)
from commands.parser.times import ZONE_NAME, parse_time, zoned_time
from commands.parser.usage import UsageError
from commands.parser.words import NAME, channel, env_name, note_option, number, tick_target


def schedule(rest: list[str], now: datetime | None) -> Command:
    if not rest:
        return ScheduleForm()
    if rest and rest[0].lower() == "list":
        if len(rest) > 1:
            raise UsageError("schedule list takes no arguments")
        return ScheduleList()
    stakeholders: str | None = None
    args: list[str] = []
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--stakeholders" or a.startswith("--stakeholders="):
            if "=" in a:
                value = a.split("=", 1)[1]
            elif i + 1 < len(rest):
                i += 1
                value = rest[i]
            else:
                raise UsageError("--stakeholders needs a channel, e.g. --stakeholders #launch")
            stakeholders = channel(value)
        elif a.startswith("-"):
            raise UsageError(f"unknown option {a!r} for schedule")
        else:
            args.append(a)
        i += 1
    if len(args) == 3 and ZONE_NAME.fullmatch(args[2]):
        return Schedule(env_name(args[0]), zoned_time(args[1], args[2], now), stakeholders)
    if len(args) != 2:
        raise UsageError(
            "schedule needs an environment and a time, e.g. /cutover schedule prod "
            "2026-03-01T14:00Z --stakeholders #launch (or 2026-03-01T15:00 Europe/Berlin)"
        )
    return Schedule(env_name(args[0]), parse_time(args[1], now), stakeholders)


def unschedule(rest: list[str], now: datetime | None) -> Command:
    if len(rest) != 1 or number(rest[0]) is None:
        raise UsageError("unschedule needs a schedule number, e.g. /cutover unschedule 3")
    return Unschedule(number(rest[0]) or 0)


def _checklist(verb: str, rest: list[str]) -> Command:
    if verb == "checklist":
        if len(rest) != 1:
            raise UsageError(
                "checklist needs a schedule number or an environment, e.g. /cutover checklist 3"
            )
        return ChecklistCmd(tick_target(rest[0]))
    if len(rest) < 2 or rest[0].startswith("-") or not NAME.match(rest[1]):
        raise UsageError(
            f"{verb} needs a schedule number (or an environment) and an item id, e.g. "
            f"/cutover {verb} 3 maintenance-page"
        )
    target, item, tail = tick_target(rest[0]), rest[1], rest[2:]
    if verb == "untick":
        if tail:
            raise UsageError("untick takes a target and an item id, nothing more")
        return UntickCmd(target, item)
    return TickCmd(target, item, note_option(tail, "the item"))


def tick(rest: list[str], now: datetime | None) -> Command:
    return _checklist("tick", rest)


def untick(rest: list[str], now: datetime | None) -> Command:
    return _checklist("untick", rest)


def checklist(rest: list[str], now: datetime | None) -> Command:
    return _checklist("checklist", rest)


VERBS = {
    "schedule": schedule,
    "unschedule": unschedule,
    "tick": tick,
    "untick": untick,
    "checklist": checklist,
}
