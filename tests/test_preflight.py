"""Preflight: "can this cutover finish?" before it starts; each way it cannot, on its own."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.preflight import Item, preflight
from phases.checks.base import StepContext
from phases.checks.pg_backup import BackupParams, run_backup
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.require import unavailable
from tests.schedule_helpers import write_runbook


@pytest.fixture
def target() -> Iterator[str]:
    if not postgres_reachable():
        unavailable("preflight tests need the PostgreSQL server")
    with throwaway_pg_database("preflight") as url:
        yield url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def host(tmp_path: Path, target: str) -> dict[str, Any]:
    """A host where everything the runbook needs is in place, and a restorable backup."""
    app = tmp_path / "app"
    app.mkdir()
    env_file = tmp_path / ".env.prod"
    env_file.write_text("JWT_SECRET=x\n", encoding="utf-8")
    backups = tmp_path / "backups"
    run_backup(BackupParams(database_url=target, dir=str(backups)), StepContext(timeout=60))
    return {
        "app_dir": str(app),
        "env_file": str(env_file),
        "backup_dir": str(backups),
        "db": target,
    }


def runbook_for(tmp_path: Path, host: dict[str, Any], **env: Any) -> Any:
    tool = env.pop("tool", "git")
    take_in = env.pop("take_in", {})  # e.g. {project, service}: pg_dump in the db's container
    data = {
        "name": "Preflight",
        "phases": [
            {
                "id": "backup",
                "name": "Backup",
                "estimate_minutes": 5,
                "checkpoint": "backed up",
                "actions": [
                    {
                        "id": "take",
                        "name": "backup",
                        "kind": "backup",
                        "params": {
                            "database_url": "{database_url}",
                            "dir": "{backup_dir}",
                            **take_in,
                        },
                    },
                    {
                        "id": "fetch",
                        "name": "fetch",
                        "kind": "run",
                        "params": {"argv": [tool, "status"], "cwd": "{app_dir}"},
                    },
                ],
            }
        ],
        "rollback": [
            {
                "id": "undo",
                "name": "undo",
                "kind": "run",
                "params": {"argv": ["true"], "env_file": "{env_file}"},
            }
        ],
        "environments": {
            "prod": {
                "domain": "prod.test",
                "base_url": "http://127.0.0.1:9",
                "env_file": host["env_file"],
                "database_url": host["db"],
                "approvers": ["T1:U1", "T1:U2", "T1:U3"],
                "quorum": 2,
                "vars": {"app_dir": host["app_dir"], "backup_dir": host["backup_dir"]},
                **env,
            }
        },
    }
    return write_runbook(tmp_path, data)


def failures(items: list[Item]) -> list[str]:
    return [f"{i.what}: {i.evidence}" for i in items if i.status == "fail"]


def test_a_host_with_everything_in_place_passes(tmp_path: Path, host: dict[str, Any]) -> None:
    items = preflight(runbook_for(tmp_path, host), "prod")
    assert failures(items) == []
    whats = [i.what for i in items]
    assert "quorum" in whats and "database" in whats and "command pg_dump" in whats
    assert any(w.startswith("newest backup in") for w in whats)


def test_an_unreachable_quorum_fails(tmp_path: Path, host: dict[str, Any]) -> None:
    rb = runbook_for(
        tmp_path,
        host,
        approvers=["T1:U1"],
        approver_groups=["S0RELEASE"],
        quorum=2,
        allow_self_approval=False,
    )
    [problem] = failures(preflight(rb, "prod"))
    assert problem.startswith("quorum: gates need 2 approvals; the listed approvers give 0")


def test_a_missing_command_fails(tmp_path: Path, host: dict[str, Any]) -> None:
    rb = runbook_for(tmp_path, host, tool="nostrmaxi-deploy-tool")
    [problem] = failures(preflight(rb, "prod"))
    assert problem == (
        "command nostrmaxi-deploy-tool: not on this host's PATH; used by phase 'backup' > fetch"
    )


def test_a_missing_env_file_fails(tmp_path: Path, host: dict[str, Any]) -> None:
    Path(host["env_file"]).unlink()
    [problem, *_] = failures(preflight(runbook_for(tmp_path, host), "prod"))
    assert problem.startswith(f"env file {host['env_file']}: env file")
    assert "does not exist" in problem


def test_an_unrestorable_backup_fails(tmp_path: Path, host: dict[str, Any]) -> None:
    (Path(host["backup_dir"]) / "zz-newest.dump").write_bytes(b"PGDMP but truncated")
    [problem] = failures(preflight(runbook_for(tmp_path, host), "prod"))
    assert problem.startswith(f"newest backup in {host['backup_dir']}: zz-newest.dump is not")
    assert "pg_restore --list failed" in problem


def test_an_unreachable_database_fails(tmp_path: Path, host: dict[str, Any]) -> None:
    rb = runbook_for(tmp_path, host, database_url="postgresql://postgres:pw-s3cret@127.0.0.1:1/x")
    [problem] = failures(preflight(rb, "prod"))
    assert problem.startswith("database: unreachable") and "pw-s3cret" not in problem


def test_the_cli_prints_the_checkpoint_and_exits_1_on_a_failure(
    tmp_path: Path, host: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    runbook_for(tmp_path, host, tool="nostrmaxi-deploy-tool")
    path = str(tmp_path / "sched.yml")
    assert main(["runbook", "check", path, "--env", "prod", "--preflight"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Preflight of prod: ")
    assert "❌ command nostrmaxi-deploy-tool" in out and "✅ database" in out


def test_a_backup_taken_in_the_database_container_needs_no_postgresql_client_on_the_host(
    tmp_path: Path, host: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump runs inside the database's container: a host without pg_dump or pg_restore
    passes (and Start, which preflight gates, is not refused for it)."""
    bin_dir = tmp_path / "bin"  # this host's PATH: git and true, no PostgreSQL client
    bin_dir.mkdir()
    for program in ("git", "true"):
        found = shutil.which(program)
        assert found is not None
        (bin_dir / program).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    items = preflight(
        runbook_for(tmp_path, host, take_in={"project": "app", "service": "db"}), "prod"
    )
    assert failures(items) == []
    whats = [i.what for i in items]
    assert "command pg_dump" not in whats and "command pg_restore" not in whats
    [backup] = [i for i in items if i.what.startswith("newest backup in")]
    assert "not listed: no pg_restore on this host" in backup.evidence
    # the same runbook taking its backup on the host needs both
    assert {"command pg_dump", "command pg_restore"} <= {
        i.what for i in preflight(runbook_for(tmp_path, host), "prod") if i.status == "fail"
    }


def test_the_rollbacks_compose_up_needs_its_program_and_its_folder(
    tmp_path: Path, host: dict[str, Any]
) -> None:
    """`compose_up` (the rollback's start-old) is checked as the `run` step it is."""
    rb = runbook_for(tmp_path, host)
    data = rb.model_dump(mode="json", exclude_none=True)
    data["rollback"].append(
        {
            "id": "start-old",
            "name": "Start the old deployment again",
            "kind": "compose_up",
            "params": {
                "compose": ["nostrmaxi-old-compose"],
                "project": "old",
                "file": "docker-compose.yml",
                "cwd": str(tmp_path / "no-such-old-folder"),
            },
        }
    )
    problems = failures(preflight(write_runbook(tmp_path, data), "prod"))
    missing = "command nostrmaxi-old-compose: not on this host's PATH; used by rollback > start-old"
    assert missing in problems
    assert any(str(tmp_path / "no-such-old-folder") in p for p in problems), problems
