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
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register
from phases.checks.postgres_check import libpq_url

EVIDENCE_LIMIT = 240
_PG_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
}
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class BackupParams(StepParams):
    database_url: str = Field(min_length=1)
    dir: str = Field(min_length=1)  # where backups are kept (created if missing)
    prefix: str = Field(default="cutover", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    min_bytes: int = Field(default=100, ge=1)  # an empty custom-format dump is ~1 KB


class RestoreParams(StepParams):
    database_url: str = Field(min_length=1)
    file: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256_PATTERN)  # the bytes this run verified, and no others
    # Schemas emptied first, so tables made after the backup (a half-applied migration's)
    # go too: pg_restore --clean only drops what the dump itself holds.
    reset_schemas: list[str] = Field(default_factory=lambda: ["public"])


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


def pg_env(url: str) -> tuple[dict[str, str], str]:
    """(environment for pg_dump/pg_restore, "host/db" for evidence) from any Postgres URL."""
    conninfo, _schema = libpq_url(url)
    parts = conninfo_to_dict(conninfo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, var in _PG_ENV.items():
        if parts.get(key):
            env[var] = str(parts[key])
    where = f"{parts.get('host') or 'localhost'}/{parts.get('dbname') or '?'}"
    return env, where


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (argv from the step's own parameters, no shell)
        argv, env=env, capture_output=True, text=True, timeout=max(1.0, timeout), check=False
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def verify_backup(path: Path, min_bytes: int, timeout: float) -> tuple[list[str], dict[str, Any]]:
    """(problems, facts) of a custom-format dump: readable by pg_restore, big enough, hashed."""
    problems: list[str] = []
    if not path.is_file():
        return [f"{path} not found"], {}
    size = path.stat().st_size
    facts: dict[str, Any] = {"path": str(path), "bytes": size}
    if size < min_bytes:
        problems.append(f"is {size} bytes (min {min_bytes})")
    try:
        listing = _run(["pg_restore", "--list", str(path)], dict(os.environ), timeout)
    except FileNotFoundError:
        return ["pg_restore is not on PATH"], facts
    except subprocess.TimeoutExpired:
        return [f"pg_restore --list timed out after {timeout:g}s"], facts
    if listing.returncode != 0:
        problems.append(f"pg_restore --list failed: {_last_line(listing.stderr)}")
    else:
        entries = [x for x in listing.stdout.splitlines() if x.strip() and not x.startswith(";")]
        facts["entries"] = len(entries)  # 0: an empty database, still a restorable archive
    facts["sha256"] = sha256_of(path)
    return problems, facts


def run_backup(params: BackupParams, ctx: StepContext) -> StepResult:
    env, where = pg_env(params.database_url)
    folder = Path(params.dir)
    if ctx.workdir and not folder.is_absolute():
        folder = Path(ctx.workdir) / folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return StepResult(Status.ERROR, _clip(f"cannot create {params.dir}: {exc.strerror}"))
    stamp = datetime.fromtimestamp(ctx.clock.now(), UTC).strftime("%Y%m%dT%H%M%SZ")
    db = where.rsplit("/", 1)[-1]
    path = folder / f"{params.prefix}-{re.sub(r'[^A-Za-z0-9_.-]', '_', db)}-{stamp}.dump"
    n = 1
    while path.exists():  # two backups in one second keep both
        n += 1
        path = path.with_name(f"{params.prefix}-{db}-{stamp}-{n}.dump")
    start = ctx.clock.monotonic()
    try:
        dump = _run(
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(path)], env, ctx.timeout - 2
        )
    except FileNotFoundError:
        return StepResult(Status.ERROR, "pg_dump is not on PATH")
    except subprocess.TimeoutExpired:
        path.unlink(missing_ok=True)
        return StepResult(Status.ERROR, f"pg_dump of {where} timed out after {ctx.timeout:g}s")
    if dump.returncode != 0:
        path.unlink(missing_ok=True)
        reason = ctx.masker.mask(_last_line(dump.stderr))
        return StepResult(Status.FAIL, _clip(f"pg_dump of {where} failed: {reason}"))
    remaining = ctx.timeout - (ctx.clock.monotonic() - start)
    problems, facts = verify_backup(path, params.min_bytes, max(remaining - 1, 5))
    artifact = {"type": "backup", "database": where, **facts}
    details: dict[str, Any] = {"artifact": artifact}
    if problems:
        return StepResult(
            Status.FAIL,
            _clip(f"backup {path.name} of {where} " + "; ".join(problems)),
            details=details,
        )
    evidence = (
        f"backed up {where} to {path.name} ({facts['bytes']} bytes, {facts.get('entries')} "
        f"entries, sha256 {facts['sha256'][:12]}…); pg_restore --list reads it"
    )
    return StepResult(Status.PASS, _clip(evidence), details=details)


def run_restore(params: RestoreParams, ctx: StepContext) -> StepResult:
    env, where = pg_env(params.database_url)
    path = Path(params.file)
    if not path.is_file():
        return StepResult(Status.FAIL, _clip(f"backup {params.file} not found; nothing restored"))
    actual = sha256_of(path)
    if actual != params.sha256:
        return StepResult(
            Status.FAIL,
            _clip(
                f"backup {path.name} has sha256 {actual[:12]}…, this run verified "
                f"{params.sha256[:12]}…; the file changed since, nothing restored"
            ),
        )
    conninfo, _schema = libpq_url(params.database_url)
    try:
        with psycopg.connect(conninfo, connect_timeout=10, autocommit=True) as conn:
            for schema in params.reset_schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}").format(
                        s=sql.Identifier(schema)
                    )
                )
    except psycopg.Error as exc:
        reason = ctx.masker.mask(_last_line(str(exc)))
        return StepResult(Status.ERROR, _clip(f"cannot reset {where} before restore: {reason}"))
    try:
        done = _run(
            ["pg_restore", "--no-owner", "--no-acl", "--dbname", env.get("PGDATABASE", "")]
            + [str(path)],
            env,
            ctx.timeout - 2,
        )
    except FileNotFoundError:
        return StepResult(Status.ERROR, "pg_restore is not on PATH")
    except subprocess.TimeoutExpired:
        return StepResult(Status.ERROR, f"pg_restore into {where} timed out after {ctx.timeout:g}s")
    # pg_restore exits 1 for warnings it ignored too ("schema public already exists").
    errors = [x for x in done.stderr.splitlines() if "error:" in x and "already exists" not in x]
    if done.returncode != 0 and errors:
        reason = ctx.masker.mask(errors[0])
        return StepResult(Status.FAIL, _clip(f"pg_restore into {where} failed: {reason}"))
    return StepResult(
        Status.PASS,
        _clip(f"restored {where} from {path.name} (sha256 {actual[:12]}… as verified)"),
        details={"artifact": {"type": "restore", "path": str(path), "sha256": actual}},
    )


BACKUP = register(
    StepKind(
        "backup",
        BackupParams,
        run_backup,
        mutates=True,
        describe=lambda p: f"pg_dump the database into {p.dir} and verify it",
    )
)
RESTORE = register(
    StepKind(
        "restore",
        RestoreParams,
        run_restore,
        mutates=True,
        describe=lambda p: f"restore the database from {p.file} (sha256 {p.sha256[:12]}…)",
    )
)
