"""A lease renewal that runs while this very process takes a run's lease in a transaction
not yet committed (the Continue's claim, a rollback's take): the process already knows the
new epoch; the renewal must wait for that commit, not call the lease lost and stop the
process's own step (seen once in CI: a rollback's step record refused, "epoch None")."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.small_runbook import small_runbook

ALICE = Actor("T1:U1", "alice")


def test_a_renewal_during_an_uncommitted_take_waits_for_it_and_keeps_the_lease(
    pg_db: Database, tmp_path: Path
) -> None:
    engine = Engine(pg_db, small_runbook(tmp_path), background=False)
    leases = engine.services.leases
    run = engine.start_run("staging", ALICE)
    assert run.id is not None and open_gate_id(pg_db, run.id) is not None  # lease released
    renewed: list[int] = []
    try:
        with engine.store.tx() as tx:
            locked = tx.lock_run(run.id)
            assert locked is not None
            leases.take(tx, locked)  # the new epoch is known here before it commits
            epoch = leases.epochs[run.id]
            renewal = threading.Thread(target=lambda: renewed.append(leases.renew()))
            renewal.start()
            time.sleep(0.3)  # the renewal runs while the take is uncommitted
        renewal.join(10)
        assert renewed == [1]  # renewed once the take committed
        assert leases.epochs.get(run.id) == epoch  # not taken for lost
    finally:
        engine.shutdown()
