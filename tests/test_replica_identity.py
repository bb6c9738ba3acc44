"""Two `cutover serve` on one host with the default replica id (the hostname): the second
refuses to start, naming CUTOVER_REPLICA_ID, and the first one's live phase goes on; a
restarted replica (its predecessor killed) still takes over its predecessor's work at once.
Real processes on the real PostgreSQL.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot import audit
from bot.store.db import Database
from standins.slack import SlackStandIn
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.require import unavailable
from tests.slack_harness import TOKEN, wait_for
from tests.small_runbook import small_runbook
from tests.test_replicas import LEASE, Replica, executing_on, gates, slow_phases

pytestmark = pytest.mark.postgres
HOST = socket.gethostname()  # the default CUTOVER_REPLICA_ID


@contextmanager
def default_id_replicas(tmp: Path, seconds: float) -> Iterator[tuple[Replica, Replica, Database]]:
    """Two replicas, neither with CUTOVER_REPLICA_ID set: both the hostname."""
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable")
    small_runbook(tmp, phases=slow_phases(tmp, seconds))
    standin = SlackStandIn(TOKEN).start()
    with throwaway_pg_database("cutover_identity") as url:
        db = Database(url)
        db.create_all()
        a = Replica("first", tmp, url, standin, replica_id=None)
        b = Replica("second", tmp, url, standin, replica_id=None)
        try:
            yield a, b, db
        finally:
            a.stop()
            b.stop()
            db.dispose()
            standin.stop()


def test_a_second_serve_with_the_default_replica_id_refuses_to_start_and_the_live_phase_goes_on(
    step_tmp: Path,  # the deploy step (run as the step user) writes its log there
) -> None:
    tmp_path = step_tmp
    with default_id_replicas(tmp_path, seconds=4 * LEASE) as (a, b, db):
        a.start()
        a.command("start staging", "start")
        wait_for(lambda: executing_on(db, HOST), "the phase to run on the first process")
        b.start(wait=False)
        assert b.proc is not None
        assert b.proc.wait(90) == 4  # a loaded machine starts Python slowly
        said = (tmp_path / "second.log").read_text()
        assert "CUTOVER_REPLICA_ID" in said and "another live cutover process" in said
        opened = wait_for(lambda: gates(db), "the first process to finish the phase", timeout=30)
        assert opened[0].checks_passed and opened[0].note is None
        kinds = [e.kind for e in audit.events(db, opened[0].run_id)]
        assert "phase.interrupted" not in kinds
        assert (tmp_path / "deploy.log").read_text().count("start") == 1


def test_a_restarted_replica_with_the_default_id_takes_over_its_predecessors_phase_at_once(
    step_tmp: Path,  # the deploy step (run as the step user) writes its log there
) -> None:
    tmp_path = step_tmp
    with default_id_replicas(tmp_path, seconds=60) as (a, b, db):
        a.start()
        a.command("start staging", "start")
        run = wait_for(lambda: executing_on(db, HOST), "the phase to run")
        # Killed once its action began (a phase claimed but never begun is started again
        # instead: tests/test_recovery.py).
        log = tmp_path / "deploy.log"
        wait_for(lambda: log.exists() and "start" in log.read_text(), "its deploy to begin")
        a.kill9()
        killed = time.monotonic()
        b.start()  # the same replica id, as systemd restarting the unit
        opened = wait_for(lambda: gates(db), "the restarted replica to open the gate")
        took = time.monotonic() - killed
        assert opened[0].run_id == run.id and not opened[0].checks_passed
        assert "stopped while this phase ran" in (opened[0].note or "")
        # It started (its predecessor's pid is gone) and took the phase over in its recovery.
        assert took < 30, f"took {took:.1f}s"
        interrupted = [e for e in audit.events(db, run.id or 0) if e.kind == "phase.interrupted"]
        assert len(interrupted) == 1
        assert log.read_text().count("start") == 1  # never re-run
