"""Phase 9, post-cutover monitoring: rounds every 5 minutes for 30 minutes on a controllable
clock (no real waiting), breaches flagged at once, the gate after the last round, a restart
mid-window resuming the schedule; and the shipped runbook's own monitoring phase against a
slow HTTP endpoint and a container over its memory limit on the real Docker engine."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlmodel import col, select

from bot import audit
from bot.engine import Engine
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.models import MonitorRound, PhaseRun
from bot.store.reads import gate_view, open_gate_id, run_view
from tests.db_fixtures import throwaway_pg_database
from tests.docker_fixtures import STANDIN_HEALTHCHECK, Compose, compose  # noqa: F401  (fixture)
from tests.nostrmaxi_db import SCHEMA as NOSTRMAXI_TABLES
from tests.schedule_helpers import (
    ALICE,
    BOB,
    START,
    RecordingSurface,
    clock_at,
    make_engine,
    paced_context,
    set_clock,
    true_check,
    write_runbook,
)
from tests.servers import ManualClock, NostrMaxiStandin, nostrmaxi  # noqa: F401  (fixture)

MIN = timedelta(minutes=1)
ROOT = Path(__file__).resolve().parent.parent


def monitoring_runbook(tmp_path: Path, base_url: str, **env: Any) -> Any:
    phases = [
        {
            "id": "public-access",
            "name": "Enable public access",
            "estimate_minutes": 5,
            "checkpoint": "reachable",
            "checks": [true_check()],
        },
        {
            "id": "monitoring",
            "name": "Post-cutover monitoring",
            "estimate_minutes": 30,
            "checkpoint": "Healthy and fast for 30 minutes",
            "monitor": {"every_minutes": 5, "for_minutes": 30},
            "checks": [
                {
                    "id": "health",
                    "name": "Health check passing, response <500 ms",
                    "kind": "http",
                    "params": {
                        "url": "{base_url}/health",
                        "expect_json": {"status": "ok"},
                        "max_ms": 500,
                        "samples": 2,
                    },
                },
                {"id": "disk", "name": "Disk space", "kind": "disk", "params": {"path": "/"}},
            ],
        },
    ]
    return write_runbook(
        tmp_path,
        {
            "name": "Monitoring test",
            "phases": phases,
            "rollback": [true_check("undo", "undo") | {"kind": "run"}],
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": base_url,
                    "channel": "#cutover",
                    "approvers": ["T1:U1", "T1:U2"],
                    **env,
                }
            },
        },
    )


def into_monitoring(engine: Engine, clock: ManualClock) -> int:
    """Starts a run and approves phase 1 at START: monitoring's round 1 runs at once."""
    set_clock(clock, START - 5 * MIN)
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    gate = open_gate_id(engine.db, run.id)
    assert gate is not None
    set_clock(clock, START)
    assert engine.decide(gate, BOB, "continue").outcome == "approved"
    return run.id


def rounds(db: Database, run_id: int) -> list[tuple[int, str]]:
    with db.session() as s:
        rows = s.exec(
            select(MonitorRound)
            .where(MonitorRound.run_id == run_id)
            .order_by(col(MonitorRound.round))
        ).all()
    return [(r.round + 1, r.status) for r in rows]


def kinds(db: Database, run_id: int) -> list[str]:
    return [e.kind for e in audit.events(db, run_id)]


