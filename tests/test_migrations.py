"""Schema migrations: a bot deployed before migrations upgrades in place, keeps its audit trail
and its runs, and carries on where it stopped; on SQLite and on the real PostgreSQL.

The old database is the one a deployed bot has: tables as `create_all` made them at 7e63008
(tests/fixtures/schema-7e63008/*.sql, generated from that commit's bot/store/models.py), no
alembic_version table, and rows the bot wrote: a run waiting at its second gate with one of
two votes, a passed gate with its votes, step results and the hash-chained audit trail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine as SAEngine
from sqlalchemy import MetaData, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from bot import audit
from bot.engine import Engine
from bot.store import migrate
from bot.store.db import Database, SchemaNotReady
from bot.store.models import Run
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.require import unavailable
from tests.small_runbook import small_runbook

OLD_SCHEMA = Path(__file__).parent / "fixtures" / "schema-7e63008"
ALICE, BOB, CAROL = Actor("T1:U1", "alice"), Actor("T1:U2", "bob"), Actor("T1:U3", "carol")


@pytest.fixture(params=["sqlite", "postgres"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory of empty databases of one kind: new_url('name') → URL."""
    made: list[Any] = []

    def make(name: str) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.db')}"
        if not postgres_reachable():
            unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
        ctx = throwaway_pg_database(f"cutover_mig_{name}")
        made.append(ctx)
        return ctx.__enter__()

    yield make
    for ctx in made:
        ctx.__exit__(None, None, None)


def old_schema(url: str) -> Database:
    """An empty database with the tables of 7e63008, as a bot deployed then has them."""
    db = Database(url)
    ddl = (OLD_SCHEMA / f"{db.engine.dialect.name}.sql").read_text(encoding="utf-8")
    with db.engine.begin() as conn:
        for statement in ddl.split(";"):
            body = "\n".join(ln for ln in statement.splitlines() if not ln.startswith("--"))
            if body.strip():
                conn.exec_driver_sql(body)
    return db


def copy_rows(source: SAEngine, target: SAEngine) -> None:
    """Every row of the old tables, old columns only, as the old bot would have written it."""
    old, new = MetaData(), MetaData()
    old.reflect(target)
    new.reflect(source)
    with source.connect() as src, target.begin() as dst:
        for table in old.sorted_tables:
            columns = [new.tables[table.name].c[c.name] for c in table.columns]
            rows = src.execute(select(*columns)).mappings().all()
            if rows:
                dst.execute(table.insert(), [dict(r) for r in rows])
            if target.dialect.name == "postgresql" and "id" in table.columns:
                seq = f"pg_get_serial_sequence('{table.name}', 'id')"
                top = f"SELECT coalesce(max(id), 0) + 1 FROM {table.name}"  # noqa: S608
                dst.execute(text(f"SELECT setval({seq}, ({top}), false)"))


def gate_of(engine: Engine, run_id: int) -> int:
    gate = open_gate_id(engine.db, run_id)
    assert gate is not None, "no open gate"
    return gate


def deployed_bot_mid_run(new_url: Any, tmp_path: Path) -> tuple[Database, int]:
    """An old-schema database holding a run that waits at its second gate (its manual step
    ticked, one vote of two)."""
    scratch = Database(new_url("scratch"))
    scratch.create_all()
    engine = Engine(scratch, small_runbook(tmp_path, quorum=2), background=False)
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    first = gate_of(engine, run.id)
    for who in (BOB, CAROL):
        engine.decide(first, who, "continue")
    second = gate_of(engine, run.id)
    engine.tick(second, "browser", BOB)
    assert engine.decide(second, BOB, "continue").outcome != "refused"
    engine.shutdown()
    old = old_schema(new_url("old"))
    copy_rows(scratch.engine, old.engine)
    scratch.dispose()
    return old, run.id


