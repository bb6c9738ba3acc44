"""A bot process for the tick-check restart tests: starts a run of Phase 7 alone, or ticks
its NIP-05 claim (whose lookup the test holds on the loopback NostrMaxi, then SIGKILLs us).

    python -m tests.tick_crash_driver --db URL --runbook PATH --replica ID --at EPOCH ACTION

ACTION is `start` or `tick`. Every line on stdout is JSON. The runbook is the file the test
wrote (the same digest in every process); time is a ManualClock set to EPOCH.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import open_gate_id
from phases.runbook import load_runbook
from tests.schedule_helpers import ALICE, BOB
from tests.servers import ManualClock

HEX = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Surface:
    def _call(self, name: str, *args: Any) -> None:
        say(event="surface", call=name, args=[str(a) for a in args])

    def run_changed(self, run_id: int) -> None:
        self._call("run_changed", run_id)

    def checkpoint(self, gate_id: int, opened: object = None) -> None:
        self._call("checkpoint", gate_id)

    def gate_changed(self, gate_id: int) -> None:
        self._call("gate_changed", gate_id)

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        self._call("notice", run_id, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--runbook", required=True, type=Path)
    p.add_argument("--replica", required=True)
    p.add_argument("--at", required=True, type=float)
    p.add_argument("--lease", type=float, default=30.0)
    p.add_argument("action", choices=["start", "tick"])
    args = p.parse_args(argv)

    db = Database(args.db)
    db.create_all()
    engine = Engine(
        db,
        load_runbook(args.runbook),
        surface=Surface(),
        clock=ManualClock(args.at),
        background=False,
        replica_id=args.replica,
        lease_seconds=args.lease,
    )
    say(event="ready")
    if args.action == "start":
        run = engine.start_run("prod", ALICE)
        say(event="started", run=run.id, gate=open_gate_id(db, run.id or 0))
    else:
        gate = open_gate_id(db, 1)
        assert gate is not None, "no open gate to tick"
        result = engine.tick(gate, "nip05-claim", BOB, HEX)  # its lookup is held: killed here
        say(event="ticked", outcome=result.outcome)
    engine.shutdown()
    say(event="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
