"""`postgres`: the database answers, read-only, within its connection budget.

Runbook phase 4 "Migrations applied successfully" (Prisma's `_prisma_migrations`
has no failed or unfinished row), and phase 9 "Monitor database connections"
(`SELECT count(*) FROM pg_stat_activity`). The session is read-only; the URL is
a secret, so evidence names host and database only.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, clip, register

EVIDENCE_LIMIT = 200


class PostgresParams(StepParams):
    url: str = Field(min_length=1)
    max_connections: int | None = Field(default=None, ge=1)
    expect_tables: list[str] = Field(default_factory=list)
    migrations_table: str | None = None  # e.g. "_prisma_migrations"


# Query parameters Prisma (or SQLAlchemy) understand and libpq rejects.
NON_LIBPQ_PARAMS = {
    "schema",
    "connection_limit",
    "pool_timeout",
    "pgbouncer",
    "socket_timeout",
    "statement_cache_size",
    "sslaccept",
    "sslidentity",
}
_DRIVER = re.compile(r"^(postgres(?:ql)?)\+[A-Za-z0-9_]+://")
_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def libpq_url(url: str) -> tuple[str, str | None]:
    """(URL libpq accepts, Prisma's ?schema=) from a Prisma, SQLAlchemy or libpq URL."""
    url = _DRIVER.sub(r"\1://", url.strip())
    if not url.startswith(("postgres://", "postgresql://")):
        return url, None  # a key=value conninfo string
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema" and v), None)
    kept = [(k, v) for k, v in query if k not in NON_LIBPQ_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


def _where(info: dict[str, Any]) -> str:
    host = str(info.get("host") or info.get("hostaddr") or "localhost")
    port = str(info.get("port") or "5432")
    db = str(info.get("dbname") or info.get("user") or "?")
    return f"{host}:{port}/{db}"


def _split(name: str) -> tuple[str | None, str]:
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else (None, name)


def _table_exists(cur: psycopg.Cursor[Any], name: str) -> bool:
    schema, table = _split(name)
    if schema is None:
        cur.execute(
            "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relname = %s "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND n.nspname = ANY (current_schemas(false))",
            (table,),
        )
    else:
        cur.execute(
            "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relname = %s AND n.nspname = %s "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            (table, schema),
        )
    return cur.fetchone() is not None


def _migrations(cur: psycopg.Cursor[Any], name: str) -> tuple[int, int, int, list[str]]:
    """(applied, failed, rolled_back, failed names) from a Prisma migrations table."""
    schema, table = _split(name)
    ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    cur.execute(
        sql.SQL(
            "SELECT "
            "count(*) FILTER (WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL), "
            "count(*) FILTER (WHERE finished_at IS NULL AND rolled_back_at IS NULL), "
            "count(*) FILTER (WHERE rolled_back_at IS NOT NULL) "
            "FROM {}"
        ).format(ident)
    )
    row = cur.fetchone()
    assert row is not None
    cur.execute(
        sql.SQL(
            "SELECT migration_name FROM {} WHERE finished_at IS NULL AND rolled_back_at IS NULL "
            "ORDER BY started_at LIMIT 3"
        ).format(ident)
    )
    names = [str(r[0]) for r in cur.fetchall()]
    return int(row[0]), int(row[1]), int(row[2]), names


def connect_read_only(url: str, schema: str | None, timeout: float) -> psycopg.Connection[Any]:
    """A session in which every transaction is read-only and every statement is bounded."""
    timeout_ms = max(1, int(timeout * 1000))
    options = f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}"
    if schema:
        options += f" -c search_path={schema}"
    return psycopg.connect(
        url,
        connect_timeout=max(2, math.ceil(timeout)),  # libpq's minimum is 2 s
        autocommit=True,
        application_name="cutover-bot-check",
        options=options,
    )


def run_postgres(params: PostgresParams, ctx: StepContext) -> StepResult:
    # The URL and its password are secrets: registered before anything can echo them.
    ctx.masker.add(params.url)
    url, schema = libpq_url(params.url)
    ctx.masker.add(url)
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return StepResult(Status.ERROR, "database url is not a valid connection string")
    if schema is not None and not _SCHEMA.fullmatch(schema):
        return StepResult(Status.ERROR, "database url: unsupported ?schema= name")
    password = info.get("password")
    if password:
        ctx.masker.add(str(password))
    where = _where(info)
    try:
        conn = connect_read_only(url, schema, ctx.timeout)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        evidence = f"postgres {where}: cannot connect: {ctx.masker.mask(reason)}"
        return StepResult(Status.ERROR, clip(ctx.masker.mask(evidence), EVIDENCE_LIMIT))

    problems: list[str] = []
    facts: list[str] = []
    details: dict[str, Any] = {"database": where}
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET SESSION default_transaction_read_only = on")
            cur.execute("SELECT count(*) FROM pg_stat_activity")
            row = cur.fetchone()
            connections = int(row[0]) if row else 0
            details["connections"] = connections
            if params.max_connections is not None:
                text = f"{connections} connections (limit {params.max_connections})"
                (problems if connections > params.max_connections else facts).append(text)
            else:
                facts.append(f"{connections} connections")

            if params.expect_tables:
                missing = [t for t in params.expect_tables if not _table_exists(cur, t)]
                details["missing_tables"] = missing
                found = len(params.expect_tables) - len(missing)
                if missing:
                    problems.append(f"missing tables: {', '.join(missing)}")
                else:
                    facts.append(f"{found}/{len(params.expect_tables)} tables")

            if params.migrations_table:
                if not _table_exists(cur, params.migrations_table):
                    problems.append(f"migrations table {params.migrations_table} missing")
                else:
                    applied, failed, rolled_back, names = _migrations(cur, params.migrations_table)
                    details.update(
                        migrations_applied=applied,
                        migrations_failed=failed,
                        migrations_rolled_back=rolled_back,
                    )
                    text = f"migrations {applied} applied, {failed} failed"
                    if rolled_back:
                        text += f", {rolled_back} rolled back"
                    if failed:
                        problems.append(text + f" ({', '.join(names)})")
                    elif applied == 0:
                        problems.append(text + " (none applied)")
                    else:
                        facts.append(text)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        evidence = f"postgres {where}: query failed: {reason}"
        return StepResult(
            Status.ERROR, clip(ctx.masker.mask(evidence), EVIDENCE_LIMIT), details=details
        )
    finally:
        conn.close()
    if problems:
        evidence = f"postgres {where}: " + "; ".join(problems)
        return StepResult(
            Status.FAIL, clip(ctx.masker.mask(evidence), EVIDENCE_LIMIT), details=details
        )
    evidence = f"postgres {where}: " + ", ".join(facts)
    return StepResult(Status.PASS, clip(ctx.masker.mask(evidence), EVIDENCE_LIMIT), details=details)


KIND = register(StepKind(name="postgres", params=PostgresParams, run=run_postgres, mutates=False))
