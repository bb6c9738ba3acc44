"""A tick's checks run under the run's lease, as a phase's steps do: when this process loses
that lease, or an abort's rollback takes the run over in this process, the check's running
program is stopped at once, not left running until the leash's deadline (the lease's whole
length later) or its own timeout. Their results are refused either way (fenced)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import update
from sqlmodel import col

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import Run
from bot.store.reads import open_gate_id, run_view
from tests.schedule_helpers import ALICE, BOB, make_engine
from tests.servers import ManualClock
from tests.slack_harness import wait_for
from tests.small_runbook import small_runbook


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie). The process may be reaped between the two looks:
    its /proc entry then answers ESRCH (ProcessLookupError) or is gone."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


@contextmanager
def a_ticks_check_running(db: Database, tmp_path: Path) -> Iterator[tuple[Engine, int, int]]:
    """(engine, run id, pid of the check's program): phase one (which touched a file, so an
    abort rolls back) at its gate, its manual step ticked, the step's check running."""
    pid_file = tmp_path / "check.pid"
    looked = {
        "id": "look",
        "name": "look for a while",
        "kind": "command",
        "timeout": 600,
        "params": {"argv": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"]},
    }
    acted = str(tmp_path / "acted")
    act = {"id": "act", "name": "act", "kind": "run", "params": {"argv": ["touch", acted]}}
    phases = [
        {
            "id": "one",
            "name": "Phase one",
            "estimate_minutes": 1,
            "checkpoint": "one ok",
            "actions": [act],
            "manual": [{"id": "browser", "text": "Click around", "checks": [looked]}],
            "checks": [
                {"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
            ],
        }
    ]
    engine, _ = make_engine(db, small_runbook(tmp_path, phases=phases), ManualClock())
    try:
        run = engine.start_run("staging", ALICE)
        assert run.id is not None
        gate_id = open_gate_id(db, run.id)
        assert gate_id is not None
        ticking = threading.Thread(target=engine.tick, args=(gate_id, "browser", BOB))
        ticking.start()  # (without background threads the tick runs its checks itself)
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the check began")
        yield engine, run.id, int(pid_file.read_text())
        ticking.join(timeout=30)
        assert not ticking.is_alive()
    finally:
        engine.shutdown()


def test_a_lost_lease_stops_a_ticks_running_check_at_the_next_renewal(
    db: Database, tmp_path: Path
) -> None:
    with a_ticks_check_running(db, tmp_path) as (engine, run_id, pid):
        with db.session() as s:  # another replica takes the run over
            s.execute(
                update(Run)
                .where(col(Run.id) == run_id)
                .values(owner="another-replica", lease_epoch=col(Run.lease_epoch) + 1)
            )
        engine.renew_leases()  # this process's next renewal finds the lease gone
        wait_for(lambda: not alive(pid), "the check stopped", timeout=10)
    kinds = [e.kind for e in audit.events(db, run_id)]
    assert "step.result" not in kinds[kinds.index("tick.checks_started") :]  # none recorded


def test_an_abort_stops_a_ticks_running_check_when_the_rollback_takes_the_run(
    db: Database, tmp_path: Path
) -> None:
    with a_ticks_check_running(db, tmp_path) as (engine, run_id, pid):
        assert engine.abort("staging", BOB, "wrong build").outcome == "rolled_back"
        wait_for(lambda: not alive(pid), "the check stopped", timeout=10)
        wait_for(
            lambda: getattr(run_view(db, engine.runbook, run_id), "status", None) == "rolled_back",
            "the rollback's end",
        )
    kinds = [e.kind for e in audit.events(db, run_id)]
    assert (
        "step.result"
        not in kinds[kinds.index("tick.checks_started") : kinds.index("rollback.started")]
    )
