"""`restore`: the database restored from exactly the backup this run verified (its SHA-256)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql
from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, clip, register
from phases.checks.command_process import StepNotStarted
from phases.checks.pg_tools import (
    EVIDENCE_LIMIT,
    SHA256_PATTERN,
    last_line,
    pg_env,
    run_tool,
    sha256_of,
    tool_ended_early,
)
from phases.checks.postgres_check import libpq_url


class RestoreParams(StepParams):
    database_url: str = Field(min_length=1)
    file: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256_PATTERN)  # the bytes this run verified, and no others
    # Schemas emptied first, so tables made after the backup (a half-applied migration's)
    # go too: pg_restore --clean only drops what the dump itself holds.
    reset_schemas: list[str] = Field(default_factory=lambda: ["public"])


def run_restore(params: RestoreParams, ctx: StepContext) -> StepResult:
    env, where = pg_env(params.database_url)
    path = Path(params.file)
    if not path.is_file():
        return StepResult(
            Status.FAIL, clip(f"backup {params.file} not found; nothing restored", EVIDENCE_LIMIT)
        )
    actual = sha256_of(path)
    if actual != params.sha256:
        return StepResult(
            Status.FAIL,
            clip(
                f"backup {path.name} has sha256 {actual[:12]}…, this run verified "
                f"{params.sha256[:12]}…; the file changed since, nothing restored",
                EVIDENCE_LIMIT,
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
        reason = ctx.masker.mask(last_line(str(exc)))
        return StepResult(
            Status.ERROR, clip(f"cannot reset {where} before restore: {reason}", EVIDENCE_LIMIT)
        )
    try:
        done = run_tool(
            ["pg_restore", "--no-owner", "--no-acl", "--dbname", env.get("PGDATABASE", "")]
            + [str(path)],
            env,
            ctx.timeout - 2,
            ctx.stop,
        )
    except FileNotFoundError:
        said = f"pg_restore is not on PATH; {_left(params)}"
        return StepResult(Status.ERROR, clip(said, EVIDENCE_LIMIT))
    except StepNotStarted as exc:
        said = f"pg_restore into {where} not started: {exc}; {_left(params)}"
        return StepResult(Status.ERROR, clip(said, EVIDENCE_LIMIT))
    ended = tool_ended_early(done, "pg_restore", where, ctx)
    if ended is not None:
        said, details = ended
        return StepResult(
            Status.ERROR,
            clip(f"{said}; the restore may be partial", EVIDENCE_LIMIT),
            details=details,
        )
    # pg_restore exits 1 for warnings it ignored too ("schema public already exists").
    errors = [x for x in done.stderr.splitlines() if "error:" in x and "already exists" not in x]
    if done.returncode != 0 and errors:
        reason = ctx.masker.mask(errors[0])
        return StepResult(
            Status.FAIL, clip(f"pg_restore into {where} failed: {reason}", EVIDENCE_LIMIT)
        )
    return StepResult(
        Status.PASS,
        clip(
            f"restored {where} from {path.name} (sha256 {actual[:12]}… as verified)", EVIDENCE_LIMIT
        ),
        details={"artifact": {"type": "restore", "path": str(path), "sha256": actual}},
    )


def _left(params: RestoreParams) -> str:
    """What a restore that never ran pg_restore left: its schemas were emptied before."""
    emptied = ", ".join(params.reset_schemas)
    return f"schema(s) {emptied} emptied, nothing restored" if emptied else "nothing restored"


RESTORE = register(
    StepKind(
        "restore",
        RestoreParams,
        run_restore,
        mutates=True,
        describe=lambda p: f"restore the database from {p.file} (sha256 {p.sha256[:12]}…)",
    )
)
