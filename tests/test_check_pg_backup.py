"""`backup` / `restore`: the bot's own pg_dump of a real database, verified, and its restore."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from phases.checks import REGISTRY, command_process, leash
from phases.checks.base import Status, StopRequest
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


# --------------------------------------------------------------------------- the tools' process
# pg_dump and pg_restore run as a command step's program does: only the step's environment,
# stopped by an abort or a lost lease, begun only once the lease's watchdog knows them.


def fake_tool(bin_dir: Path, name: str, body: str) -> None:
    """A stand-in for pg_dump/pg_restore first on PATH (the real one is used elsewhere)."""
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)


def test_pg_dump_gets_the_connection_and_none_of_the_bots_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = tmp_path / "env"
    fake_tool(tmp_path / "bin", "pg_dump", f"env > {seen}; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-for-steps")
    monkeypatch.setenv("CUTOVER_AUDIT_KEY", "not-for-steps")
    url = "postgresql://app:pw-for-pg@127.0.0.1:5432/appdb"
    result = run_check("backup", {"database_url": url, "dir": str(tmp_path / "b")})
    assert result.status is Status.FAIL
    got = dict(line.split("=", 1) for line in seen.read_text().splitlines())
    assert got["PGPASSWORD"] == "pw-for-pg" and got["PGDATABASE"] == "appdb"
    assert "SLACK_BOT_TOKEN" not in got and "CUTOVER_AUDIT_KEY" not in got
    allowed = {*command_process.INHERITED_ENV, "HOME", command_process.MARKER_VAR, "PWD"}
    assert {k for k in got if not k.startswith("PG")} <= allowed, got


def test_an_abort_stops_a_running_restore_and_says_it_may_be_partial(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = run_check("backup", {"database_url": target, "dir": str(tmp_path / "b")})
    artifact = backup.details["artifact"]
    fake_tool(tmp_path / "bin", "pg_restore", "exec sleep 60")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    stop = StopRequest()
    threading.Timer(0.5, stop.set, args=("an abort by <@U2>",)).start()
    params = {"database_url": target, "file": artifact["path"], "sha256": artifact["sha256"]}
    result = run_check("restore", params, stop=stop, stop_grace=5, timeout=60)
    assert result.status is Status.ERROR
    assert result.evidence.startswith("pg_restore of ")
    assert "stopped by an abort by <@U2>: SIGTERM after" in result.evidence
    assert result.evidence.endswith("; the restore may be partial")
    # recorded as a command step's stop is: the rollback's hand-over says how it ended
    assert result.details["stopped"] == "sigterm" and result.details["stop_seconds"] < 5


def test_a_restore_whose_lease_may_have_lapsed_is_not_started(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = run_check("backup", {"database_url": target, "dir": str(tmp_path / "b")})
    artifact = backup.details["artifact"]
    ran = tmp_path / "ran"
    fake_tool(tmp_path / "bin", "pg_restore", f"touch {ran}")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    holder = leash.Leash()
    holder.renew(time.monotonic() - 1)
    stop = StopRequest()
    stop.leash = holder
    params = {"database_url": target, "file": artifact["path"], "sha256": artifact["sha256"]}
    result = run_check("restore", params, stop=stop)
    assert result.status is Status.ERROR
    assert "not started: this replica's lease may have lapsed" in result.evidence
    assert result.evidence.endswith("; schema(s) public emptied, nothing restored")
    assert not ran.exists()


def test_a_restore_without_pg_restore_says_the_schemas_it_already_emptied(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = run_check("backup", {"database_url": target, "dir": str(tmp_path / "b")})
    artifact = backup.details["artifact"]
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    params = {"database_url": target, "file": artifact["path"], "sha256": artifact["sha256"]}
    result = run_check("restore", params)
    assert result.status is Status.ERROR
    assert result.evidence == (
        "pg_restore is not on PATH; schema(s) public emptied, nothing restored"
    )
    assert tables(target) == []  # what it says is what the database shows
