"""`postgres`: phase 4 "Migrations applied successfully", phase 9 database connections.

Runs against the real local server (CUTOVER_TEST_PG_URL, default
postgresql://postgres@127.0.0.1:5432/postgres) in a throwaway database.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import ValidationError

from phases.checks import REGISTRY
from phases.checks.base import Status, StepContext, StepResult
from phases.checks.postgres_check import connect_read_only, libpq_url
from phases.secrets import Masker
from tests import servers
from tests.servers import run_check

pg_database = servers.pg_database  # fixture: URL of a throwaway database, dropped after

PRISMA_MIGRATIONS = """
CREATE TABLE "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)
"""

PASSWORD = "pg-" + "Hx9" * 6


def with_password(url: str) -> str:
    """The same URL with a password (trust auth ignores it; the check must hide it)."""
    info = conninfo_to_dict(url)
    info["password"] = PASSWORD
    return "postgresql://{user}:{password}@{host}:{port}/{dbname}".format(
        user=info.get("user", "postgres"),
        password=PASSWORD,
        host=info.get("host", "127.0.0.1"),
        port=info.get("port", "5432"),
        dbname=info["dbname"],
    )


def migrate(url: str, *rows: tuple[str, bool, bool]) -> None:
    """rows: (migration_name, finished, rolled_back)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PRISMA_MIGRATIONS)
        conn.execute('CREATE TABLE "User" (id text PRIMARY KEY, pubkey text NOT NULL)')
        conn.execute('CREATE TABLE "Subscription" (id text PRIMARY KEY, tier text NOT NULL)')
        for name, finished, rolled_back in rows:
            conn.execute(
                'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, '
                "rolled_back_at, applied_steps_count) VALUES (%s, %s, "
                "CASE WHEN %s THEN now() END, %s, CASE WHEN %s THEN now() END, 1)",
                (str(uuid.uuid4()), "0" * 64, finished, name, rolled_back),
            )


@pytest.fixture
def db(pg_database: str) -> Iterator[str]:
    migrate(
        pg_database, ("20260101000000_init", True, False), ("20260201000000_nip05", True, False)
    )
    yield pg_database


def check(url: str, ctx: StepContext | None = None, **params: Any) -> StepResult:
    ctx = ctx or StepContext(masker=Masker(), timeout=5.0)
    result = run_check("postgres", {"url": url, **params}, ctx)
    assert len(result.evidence) <= 200
    return result


def where(url: str) -> str:
    info = conninfo_to_dict(url)
    return f"{info.get('host', '127.0.0.1')}:{info.get('port', '5432')}/{info['dbname']}"


def test_kind_is_registered_read_only() -> None:
    assert REGISTRY["postgres"].mutates is False


@pytest.mark.postgres
def test_migrations_applied_and_tables_present_passes(db: str) -> None:
    result = check(
        db,
        max_connections=100,
        expect_tables=["User", "Subscription"],
        migrations_table="_prisma_migrations",
    )
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith(f"postgres {where(db)}: ")
    assert "(limit 100)" in result.evidence
    assert "2/2 tables" in result.evidence
    assert result.evidence.endswith("migrations 2 applied, 0 failed")
    assert result.details["migrations_applied"] == 2


@pytest.mark.postgres
def test_failed_prisma_migration_fails(pg_database: str) -> None:
    migrate(
        pg_database,
        ("20260101000000_init", True, False),
        ("20260201000000_nip05", True, False),
        ("20260217000000_add_payments", False, False),
    )
    result = check(pg_database, migrations_table="_prisma_migrations")
    assert result.status is Status.FAIL
    assert result.evidence.endswith("migrations 2 applied, 1 failed (20260217000000_add_payments)")


@pytest.mark.postgres
def test_rolled_back_migration_marked_resolved_is_not_a_failure(pg_database: str) -> None:
    migrate(
        pg_database,
        ("20260101000000_init", True, False),
        ("20260217000000_add_payments", False, True),
    )
    result = check(pg_database, migrations_table="_prisma_migrations")
    assert result.status is Status.PASS, result.evidence
    assert "migrations 1 applied, 0 failed, 1 rolled back" in result.evidence


@pytest.mark.postgres
def test_missing_migrations_table_fails(pg_database: str) -> None:
    result = check(pg_database, migrations_table="_prisma_migrations")
    assert result.status is Status.FAIL
    assert result.evidence.endswith("migrations table _prisma_migrations missing")


@pytest.mark.postgres
def test_missing_expected_table_fails(db: str) -> None:
    result = check(db, expect_tables=["User", "Invoice", "user"])
    assert result.status is Status.FAIL
    assert result.evidence.endswith("missing tables: Invoice, user")  # names are case-exact


@pytest.mark.postgres
def test_connection_count_over_the_limit_fails(db: str) -> None:
    extra = [psycopg.connect(db) for _ in range(2)]
    try:
        result = check(db, max_connections=1)
    finally:
        for conn in extra:
            conn.close()
    assert result.status is Status.FAIL
    count = result.details["connections"]
    assert count >= 3
    assert result.evidence.endswith(f"{count} connections (limit 1)")


@pytest.mark.postgres
def test_url_and_password_never_appear_in_evidence(db: str) -> None:
    url = with_password(db)
    ctx = StepContext(masker=Masker(), timeout=5.0)
    result = check(url, ctx, expect_tables=["Nope"])
    assert result.status is Status.FAIL
    shown = result.evidence + repr(result.details)
    assert PASSWORD not in shown and url not in shown
    assert ctx.masker.mask(f"DATABASE_URL={url}") == "DATABASE_URL=[redacted]"
    assert PASSWORD not in ctx.masker.mask(f"password {PASSWORD}")


@pytest.mark.postgres
def test_prisma_url_with_schema_parameter_is_accepted(db: str) -> None:
    info = conninfo_to_dict(db)
    url = (
        f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
        f"{info.get('port', '5432')}/{info['dbname']}?schema=public&connection_limit=5"
    )
    result = check(url, expect_tables=["User"], migrations_table="_prisma_migrations")
    assert result.status is Status.PASS, result.evidence


@pytest.mark.postgres
def test_the_check_session_is_read_only_and_bounded(db: str) -> None:
    with connect_read_only(db, "public", timeout=1.5) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('default_transaction_read_only', 'statement_timeout', 'search_path')"
            ).fetchall()
        )
        assert settings == {
            "default_transaction_read_only": "on",
            "statement_timeout": "1500",
            "search_path": "public",
        }
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE should_fail (id int)")


def test_unreachable_server_is_an_error_naming_host_and_db_only() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://nostrmaxi:{PASSWORD}@127.0.0.1:{port}/nostrmaxi"
    result = check(url)
    assert result.status is Status.ERROR
    assert result.evidence.startswith(f"postgres 127.0.0.1:{port}/nostrmaxi: cannot connect")
    assert PASSWORD not in result.evidence


def test_libpq_url_drops_prisma_only_parameters() -> None:
    url, schema = libpq_url(
        "postgresql+psycopg://u:p%40ss@db:5432/app?schema=public&sslmode=require&pgbouncer=true"
    )
    assert (url, schema) == ("postgresql://u:p%40ss@db:5432/app?sslmode=require", "public")
    assert libpq_url(make_conninfo(host="db", dbname="app")) == ("host=db dbname=app", None)


@pytest.mark.parametrize(
    "params",
    [{}, {"url": ""}, {"url": "postgresql://x", "max_connections": 0}, {"url": "x", "sql": "DROP"}],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REGISTRY["postgres"].params.model_validate(params)