def cutover(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "SLACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "--database-url", url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_old_database_upgrades_keeps_its_audit_trail_and_its_run_resumes(
    new_url: Any, tmp_path: Path
) -> None:
    old, run_id = deployed_bot_mid_run(new_url, tmp_path)
    events_before = len(audit.events(old, run_id))
    refused = cutover(old.url, "audit", "verify")
    assert refused.returncode == 6 and "cutover db upgrade" in refused.stderr

    upgraded = cutover(old.url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from none to {migrate.head()}" in upgraded.stdout
    verified = cutover(old.url, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"audit chain OK: {events_before} events verified" in verified.stdout

    engine = Engine(old, small_runbook(tmp_path, quorum=2), background=False)
    assert engine.recover() == [f"run #{run_id}: waiting at phase 2"]
    second = gate_of(engine, run_id)
    assert engine.decide(second, CAROL, "continue").outcome == "approved"
    for who in (BOB, CAROL):
        engine.decide(gate_of(engine, run_id), who, "continue")
    engine.shutdown()
    with old.session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.status == "completed"
    assert audit.verify(old) == []
    old.dispose()


def test_the_migrations_make_exactly_the_schema_the_models_describe(new_url: Any) -> None:
    db = Database(new_url("fresh"))
    assert db.upgrade() == (None, migrate.head())
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    assert diff == []
    db.dispose()


def shape(engine: SAEngine) -> dict[str, Any]:
    """Tables, columns (type, nullability, default), keys and indexes, as the database has them."""
    insp = inspect(engine)
    return {
        t: (
            [(c["name"], str(c["type"]), c["nullable"], c.get("default") is not None)
             for c in insp.get_columns(t)],
            insp.get_pk_constraint(t)["constrained_columns"],
            sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(t)),
            sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)),
            sorted((f["referred_table"], tuple(f["constrained_columns"]))
                   for f in insp.get_foreign_keys(t)),
        )
        for t in sorted(insp.get_table_names())
        if t != "alembic_version"
    }  # fmt: skip


def test_the_baseline_revision_is_the_schema_of_7e63008(new_url: Any) -> None:
    legacy = old_schema(new_url("legacy"))
    baseline = Database(new_url("baseline"))
    with baseline.engine.begin() as conn:
        from alembic import command

        command.upgrade(migrate.config(conn), migrate.BASELINE)
    assert shape(baseline.engine) == shape(legacy.engine)
    legacy.dispose()
    baseline.dispose()


def test_upgrading_again_changes_nothing(new_url: Any) -> None:
    db = Database(new_url("twice"))
    db.upgrade()
    assert db.upgrade() == (migrate.head(), migrate.head())
    db.dispose()


def test_read_commands_refuse_a_database_at_an_older_revision(new_url: Any) -> None:
    db = Database(new_url("older"))
    with db.engine.begin() as conn:
        from alembic import command

        command.upgrade(migrate.config(conn), migrate.BASELINE)
    needs = f"revision r0001, this cutover needs {migrate.head()}"
    with pytest.raises(SchemaNotReady, match=needs):
        db.require_schema()
    db.dispose()


@pytest.mark.postgres
def test_audit_rows_stay_append_only_after_an_upgrade(tmp_path: Path) -> None:
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
    with throwaway_pg_database("cutover_mig_guard") as url:
        db = Database(url)
        db.upgrade()
        with db.session() as s:
            audit.append(s, "test.event", actor="test")
        for sql in ("UPDATE audit_event SET actor = 'x'", "DELETE FROM audit_event",
                    "TRUNCATE audit_event"):  # fmt: skip
            with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
                conn.execute(text(sql))
        db.dispose()


@pytest.mark.postgres
def test_replicas_starting_together_upgrade_one_at_a_time() -> None:
    """Four `cutover serve` processes start on one empty database: one creates the schema
    under the advisory lock, the others wait for it and find nothing to do."""
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
    with throwaway_pg_database("cutover_mig_race") as url:
        results: list[tuple[str | None, str]] = []
        errors: list[BaseException] = []

        def start() -> None:
            db = Database(url)
            try:
                results.append(db.upgrade())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.dispose()

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        head = migrate.head()
        assert sorted(results, key=lambda r: r[0] or "") == [(None, head)] + [(head, head)] * 3


