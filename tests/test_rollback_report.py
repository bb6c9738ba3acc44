"""The rollback report says what was checked and no more, sentence by sentence.

Several real rollbacks (a real PostgreSQL target restored by real pg_restore, real containers,
a real HTTP server for the old service) are read back: every line of the report must be
accounted for by the audit trail (the run.rolled_back row, the restore point row, each step's
result), and the stakeholders' line must carry the same health sentence as the audit row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.engine import Engine
from bot.standin import NostrMaxiStandin
from bot.store.db import Database
from bot.text import ICONS, hhmm
from phases.runbook import Runbook
from tests import test_restore_point
from tests.docker_fixtures import BASE_IMAGE, STANDIN_HEALTHCHECK, Compose
from tests.standin_env import SERVICE_COMMAND
from tests.test_restore_point import (
    BOB,
    Captured,
    gate_of,
    migration_runbook,
    start_and_fail_migration,
)

target = test_restore_point.target  # fixture: the application's PostgreSQL database

pytestmark = pytest.mark.docker

HEALTHCHECK = STANDIN_HEALTHCHECK


@pytest.fixture
def old_app() -> Iterator[NostrMaxiStandin]:
    app = NostrMaxiStandin()
    app.start()
    yield app
    app.stop()


def docker_check(project: str, expect: str) -> dict[str, Any]:
    return {
        "id": f"old-{expect}",
        "name": f"Old services {expect}",
        "kind": "docker_containers",
        "params": {"project": project, "expect": expect, "wait_seconds": 20},
        "timeout": 30,
    }


def http_check(url: str) -> dict[str, Any]:
    return {
        "id": "old-health",
        "name": "Old /health answers",
        "kind": "http",
        "params": {"url": f"{url}/health", "expect_json": {"status": "ok"}},
        "timeout": 10,
    }


def roll_back(engine: Engine, *, tamper: bool = False) -> tuple[int, Captured]:
    """Phase 4's migration fails, a Retry fails again, then Rollback; with `tamper`, the
    restore point's file changes before the restore (so the restore refuses it)."""
    said = Captured(engine)
    run_id = start_and_fail_migration(engine)
    engine.decide(gate_of(engine, run_id), BOB, "retry")
    if tamper:
        point = next(e for e in audit.events(engine.db, run_id) if e.kind == "restore_point.set")
        with open(json.loads(point.data)["path"], "ab") as fh:
            fh.write(b"tampered")
    engine.decide(gate_of(engine, run_id), BOB, "rollback", reason="migration failed")
    return run_id, said


def check_report_against_trail(engine: Engine, run_id: int, said: Captured) -> dict[str, Any]:
    """Every line of the report, accounted for by the audit trail; returns run.rolled_back."""
    runbook: Runbook = engine.runbook
    events = audit.events(engine.db, run_id)
    kinds = [e.kind for e in events]
    done = json.loads(events[kinds.index("run.rolled_back")].data)
    started = kinds.index("rollback.started")
    steps = [json.loads(e.data) for e in events[started:] if e.kind == "step.result"]
    names = {
        (sec, st.id): st.name
        for sec, specs in (
            ("restore", runbook.restore),
            ("rollback", runbook.rollback),
            ("checks", runbook.rollback_checks),
        )
        for st in specs
    }
    lines = said.report().split("\n")
    # 1. The summary: the failed steps of the trail, or none.
    failed = [s["step"] for s in steps if s["status"] in ("fail", "error")]
    assert done["failed_steps"] == failed
    assert lines.pop(0) == (
        f"Rollback finished with failures in: {', '.join(failed)}. Check them by hand."
        if failed
        else "Rollback finished; every step passed."
    )
    # 2. The restore: the restore point row, and the restore step's own result.
    restores = [s for s in steps if s["section"] == "restore"]
    point_rows = [json.loads(e.data) for e in events if e.kind == "restore_point.set"]
    if done["restore"] in ("restored", "restore_failed"):
        (point,) = point_rows
        assert done["restore"] == (
            "restored" if all(s["status"] == "pass" for s in restores) else "restore_failed"
        )
        line = lines.pop(0)
        lead = "Database restored from" if done["restore"] == "restored" else "restore FAILED"
        assert lead in line
        taken = hhmm(datetime.fromisoformat(point["taken_at"]))
        by, protects = point["taken_by"], point["protects"]
        assert (
            f"the backup taken by Phase {by['phase_number']} step {by['step']} (attempt "
            f"{by['attempt']}) at {taken} ({Path(point['path']).name}, sha256 "
            f"{point['sha256'][:12]}…), the newest verified backup before Phase "
            f"{protects['phase_number']} step {protects['step']} (attempt "
            f"{protects['attempt']}) began changing the database."
        ) in line
        later = [
            e
            for e in events
            if e.kind == "step.result"
            and e.seq > point["backup_row"]
            and json.loads(e.data).get("artifact", {}).get("type") == "backup"
            and json.loads(e.data)["status"] == "pass"
        ]
        if later:
            assert f"{len(later)} later backup" in line and "kept but not used" in line
            for e in later:
                by = json.loads(e.data)["step"]
                assert f"step {by} (attempt " in line and hhmm(datetime.fromisoformat(e.at)) in line
    elif done["restore"] == "not_needed":
        assert point_rows == [] and all(s["status"] == "skipped" for s in restores)
        assert lines.pop(0).startswith("The database was not restored: no state-changing step")
    # 3. The old service's health: the audit row's sentence, its claims from the checks.
    health = lines.pop(0)
    assert health == done["health"]
    checks = [s for s in steps if s["section"] == "checks"]
    assert [c["step"] for c in done["claims"]] == [c["step"] for c in checks]
    specs = {st.id: st for st in runbook.rollback_checks}
    for c, row in zip(done["claims"], checks, strict=True):
        spec = specs[row["step"]]
        assert c["claim"] in health
        if row["status"] != "pass":
            assert row["evidence"] in c["claim"]
        elif spec.kind == "docker_containers":
            word = spec.params["expect"]
            assert c["claim"].endswith(
                "healthy (Docker health status)"
                if word == "healthy"
                else "running (their health not checked)"
            )
        elif spec.kind == "http":
            code = re.search(r"→ (\d{3}) in (\d+) ms", row["evidence"])
            assert code is not None
            assert f"answered GET /health {code.group(1)} in {code.group(2)} ms" in c["claim"]
    says_healthy = "verified healthy" in health
    assert says_healthy == done["verified"]
    if says_healthy:  # only when every check passed and each one checks health
        assert checks and all(c["status"] == "pass" for c in checks)
        assert all(
            specs[c["step"]].kind == "http" or specs[c["step"]].params.get("expect") == "healthy"
            for c in checks
        )
    if not checks:
        assert health == (
            "The old service's health was NOT verified (the runbook has no rollback_checks)."
        )
    # 4. The timing: the audit row's duration and target.
    m, s = divmod(int(round(done["duration_s"])), 60)
    assert lines.pop(0).startswith(f"Rollback took {m} min {s:02d} s")
    if done["schema"]:
        assert lines.pop(0) == done["schema"]
    # 5. One line per step, each its recorded result.
    assert lines == [
        f"{ICONS[s['status']]} {s['section']} {names[(s['section'], s['step'])]}: {s['evidence']}"
        for s in steps
    ]
    # The stakeholders hear the same health sentence the audit row keeps.
    (feed,) = [f for f in said.feed if f.startswith("↩️")]
    assert done["health"] in feed
    return done


