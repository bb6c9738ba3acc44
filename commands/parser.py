"""`/cutover …` text to a command. One grammar for every surface.

Arguments are data: they are split like a shell would split them, but nothing
here or downstream ever hands them to a shell.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.store.step_outputs import parse_address

USAGE = """Usage:
  /cutover start ENV [--dry-run] [ref=REF]
                                        start a cutover run of ENV (deploying REF: a
                                        branch, tag or commit; default: the runbook's)
  /cutover start ENV --emergency --reason TEXT
                                        break-glass start during a change freeze (each
                                        override approver types it; the quorum starts it);
                                        in Slack, without --reason a form asks for it
  /cutover status [ENV]                 current phase, elapsed time, approvals, locks
  /cutover lock ENV --reason TEXT       no run starts in ENV until it is unlocked
  /cutover unlock ENV                   lift the lock
  /cutover locks                        every lock, and the freezes in force now
  /cutover abort ENV --reason TEXT      roll back ENV's active run (final); in Slack,
                                        without --reason a form asks for the reason
  /cutover revert ENV --reason TEXT     undo ENV's last completed cutover (its restore
                                        and rollback steps, as a new run) within the
                                        runbook's revert window; approvers, by quorum;
                                        without --reason, Slack's form asks for it
  /cutover audit RUN                    the audit trail of run RUN
  /cutover logs RUN [PHASE/STEP[#N]]    the steps of run RUN that kept output, or the
                                        last lines one printed (attempt N of its phase)
  /cutover record RUN                   a link to run RUN's page: its timeline, who
                                        decided what, step output, audit verified
  /cutover schedule ENV TIME [ZONE] [--stakeholders #channel]
                                        schedule a cutover; TIME is ISO 8601 with a
                                        time zone, e.g. 2026-03-01T14:00Z, or a local
                                        time and its zone: 2026-03-01T15:00 Europe/Berlin
  /cutover schedule                     the same, in a form (date and time in your zone)
  /cutover schedule list                scheduled cutovers and their notices
  /cutover unschedule ID                cancel scheduled cutover ID
  /cutover signoff RUN CRITERION [--note TEXT]
                                        vouch for a success criterion of run RUN
  /cutover signoff RUN [--note TEXT]    sign off completed run RUN (the people its
                                        environment's signoff names)
  /cutover note RUN TEXT                add TEXT to run RUN's record notes
  /cutover deviation RUN TEXT           add TEXT to run RUN's Deviations from Runbook
  /cutover checklist TARGET             the pre-cutover items needed before Start;
                                        TARGET: a schedule number, or ENV
  /cutover tick TARGET ITEM [--note TEXT]
                                        an approver ticks ITEM (a bot-checked item:
                                        the bot checks it now)
  /cutover untick TARGET ITEM           undo a tick
  /cutover tick RUN TASK                mark post-cutover task TASK of completed run
                                        RUN done (its owner or an approver)
  /cutover help                         this text"""

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class UsageError(ValueError):
    """A wrong or missing argument; the message says what to type instead."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}\n{USAGE}")
        self.problem = problem


@dataclass(frozen=True)
class Start:
    env: str
    dry_run: bool = False
    emergency: str | None = None  # break-glass in a change freeze: the justification
    ref: str | None = None  # ref=REF: the git branch, tag or commit this run deploys


@dataclass(frozen=True)
class Lock:
    env: str
    reason: str


@dataclass(frozen=True)
class Unlock:
    env: str


@dataclass(frozen=True)
class LocksCmd:
    pass


@dataclass(frozen=True)
class StatusCmd:
    env: str | None = None


@dataclass(frozen=True)
class Abort:
    env: str
    reason: str | None  # None: not given; a surface asks for it (Slack: a form)


@dataclass(frozen=True)
class Revert:
    env: str
    reason: str | None  # None: not given; a surface asks for it (Slack: a form)


@dataclass(frozen=True)
class EmergencyForm:
    """`/cutover start ENV --emergency` without --reason: the surface asks for the
    justification (Slack: a form; the console: a prompt)."""

    env: str


@dataclass(frozen=True)
class AuditCmd:
    run_id: int


@dataclass(frozen=True)
class LogsCmd:
    run_id: int
    step: str | None = None  # PHASE/STEP or PHASE/STEP#ATTEMPT; None: list them


@dataclass(frozen=True)
class RecordCmd:
    run_id: int


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Schedule:
    env: str
    start_at: datetime  # timezone-aware
    stakeholders: str | None = None  # channel of the T-1h stakeholder notice


@dataclass(frozen=True)
class ScheduleList:
    pass


@dataclass(frozen=True)
class ScheduleForm:
    """`/cutover schedule` with no arguments: the surface asks for each field."""


@dataclass(frozen=True)
class Unschedule:
    schedule_id: int


@dataclass(frozen=True)
class SignOff:
    run_id: int
    criterion: str | None  # None: the completed run itself (its environment's `signoff`)
    note: str | None = None


@dataclass(frozen=True)
class Note:
    run_id: int
    text: str


@dataclass(frozen=True)
class Deviation:
    """A "Deviations from Runbook" entry a person adds to a run's record."""

    run_id: int
    text: str


@dataclass(frozen=True)
class TickCmd:
    target: str  # a schedule number ("3") or an environment name
    item: str
    note: str | None = None


@dataclass(frozen=True)
class UntickCmd:
    target: str
    item: str


@dataclass(frozen=True)
class ChecklistCmd:
    target: str


Command = (
    Start
    | StatusCmd
    | Abort
    | Revert
    | EmergencyForm
    | AuditCmd
    | LogsCmd
    | RecordCmd
    | Help
    | Schedule
    | ScheduleList
    | ScheduleForm
    | Unschedule
    | SignOff
    | Note
    | Deviation
    | TickCmd
    | UntickCmd
    | ChecklistCmd
    | Lock
    | Unlock
    | LocksCmd
)

# "#name", a channel id, or Slack's escaped mention "<#C024BE7LR|general>".
CHANNEL = re.compile(r"^(?:<#(?P<id>[A-Z0-9]+)(?:\|[^>]*)?>|(?P<plain>#?[A-Za-z0-9][\w.-]{0,79}))$")


# An IANA zone name ("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"), not a time.
ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*")


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """ISO 8601 with a time zone ("2026-03-01T14:00Z", "…T15:00+01:00"); never naive."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not an ISO 8601 time; write e.g. 2026-03-01T14:00Z (no spaces)"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise UsageError(
            f"{value!r} has no time zone; add Z (UTC) or an offset like +01:00, "
            "e.g. 2026-03-01T14:00Z"
        )
    if now is not None and when <= now:
        raise UsageError(f"{value} is in the past; pick a later time")
    return when


class FieldError(ValueError):
    """A wrong value in one field of a form (`field`: which one); the message says what to
    pick instead."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field, self.problem = field, problem


def local_instant(naive: datetime, zone: str) -> datetime:
    """A wall-clock time in an IANA zone as one aware datetime. A time the clocks skip
    (spring forward) or show twice (fall back) is refused with both instants it could mean:
    guessing one is how a cutover starts an hour early or late. Raises ValueError (the
    message says what to pick) or LookupError (no such zone)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise LookupError(zone) from None
    naive = naive.replace(tzinfo=None)
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first

    def reading(at: datetime) -> str:
        return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (as {at.tzname()}, {_offset(at)})"

    shown = f"{naive:%Y-%m-%d %H:%M} in {zone}"
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise ValueError(
            f"{shown} does not exist: the clocks skip it (daylight saving). It could mean "
            f"{reading(first)} or {reading(second)}; pick a time outside the skipped hour."
        )
    raise ValueError(
        f"{shown} happens twice: the clocks go back (daylight saving). It could mean "
        f"{reading(first)} or {reading(second)}; pick another time, or type it with its "
        f"offset, e.g. {naive:%Y-%m-%dT%H:%M}{_offset(first)}."
    )


def _offset(at: datetime) -> str:
    off = at.strftime("%z")
    return f"{off[:3]}:{off[3:]}" if off else "+00:00"


def compose_time(date: str | None, clock: str | None, zone: str | None, now: datetime) -> datetime:
    """A form's date (YYYY-MM-DD), time (HH:MM) and IANA time zone as one aware datetime,
    after `now`. Raises FieldError naming the field to fix (a local time the clocks skip or
    show twice included: see local_instant)."""
    from datetime import date as date_type
    from datetime import time as time_type

    if not date:
        raise FieldError("date", "Pick the day of the cutover.")
    if not clock:
        raise FieldError("time", "Pick the start time.")
    if not zone:
        raise FieldError("tz", "Pick the time zone the start time is in.")
    try:
        day = date_type.fromisoformat(date)
    except ValueError:
        raise FieldError("date", f"{date!r} is not a date; write it as 2026-03-01.") from None
    try:
        at = time_type.fromisoformat(clock)
    except ValueError:
        raise FieldError("time", f"{clock!r} is not a time; write it as 14:00.") from None
    try:
        when = local_instant(datetime.combine(day, at.replace(tzinfo=None)), zone)
    except LookupError:
        raise FieldError(
            "tz", f"{zone!r} is not a time zone; pick one like UTC or Europe/Berlin."
        ) from None
    except ValueError as exc:
        raise FieldError("time", str(exc)) from None
    if when <= now:
        raise FieldError(
            "time",
            f"{when:%Y-%m-%d %H:%M} {zone} is in the past (now "
            f"{now.astimezone(when.tzinfo):%Y-%m-%d %H:%M} there); pick a later time.",
        )
    return when


def epoch_time(value: object, now: datetime) -> datetime:
    """A datetimepicker's answer (a UNIX time in seconds: the instant the person picked in
    their own time zone) as an aware UTC datetime after `now`. Raises FieldError."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError("when", "Pick the day and the start time.")
    try:
        seconds = int(value)
        when = datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        raise FieldError("when", f"{value!r} is not a time; pick the day and time.") from None
    if when <= now:
        raise FieldError(
            "when",
            f"{when:%Y-%m-%d %H:%M} UTC is in the past (now {now.astimezone(UTC):%Y-%m-%d %H:%M}"
            " UTC); pick a later time.",
        )
    return when


def _channel(value: str) -> str:
    m = CHANNEL.match(value)
    if not m:
        raise UsageError(f"{value!r} is not a channel; write --stakeholders #channel")
    return m.group("id") or m.group("plain")


def _schedule(rest: list[str], now: datetime | None) -> Command:
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
            stakeholders = _channel(value)
        elif a.startswith("-"):
            raise UsageError(f"unknown option {a!r} for schedule")
        else:
            args.append(a)
        i += 1
    if len(args) == 3 and ZONE_NAME.fullmatch(args[2]):
        return Schedule(_env(args[0]), _zoned_time(args[1], args[2], now), stakeholders)
    if len(args) != 2:
        raise UsageError(
            "schedule needs an environment and a time, e.g. /cutover schedule prod "
            "2026-03-01T14:00Z --stakeholders #launch (or 2026-03-01T15:00 Europe/Berlin)"
        )
    return Schedule(_env(args[0]), parse_time(args[1], now), stakeholders)


def _zoned_time(value: str, zone: str, now: datetime | None) -> datetime:
    """`2026-03-29T14:00 Europe/Berlin`: a local time without offset, and its IANA zone."""
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not an ISO 8601 time; write e.g. 2026-03-01T15:00 Europe/Berlin"
        ) from None
    if naive.tzinfo is not None:
        raise UsageError(
            f"{value!r} has an offset and {zone!r} is a zone: give one of them, e.g. "
            f"{naive:%Y-%m-%dT%H:%M} {zone}"
        )
    try:
        when = local_instant(naive, zone)
    except LookupError:
        raise UsageError(
            f"{zone!r} is not a time zone; write an IANA name like UTC or Europe/Berlin"
        ) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if now is not None and when <= now:
        raise UsageError(f"{value} {zone} is in the past; pick a later time")
    return when


def _env(value: str) -> str:
    if not NAME.match(value):
        raise UsageError(
            f"{value!r} is not an environment name (lowercase letters, digits, - or _)"
        )
    return value


GIT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@-]{0,199}")