@pytest.mark.postgres
def test_a_role_that_may_not_change_tables_is_told_to_upgrade_as_the_owner() -> None:
    """The bot runs as a locked-down app role (docs/deploy.md): a new version whose schema is
    newer stops at start with one line saying who must run `cutover db upgrade`."""
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
    role = f"cutover_app_{os.getpid()}"
    with throwaway_pg_database("cutover_mig_role") as url:
        owner = Database(url)
        with owner.engine.begin() as conn:
            from alembic import command

            command.upgrade(migrate.config(conn), migrate.BASELINE)
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            conn.execute(
                text(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
            )
            conn.execute(text(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}"))
        as_app = Database(url.replace("://postgres@", f"://{role}@"))
        try:
            with pytest.raises(
                SchemaNotReady, match="run `cutover db upgrade` as the role that owns"
            ):
                as_app.upgrade()
        finally:
            as_app.dispose()
            owner.dispose()
            with Database(url).engine.begin() as conn:
                conn.execute(text(f"DROP OWNED BY {role}"))
                conn.execute(text(f"DROP ROLE {role}"))


def lockdown_of_that_version(conn: Any, role: str) -> None:
    """What `cutover audit lockdown` of a version at this revision granted: the tables there
    were then, audit rows SELECT and INSERT only."""
    tables = set(inspect(conn).get_table_names())
    append_only = {"audit_event", "audit_signature"}
    state = ", ".join(sorted(tables - append_only - {"alembic_version"}))
    conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
    conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {state} TO "{role}"'))
    conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    conn.execute(text(f'GRANT SELECT ON alembic_version TO "{role}"'))
    for table in sorted(tables & append_only):
        conn.execute(text(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC, "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT ON {table} TO "{role}"'))


@pytest.mark.postgres
@pytest.mark.parametrize("revision", ["r0001", "r0002", "r0003", "r0004"])
def test_a_locked_down_app_role_runs_the_bot_after_the_documented_upgrade(
    revision: str, tmp_path: Path
) -> None:
    """docs/deploy.md: the owner runs `cutover db upgrade`, the bot starts as the app role
    locked down by an older version. It starts a run and appends signed audit rows at once
    (no second `audit lockdown`), and still cannot change or remove an audit row."""
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
    import uuid

    import psycopg

    from tests.db_fixtures import PG_URL, libpq

    role = f"cutover_app_{uuid.uuid4().hex[:8]}"
    key = tmp_path / "audit.key"
    audit.keygen(key, tmp_path / "audit.pub")
    try:
        with throwaway_pg_database(f"cutover_mig_{revision}") as url:
            owner = Database(url)
            with owner.engine.begin() as conn:
                from alembic import command

                command.upgrade(migrate.config(conn), revision)
                conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
                lockdown_of_that_version(conn, role)
            owner._finish_schema()  # the head row and triggers, as that version's start made
            owner.dispose()

            upgraded = cutover(url, "db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stderr
            assert revision == migrate.head() or (
                f"upgraded from {revision} to {migrate.head()}" in upgraded.stdout
            )

            as_app = Database(url.replace("://postgres@", f"://{role}@"))
            as_app.audit_signer = audit.Signer.from_file(key)
            try:
                assert as_app.upgrade() == (migrate.head(), migrate.head())  # serve's start
                engine = Engine(as_app, small_runbook(tmp_path), background=False)
                run = engine.start_run("staging", ALICE)
                assert run.id is not None
                assert engine.decide(gate_of(engine, run.id), BOB, "continue").changed
                engine.shutdown()
                kinds = [e.kind for e in audit.events(as_app, run.id)]
                assert kinds[:2] == ["run.started", "phase.started"]
                public = audit.load_public_keys([tmp_path / "audit.pub"])
                assert audit.verify(as_app) == []
                assert audit.verify_signatures(as_app, public) == []
            finally:
                as_app.dispose()

            with psycopg.connect(libpq(url, role), autocommit=True) as conn:
                for statement in (
                    "UPDATE audit_event SET actor = 'x' WHERE seq = 1",
                    "DELETE FROM audit_event WHERE seq = 1",
                    "TRUNCATE audit_event",
                    "UPDATE audit_signature SET key_id = 'x'",
                    "DELETE FROM audit_signature",
                    "ALTER TABLE audit_event DISABLE TRIGGER USER",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(statement)
    finally:
        with psycopg.connect(libpq(PG_URL), autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
