"""A lost lease stops the work: two bot processes on one PostgreSQL, one paused (SIGSTOP)
past its lease, one whose clock runs ahead, one cut from the database. The action and the
rollback that follows a take-over never overlap, as proven by the timestamps the step
processes themselves write; a stale holder's writes are refused by the fencing epoch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import select

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import Gate, Run
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.lease_driver import APPROVER, lease_runbook
from tests.require import unavailable
from tests.slack_harness import wait_for

ROOT = Path(__file__).resolve().parent.parent
LEASE = 2.0  # seconds: small, with room for a loaded test machine

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable")
    with throwaway_pg_database("cutover_lease") as url:
        db = Database(url)
        db.create_all()
        db.dispose()
        yield url


class Driver:
    """One `tests.lease_driver` process; its stderr (log lines) kept in a file."""

    def __init__(self, tmp: Path, db_url: str, replica: str, action: str, *extra: str) -> None:
        self.err = tmp / f"{replica}.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "SLACK_"))}
        env["PYTHONPATH"] = str(ROOT)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.lease_driver",
                "--db",
                db_url,
                "--dir",
                str(tmp),
                "--replica",
                replica,
                "--lease",
                str(LEASE),
                *extra,
                action,
            ],
            stdout=subprocess.PIPE,
            stderr=self.err.open("wb"),
            text=True,
            cwd=ROOT,
        )

    def line(self, event: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            data = json.loads(raw)
            if data.get("event") == event:
                return data
        raise AssertionError(f"no {event}: {self.err.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)


def times(tmp: Path) -> list[tuple[str, float]]:
    log = tmp / "times.log"
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        what, _pid, at = line.split()
        out.append((what, float(at)))
    return out


def assert_never_overlapped(tmp: Path) -> None:
    rows = times(tmp)
    deploy_last = max(at for what, at in rows if what.startswith("deploy"))
    rollback_first = min(at for what, at in rows if what.startswith("rollback"))
    assert deploy_last < rollback_first, rows
    assert "deploy-end" not in [w for w, _ in rows], "the deploy was not stopped"


def only_run(db: Database) -> Run:
    with db.session() as s:
        return s.exec(select(Run)).one()


def open_gate(db: Database) -> Gate | None:
    with db.session() as s:
        return s.exec(select(Gate).where(Gate.status == "open")).first()


def take_over_and_roll_back(db: Database, engine: Engine) -> None:
    """The other replica takes the phase over (Retry/Rollback gate), then rolls back."""
    gate = wait_for(lambda: open_gate(db), "the other replica to take the phase over", 20)
    assert gate.id is not None and not gate.checks_passed
    assert "stopped while this phase ran" in (gate.note or "")
    assert engine.decide(gate.id, APPROVER, "rollback", reason="lease lost").changed
    wait_for(lambda: only_run(db).ended_at, "the rollback to finish", 20)


def test_a_holder_paused_past_its_lease_has_its_step_killed_before_another_replica_rolls_back(
    tmp_path: Path, pg_url: str
) -> None:
    holder = Driver(tmp_path, pg_url, "replica-a", "start", "--for", "60")
    db = Database(pg_url)
    other = Engine(db, lease_runbook(tmp_path), replica_id="replica-b", lease_seconds=LEASE)
    try:
        holder.line("started")
        wait_for(lambda: any(w == "deploy-tick" for w, _ in times(tmp_path)), "the deploy")
        holder.proc.send_signal(signal.SIGSTOP)  # the bot, not its step (own session)
        other.start_reaper()
        take_over_and_roll_back(db, other)
        assert_never_overlapped(tmp_path)
        holder.proc.send_signal(signal.SIGCONT)  # it wakes up a stale holder
        wait_for(lambda: "refused" in holder.err.read_text(), "the stale write to be refused")
        kinds = [e.kind for e in audit.events(db, only_run(db).id or 0)]
        assert kinds.count("rollback.started") == 1 and kinds.count("phase.interrupted") == 1
        deploys = [
            e for e in audit.events(db, only_run(db).id or 0) if '"section":"actions"' in e.data
        ]
        assert deploys == [], "the stale holder's deploy result was recorded"
    finally:
        holder.stop()
        other.shutdown()
        db.dispose()


def test_a_replica_whose_clock_runs_ahead_never_takes_over_a_live_lease(
    tmp_path: Path, pg_url: str
) -> None:
    db = Database(pg_url)
    holder = Engine(db, lease_runbook(tmp_path), replica_id="replica-a", lease_seconds=LEASE)
    reaper = Driver(tmp_path, pg_url, "replica-b", "reap", "--skew", "10", "--for", "30")
    try:
        reaper.line("ready")
        holder.start_run("staging", APPROVER)
        gate = wait_for(lambda: open_gate(db), "the deploy to finish on its holder", 20)
        assert gate.checks_passed and gate.note is None
        kinds = [e.kind for e in audit.events(db, gate.run_id)]
        assert "phase.interrupted" not in kinds
        assert [w for w, _ in times(tmp_path)].count("deploy-end") == 1
    finally:
        reaper.stop()
        holder.shutdown()
        db.dispose()


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut: every connection dropped and new
    ones refused, as a network partition between one replica and the database."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cut = threading.Event()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self.cut.is_set():
                data = a.recv(65536)
                if not data or self.cut.is_set():
                    break
                b.sendall(data)
        except OSError:
            pass

    def sever(self) -> None:
        """Blackholes every connection: nothing more passes either way (no RST: the holder's
        driver waits as on a partitioned network until its own timeouts)."""
        self.cut.set()

    def close(self) -> None:
        self.cut.set()
        self.server.close()
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()


def test_a_holder_cut_from_the_database_stops_its_step_before_another_replica_rolls_back(
    tmp_path: Path, pg_url: str
) -> None:
    url = make_url(pg_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    holder = Driver(tmp_path, via_proxy, "replica-a", "start", "--for", "60")
    db = Database(pg_url)
    other = Engine(db, lease_runbook(tmp_path), replica_id="replica-b", lease_seconds=LEASE)
    try:
        holder.line("started")
        wait_for(lambda: any(w == "deploy-tick" for w, _ in times(tmp_path)), "the deploy")
        proxy.sever()
        other.start_reaper()
        take_over_and_roll_back(db, other)
        assert_never_overlapped(tmp_path)  # its leash killed the deploy: the holder hangs
        run_id = only_run(db).id or 0
        assert not [e for e in audit.events(db, run_id) if '"section":"actions"' in e.data]
    finally:
        holder.stop()
        other.shutdown()
        db.dispose()
        proxy.close()


def test_an_abort_on_another_replica_stops_the_holders_step_at_its_next_renewal_then_rolls_back(
    tmp_path: Path, pg_url: str
) -> None:
    holder = Driver(tmp_path, pg_url, "replica-a", "start", "--for", "60")
    db = Database(pg_url)
    other = Engine(db, lease_runbook(tmp_path), replica_id="replica-b", lease_seconds=LEASE)
    try:
        holder.line("started")
        wait_for(lambda: any(w == "deploy-tick" for w, _ in times(tmp_path)), "the deploy")
        assert other.abort("staging", APPROVER, "wrong build").outcome == "rolled_back"
        wait_for(lambda: only_run(db).ended_at, "the holder to stop, then roll back", 20)
        assert_never_overlapped(tmp_path)
        events = audit.events(db, only_run(db).id or 0)
        kinds = [e.kind for e in events]
        step = next(i for i, e in enumerate(events) if '"section":"actions"' in e.data)
        assert '"stopped by abort: SIGTERM after' in events[step].data
        assert kinds.index("run.aborted") < step < kinds.index("phase.stopped")
        assert kinds.index("phase.stopped") < kinds.index("rollback.started")
        assert "phase.interrupted" not in kinds
    finally:
        holder.stop()
        other.shutdown()
        db.dispose()
