"""The restore point: a Retry over a half-migrated database never moves it.

A real PostgreSQL target database, a real `pg_dump` taken and verified by the bot, a
migration that really creates a table and then fails, a Retry that re-takes the backup over
the half-migrated database, then a Rollback whose real `pg_restore` must put back the backup
taken before the first migration attempt; afterwards the half-migrated table is gone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from bot.text import hhmm
from phases.runbook import Runbook, load_runbook
from tests.db_fixtures import public_tables, users_target

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")

# The migration: creates its table, then fails (the way `prisma migrate deploy` leaves a
# half-applied migration), every time it runs.
MIGRATE = (
    "import os, sys, psycopg\n"
    "with psycopg.connect(os.environ['TARGET'], autocommit=True) as c:\n"
    "    c.execute('CREATE TABLE IF NOT EXISTS half_migrated (id int)')\n"
    "print('Error: P3018 A migration failed to apply.', file=sys.stderr)\n"
    "sys.exit(1)\n"
)


@pytest.fixture
def target() -> Iterator[str]:
    """The application's database: one table with two rows before the cutover."""
    with users_target("restore_point_target") as url:
        yield url


tables = public_tables


def migration_runbook(
    tmp_path: Path,
    target: str,
    *,
    early_backup: bool = False,
    pre_migration_backup: bool = True,
    rollback_checks: list[dict[str, Any]] | None = None,
) -> Runbook:
    """Phase 0 checks (and, with `early_backup`, takes a backup too); Phase 4 backs up, then
    migrates, restore-protected, as the NostrMaxi runbook does."""
    backup = {
        "kind": "backup",
        "params": {"database_url": "{database_url}", "dir": str(tmp_path / "backups")},
        "timeout": 120,
    }
    script = tmp_path / "migrate.py"
    script.write_text(MIGRATE, encoding="utf-8")
    env_file = tmp_path / "migrate.env"
    env_file.write_text(f"TARGET={target}\n", encoding="utf-8")
    data: dict[str, Any] = {
        "name": "Restore point runbook",
        "phases": [
            {
                "id": "readiness",
                "number": 0,
                "name": "Readiness",
                "estimate_minutes": 1,
                "checkpoint": "ready",
                "actions": [{"id": "early-backup", "name": "Early backup", **backup}]
                if early_backup
                else [],
                "checks": [
                    {"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
                ],
            },
            {
                "id": "migrate",
                "number": 4,
                "name": "Database migration",
                "estimate_minutes": 5,
                "checkpoint": "migrated",
                "on_fail": "restore_and_rollback",
                "actions": [
                    *(
                        [{"id": "backup-db", "name": "Backup before migrating", **backup}]
                        if pre_migration_backup
                        else []
                    ),
                    {
                        "id": "migrate",
                        "name": "Migrate",
                        "kind": "run",
                        "params": {
                            "argv": [sys.executable, str(script)],
                            "env_file": str(env_file),
                        },
                        "timeout": 60,
                    },
                ],
            },
        ],
        "restore": [
            {
                "id": "restore-db",
                "name": "Restore the database from the restore point",
                "kind": "restore",
                "params": {
                    "database_url": "{database_url}",
                    "file": "{run_backup}",
                    "sha256": "{run_backup_sha256}",
                },
                "timeout": 120,
            }
        ],
        "rollback_checks": rollback_checks or [],
        "environments": {
            "prod": {
                "domain": "prod.test",
                "base_url": "http://127.0.0.1:9",
                "database_url": target,
                "approvers": ["T1:U1", "T1:U2"],
                "stakeholders": "#stakeholders",
            }
        },
    }
    path = tmp_path / "restore-point.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_runbook(path)


def run_events(db: Database, run_id: int, kind: str) -> list[tuple[Any, dict[str, Any]]]:
    return [(e, json.loads(e.data)) for e in audit.events(db, run_id) if e.kind == kind]


def backups(db: Database, run_id: int) -> list[tuple[Any, dict[str, Any]]]:
    return [
        (e, d)
        for e, d in run_events(db, run_id, "step.result")
        if d.get("artifact", {}).get("type") == "backup" and d["status"] == "pass"
    ]


class Captured:
    def __init__(self, engine: Engine) -> None:
        self.thread: list[str] = []
        self.feed: list[str] = []
        engine.surface.notice = self.notice  # type: ignore[method-assign]

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        (self.feed if channel else self.thread).append(text)

    def report(self) -> str:
        return next(n for n in reversed(self.thread) if n.startswith("Rollback finished"))


def gate_of(engine: Engine, run_id: int) -> int:
    gate_id = open_gate_id(engine.db, run_id)
    assert gate_id is not None, "no open gate"
    return gate_id


def start_and_fail_migration(engine: Engine) -> int:
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    assert engine.decide(gate_of(engine, run.id), BOB, "continue").outcome == "approved"
    return run.id


def test_a_retry_never_moves_the_restore_point_onto_the_half_migrated_database(
    db: Database, target: str, tmp_path: Path
) -> None:
    engine = Engine(db, migration_runbook(tmp_path, target), background=False)
    run_id = start_and_fail_migration(engine)
    assert tables(target) == ["half_migrated", "users"]  # the first attempt half-migrated
    # Retry: the backup runs again, over the half-migrated database; the migration fails again.
    assert engine.decide(gate_of(engine, run_id), BOB, "retry").outcome == "retried"
    taken = backups(db, run_id)
    assert len(taken) == 2  # the Retry's backup is kept and recorded
    first, retried = taken[0][1]["artifact"], taken[1][1]["artifact"]
    assert first["sha256"] != retried["sha256"]  # the second holds half_migrated

    decided = engine.decide(gate_of(engine, run_id), BOB, "rollback", reason="migration failed")
    assert decided.outcome == "rolled_back"
    # The restore put back the backup taken before the first migration attempt.
    assert tables(target) == ["users"]
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (2,)
    restore = next(
        d for _e, d in run_events(db, run_id, "step.result") if d["section"] == "restore"
    )
    assert restore["status"] == "pass"
    assert restore["artifact"]["path"] == first["path"]
    assert restore["artifact"]["sha256"] == first["sha256"]


def test_the_restore_point_is_recorded_with_the_backups_own_result(
    db: Database, target: str, tmp_path: Path
) -> None:
    engine = Engine(db, migration_runbook(tmp_path, target), background=False)
    run_id = start_and_fail_migration(engine)
    engine.decide(gate_of(engine, run_id), BOB, "retry")
    points = run_events(db, run_id, "restore_point.set")
    assert len(points) == 1  # fixed once: the Retry's backup never replaced it
    row, point = points[0]
    backup_row, backup = backups(db, run_id)[0]
    # Written with the backup's step result, in its transaction: the very next row.
    assert row.seq == backup_row.seq + 1
    assert point["path"] == backup["artifact"]["path"]
    assert point["sha256"] == backup["artifact"]["sha256"]
    assert point["taken_at"] == backup_row.at
    assert point["taken_by"] == {
        "phase": "migrate",
        "phase_index": 1,
        "phase_number": "4",
        "attempt": 1,
        "step": "backup-db",
    }
    assert point["protects"]["step"] == "migrate" and point["protects"]["attempt"] == 1


def test_the_rollback_report_names_the_restore_point_as_the_audit_trail_has_it(
    db: Database, target: str, tmp_path: Path
) -> None:
    engine = Engine(db, migration_runbook(tmp_path, target), background=False)
    said = Captured(engine)
    run_id = start_and_fail_migration(engine)
    engine.decide(gate_of(engine, run_id), BOB, "retry")
    engine.decide(gate_of(engine, run_id), BOB, "rollback", reason="migration failed")
    (_row, point) = run_events(db, run_id, "restore_point.set")[0]
    (_row, done) = run_events(db, run_id, "run.rolled_back")[0]
    report = said.report()

    taken = hhmm(datetime.fromisoformat(point["taken_at"]))
    name = Path(point["path"]).name
    assert (
        f"Database restored from the restore point: the backup taken by Phase 4 step "
        f"backup-db (attempt 1) at {taken} ({name}, sha256 {point['sha256'][:12]}…), the newest "
        "verified backup before Phase 4 step migrate (attempt 1) began changing the database."
    ) in report
    (_row, again) = backups(db, run_id)[1]
    retaken = hhmm(datetime.fromisoformat(_row.at))
    assert again["step"] == "backup-db"
    assert (
        f"1 later backup of this run (Phase 4 step backup-db (attempt 2) at {retaken}) was kept "
        "but not used: it may hold the state the rollback undoes."
    ) in report
    assert "✅ restore Restore the database from the restore point: restored" in report
    assert f"from {name} (sha256 {point['sha256'][:12]}… as verified)" in report
    assert done["restore"] == "restored" and done["restored"] is True
    assert done["restore_point"] == {"path": point["path"], "sha256": point["sha256"]}


def test_a_backup_before_the_protected_phase_gives_way_to_the_pre_migration_backup(
    db: Database, target: str, tmp_path: Path
) -> None:
    """Both are taken before the database is first changed: the newer one is the restore
    point (it keeps what was written between them); fixed once the migration may begin."""
    engine = Engine(db, migration_runbook(tmp_path, target, early_backup=True), background=False)
    run_id = start_and_fail_migration(engine)
    engine.decide(gate_of(engine, run_id), BOB, "retry")
    taken = backups(db, run_id)
    assert [d["step"] for _e, d in taken] == ["early-backup", "backup-db", "backup-db"]
    points = run_events(db, run_id, "restore_point.set")
    assert len(points) == 1
    assert points[0][1]["path"] == taken[1][1]["artifact"]["path"]


def test_a_rollback_before_the_migration_began_restores_nothing_and_says_so(
    db: Database, target: str, tmp_path: Path
) -> None:
    """The pre-migration backup itself failed: nothing changed the database, nothing to undo."""
    runbook = migration_runbook(tmp_path, target)
    (tmp_path / "backups").write_text("not a folder", encoding="utf-8")  # the backup fails
    engine = Engine(db, runbook, background=False)
    said = Captured(engine)
    run_id = start_and_fail_migration(engine)
    assert run_events(db, run_id, "restore_point.set") == []
    engine.decide(gate_of(engine, run_id), BOB, "rollback", reason="backup failed")
    (_row, done) = run_events(db, run_id, "run.rolled_back")[0]
    assert done["restore"] == "not_needed" and done["restored"] is False
    assert (
        "The database was not restored: no state-changing step of a restore-protected phase "
        "began in this run, so it holds no change of theirs to undo."
    ) in said.report()
    assert tables(target) == ["users"]


def test_a_retry_after_a_failed_backup_fixes_the_restore_point_on_the_retried_backup(
    db: Database, target: str, tmp_path: Path
) -> None:
    """The first attempt's backup failed, so its migration never ran: the Retry's backup is
    still of the untouched database, and it becomes the restore point."""
    runbook = migration_runbook(tmp_path, target)
    blocker = tmp_path / "backups"
    blocker.write_text("not a folder", encoding="utf-8")  # the first backup fails
    engine = Engine(db, runbook, background=False)
    run_id = start_and_fail_migration(engine)
    assert run_events(db, run_id, "restore_point.set") == []
    blocker.unlink()
    engine.decide(gate_of(engine, run_id), BOB, "retry")
    (_row, point) = run_events(db, run_id, "restore_point.set")[0]
    assert point["taken_by"]["attempt"] == 2 and point["protects"]["attempt"] == 2
    engine.decide(gate_of(engine, run_id), BOB, "rollback", reason="migration failed")
    assert tables(target) == ["users"]


def test_a_phase_that_begins_by_migrating_fixes_the_restore_point_as_it_starts(
    db: Database, target: str, tmp_path: Path
) -> None:
    """No backup in the migration phase: the readiness phase's backup is the restore point,
    fixed in the transaction that starts the migration phase, before its first step."""
    runbook = migration_runbook(tmp_path, target, early_backup=True, pre_migration_backup=False)
    engine = Engine(db, runbook, background=False)
    run_id = start_and_fail_migration(engine)
    started = [e for e, d in run_events(db, run_id, "phase.started") if d["phase"] == "migrate"]
    (row, point) = run_events(db, run_id, "restore_point.set")[0]
    assert row.seq == started[0].seq + 1
    assert point["taken_by"]["step"] == "early-backup" and point["taken_by"]["phase"] == "readiness"
    assert point["protects"]["step"] == "migrate"
    engine.decide(gate_of(engine, run_id), BOB, "rollback", reason="migration failed")
    assert tables(target) == ["users"]
