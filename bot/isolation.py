"""The trust boundary between the bot and the programs its runbook runs.

A runbook's `run`/`command` steps run the application's own code (`npm run build`, a
migration): code the bot must not trust with its Slack signing secret, its audit key or its
database password, or a build script could approve its own gate. So, at `cutover serve` and
`cutover console` start:

- the bot's process is made non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): its
  `/proc/PID/environ`, `mem`, `maps` and `fd` become root's, and no process of the same user
  may ptrace it;
- the steps run as `CUTOVER_STEP_USER`, an unprivileged account with its own groups only
  (`StepUser`), so the bot's key file and settings (mode 600, the bot's user) are closed to
  them; a bot started as root refuses to run a runbook with such steps without one, rather
  than run the application's code as root;
- a secret file the bot reads (`CUTOVER_AUDIT_KEY_FILE`, `.env`) that others may read is
  refused: the step user would be one of those others.

The steps' environment is built in phases/checks/command_process.py (`base_env`) and
phases/checks/command.py (`child_env`); pg_dump and pg_restore (`backup`, `restore`) get
`base_env` and the connection's PG* variables (phases/checks/pg_tools.py), and start, stop
and answer to the lease's watchdog as a command step's program does.
"""

from __future__ import annotations

import ctypes
import grp
import logging
import os
import pwd
import stat
import sys
from pathlib import Path

from phases.checks.base import StepUser
from phases.runbook import Runbook

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # linux/prctl.h
# Step kinds that start a program the runbook names, as the step user.
PROGRAM_KINDS = frozenset({"run", "command", "deployed"})


class IsolationError(ValueError):
    """The steps would be inside the bot's trust (no step user for a root bot, a secret file
    others may read); the message says how to fix it."""


def make_non_dumpable() -> bool:
    """Closes this process to its own user: /proc/PID/environ, mem and maps become root's and
    ptrace needs CAP_SYS_PTRACE. True when it took (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_DUMPABLE, 0) failed: errno %s", ctypes.get_errno())
        return False
    return True


def runs_programs(runbook: Runbook) -> list[str]:
    """Where the runbook starts programs of its own: `PHASE > STEP` of each."""
    return [
        f"{where} > {step.id}"
        for where, _section, step in runbook.all_steps()
        if step.kind in PROGRAM_KINDS
    ]


def _lookup(value: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(value)) if value.isdigit() else pwd.getpwnam(value)
    except KeyError:
        raise IsolationError(
            f"CUTOVER_STEP_USER={value}: no such user on this host; create one "
            f"(useradd --system --user-group {value}) or name an existing unprivileged user"
        ) from None


def _group_ids(value: str | None) -> set[int]:
    """CUTOVER_STEP_GROUPS: names or gids, comma-separated; never root's group."""
    gids: set[int] = set()
    for name in (value or "").split(","):
        name = name.strip()
        if not name:
            continue
        if name.isdigit():
            gid = int(name)
        else:
            try:
                gid = grp.getgrnam(name).gr_gid
            except KeyError:
                raise IsolationError(
                    f"CUTOVER_STEP_GROUPS: no group {name!r} on this host; name a group or a gid"
                ) from None
        if gid == 0:
            raise IsolationError("CUTOVER_STEP_GROUPS must not hold root's group (0)")
        gids.add(gid)
    return gids


def step_user(
    value: str | None,
    runbook: Runbook | None,
    euid: int | None = None,
    extra_groups: str | None = None,
) -> StepUser | None:
    """The account steps run as (None: the bot's own, when that is not root).

    A root bot with no step user refuses a runbook that starts programs: they would run as
    root, able to read every secret of the bot. A non-root bot cannot switch users, so it
    refuses a step user other than itself.
    """
    euid = os.geteuid() if euid is None else euid
    if value is None or not value.strip():
        found = runs_programs(runbook) if runbook is not None else []
        if euid == 0 and found:
            raise IsolationError(
                "the bot runs as root and CUTOVER_STEP_USER is not set: the runbook's programs "
                f"({', '.join(found[:3])}{', …' if len(found) > 3 else ''}) would run as root "
                "and could read the bot's secrets. Set CUTOVER_STEP_USER to an unprivileged "
                "user that may work in the app's folders (e.g. useradd --system cutover-step; "
                "CUTOVER_STEP_USER=cutover-step), or start the bot as a non-root user"
            )
        return None
    value = value.strip()
    entry = _lookup(value)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise IsolationError(
            f"CUTOVER_STEP_USER={value} is root or in root's group: name an unprivileged user"
        )
    if euid != 0:
        if entry.pw_uid == euid:
            return None  # the steps already run as this user
        raise IsolationError(
            f"CUTOVER_STEP_USER={value}: the bot runs as uid {euid}, not root, so it cannot "
            f"start programs as another user; start the bot as root (only the steps run as "
            f"{value}) or unset CUTOVER_STEP_USER"
        )
    ids = set(os.getgrouplist(entry.pw_name, entry.pw_gid)) | _group_ids(extra_groups)
    groups = tuple(sorted(ids - {entry.pw_gid}))
    if 0 in groups:
        raise IsolationError(f"CUTOVER_STEP_USER={value} is in root's group: remove it from it")
    return StepUser(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir or "/")


def refuse_exposed_secret_files(paths: list[Path]) -> None:
    """IsolationError naming each existing file among `paths` that its group or others may
    read (the step user is one of the others), and how to fix it."""
    problems = []
    for p in paths:
        try:
            mode = p.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(
                f"{p} holds the bot's secrets but is mode {stat.S_IMODE(mode):03o}: others "
                f"(a runbook step among them) may read it; chmod 600 {p}"
            )
    if problems:
        raise IsolationError("; ".join(problems))
