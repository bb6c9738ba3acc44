"""Faults injected under whole phases run by the engine: each is a clear failed check, the
gate fails closed, and nothing is lost (step rows and audit rows are all there).

The check unit tests (tests/test_check_*.py) cover each kind alone; here the same
real loopback servers misbehave under the engine: DNS SERVFAIL and silence, TLS
with an expired or wrong-host certificate, HTTP 500 and a hang, the Docker
engine gone, and the bot's own PostgreSQL connections cut mid-run.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy.engine import make_url
from sqlmodel import select

from bot import audit
from bot.engine import Engine
from bot.store.db import Database, DatabaseUnavailable
from bot.store.models import Gate, PhaseRun, StepRun
from bot.store.reads import gate_view, open_gate_id
from bot.surface import Actor
from phases.runbook import load_runbook
from tests.servers import (
    LoopbackDNSServer,
    NostrMaxiStandin,
    make_ca,
    make_leaf,
    tls_server,
)

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")
HOST = "cutover.test"
STEP_TIMEOUT = 1.0


def runbook_file(tmp_path: Path, checks: list[dict[str, Any]], phases: int = 1) -> Path:
    data = {
        "name": "Fault runbook",
        "phases": [
            {
                "id": f"p{i}",
                "name": f"Phase {i}",
                "estimate_minutes": 1,
                "checkpoint": "ok",
                "checks": checks,
            }
            for i in range(1, phases + 1)
        ],
        "rollback": [{"id": "noop", "name": "noop", "kind": "run", "params": {"argv": ["true"]}}],
        "environments": {
            "staging": {
                "domain": HOST,
                "base_url": "http://127.0.0.1:9",
                "approvers": [ALICE.id, BOB.id],
            },
        },
    }
    path = tmp_path / "faults.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class Faults:
    """Every faulty peer, started; `checks` is one check against each."""

    def __init__(self, tmp_path: Path, stack: ExitStack) -> None:
        self.dns = stack.enter_context(LoopbackDNSServer({HOST: "127.0.0.1"}))
        self.dns_silent = stack.enter_context(LoopbackDNSServer({HOST: "127.0.0.1"}))
        self.dns.servfail.add("*")
        self.dns_silent.drop.add("*")
        ca = make_ca(tmp_path)
        self.ca_file = str(ca.cert)
        self.expired = stack.enter_context(
            tls_server(make_leaf(tmp_path, ca, HOST, -3, sans=[HOST, "127.0.0.1"]))
        )
        self.wrong_host = stack.enter_context(
            tls_server(make_leaf(tmp_path, ca, "old-server.test", 90))
        )
        self.app500 = stack.enter_context(NostrMaxiStandin())
        self.app500.fail_status = 500
        self.hang = stack.enter_context(NostrMaxiStandin())
        self.hang.delay_ms = 5000

    def checks(self) -> list[dict[str, Any]]:
        def step(step_id: str, kind: str, **params: Any) -> dict[str, Any]:
            return {
                "id": step_id,
                "name": step_id,
                "kind": kind,
                "params": params,
                "timeout": STEP_TIMEOUT,
            }

        return [
            step(
                "dns-servfail",
                "dns",
                name=HOST,
                expected_ip="127.0.0.1",
                resolvers=[self.dns.address],
            ),
            step(
                "dns-timeout",
                "dns",
                name=HOST,
                expected_ip="127.0.0.1",
                resolvers=[self.dns_silent.address],
            ),
            step(
                "tls-expired",
                "tls",
                host="127.0.0.1",
                port=self.expired.port,
                server_name=HOST,
                ca_file=self.ca_file,
            ),
            step(
                "tls-wrong-host",
                "tls",
                host="127.0.0.1",
                port=self.wrong_host.port,
                server_name=HOST,
                ca_file=self.ca_file,
            ),
            step("http-500", "http", url=f"{self.app500.url}/health", expect_json={"status": "ok"}),
            step("http-hang", "http", url=f"{self.hang.url}/health"),
            step(
                "docker-down", "docker_containers", project="nmx", expect="running", wait_seconds=0
            ),
        ]

    def heal(self) -> None:
        self.dns.servfail.clear()
        self.dns_silent.drop.clear()
        self.app500.fail_status = None
        self.hang.delay_ms = 0


EXPECTED = {  # step → (status, a phrase its evidence must carry)
    "dns-servfail": ("fail", "SERVFAIL"),
    "dns-timeout": ("error", "timeout"),
    "tls-expired": ("fail", "certificate has expired"),
    "tls-wrong-host": ("fail", "Hostname mismatch"),
    "http-500": ("fail", "→ 500 (expected 200)"),
    "http-hang": ("error", "timed out after 1s"),
    "docker-down": ("error", "Docker engine unreachable at unix:///nonexistent/docker.sock"),
}


@pytest.fixture
def faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # the engine is down
    with ExitStack() as stack:
        yield Faults(tmp_path, stack)


def test_every_fault_is_a_clear_failed_check_and_the_gate_fails_closed(
    db: Database, tmp_path: Path, faults: Faults
) -> None:
    runbook = load_runbook(runbook_file(tmp_path, faults.checks()))
    engine = Engine(db, runbook, background=False)
    started = time.monotonic()
    run = engine.start_run("staging", ALICE)
    took = time.monotonic() - started
    assert took < 8 * STEP_TIMEOUT + 5  # checks run at once, each bounded by its timeout
    assert run.id is not None
    gate_id = open_gate_id(db, run.id)
    assert gate_id is not None
    view = gate_view(db, runbook, gate_id)
    assert view is not None and not view.checks_passed
    seen = {s.step_id: (s.status, s.evidence) for s in view.steps}
    for step_id, (status, phrase) in EXPECTED.items():
        assert seen[step_id][0] == status, (step_id, seen[step_id])
        assert phrase in seen[step_id][1], (step_id, seen[step_id])
        assert len(seen[step_id][1]) <= 200

    refused = engine.decide(gate_id, BOB, "continue")
    assert refused.outcome == "refused" and "checks did not pass" in refused.message

    # nothing lost: a step row and an audit row for every check
    with db.session() as s:
        rows = s.exec(select(StepRun).where(StepRun.run_id == run.id)).all()
    assert sorted(r.step_id for r in rows) == sorted(EXPECTED)
    results = [e for e in audit.events(db, run.id) if e.kind == "step.result"]
    assert len(results) == len(EXPECTED)

    # the peers recover (the engine stays down): Retry runs the phase again
    faults.heal()
    assert engine.decide(gate_id, BOB, "retry").outcome == "retried"
    second = gate_view(db, runbook, open_gate_id(db, run.id) or 0)
    assert second is not None and second.attempt == 2 and not second.checks_passed
    now = {s.step_id: s.status for s in second.steps}
    assert now["dns-servfail"] == now["dns-timeout"] == "pass"
    assert now["http-500"] == now["http-hang"] == "pass"
    assert now["docker-down"] == "error"
    assert audit.verify(db) == []


# --------------------------------------------------------------------------- the bot's database


def _terminate(db: Database) -> int:
    """Cuts every connection to the bot's database, as a PostgreSQL restart or failover would."""
    url = make_url(db.url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.database,),
        ).fetchone()
    return int(row[0]) if row else 0


