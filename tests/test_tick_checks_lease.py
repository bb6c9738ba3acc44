"""A tick's checks run under the run's lease, as a phase's steps do: when this process loses
that lease, the check's running program is stopped at the next renewal, not left running
until the leash's deadline (the lease's whole length later)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import update
from sqlmodel import col

from bot.store.db import Database
from bot.store.models import Run
from bot.store.reads import open_gate_id
from tests.schedule_helpers import ALICE, BOB, make_engine
from tests.servers import ManualClock
from tests.slack_harness import wait_for
from tests.small_runbook import small_runbook


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_lost_lease_stops_a_ticks_running_check_at_the_next_renewal(
    db: Database, tmp_path: Path
) -> None:
    pid_file = tmp_path / "check.pid"
    looked = {
        "id": "look",
        "name": "look for a while",
        "kind": "command",
        "timeout": 600,
        "params": {"argv": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"]},
    }
    phases = [
        {
            "id": "one",
            "name": "Phase one",
            "estimate_minutes": 1,
            "checkpoint": "one ok",
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
        pid = int(pid_file.read_text())
        with db.session() as s:  # another replica takes the run over
            s.execute(
                update(Run)
                .where(col(Run.id) == run.id)
                .values(owner="another-replica", lease_epoch=col(Run.lease_epoch) + 1)
            )
        engine.renew_leases()  # this process's next renewal finds the lease gone
        wait_for(lambda: not alive(pid), "the check stopped", timeout=10)
        ticking.join(timeout=30)
        assert not ticking.is_alive()
    finally:
        engine.shutdown()
