"""The verbs that start, hold or stop runs: start, lock, unlock, locks, status, abort, revert."""

from __future__ import annotations

from datetime import datetime

from commands.parser.command_types import (
    Abort,
    Command,
    EmergencyForm,
    Lock,
    LocksCmd,
    Revert,
    Start,
    StatusCmd,
    Unlock,
)
from commands.parser.usage import UsageError
from commands.parser.words import env_name, git_ref


def start(rest: list[str], now: datetime | None) -> Command:
    if "--emergency" in rest:
        return _emergency(rest)
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
    ref = git_ref(refs[0]) if refs else None
    return Start(env_name(names[0]), dry_run="--dry-run" in flags, ref=ref)


def _emergency(rest: list[str]) -> Command:
    names = [a for a in rest[: rest.index("--emergency")] if not a.startswith("-")]
    tail = rest[rest.index("--emergency") + 1 :]
    if len(names) != 1 or "--dry-run" in rest:
        raise UsageError(
            "an emergency start names one environment: /cutover start prod --emergency "
            "--reason TEXT"
        )
    if not tail:
        return EmergencyForm(env_name(names[0]))
    if tail[0] != "--reason" or not " ".join(tail[1:]).strip():
        raise UsageError("an emergency start needs --reason TEXT saying why")
    return Start(env_name(names[0]), emergency=" ".join(tail[1:])[:500])


def lock(rest: list[str], now: datetime | None) -> Command:
    if not rest or rest[0].startswith("-"):
        raise UsageError("lock needs an environment, e.g. /cutover lock prod --reason 'x'")
    tail = rest[1:]
    if not tail or tail[0] != "--reason" or not " ".join(tail[1:]).strip():
        raise UsageError("lock needs --reason TEXT saying why")
    return Lock(env_name(rest[0]), " ".join(tail[1:])[:500])


def unlock(rest: list[str], now: datetime | None) -> Command:
    if len(rest) != 1:
        raise UsageError("unlock needs one environment, e.g. /cutover unlock prod")
    return Unlock(env_name(rest[0]))


def locks(rest: list[str], now: datetime | None) -> Command:
    return LocksCmd()


def status(rest: list[str], now: datetime | None) -> Command:
    if len(rest) > 1:
        raise UsageError("status takes at most one environment")
    return StatusCmd(env_name(rest[0]) if rest else None)


def abort(rest: list[str], now: datetime | None) -> Command:
    if not rest or rest[0].startswith("-"):
        raise UsageError("abort needs an environment, e.g. /cutover abort prod --reason 'db down'")
    env = env_name(rest[0])
    tail = rest[1:]
    if not tail:
        return Abort(env, None)
    if tail[0] != "--reason" or len(tail) < 2 or not " ".join(tail[1:]).strip():
        raise UsageError("abort needs --reason TEXT saying why")
    return Abort(env, " ".join(tail[1:])[:500])


def revert(rest: list[str], now: datetime | None) -> Command:
    if not rest or rest[0].startswith("-"):
        raise UsageError(
            "revert needs an environment, e.g. /cutover revert prod --reason 'errors up'"
        )
    tail = rest[1:]
    if not tail:
        return Revert(env_name(rest[0]), None)
    if tail[0] != "--reason" or not " ".join(tail[1:]).strip():
        raise UsageError("revert needs --reason TEXT saying why")
    return Revert(env_name(rest[0]), " ".join(tail[1:])[:500])


VERBS = {
    "start": start,
    "lock": lock,
    "unlock": unlock,
    "locks": locks,
    "status": status,
    "abort": abort,
    "revert": revert,
}
