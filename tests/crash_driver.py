"""A bot process for crash tests: does one thing to a run, and can be made to stop mid-way.

    python -m tests.crash_driver --db URL --dir DIR ACTION [--block-on CALL]

ACTION is `start` (start a run of `staging`), `continue` / `rollback` (decide the
open gate), or `recover` (what `cutover serve` does first after a restart). With
--block-on CALL the surface call CALL (run_changed, checkpoint, gate_changed,
notice) prints a `blocked` line and then hangs, as a chat post that never
returns would: the test SIGKILLs the process there. `--block-on spawn` hangs at
the engine's follow-up work instead (the next phase, a rollback): right after a
decision committed, before anything follows it. Every line on stdout is JSON.
The runbook is `crash_runbook(DIR)`: the same file, so the same digest, in
every process of a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from phases.runbook import Runbook
from tests.small_runbook import small_runbook

REQUESTER, APPROVER = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")


def crash_runbook(directory: Path) -> Runbook:
    """Phase one's check records its pid and sleeps while DIR/hold exists: a check to kill.
    With DIR/with-action, phase one first runs an action that does the same with
    DIR/action.pid and DIR/hold-action: an action to kill."""
    check = (
        f"echo $$ > {directory / 'check.pid'}; "
        f"if test -e {directory / 'hold'}; then exec sleep 30; fi"
    )
    act = (
        f"echo $$ > {directory / 'action.pid'}; "
        f"if test -e {directory / 'hold-action'}; then exec sleep 30; fi"
    )
    actions = [{"id": "held-action", "name": "held action", "kind": "run", "timeout": 60}]
    actions[0]["params"] = {"argv": ["sh", "-c", act]}
    cmd = {"kind": "command", "timeout": 60}
    return small_runbook(
        directory,
        phases=[
            {
                "id": "one",
                "name": "One",
                "estimate_minutes": 1,
                "checkpoint": "one",
                "actions": actions if (directory / "with-action").exists() else [],
                "checks": [
                    {
                        "id": "held",
                        "name": "held check",
                        **cmd,
                        "params": {"argv": ["sh", "-c", check]},
                    }
                ],
            },
            {
                "id": "two",
                "name": "Two",
                "estimate_minutes": 1,
                "checkpoint": "two",
                "checks": [{"id": "ok", "name": "true", **cmd, "params": {"argv": ["true"]}}],
            },
            {
                "id": "three",
                "name": "Three",
                "estimate_minutes": 1,
                "checkpoint": "three",
                "checks": [{"id": "ok", "name": "true", **cmd, "params": {"argv": ["true"]}}],
            },
        ],
    )


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Surface:
    """Prints each call; the `block_on` call hangs after saying so."""

    def __init__(self, block_on: str | None) -> None:
        self.block_on = block_on

    def _call(self, name: str, *args: Any) -> None:
        say(event="surface", call=name, args=[str(a) for a in args])
        if name == self.block_on:
            say(event="blocked", call=name)
            threading.Event().wait(120)  # the test kills us here

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
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--block-on")
    p.add_argument("action", choices=["start", "continue", "rollback", "recover"])
    args = p.parse_args(argv)

    db = Database(args.db)
    db.create_all()
    engine = Engine(db, crash_runbook(args.dir), surface=Surface(args.block_on), background=False)
    if args.block_on == "spawn":

        def hang(fn: Any, *_: Any) -> None:
            say(event="blocked", call="spawn", work=getattr(fn, "__name__", "?"))
            threading.Event().wait(120)  # the test kills us here

        engine.spawn = hang  # type: ignore[method-assign]
    say(event="ready")
    if args.action == "start":
        run = engine.start_run("staging", REQUESTER)
        say(event="started", run=run.id)
    elif args.action == "recover":
        say(event="recovered", report=engine.recover())
    else:
        gate = open_gate_id(db, 1)
        assert gate is not None, "no open gate to decide"
        result = engine.decide(gate, APPROVER, args.action, reason="crash test")
        say(event="decided", outcome=result.outcome, gate=gate)
    engine.shutdown()
    say(event="done", at=time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main())
