"""Two `cutover serve` replicas on one PostgreSQL: a phase belongs to the replica running it.

One replica `kill -9`ed mid-phase and never restarted: the other opens the interrupted gate
within a bounded time. A rolling restart of the other replica never interrupts a live phase.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bot import audit
from bot.store.db import Database
from bot.store.models import Gate, Run
from standins.slack import SlackStandIn, post_signed, slash_body
from tests.conftest import STEP_USER
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.require import unavailable
from tests.slack_harness import CHANNEL, SECRET, TEAM, TOKEN, wait_for
from tests.small_runbook import small_runbook
from tests.test_slack_serve import free_port

ROOT = Path(__file__).resolve().parent.parent
LEASE = 1.5  # seconds; production default is 30

pytestmark = pytest.mark.postgres


def slow_phases(tmp: Path, seconds: float) -> list[dict[str, Any]]:
    log = tmp / "deploy.log"
    return [
        {
            "id": "deploy",
            "name": "Deploy",
            "estimate_minutes": 1,
            "checkpoint": "deployed",
            "actions": [
                {
                    "id": "deploy",
                    "name": "deploy (slow)",
                    "kind": "run",
                    "timeout": 120,
                    "params": {"argv": ["sh", "-c", f"echo start >> {log}; sleep {seconds}"]},
                }
            ],
            "checks": [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
        },
        {
            "id": "smoke",
            "name": "Smoke",
            "estimate_minutes": 1,
            "checkpoint": "smoke ok",
            "checks": [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
        },
    ]


class Replica:
    def __init__(
        self,
        name: str,
        tmp: Path,
        db_url: str,
        standin: SlackStandIn,
        replica_id: str | None = "",
    ) -> None:
        """replica_id: CUTOVER_REPLICA_ID ("": the name; None: unset, the hostname's default)."""
        self.name, self.tmp, self.db_url, self.standin = name, tmp, db_url, standin
        self.replica_id = name if replica_id == "" else replica_id
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Replica:
        """wait=False: do not wait for it to listen (it may refuse to start)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CUTOVER_"))}
        env.update(
            SLACK_BOT_TOKEN=TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=self.standin.api_url,
            CUTOVER_HTTP_PORT=str(self.port),
            CUTOVER_HTTP_HOST="127.0.0.1",
            CUTOVER_DATABASE_URL=self.db_url,
            CUTOVER_RUNBOOK=str(self.tmp / "small.yml"),
            CUTOVER_STEP_USER=STEP_USER,
            CUTOVER_METRICS_PORT="0",  # two replicas on one host: /metrics off
            CUTOVER_LEASE_SECONDS=str(LEASE),
            CUTOVER_SCHEDULER_TICK_SECONDS="1",
            PYTHONPATH=str(ROOT),
        )
        if self.replica_id is not None:
            env["CUTOVER_REPLICA_ID"] = self.replica_id
        log = (self.tmp / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"],
            cwd=self.tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            # A loaded test machine can take half a minute to start a Python process.
            wait_for(self.healthy, f"{self.name} to listen", timeout=90)
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, (self.tmp / f"{self.name}.log").read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def command(self, text: str, key: str, user: str = "U1") -> None:
        body = slash_body(
            text, user=user, team=TEAM, channel=CHANNEL, response_url=self.standin.response_url(key)
        )
        assert post_signed(f"{self.url}/slack/events", body, SECRET).status == 200

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextmanager
def replicas(tmp: Path, seconds: float) -> Iterator[tuple[Replica, Replica, Database]]:
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable")
    small_runbook(tmp, phases=slow_phases(tmp, seconds))
    standin = SlackStandIn(TOKEN).start()
    with throwaway_pg_database("cutover_replicas") as url:
        db = Database(url)
        db.create_all()
        a, b = Replica("replica-a", tmp, url, standin), Replica("replica-b", tmp, url, standin)
        try:
            yield a.start(), b.start(), db
        finally:
            a.stop()
            b.stop()
            db.dispose()
            standin.stop()


def executing_on(db: Database, replica: str) -> Run | None:
    with db.session() as s:
        run = s.exec(select(Run)).first()
    if run is not None and (run.owner or "").startswith(replica + "#"):
        return run
    return None


def gates(db: Database) -> list[Gate]:
    with db.session() as s:
        return list(s.exec(select(Gate).order_by(Gate.id)))  # type: ignore[arg-type]


def test_a_killed_replicas_phase_is_taken_over_by_the_other_within_two_leases(
    step_tmp: Path,  # the deploy step (run as the step user) writes its log there
) -> None:
    tmp_path = step_tmp
    with replicas(tmp_path, seconds=60) as (a, b, db):
        a.command("start staging", "start")
        run = wait_for(lambda: executing_on(db, "replica-a"), "the phase to run on replica A")
        log = tmp_path / "deploy.log"
        wait_for(lambda: log.exists() and "start" in log.read_text(), "its deploy to begin")
        a.kill9()  # never restarted
        died = time.monotonic()
        opened = wait_for(lambda: gates(db), "replica B to open the gate", timeout=4 * LEASE + 10)
        took = time.monotonic() - died
        gate = opened[0]
        assert gate.run_id == run.id and not gate.checks_passed
        assert "stopped while this phase ran" in (gate.note or "")
        # lease lapse (≤ LEASE after the last renewal) + B's reaper interval (LEASE/3) + polling
        assert took <= 2 * LEASE + 1.0, f"took {took:.2f}s"
        interrupted = [e for e in audit.events(db, run.id or 0) if e.kind == "phase.interrupted"]
        assert len(interrupted) == 1 and '"owner":"replica-a"' in interrupted[0].data
        wait_for(lambda: gates(db)[0].surface_ref, "B to post the Retry/Rollback checkpoint")
        assert log.read_text().count("start") == 1  # begun once, never re-run by B


def test_a_rolling_restart_of_the_other_replica_never_interrupts_a_live_phase(
    step_tmp: Path,  # the deploy step (run as the step user) writes its log there
) -> None:
    tmp_path = step_tmp
    with replicas(tmp_path, seconds=4 * LEASE) as (a, b, db):
        a.command("start staging", "start")
        wait_for(lambda: executing_on(db, "replica-a"), "the phase to run on replica A")
        b.stop()  # B restarts while A's deploy runs: its recovery must leave the phase alone
        b.start()
        time.sleep(2 * LEASE)  # B's reaper has looked several times by now
        opened = wait_for(lambda: gates(db), "A to finish the phase", timeout=30)
        assert opened[0].checks_passed and opened[0].note is None
        run_id = opened[0].run_id
        assert "phase.interrupted" not in [e.kind for e in audit.events(db, run_id)]
        assert (tmp_path / "deploy.log").read_text().count("start") == 1
