"""`/cutover …` text to a command. One grammar for every surface.

Arguments are data: they are split like a shell would split them, but nothing
here or downstream ever hands them to a shell.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

USAGE = """Usage:
  /cutover start ENV [--dry-run]        start a cutover run of ENV
  /cutover status [ENV]                 current phase, elapsed time, approvals
  /cutover abort ENV --reason TEXT      roll back ENV's active run (final)
  /cutover audit RUN                    the audit trail of run RUN
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


@dataclass(frozen=True)
class StatusCmd:
    env: str | None = None


@dataclass(frozen=True)
class Abort:
    env: str
    reason: str


@dataclass(frozen=True)
class AuditCmd:
    run_id: int


@dataclass(frozen=True)
class Help:
    pass


Command = Start | StatusCmd | Abort | AuditCmd | Help


def _env(value: str) -> str:
    if not NAME.match(value):
        raise UsageError(
            f"{value!r} is not an environment name (lowercase letters, digits, - or _)"
        )
    return value


def parse(text: str) -> Command:
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
    if verb == "start":
        flags = [a for a in rest if a.startswith("-")]
        names = [a for a in rest if not a.startswith("-")]
        unknown = [f for f in flags if f != "--dry-run"]
        if unknown:
            raise UsageError(f"unknown option {unknown[0]!r} for start")
        if len(names) != 1:
            raise UsageError("start needs exactly one environment, e.g. /cutover start prod")
        return Start(_env(names[0]), dry_run="--dry-run" in flags)
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
        if not tail or tail[0] != "--reason" or len(tail) < 2 or not " ".join(tail[1:]).strip():
            raise UsageError("abort needs --reason TEXT saying why")
        return Abort(env, " ".join(tail[1:])[:500])
    if verb == "audit":
        if len(rest) != 1 or not rest[0].lstrip("#").isdigit():
            raise UsageError("audit needs a run number, e.g. /cutover audit 12")
        return AuditCmd(int(rest[0].lstrip("#")))
    raise UsageError(f"unknown command {verb!r}")
