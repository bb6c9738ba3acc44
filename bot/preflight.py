"""Preflight: "can this cutover finish?", asked of one environment before anything runs.

`cutover runbook check --env ENV --preflight` answers it item by item: every gate can
reach its quorum whoever starts, every command the steps run is on this host's PATH,
every folder a step works in and every env file it reads is there and readable, the
database answers, and the newest backup can be restored (`pg_restore --list` reads it).
Nothing is changed: no step runs; commands are only looked up.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from phases.checks.backup import BackupParams as BackupAgeParams
from phases.checks.command import CommandParams
from phases.checks.compose_up import ComposeUpParams
from phases.checks.pg_backup import BackupParams, verify_backup
from phases.checks.postgres_check import libpq_url
from phases.runbook import (
    RUN_PLACEHOLDERS,
    Runbook,
    RunbookError,
    StepSpec,
    resolve_step,
    tick_placeholders,
)
from phases.secrets import EnvFileError, parse_env_file

Outcome = Literal["pass", "fail"]
TOOLS_OF_KIND = {"backup": ["pg_dump", "pg_restore"], "restore": ["pg_restore"]}


@dataclass(frozen=True)
class Item:
    what: str
    status: Outcome
    evidence: str


def _ok(what: str, evidence: str) -> Item:
    return Item(what, "pass", evidence)


def _fail(what: str, evidence: str) -> Item:
    return Item(what, "fail", evidence)


def _steps(runbook: Runbook) -> list[tuple[str, StepSpec]]:
    out = [(f"{where} > {step.id}", step) for where, _section, step in runbook.all_steps()]
    return out


def quorum(runbook: Runbook, env_name: str) -> Item:
    """Offline: the listed approvers. Loading the runbook already refused a quorum they can't
    reach without groups; groups are counted with their members at start."""
    env = runbook.environment(env_name)
    voters = env.listed_voters_per_starter()
    if voters < env.quorum:
        return _fail(
            "quorum",
            f"gates need {env.quorum} approvals; the listed approvers give {voters} "
            f"and the groups {', '.join(env.approver_groups)} can only be counted in Slack "
            "at start: list enough approvers, or confirm the groups' members",
        )
    return _ok("quorum", f"quorum {env.quorum} reachable by any starter ({voters} voters each)")


def _rendered(runbook: Runbook, values: dict[str, Any]) -> list[tuple[str, StepSpec, Any]]:
    out: list[tuple[str, StepSpec, Any]] = []
    for where, step in _steps(runbook):
        try:
            _kind, params = resolve_step(step, values)
        except RunbookError as exc:
            out.append((where, step, exc))
            continue
        out.append((where, step, params))
    return out


def _host_tools(step: StepSpec, params: Any) -> list[str]:
    """The PostgreSQL client programs a step runs on this host: none for a backup taken
    inside the database's container (pg_dump runs there; pg_restore --list is optional)."""
    if isinstance(params, BackupParams) and params.in_container:
        return []
    return TOOLS_OF_KIND.get(step.kind, [])


def _programs(params: CommandParams) -> list[str]:
    """The programs a command step may run (its own, its fallback's), a relative path taken
    from the step's folder (./scripts/x.sh runs in cwd)."""
    argvs = [params.argv] + ([params.fallback.argv] if params.fallback else [])
    return [
        os.path.join(params.cwd, a[0]) if params.cwd and os.sep in a[0] else a[0] for a in argvs
    ]


def commands(rendered: Iterable[tuple[str, StepSpec, Any]]) -> list[Item]:
    needed: dict[str, list[str]] = {}
    optional: set[str] = set()  # scripts an app may not ship: the step says "not shipped"
    for where, step, params in rendered:
        if isinstance(params, ComposeUpParams):
            params = params.as_command()
        if isinstance(params, CommandParams):
            for program in dict.fromkeys(_programs(params)):
                needed.setdefault(program, []).append(where)
                if params.if_missing == "warn":
                    optional.add(program)
        for tool in _host_tools(step, params):
            needed.setdefault(tool, []).append(where)
    items = []
    for program, wheres in sorted(needed.items()):
        if os.sep in program and program in optional and not Path(program).is_file():
            items.append(
                _ok(
                    f"command {program}",
                    f"not shipped: {', '.join(wheres[:3])} will say so (if_missing: warn)",
                )
            )
            continue
        if os.sep in program:
            found = program if os.access(program, os.X_OK) and Path(program).is_file() else None
        else:
            found = shutil.which(program)
        label = f"command {program}"
        if found:
            items.append(_ok(label, f"found at {found}"))
        else:
            items.append(_fail(label, f"not on this host's PATH; used by {', '.join(wheres[:3])}"))
    return items


def _made_by(path: str, rendered: list[tuple[str, StepSpec, Any]], before: int) -> str | None:
    """The earlier action whose command line names `path` (it creates it), if any."""
    for where, step, params in rendered[:before]:
        if isinstance(params, CommandParams) and step.kind == "run" and path in params.argv:
            return where
    return None