def test_a_restored_database_and_a_real_health_check_say_verified_healthy(
    pg_db: Database, target: str, tmp_path: Path, compose: Compose, old_app: NostrMaxiStandin
) -> None:
    compose.write(
        {"backend": {"image": BASE_IMAGE, "command": SERVICE_COMMAND, "healthcheck": HEALTHCHECK}}
    )
    compose("up", "-d")
    checks = [docker_check(compose.project, "healthy"), http_check(old_app.url)]
    runbook = migration_runbook(tmp_path, target, rollback_checks=checks)
    engine = Engine(pg_db, runbook, background=False)
    run_id, said = roll_back(engine)
    done = check_report_against_trail(engine, run_id, said)
    assert done["restore"] == "restored" and done["verified"] is True
    assert done["old_service"] == "verified_healthy"
    assert done["health"].startswith("Old service verified healthy: backend of ")


def test_a_running_container_is_running_not_healthy(
    pg_db: Database, target: str, tmp_path: Path, compose: Compose
) -> None:
    compose.write({"backend": {"image": BASE_IMAGE, "command": SERVICE_COMMAND}})
    compose("up", "-d")
    runbook = migration_runbook(
        tmp_path, target, rollback_checks=[docker_check(compose.project, "running")]
    )
    engine = Engine(pg_db, runbook, background=False)
    run_id, said = roll_back(engine)
    done = check_report_against_trail(engine, run_id, said)
    assert done["verified"] is False and done["old_service"] == "up_health_not_verified"
    assert "verified healthy" not in said.report() and "verified healthy" not in said.feed[-1]
    assert done["health"] == (
        "Old service is up, but its health was NOT verified (old-running checks only that it "
        f"runs): backend of {compose.project} running (their health not checked)."
    )


def test_a_failed_restore_and_no_rollback_checks_say_so(
    pg_db: Database, target: str, tmp_path: Path
) -> None:
    engine = Engine(pg_db, migration_runbook(tmp_path, target), background=False)
    run_id, said = roll_back(engine, tamper=True)
    done = check_report_against_trail(engine, run_id, said)
    assert done["restore"] == "restore_failed" and done["restored"] is False
    assert "The database restore FAILED; it was to use the restore point" in said.report()
    assert done["old_service"] == "not_checked" and done["verified"] is False
    assert done["schema"] and "NOT restored" in done["schema"]


def test_an_old_service_that_answers_503_is_not_healthy(
    pg_db: Database, target: str, tmp_path: Path, old_app: NostrMaxiStandin
) -> None:
    old_app.status_overrides["/health"] = 503
    runbook = migration_runbook(tmp_path, target, rollback_checks=[http_check(old_app.url)])
    engine = Engine(pg_db, runbook, background=False)
    run_id, said = roll_back(engine)
    done = check_report_against_trail(engine, run_id, said)
    assert done["old_service"] == "not_healthy" and done["failed_steps"] == ["old-health"]
    assert done["health"].startswith("Old service NOT healthy after the rollback: Old /health")


def test_nothing_to_restore_and_a_check_that_cannot_run_say_so(
    pg_db: Database, target: str, tmp_path: Path
) -> None:
    """The pre-migration backup failed, so the migration never began; the old service's
    address refuses connections, so its health is unknown, not "not healthy"."""
    runbook = migration_runbook(
        tmp_path, target, rollback_checks=[http_check("http://127.0.0.1:9")]
    )
    (tmp_path / "backups").write_text("not a folder", encoding="utf-8")
    engine = Engine(pg_db, runbook, background=False)
    said = Captured(engine)
    run_id = start_and_fail_migration(engine)
    engine.decide(gate_of(engine, run_id), BOB, "rollback", reason="backup failed")
    done = check_report_against_trail(engine, run_id, said)
    assert done["restore"] == "not_needed" and done["old_service"] == "unknown"
    assert done["health"].startswith("The old service's health is unknown: a check could not run")