def test_rounds_every_5_minutes_flag_a_slow_endpoint_and_open_the_gate_after_the_last(
    db: Database,
    tmp_path: Path,
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
) -> None:
    clock = clock_at(START)
    engine, surface = make_engine(db, monitoring_runbook(tmp_path, nostrmaxi.url), clock)
    run_id = into_monitoring(engine, clock)
    assert rounds(db, run_id) == [(1, "passed")]
    assert open_gate_id(db, run_id) is None
    view = run_view(db, engine.runbook, run_id)
    assert view is not None and [p.status for p in view.phases] == ["passed", "monitoring"]
    scheduler = Scheduler(engine)

    set_clock(clock, START + 4 * MIN)
    assert scheduler.tick() == []
    set_clock(clock, START + 5 * MIN)
    assert scheduler.tick() == [f"run #{run_id}: monitoring round 2/7"]

    nostrmaxi.delay_ms = 600  # the endpoint turns slow
    set_clock(clock, START + 10 * MIN)
    scheduler.tick()
    assert rounds(db, run_id)[-1] == (3, "failed")
    [thread] = surface.notices("🚨 Monitoring round 3/7 (T+10 min): failed")
    assert thread.args[0] == run_id
    assert "❌ Health check passing, response <500 ms: GET" in thread.args[1]
    assert "> 500 ms" in thread.args[1]
    [flag] = surface.notices("🚨 Monitoring breach on prod")
    assert flag.args[0] is None and flag.args[2] == "#cutover"  # at once, in the channel
    breach = [json.loads(e.data) for e in audit.events(db, run_id) if e.kind == "monitor.breach"]
    assert [(b["round"], [f["step"] for f in b["failures"]]) for b in breach] == [(3, ["health"])]

    nostrmaxi.delay_ms = 0
    for minute in (15, 20, 25):
        set_clock(clock, START + minute * MIN)
        scheduler.tick()
        assert open_gate_id(db, run_id) is None  # no gate before the last round
    set_clock(clock, START + 30 * MIN)
    assert scheduler.tick()[-1] == f"run #{run_id}: monitoring finished (FAIL); gate open"
    assert rounds(db, run_id) == [
        (1, "passed"),
        (2, "passed"),
        (3, "failed"),
        (4, "passed"),
        (5, "passed"),
        (6, "passed"),
        (7, "passed"),
    ]
    gate_id = open_gate_id(db, run_id)
    assert gate_id is not None
    gate = gate_view(db, engine.runbook, gate_id)
    assert gate is not None and not gate.checks_passed
    health = next(s for s in gate.steps if s.step_id == "health")
    assert health.status == "fail" and health.evidence.startswith("failed in round(s) 3 of 7")
    disk = next(s for s in gate.steps if s.step_id == "disk")
    assert disk.status == "pass" and disk.evidence.startswith("7/7 rounds passed")
    assert engine.decide(gate_id, BOB, "continue").outcome == "refused"
    set_clock(clock, START + 40 * MIN)
    assert [x for x in scheduler.tick() if "monitoring" in x] == []
    assert kinds(db, run_id).count("monitor.round") == 7


