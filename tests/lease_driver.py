"""A bot process for lease tests: one replica that starts a run or only reaps, with its own
clock skew, that the test can pause (SIGSTOP) or cut from the database.

    python -m tests.lease_driver --db URL --dir DIR --replica NAME --lease SECONDS
        [--skew SECONDS] [--for SECONDS] {start,reap}

`start` starts a run of `staging` and keeps the process alive (renewing its lease, running
the phase) for --for seconds; `reap` runs the reaper for --for seconds. --skew makes this
process's wall clock run ahead (as a machine whose clock drifted): `time.time` and the
engine's `datetime`. Every line on stdout is JSON. The runbook is `lease_runbook(DIR)`: the
same file, so the same digest, in every process of a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from bot.engine import Engine
from bot.store.db import Database
from bot.surface import Actor
from phases.runbook import Runbook
from tests.small_runbook import small_runbook

REQUESTER, APPROVER = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")
DEPLOY_SECONDS = 4.0


def stamp(log: Path, what: str) -> str:
    return f'echo "{what} $$ $(date +%s.%N)" >> {log}'


def lease_runbook(directory: Path) -> Runbook:
    """Phase one's action ticks into DIR/times.log for DEPLOY_SECONDS; the rollback stamps
    its start and end there: who ran when, as the processes themselves recorded it."""
    log = directory / "times.log"
    ticks = int(DEPLOY_SECONDS / 0.1)
    deploy = (
        f"{stamp(log, 'deploy-start')}; "
        f"for i in $(seq {ticks}); do {stamp(log, 'deploy-tick')}; sleep 0.1; done; "
        f"{stamp(log, 'deploy-end')}"
    )
    undo = f"{stamp(log, 'rollback-start')}; sleep 0.3; {stamp(log, 'rollback-end')}"
    return small_runbook(
        directory,
        phases=[
            {
                "id": "deploy",
                "name": "Deploy",
                "estimate_minutes": 1,
                "checkpoint": "deployed",
                "actions": [
                    {
                        "id": "deploy",
                        "name": "deploy",
                        "kind": "run",
                        "timeout": 60,
                        "stop_grace_seconds": 0.5,
                        "params": {"argv": ["sh", "-c", deploy]},
                    }
                ],
                "checks": [
                    {"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}
                ],
            }
        ],
        rollback=[
            {"id": "undo", "name": "undo", "kind": "run", "params": {"argv": ["sh", "-c", undo]}}
        ],
    )


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def skew_clock(seconds: float) -> None:
    """This process's wall clock runs `seconds` ahead: `time.time` and the engine's
    `datetime.now` (what leases were compared with before they used the database's)."""
    import bot.engine.core as core

    real_time = time.time
    time.time = lambda: real_time() + seconds  # type: ignore[assignment]

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Skewed:
            return datetime.fromtimestamp(time.time(), tz)  # type: ignore[return-value]

    core.datetime = Skewed  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--replica", required=True)
    p.add_argument("--lease", type=float, default=1.5)
    p.add_argument("--skew", type=float, default=0.0)
    p.add_argument("--for", dest="seconds", type=float, default=30.0)
    p.add_argument("action", choices=["start", "reap"])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.skew:
        skew_clock(args.skew)
    db = Database(args.db)
    engine = Engine(
        db,
        lease_runbook(args.dir),
        background=True,
        replica_id=args.replica,
        lease_seconds=args.lease,
    )
    say(event="ready", me=engine.me)
    if args.action == "start":
        run = engine.start_run("staging", REQUESTER)
        say(event="started", run=run.id)
    else:
        engine.start_reaper()
    time.sleep(args.seconds)
    engine.shutdown(wait=False)
    say(event="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
