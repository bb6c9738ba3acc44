"""`postgres_rows`: rows the app wrote since a time, counted in its own database, read-only.

Phase 9 "Verify at least 1 successful user action (NIP-05 claim or login)". NostrMaxi logs
no line for either (its request log prints only answers >= 400 or slower than 5 s:
src/common/middleware/security.middleware.ts; AuthService and Nip05Service log nothing),
but each writes a row: a login a `Session` (src/auth/auth.service.ts, verifyChallenge and
pollLnurlAuth), a NIP-05 claim a `Nip05` (src/nip05/nip05.service.ts, provision), both with
Prisma's `createdAt` (prisma/schema.prisma). This check counts those rows created in the
window (since the phase started, or the last `since_minutes`), each count shown; `min`/`max`
judge one count, `min_total` their sum. The session is read-only; the URL is a secret, so
the evidence names host and database only.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, field_validator, model_validator

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, clip, register
from phases.checks.postgres_check import (
    EVIDENCE_LIMIT,
    _split,
    _where,
    connect_read_only,
    libpq_url,
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class RowCount(StepParams):
    name: str = Field(min_length=1, max_length=60)
    table: str  # a table, or schema.table, as the app names it (Prisma: "Session")
    time_column: str = "createdAt"
    where: dict[str, str] = Field(default_factory=dict)  # column = value, all of them
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @field_validator("table", "time_column")
    @classmethod
    def identifier(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError(f"{value!r} is not a table or column name")
        return value

    @field_validator("where")
    @classmethod
    def columns(cls, value: dict[str, str]) -> dict[str, str]:
        for column in value:
            if not _IDENT.match(column) or "." in column:
                raise ValueError(f"{column!r} is not a column name")
        return value


class RowsParams(StepParams):
    url: str = Field(min_length=1)
    counts: list[RowCount] = Field(min_length=1, max_length=10)
    since_minutes: int | None = Field(default=None, ge=1, le=24 * 60)  # None: phase start
    min_total: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def names_differ(self) -> RowsParams:
        names = [c.name for c in self.counts]
        if len(set(names)) != len(names):
            raise ValueError("each count needs its own name")
        return self


def _since(params: RowsParams, ctx: StepContext) -> tuple[float | None, str]:
    if params.since_minutes is not None:
        return (
            ctx.clock.now() - params.since_minutes * 60,
            f"in the last {params.since_minutes} min",
        )
    if ctx.phase_started_at is not None:
        return ctx.phase_started_at, "since the phase started"
    if ctx.run_started_at is not None:
        return ctx.run_started_at, "since the run started"
    return None, "in all rows"


def _count(cur: psycopg.Cursor[Any], c: RowCount, since: float | None) -> int:
    schema, table = _split(c.table)
    ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    clauses: list[sql.Composable] = []
    args: list[Any] = []
    if since is not None:
        # Prisma's DateTime is a timestamp without time zone holding UTC.
        clauses.append(
            sql.SQL("{} >= (to_timestamp(%s) AT TIME ZONE 'UTC')").format(
                sql.Identifier(c.time_column)
            )
        )
        args.append(since)
    for column, value in c.where.items():
        clauses.append(sql.SQL("{}::text = %s").format(sql.Identifier(column)))
        args.append(value)
    query = sql.SQL("SELECT count(*) FROM {}").format(ident)
    if clauses:
        query = query + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
    cur.execute(query, args)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def run_rows(params: RowsParams, ctx: StepContext) -> StepResult:
    ctx.masker.add(params.url)
    url, schema = libpq_url(params.url)
    ctx.masker.add(url)
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return StepResult(Status.ERROR, "database url is not a valid connection string")
    if info.get("password"):
        ctx.masker.add(str(info["password"]))
    where = _where(info)
    since, window = _since(params, ctx)
    tallies: dict[str, int] = {}
    try:
        with connect_read_only(url, schema, ctx.timeout) as conn, conn.cursor() as cur:
            for c in params.counts:
                tallies[c.name] = _count(cur, c, since)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StepResult(
            Status.ERROR, clip(ctx.masker.mask(f"postgres {where}: {reason}"), EVIDENCE_LIMIT)
        )
    problems: list[str] = []
    for c in params.counts:
        n = tallies[c.name]
        if c.min is not None and n < c.min:
            problems.append(f"{c.name} {n} < {c.min}")
        if c.max is not None and n > c.max:
            problems.append(f"{c.name} {n} > {c.max}")
    total = sum(tallies.values())
    if params.min_total is not None and total < params.min_total:
        problems.append(f"{' + '.join(tallies)} {total} < {params.min_total}")
    shown = ", ".join(f"{k}: {v}" for k, v in tallies.items())
    tables = ", ".join(dict.fromkeys(c.table for c in params.counts))
    text = f"{shown} {window} (rows of {tables} in postgres {where})"
    details: dict[str, Any] = {"database": where, "tallies": tallies, "window": window}
    if problems:
        text = f"{shown}; {'; '.join(problems)} {window} (rows of {tables} in postgres {where})"
        return StepResult(Status.FAIL, clip(ctx.masker.mask(text), EVIDENCE_LIMIT), details=details)
    return StepResult(Status.PASS, clip(ctx.masker.mask(text), EVIDENCE_LIMIT), details=details)


KIND = register(StepKind(name="postgres_rows", params=RowsParams, run=run_rows, mutates=False))