def test_a_restart_mid_window_resumes_the_schedule_and_records_missed_rounds(
    db: Database,
    tmp_path: Path,
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(db, monitoring_runbook(tmp_path, nostrmaxi.url), clock)
    run_id = into_monitoring(engine, clock)
    set_clock(clock, START + 5 * MIN)
    Scheduler(engine).tick()
    assert rounds(db, run_id) == [(1, "passed"), (2, "passed")]

    # The bot restarts: nothing is interrupted, the next round is due at T+10 min.
    engine.shutdown()
    db.dispose()
    set_clock(clock, START + 7 * MIN)
    engine2, surface2 = make_engine(Database(db.url), engine.runbook, clock)
    engine2.recover()
    scheduler = Scheduler(engine2)
    assert scheduler.tick() == []
    set_clock(clock, START + 10 * MIN)
    assert scheduler.tick() == [f"run #{run_id}: monitoring round 3/7"]
    # Down again from T+11 to T+26: rounds 4 and 5 are missed, round 6 runs (no burst).
    set_clock(clock, START + 26 * MIN)
    assert scheduler.tick() == [f"run #{run_id}: monitoring round 6/7"]
    assert surface2.notices("Monitoring rounds 4, 5 of 7 were missed")
    set_clock(clock, START + 30 * MIN)
    assert scheduler.tick()[-1] == f"run #{run_id}: monitoring finished (FAIL); gate open"
    assert rounds(engine2.db, run_id) == [
        (1, "passed"),
        (2, "passed"),
        (3, "passed"),
        (4, "missed"),
        (5, "missed"),
        (6, "passed"),
        (7, "passed"),
    ]
    gate_id = open_gate_id(engine2.db, run_id)
    gate = gate_view(engine2.db, engine2.runbook, gate_id or 0)
    # A missed round is a ❌ (monitoring was not continuous), never a pass with a note:
    # going on takes a decision, and Continue is not one in a real run (Retry or Rollback).
    assert gate is not None and not gate.checks_passed
    assert gate.note is not None and "rounds 4, 5 were missed" in gate.note
    assert "the window did not pass" in gate.note
    health = next(s for s in gate.steps if s.step_id == "health")
    assert health.status == "fail"
    assert health.evidence.startswith("round(s) 4, 5 of 7 missed (the bot was not running)")
    assert engine2.decide(gate_id or 0, BOB, "continue").outcome == "refused"
    evs = kinds(engine2.db, run_id)
    assert evs.count("phase.started") == 2 and "phase.interrupted" not in evs
    assert evs.count("monitor.round") == 5 and evs.count("monitor.missed") == 1


def test_abort_during_monitoring_rolls_back_and_ends_the_window(
    sqlite_db: Database,
    tmp_path: Path,
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
) -> None:
    clock = clock_at(START)
    engine, _ = make_engine(sqlite_db, monitoring_runbook(tmp_path, nostrmaxi.url), clock)
    run_id = into_monitoring(engine, clock)
    set_clock(clock, START + 7 * MIN)
    assert engine.abort("prod", BOB, "error rate up").outcome == "rolled_back"
    view = run_view(sqlite_db, engine.runbook, run_id)
    assert view is not None and view.status == "rolled_back"
    set_clock(clock, START + 10 * MIN)
    Scheduler(engine).tick()
    assert rounds(sqlite_db, run_id) == [(1, "passed")]
    with sqlite_db.session() as s:
        statuses = [p.status for p in s.exec(select(PhaseRun).where(PhaseRun.run_id == run_id))]
    assert statuses == ["passed", "failed"]


# --------------------------------------------------------------------------- real Docker


def shipped_monitoring_phase() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "runbooks" / "nostrmaxi.yml").read_text(encoding="utf-8"))
    phase = next(p for p in data["phases"] if p["id"] == "monitoring")
    assert phase["monitor"] == {"every_minutes": 5, "for_minutes": 30}
    return dict(phase)


def wait_healthy(client: Any, project: str) -> None:
    for _ in range(30):
        found = client.containers.list(filters={"label": f"com.docker.compose.project={project}"})
        if found and all(
            (c.attrs["State"].get("Health") or {}).get("Status") == "healthy" for c in found
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"{project} did not turn healthy")


