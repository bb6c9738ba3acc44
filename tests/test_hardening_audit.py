"""The audit table on PostgreSQL refuses UPDATE, DELETE and TRUNCATE: by trigger, and by privilege.

Triggers bind every role, superusers included, until an owner disables them;
`cutover audit lockdown --app-role ROLE` revokes the rights themselves from the
role the bot runs as, so that role cannot disable the triggers nor change a row.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from bot import audit
from bot.cli import main
from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.db_fixtures import libpq
from tests.small_runbook import small_runbook

pytestmark = pytest.mark.postgres

BOB, CAROL = Actor("T1:U2", "bob"), Actor("T1:U3", "carol")


def seeded(db: Database, tmp_path: Path) -> int:
    engine = Engine(db, small_runbook(tmp_path), background=False)
    run = engine.start_run("staging", BOB)
    assert run.id is not None
    engine.decide(open_gate_id(db, run.id) or 0, CAROL, "continue")
    return run.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET actor = 'T1:U666' WHERE seq = 2",
        "DELETE FROM audit_event WHERE seq = 2",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
    ],
)
def test_plain_update_delete_truncate_are_refused_even_for_a_superuser(
    pg_db: Database, tmp_path: Path, statement: str
) -> None:
    seeded(pg_db, tmp_path)
    before = audit.export(pg_db, None, "jsonl")
    with pytest.raises(DBAPIError) as caught, pg_db.engine.begin() as conn:
        conn.execute(text(statement))
    message = str(caught.value.orig)
    assert "audit_event is append-only" in message, message
    verb = statement.split()[0]
    assert f"{verb} refused" in message
    assert audit.export(pg_db, None, "jsonl") == before
    assert audit.verify(pg_db) == []


def test_inserts_still_work_and_install_is_idempotent_across_processes(
    pg_db: Database, tmp_path: Path
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:  # four bots starting at once on the same database
        other = Database(pg_db.url)
        try:
            barrier.wait()
            other.create_all()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            other.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with pg_db.engine.begin() as conn:
        names = conn.execute(
            text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass "
                "AND NOT tgisinternal ORDER BY tgname"
            )
        ).scalars()
        assert list(names) == ["audit_event_no_truncate", "audit_event_no_update_delete"]
    seeded(pg_db, tmp_path)  # appends go through the guarded table
    assert audit.verify(pg_db) == []


def test_disabled_triggers_are_enabled_again_at_start(pg_db: Database) -> None:
    with pg_db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    pg_db.create_all()
    with pytest.raises(DBAPIError, match="append-only"), pg_db.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_event"))


def test_truncate_by_an_attacker_who_disabled_the_triggers_is_found_by_verify(
    pg_db: Database, tmp_path: Path
) -> None:
    seeded(pg_db, tmp_path)
    with pg_db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_event WHERE seq BETWEEN 4 AND 5"))
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
    problems = [str(p) for p in audit.verify(pg_db)]
    assert "row 6: rows 4-5 are missing (deleted)" in problems
    with pg_db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(text("TRUNCATE audit_event"))
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
    problems = [str(p) for p in audit.verify(pg_db)]
    assert len(problems) == 1 and "rows at the end were deleted" in problems[0]


def test_locked_down_app_role_runs_the_bot_but_cannot_touch_audit_rows(
    pg_db: Database, tmp_path: Path, app_role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", pg_db.url, "audit", "lockdown", "--app-role", app_role]) == 0
    out = capsys.readouterr().out
    assert f"REVOKE ALL ON audit_event FROM {app_role};" in out
    assert f"GRANT SELECT, INSERT ON audit_event TO {app_role};" in out

    as_app = Database(make_url(pg_db.url).set(username=app_role).render_as_string(False))
    try:
        as_app.create_all()  # a restart as the app role: nothing to install, no DDL needed
        run_id = seeded(as_app, tmp_path)  # runs, gates, votes, audit appends all work
        kinds = [e.kind for e in audit.events(as_app, run_id)]
        assert kinds[:2] == ["run.started", "phase.started"]
        assert audit.verify(as_app) == []
    finally:
        as_app.dispose()

    with psycopg.connect(libpq(pg_db.url, app_role), autocommit=True) as conn:
        for statement in (
            "UPDATE audit_event SET actor = 'x' WHERE seq = 1",
            "DELETE FROM audit_event WHERE seq = 1",
            "TRUNCATE audit_event",
            "ALTER TABLE audit_event DISABLE TRIGGER USER",
            "DROP TRIGGER audit_event_no_update_delete ON audit_event",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM audit_event").fetchone() == (
            len(audit.export(pg_db, None, "jsonl").splitlines()),
        )
    assert audit.verify(pg_db) == []


def test_lockdown_refuses_a_role_that_a_revoke_cannot_bind(
    pg_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = make_url(pg_db.url).username or "postgres"
    assert main(["--database-url", pg_db.url, "audit", "lockdown", "--app-role", owner]) == 2
    err = capsys.readouterr().err
    assert "superuser or owns audit_event" in err and "nothing changed" in err
    assert main(["--database-url", pg_db.url, "audit", "lockdown", "--app-role", "no_such"]) == 2
    assert "no role 'no_such'" in capsys.readouterr().err


def test_lockdown_refuses_a_role_name_that_is_not_plain(pg_db: Database) -> None:
    for name in ('x"; DROP TABLE run; --', "a b", "-rf", "$(id)", ""):
        with pytest.raises(audit.LockdownError, match="not a plain role name"):
            audit.lockdown_statements(pg_db, name)
    assert any('"app-role"' in s for s in audit.lockdown_statements(pg_db, "app-role"))
