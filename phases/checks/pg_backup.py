"""`backup` and `restore`: the bot takes the database backup itself and restores exactly it.

Runbook T-24h / T-1h "./scripts/backup-db.sh … Fresh backup <1 hour old" and Phase 4
"FAIL → ABORT and restore from backup". A backup is `pg_dump --format=custom` of the
environment's database, then verified before anyone relies on it: `pg_restore --list`
reads its table of contents, its size is at least `min_bytes`, and its SHA-256 is
computed. The result's `details["artifact"]` (path, SHA-256, size, entries) goes into the
audit trail, and the restore of the same run uses that file and refuses any other bytes
(the SHA-256 must match): never "the newest file in a folder".

The URL is a secret: it is passed to pg_dump/pg_restore as PG* environment variables,
never on a command line or in evidence (which names host and database only).

With `container` (a container's name or id) or `project` + `service` (a compose service),
pg_dump runs *inside* the database's container through the Docker API (an exec, as
`docker exec DB pg_dump` would): its output is streamed to the file on the host in chunks of
at most `CHUNK` bytes (a dump of any size holds no more than that in memory), then verified
on the host as above. Only user and database name of the URL go to the exec, as its PG*
environment; pg_dump connects to the server in its own container (no PGHOST). The password
never does (an exec's environment is in dockerd's debug log and in `ps e` inside the
container): it goes into a password file written into the container for this dump alone
(`put_archive`, mode 600, owned by the user the exec runs as), named by PGPASSFILE and
removed when the dump ends, whatever its outcome.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from phases.checks import docker_client  # the Docker client and its errors, shared
from phases.checks.base import Status, StepContext, StepKind, StepResult, clip, register
from phases.checks.command_process import StepNotStarted
from phases.checks.pg_dump_container import dump_in_container
from phases.checks.pg_tools import (
    EVIDENCE_LIMIT,
    last_line,
    pg_env,
    run_tool,
    tool_ended_early,
    verify_backup,
)


class BackupParams(docker_client.DockerHostParams):
    database_url: str = Field(min_length=1)
    dir: str = Field(min_length=1)  # where backups are kept (created if missing)
    prefix: str = Field(default="cutover", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    min_bytes: int = Field(default=100, ge=1)  # an empty custom-format dump is ~1 KB
    # pg_dump inside the database's container (Docker API exec), not on the host:
    container: str | None = Field(default=None, min_length=1)  # a container name or id
    project: str | None = Field(default=None, min_length=1)  # or a compose project's
    service: str | None = Field(default=None, min_length=1)  # service (e.g. db)
    pg_dump: str = Field(default="pg_dump", min_length=1)  # the command in the container

    @model_validator(mode="after")
    def one_container(self) -> BackupParams:
        if self.container and (self.project or self.service):
            raise ValueError("name the database's container or its project and service, not both")
        if bool(self.project) != bool(self.service):
            raise ValueError(
                "project and service go together (the compose service of the database)"
            )
        return self

    @property
    def in_container(self) -> bool:
        return bool(self.container or self.service)

    def where_dumped(self) -> str:
        """The container pg_dump runs in, for evidence and dry runs."""
        return self.container or f"service {self.service} of {self.project}"


def _backup_path(params: BackupParams, ctx: StepContext, where: str) -> Path | StepResult:
    folder = Path(params.dir)
    if ctx.workdir and not folder.is_absolute():
        folder = Path(ctx.workdir) / folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return StepResult(
            Status.ERROR, clip(f"cannot create {params.dir}: {exc.strerror}", EVIDENCE_LIMIT)
        )
    stamp = datetime.fromtimestamp(ctx.clock.now(), UTC).strftime("%Y%m%dT%H%M%SZ")
    db = re.sub(r"[^A-Za-z0-9_.-]", "_", where.rsplit("/", 1)[-1])
    path = folder / f"{params.prefix}-{db}-{stamp}.dump"
    n = 1
    while path.exists():  # two backups in one second keep both
        n += 1
        path = path.with_name(f"{params.prefix}-{db}-{stamp}-{n}.dump")
    return path


def _dump_on_host(
    path: Path, env: dict[str, str], where: str, ctx: StepContext
) -> StepResult | None:
    """pg_dump on the host into `path`; None when it succeeded."""
    try:
        dump = run_tool(
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(path)],
            env,
            ctx.timeout - 2,
            ctx.stop,
        )
    except FileNotFoundError:
        return StepResult(Status.ERROR, "pg_dump is not on PATH")
    except StepNotStarted as exc:
        return StepResult(
            Status.ERROR, clip(f"pg_dump of {where} not started: {exc}", EVIDENCE_LIMIT)
        )
    ended = tool_ended_early(dump, "pg_dump", where, ctx)
    if ended is not None:
        path.unlink(missing_ok=True)  # a partial dump is no backup
        said, details = ended
        return StepResult(
            Status.ERROR, clip(f"{said}; no backup kept", EVIDENCE_LIMIT), details=details
        )
    if dump.returncode != 0:
        path.unlink(missing_ok=True)
        reason = ctx.masker.mask(last_line(dump.stderr))
        return StepResult(Status.FAIL, clip(f"pg_dump of {where} failed: {reason}", EVIDENCE_LIMIT))
    return None


def run_backup(params: BackupParams, ctx: StepContext) -> StepResult:
    env, where = pg_env(params.database_url)
    path = _backup_path(params, ctx, where)
    if isinstance(path, StepResult):
        return path
    start = ctx.clock.monotonic()
    if params.in_container:
        failed = dump_in_container(params, env, path, where, ctx)
    else:
        failed = _dump_on_host(path, env, where, ctx)
    if failed is not None:
        return failed
    remaining = ctx.timeout - (ctx.clock.monotonic() - start)
    problems, facts = verify_backup(
        path, params.min_bytes, max(remaining - 1, 5), require_listing=not params.in_container
    )
    artifact = {"type": "backup", "database": where, **facts}
    if params.in_container:
        artifact["container"] = params.where_dumped()
    details: dict[str, Any] = {"artifact": artifact}
    inside = f" (pg_dump in {params.where_dumped()})" if params.in_container else ""
    if problems:
        return StepResult(
            Status.FAIL,
            clip(f"backup {path.name} of {where}{inside} " + "; ".join(problems), EVIDENCE_LIMIT),
            details=details,
        )
    listed = (
        f"{facts.get('entries')} entries, " if facts.get("listed") else ""
    ) + f"sha256 {facts['sha256'][:12]}…"
    how = (
        "pg_restore --list reads it"
        if facts.get("listed")
        else "pg_restore is not on this host: size and SHA-256 checked, the archive not listed"
    )
    evidence = f"backed up {where}{inside} to {path.name} ({facts['bytes']} bytes, {listed}); {how}"
    return StepResult(Status.PASS, clip(evidence, EVIDENCE_LIMIT), details=details)


BACKUP = register(
    StepKind(
        "backup",
        BackupParams,
        run_backup,
        mutates=True,
        describe=lambda p: (
            f"pg_dump the database{f' in {p.where_dumped()}' if p.in_container else ''} "
            f"into {p.dir} and verify it"
        ),
    )
)