def pg_engine(pg_db: Database, tmp_path: Path, checks: list[dict[str, Any]], phases: int = 2):
    runbook = load_runbook(runbook_file(tmp_path, checks, phases))
    return Engine(pg_db, runbook, background=False)


def test_connections_dropped_while_a_gate_waits_the_click_still_decides(
    pg_db: Database, tmp_path: Path
) -> None:
    engine = pg_engine(
        pg_db,
        tmp_path,
        [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
    )
    run = engine.start_run("staging", ALICE)
    gate = open_gate_id(pg_db, run.id or 0)
    assert _terminate(pg_db) >= 1  # the pool's idle connections are dead now
    result = engine.decide(gate or 0, BOB, "continue")  # pool_pre_ping reconnects
    assert result.outcome == "approved"
    assert open_gate_id(pg_db, run.id or 0) not in (None, gate)
    assert audit.verify(pg_db) == []


def test_database_down_at_a_click_says_so_and_changes_nothing(
    pg_db: Database, tmp_path: Path
) -> None:
    engine = pg_engine(
        pg_db,
        tmp_path,
        [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
    )
    run = engine.start_run("staging", ALICE)
    gate = open_gate_id(pg_db, run.id or 0)
    gone = make_url(pg_db.url).set(port=1, password="s3cret-pw")  # nothing listens there
    down = Engine(Database(gone.render_as_string(False)), engine.runbook)
    with pytest.raises(DatabaseUnavailable, match="unavailable: .*nothing was changed") as exc:
        down.decide(gate or 0, BOB, "continue")
    assert "s3cret-pw" not in str(exc.value) and "***" in str(exc.value)
    down.shutdown()
    down.db.dispose()
    assert engine.decide(gate or 0, BOB, "continue").outcome == "approved"
    assert Counter(e.kind for e in audit.events(pg_db, run.id or 0))["gate.decided"] == 1


class Cutter:
    """Cuts every connection to the bot's database again and again while in a `with` block:
    after each cut the database stays up for 10 to 150 ms (seeded, so a run repeats), as a
    flapping failover would. A fixed 10 ms left no room on some machines for a claim (connect,
    BEGIN, three statements) to fit between two cuts, so the test measured the machine."""

    def __init__(self, db: Database) -> None:
        self.db, self.cuts = db, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.gaps = random.Random(19)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.cuts += _terminate(self.db)
            self.stop.wait(self.gaps.uniform(0.01, 0.15))

    def __enter__(self) -> Cutter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_connections_cut_again_and_again_during_phases_lose_and_duplicate_nothing(
    pg_db: Database, tmp_path: Path
) -> None:
    """The bot keeps running while PostgreSQL drops its connections: background work
    (recording results, opening the gate, starting the next phase) is retried; a click
    either decides or answers DatabaseUnavailable with nothing changed, and is clicked again."""
    checks = [
        {
            "id": f"c{i}",
            "name": f"c{i}",
            "kind": "command",
            "params": {"argv": ["sh", "-c", f"sleep 0.{i}"]},
        }
        for i in range(1, 9)
    ]
    engine = pg_engine(pg_db, tmp_path, checks, phases=2)
    engine.background = True
    run_id = engine.start_run("staging", ALICE).id
    assert run_id is not None
    with Cutter(pg_db) as cutter:
        # Background work is retried for up to the database's patience (Database.retrying,
        # 60 s): a claim must fit between two cuts (10 to 150 ms apart), which takes tries.
        gate = _wait(lambda: open_gate_id(pg_db, run_id), timeout=60)
        answers: list[str] = []
        while not {"approved", "already_decided"} & set(answers):
            try:
                answers.append(engine.decide(gate, BOB, "continue").outcome)
            except DatabaseUnavailable as exc:
                # Cut before the COMMIT: nothing changed. At it: the answer is lost, and the
                # bot says it may have landed (a click again then finds it decided).
                said = "may or may not have been recorded" if exc.at_commit else "nothing was"
                assert said in str(exc), str(exc)
                answers.append("unavailable")
        _wait(lambda: (open_gate_id(pg_db, run_id) or gate) != gate, timeout=60)
    engine.shutdown()
    assert cutter.cuts >= 5  # connections were cut again and again, not once

    with pg_db.session() as s:
        steps = s.exec(select(StepRun)).all()
        prs = s.exec(select(PhaseRun)).all()
        gates = s.exec(select(Gate)).all()
    assert Counter((r.phase_run_id, r.step_id) for r in steps) == {
        (pr.id, f"c{i}"): 1 for pr in prs for i in range(1, 9)
    }
    assert sorted((p.phase_index, p.attempt, p.status) for p in prs) == [
        (0, 1, "passed"),
        (1, 1, "checked"),
    ]
    assert [g.status for g in sorted(gates, key=lambda g: g.id or 0)] == ["approved", "open"]
    events = Counter(e.kind for e in audit.events(pg_db, run_id))
    assert events["step.result"] == 16 and events["phase.started"] == 2
    assert events["gate.decided"] == 1 and events["gate.vote"] == 1
    assert audit.verify(pg_db) == []


def _wait(fn: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = fn()
        except DatabaseUnavailable:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")