def _ref(value: str) -> str:
    """A git branch, tag or commit name as `git check-ref-format` allows one (never starting
    with '-', so git cannot read it as an option)."""
    bad = (
        not GIT_REF.fullmatch(value)
        or ".." in value
        or "//" in value
        or "@{" in value
        or value.endswith((".", "/", ".lock"))
    )
    if bad:
        raise UsageError(
            f"ref={value!r} is not a git branch, tag or commit name (letters, digits, . _ / @ -; "
            "e.g. ref=main, ref=v1.4.2 or ref=3f2c1ab)"
        )
    return value


def _number(word: str) -> int | None:
    """A run or schedule number: 1-9 ASCII digits (an id column holds no more), '#' allowed."""
    digits = word.removeprefix("#")
    return int(digits) if re.fullmatch(r"[0-9]{1,9}", digits) else None


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
    if verb == "start" and "--emergency" in rest:
        names = [a for a in rest[: rest.index("--emergency")] if not a.startswith("-")]
        tail = rest[rest.index("--emergency") + 1 :]
        if len(names) != 1 or "--dry-run" in rest:
            raise UsageError(
                "an emergency start names one environment: /cutover start prod --emergency "
                "--reason TEXT"
            )
        if not tail:
            return EmergencyForm(_env(names[0]))
        if tail[0] != "--reason" or not " ".join(tail[1:]).strip():
            raise UsageError("an emergency start needs --reason TEXT saying why")
        return Start(_env(names[0]), emergency=" ".join(tail[1:])[:500])
    if verb == "lock":
        if not rest or rest[0].startswith("-"):
            raise UsageError("lock needs an environment, e.g. /cutover lock prod --reason 'x'")
        tail = rest[1:]
        if not tail or tail[0] != "--reason" or not " ".join(tail[1:]).strip():
            raise UsageError("lock needs --reason TEXT saying why")
        return Lock(_env(rest[0]), " ".join(tail[1:])[:500])
    if verb == "unlock":
        if len(rest) != 1:
            raise UsageError("unlock needs one environment, e.g. /cutover unlock prod")
        return Unlock(_env(rest[0]))
    if verb == "locks":
        return LocksCmd()
    if verb == "start":
        flags = [a for a in rest if a.startswith("-")]
        refs = [a[len("ref=") :] for a in rest if a.startswith("ref=")]
        names = [a for a in rest if not a.startswith(("-", "ref="))]
        unknown = [f for f in flags if f != "--dry-run"]
        if unknown:
            raise UsageError(f"unknown option {unknown[0]!r} for start")
        if len(names) != 1:
            raise UsageError("start needs exactly one environment, e.g. /cutover start prod")
        if len(refs) > 1:
            raise UsageError("give ref= once: the branch, tag or commit this run deploys")
        ref = _ref(refs[0]) if refs else None
        return Start(_env(names[0]), dry_run="--dry-run" in flags, ref=ref)
    if verb == "status":
        if len(rest) > 1:
            raise UsageError("status takes at most one environment")
        return StatusCmd(_env(rest[0]) if rest else None)
    if verb == "abort":
        if not rest or rest[0].startswith("-"):
            raise UsageError(
                "abort needs an environment, e.g. /cutover abort prod --reason 'db down'"
            )
        env = _env(rest[0])
        tail = rest[1:]
        if not tail:
            return Abort(env, None)
        if tail[0] != "--reason" or len(tail) < 2 or not " ".join(tail[1:]).strip():
            raise UsageError("abort needs --reason TEXT saying why")
        return Abort(env, " ".join(tail[1:])[:500])
    if verb == "revert":
        if not rest or rest[0].startswith("-"):
            raise UsageError(
                "revert needs an environment, e.g. /cutover revert prod --reason 'errors up'"
            )
        tail = rest[1:]
        if not tail:
            return Revert(_env(rest[0]), None)
        if tail[0] != "--reason" or not " ".join(tail[1:]).strip():
            raise UsageError("revert needs --reason TEXT saying why")
        return Revert(_env(rest[0]), " ".join(tail[1:])[:500])
    if verb == "audit":
        if len(rest) != 1 or _number(rest[0]) is None:
            raise UsageError("audit needs a run number, e.g. /cutover audit 12")
        return AuditCmd(_number(rest[0]) or 0)
    if verb == "logs":
        if not 1 <= len(rest) <= 2 or _number(rest[0]) is None:
            raise UsageError(
                "logs needs a run number and, to read one step, PHASE/STEP, e.g. "
                "/cutover logs 12 build/npm-build"
            )
        if len(rest) == 2 and parse_address(rest[1]) is None:
            raise UsageError(
                f"{rest[1]!r} is not PHASE/STEP; write e.g. build/npm-build, or "
                "build/npm-build#2 for the phase's second attempt"
            )
        return LogsCmd(_number(rest[0]) or 0, rest[1] if len(rest) == 2 else None)
    if verb == "record":
        if len(rest) != 1 or _number(rest[0]) is None:
            raise UsageError("record needs a run number, e.g. /cutover record 12")
        return RecordCmd(_number(rest[0]) or 0)
    if verb == "schedule":
        return _schedule(rest, now)
    if verb == "unschedule":
        if len(rest) != 1 or _number(rest[0]) is None:
            raise UsageError("unschedule needs a schedule number, e.g. /cutover unschedule 3")
        return Unschedule(_number(rest[0]) or 0)
    if verb == "signoff":
        if len(rest) >= 1 and _number(rest[0]) is not None and rest[1:2] in ([], ["--note"]):
            return SignOff(_number(rest[0]) or 0, None, _note(rest[1:], "the run number"))
        if len(rest) < 2 or _number(rest[0]) is None or not NAME.match(rest[1]):
            raise UsageError(
                "signoff needs a run number (the completed run) and maybe a criterion id, e.g. "
                "/cutover signoff 12, /cutover signoff 12 admin"
            )
        return SignOff(_number(rest[0]) or 0, rest[1], _note(rest[2:], "the criterion"))
    if verb == "note":
        if len(rest) < 2 or _number(rest[0]) is None or not " ".join(rest[1:]).strip():
            raise UsageError("note needs a run number and text, e.g. /cutover note 12 'DNS slow'")
        return Note(_number(rest[0]) or 0, " ".join(rest[1:])[:500])
    if verb == "deviation":
        if len(rest) < 2 or _number(rest[0]) is None or not " ".join(rest[1:]).strip():
            raise UsageError(
                "deviation needs a run number and what was done differently, e.g. "
                "/cutover deviation 12 'skipped the staging smoke test: staging is down'"
            )
        return Deviation(_number(rest[0]) or 0, " ".join(rest[1:])[:500])
    if verb in ("tick", "untick", "checklist"):
        return _checklist(verb, rest)
    raise UsageError(f"unknown command {verb!r}")


def _target(word: str) -> str:
    number = _number(word)
    return str(number) if number is not None else _env(word)


def _checklist(verb: str, rest: list[str]) -> Command:
    if verb == "checklist":
        if len(rest) != 1:
            raise UsageError(
                "checklist needs a schedule number or an environment, e.g. /cutover checklist 3"
            )
        return ChecklistCmd(_target(rest[0]))
    if len(rest) < 2 or rest[0].startswith("-") or not NAME.match(rest[1]):
        raise UsageError(
            f"{verb} needs a schedule number (or an environment) and an item id, e.g. "
            f"/cutover {verb} 3 maintenance-page"
        )
    target, item, tail = _target(rest[0]), rest[1], rest[2:]
    if verb == "untick":
        if tail:
            raise UsageError("untick takes a target and an item id, nothing more")
        return UntickCmd(target, item)
    return TickCmd(target, item, _note(tail, "the item"))


def _note(tail: list[str], after: str) -> str | None:
    """An optional `--note TEXT` (not blank), the only thing that may follow `after`."""
    if not tail:
        return None
    if tail[0] != "--note" or not " ".join(tail[1:]).strip():
        raise UsageError(f"after {after} only --note TEXT may follow")
    return " ".join(tail[1:])[:300]