def paths(runbook: Runbook, env_name: str, rendered: list[tuple[str, StepSpec, Any]]) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    env = runbook.environment(env_name)
    values = runbook.values_for(env_name)
    if env.env_file:
        items.append(_env_file(str(values["env_file"]), "environment env_file", None))
        seen.add(str(values["env_file"]))
    for i, (where, _step, params) in enumerate(rendered):
        if isinstance(params, RunbookError):
            items.append(_fail(where, f"cannot be resolved: {params}"))
            continue
        folders: list[str] = []
        if isinstance(params, ComposeUpParams):
            params = params.as_command()
        if isinstance(params, CommandParams):
            if params.cwd:
                folders.append(params.cwd)
            if params.env_file and params.env_file not in seen:
                seen.add(params.env_file)
                items.append(
                    _env_file(params.env_file, where, _made_by(params.env_file, rendered, i))
                )
        if isinstance(params, BackupAgeParams):
            folders.append(params.path)
        for folder in folders:
            if folder in seen:
                continue
            seen.add(folder)
            if os.path.isdir(folder) and os.access(folder, os.R_OK | os.X_OK):
                items.append(_ok(f"folder {folder}", "present and readable"))
            else:
                items.append(_fail(f"folder {folder}", f"missing or unreadable; used by {where}"))
        if isinstance(params, BackupParams) and params.dir not in seen:
            seen.add(params.dir)
            probe = Path(params.dir)
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            if os.access(probe, os.W_OK):
                items.append(_ok(f"backup folder {params.dir}", "writable"))
            else:
                items.append(_fail(f"backup folder {params.dir}", f"{probe} is not writable"))
    return items


def _env_file(path: str, where: str, made_by: str | None) -> Item:
    label = f"env file {path}"
    if made_by is not None and not os.path.exists(path):
        return _ok(label, f"made during the run by {made_by}")
    try:
        parse_env_file(path)
    except EnvFileError as exc:
        return _fail(label, f"{exc} (used by {where})")
    except OSError as exc:
        return _fail(label, f"unreadable: {exc.strerror} (used by {where})")
    return _ok(label, "present and readable")


def database(runbook: Runbook, env_name: str) -> Item | None:
    env = runbook.environment(env_name)
    if not env.database_url:
        return None
    try:
        url = str(runbook.values_for(env_name)["database_url"])
    except RunbookError as exc:
        return _fail("database", str(exc))
    conninfo, _schema = libpq_url(url)
    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
            info = conn.info
            where = f"{info.host}/{info.dbname}"
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        for secret in filter(None, [_password(conninfo)]):
            reason = reason.replace(secret, "***")
        return _fail("database", f"unreachable: {reason[:200]}")
    return _ok("database", f"{where} answers")


def _password(conninfo: str) -> str | None:
    try:
        return psycopg.conninfo.conninfo_to_dict(conninfo).get("password")  # type: ignore[return-value]
    except psycopg.Error:
        return None


def newest_backup(rendered: list[tuple[str, StepSpec, Any]]) -> list[Item]:
    folders = sorted(
        {p.dir for _w, _s, p in rendered if isinstance(p, BackupParams)}
        | {p.path for _w, _s, p in rendered if isinstance(p, BackupAgeParams)}
    )
    # Listing a dump needs pg_restore on this host: required when a step runs it here (a
    # restore, a backup on the host), not when only in-container backups are taken.
    listing = any("pg_restore" in _host_tools(s, p) for _w, s, p in rendered)
    items = []
    for folder in folders:
        label = f"newest backup in {folder}"
        files = [f for f in Path(folder).glob("*") if f.is_file()] if Path(folder).is_dir() else []
        if not files:
            items.append(_fail(label, "no backup to restore from"))
            continue
        newest = max(files, key=lambda f: f.stat().st_mtime)
        problems, facts = verify_backup(newest, 1, 60, require_listing=listing)
        if problems:
            items.append(_fail(label, f"{newest.name} is not restorable: {'; '.join(problems)}"))
        elif facts.get("listed"):
            items.append(_ok(label, f"{newest.name} restorable ({facts.get('entries')} entries)"))
        else:
            items.append(
                _ok(
                    label,
                    f"{newest.name} readable, {facts['bytes']} bytes (not listed: no "
                    "pg_restore on this host)",
                )
            )
    return items


def preflight(runbook: Runbook, env_name: str) -> list[Item]:
    runbook.environment(env_name)  # unknown environment: RunbookError names the known ones
    try:
        values: dict[str, Any] = {**RUN_PLACEHOLDERS, **runbook.values_for(env_name)}
    except RunbookError as exc:
        return [_fail("environment", str(exc))]
    values.update(tick_placeholders(runbook))  # what a tick gives its step's checks
    rendered = _rendered(runbook, values)
    items = [quorum(runbook, env_name)]
    items += commands(r for r in rendered if not isinstance(r[2], RunbookError))
    items += paths(runbook, env_name, rendered)
    db = database(runbook, env_name)
    if db is not None:
        items.append(db)
    # Restorability matters to a runbook that restores (or takes a backup to restore from);
    # a runbook that only checks a backup's age cannot fail to finish over its format.
    if runbook.restore or any(st.kind in TOOLS_OF_KIND for _w, st in _steps(runbook)):
        items += newest_backup(rendered)
    return items


def report(items: list[Item], env_name: str) -> str:
    failed = [i for i in items if i.status == "fail"]
    head = f"Preflight of {env_name}: {len(items) - len(failed)}/{len(items)} passed" + (
        f", {len(failed)} failed: this cutover cannot finish as things stand" if failed else ""
    )
    lines = [head] + [
        f"  {'✅' if i.status == 'pass' else '❌'} {i.what}: {i.evidence}" for i in items
    ]
    return "\n".join(lines)