@pytest.mark.docker
@pytest.mark.timeout(400)  # seven rounds of the shipped checks, each sampling CPU for ~5 s
def test_shipped_monitoring_phase_flags_a_slow_endpoint_and_a_container_over_its_memory_limit(
    sqlite_db: Database,
    tmp_path: Path,
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
    compose: Compose,  # noqa: F811
    docker_client: Any,
) -> None:
    healthy = STANDIN_HEALTHCHECK
    compose.write(  # every service the monitoring phase checks, each with a healthcheck
        {
            "backend": {"command": ["sleep", "3600"], "mem_limit": "32m", "healthcheck": healthy},
            "db": {  # with PostgreSQL's data directory: the disk check's df runs there
                "command": ["sh", "-c", "mkdir -p /var/lib/postgresql/data && sleep 3600"],
                "mem_limit": "64m",
                "healthcheck": healthy,
            },
            "redis": {"command": ["sleep", "3600"], "healthcheck": healthy},
            "nginx": {"command": ["sleep", "3600"], "healthcheck": healthy},
        }
    )
    compose("up", "-d")
    wait_healthy(docker_client, compose.project)
    with throwaway_pg_database("nostrmaxi_target") as target:
        libpq = target.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(libpq, autocommit=True) as conn:  # what user-actions counts
            conn.execute(NOSTRMAXI_TABLES)
        runbook = write_runbook(
            tmp_path,
            {
                "name": "NostrMaxi phase 9",
                "phases": [
                    {
                        "id": "public-access",
                        "name": "Enable public access",
                        "estimate_minutes": 5,
                        "checkpoint": "reachable",
                        "checks": [true_check()],
                    },
                    shipped_monitoring_phase(),
                ],
                "environments": {
                    "prod": {
                        "domain": "localhost",
                        "base_url": nostrmaxi.url,
                        "compose_project": compose.project,
                        "database_url": libpq,
                        "channel": "#cutover",
                        "approvers": ["T1:U1", "T1:U2"],
                    }
                },
            },
        )
        clock = clock_at(START)
        engine, surface = make_engine(
            sqlite_db, runbook, clock, RecordingSurface(), context_factory=paced_context
        )
        run_id = into_monitoring(engine, clock)
        scheduler = Scheduler(engine)
        backend = docker_client.containers.list(
            filters={"label": f"com.docker.compose.project={compose.project}"}
        )
        backend = next(c for c in backend if c.labels["com.docker.compose.service"] == "backend")

        nostrmaxi.delay_ms = 600  # T+5: the endpoint turns slow
        set_clock(clock, START + 5 * MIN)
        scheduler.tick()
        nostrmaxi.delay_ms = 0
        # T+10: the backend holds 27 MiB in tmpfs, over 80 % of its 32 MiB limit.
        fill = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=27 2>/dev/null"
        assert backend.exec_run(["sh", "-c", fill]).exit_code == 0
        set_clock(clock, START + 10 * MIN)
        scheduler.tick()
        # `rm` runs inside the full cgroup: the kernel may kill it (137) before it frees
        # anything; try again, as a person would.
        freed = [backend.exec_run(["rm", "-f", "/dev/shm/fill"]).exit_code for _ in range(3)]
        assert 0 in freed, freed
        for minute in (15, 20, 25, 30):
            set_clock(clock, START + minute * MIN)
            scheduler.tick()

    assert rounds(sqlite_db, run_id) == [
        (1, "passed"),
        (2, "failed"),
        (3, "failed"),
        (4, "passed"),
        (5, "passed"),
        (6, "passed"),
        (7, "passed"),
    ]
    breaches = {
        b["round"]: {f["step"]: f["evidence"] for f in b["failures"]}
        for b in (
            json.loads(e.data)
            for e in audit.events(sqlite_db, run_id)
            if e.kind == "monitor.breach"
        )
    }
    assert list(breaches) == [2, 3], breaches
    assert list(breaches[2]) == ["health"], breaches  # a failure says what else breached
    assert "over 5 requests > 500 ms" in breaches[2]["health"]
    assert list(breaches[3]) == ["resources"]
    # 27 MiB of tmpfs plus the container's process: over 80 %, below 100 %
    assert re.match(r"backend memory (8[1-9]|9\d)% ", breaches[3]["resources"])
    assert "% of 32 MiB limit (max 80%)" in breaches[3]["resources"]
    flags = surface.notices("🚨 Monitoring breach on prod")
    assert [f.args[2] for f in flags] == ["#cutover", "#cutover"]
    gate_id = open_gate_id(sqlite_db, run_id)
    gate = gate_view(sqlite_db, engine.runbook, gate_id or 0)
    assert gate is not None and not gate.checks_passed
    summary = {s.step_id: (s.status, s.evidence) for s in gate.steps}
    assert summary["health"][0] == "fail" and "round(s) 2 of 7" in summary["health"][1]
    assert summary["resources"][0] == "fail" and "round(s) 3 of 7" in summary["resources"][1]
    assert summary["disk"][0] == "pass" and summary["db-connections"][0] == "pass"
    assert f"last: /var/lib/postgresql/data in {compose.project}/db " in summary["disk"][1]
