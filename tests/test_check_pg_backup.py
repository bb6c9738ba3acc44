"""`backup` / `restore`: the bot's own pg_dump of a real database, verified, and its restore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from phases.checks import REGISTRY
from phases.checks.base import Status
from tests.db_fixtures import public_tables, users_target
from tests.servers import run_check


@pytest.fixture
def target() -> Iterator[str]:
    with users_target("backup_target") as url:
        yield url


tables = public_tables


def test_backup_is_an_action_and_restore_too() -> None:
    assert REGISTRY["backup"].mutates and REGISTRY["restore"].mutates


def test_backup_dumps_verifies_and_reports_path_and_sha256(target: str, tmp_path: Path) -> None:
    result = run_check("backup", {"database_url": target, "dir": str(tmp_path / "b")})
    assert result.status is Status.PASS, result.evidence
    artifact = result.details["artifact"]
    path = Path(artifact["path"])
    assert path.parent == tmp_path / "b" and path.stat().st_size == artifact["bytes"]
    assert len(artifact["sha256"]) == 64 and artifact["entries"] >= 2
    assert "pg_restore --list reads it" in result.evidence
    assert "postgres@" not in result.evidence  # host/db only, never the URL


def test_backup_of_an_unreachable_database_fails_and_leaves_no_file(tmp_path: Path) -> None:
    url = "postgresql://postgres:s3cret-pw@127.0.0.1:1/nope"
    result = run_check("backup", {"database_url": url, "dir": str(tmp_path)})
    assert result.status is Status.FAIL
    assert "pg_dump of 127.0.0.1/nope failed" in result.evidence
    assert "s3cret-pw" not in result.evidence
    assert list(tmp_path.iterdir()) == []


def test_restore_puts_back_exactly_the_verified_backup(target: str, tmp_path: Path) -> None:
    backup = run_check("backup", {"database_url": target, "dir": str(tmp_path)})
    artifact = backup.details["artifact"]
    with psycopg.connect(target, autocommit=True) as conn:  # a half-applied migration
        conn.execute("CREATE TABLE _prisma_migrations (id text)")
        conn.execute("DELETE FROM users")
    result = run_check(
        "restore", {"database_url": target, "file": artifact["path"], "sha256": artifact["sha256"]}
    )
    assert result.status is Status.PASS, result.evidence
    assert tables(target) == ["users"]
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (2,)


def test_restore_refuses_a_backup_whose_bytes_changed(target: str, tmp_path: Path) -> None:
    backup = run_check("backup", {"database_url": target, "dir": str(tmp_path)})
    artifact = backup.details["artifact"]
    with open(artifact["path"], "ab") as fh:
        fh.write(b"tampered")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE later (id int)")
    result = run_check(
        "restore", {"database_url": target, "file": artifact["path"], "sha256": artifact["sha256"]}
    )
    assert result.status is Status.FAIL
    assert "changed since, nothing restored" in result.evidence
    assert tables(target) == ["later", "users"]  # untouched
