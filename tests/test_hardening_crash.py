"""kill -9 of a real bot process at chosen points, then a fresh process recovers.

The bot is `tests/crash_driver.py` in a subprocess, on an SQLite file and on a
PostgreSQL database. It is SIGKILLed (a) while a check runs, (b) right after a
decision commits (the surface call that follows it hangs), (c) while posting a
checkpoint or a rollback notice. Then another process runs `recover()`; the
test reads the database: consistent state, no phase run twice, each event once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import Gate, PhaseRun, Run, StepRun
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.crash_driver import crash_runbook
from tests.forked import Driver

ROOT = Path(__file__).resolve().parent.parent
BOB = Actor("T1:U2", "bob")


class Bot:
    """One driver process (forked with the bot imported: tests/forked.py); `until(event)`
    reads its JSON lines up to that event."""

    def __init__(self, db: Database, directory: Path, action: str, block_on: str | None = None):
        argv = ["--db", db.url, "--dir", str(directory)]
        if block_on:
            argv += ["--block-on", block_on]
        self.proc = Driver("tests.crash_driver", [*argv, action])
        self.lines: list[dict[str, Any]] = []

    def until(self, event: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr()
                raise AssertionError(f"bot exited before {event!r}: {self.lines}\n{err[-2000:]}")
            self.lines.append(json.loads(line))
            if self.lines[-1]["event"] == event:
                return self.lines[-1]
        raise AssertionError(f"no {event!r} within {timeout}s: {self.lines}")

    def kill9(self) -> None:
        assert self.proc.kill9() == -signal.SIGKILL
        self.proc.close()

    def finish(self) -> list[dict[str, Any]]:
        self.until("done")
        assert self.proc.wait(timeout=30) == 0, self.proc.stderr()[-2000:]
        self.proc.close()
        return self.lines


def run_to_end(db: Database, directory: Path, action: str) -> list[dict[str, Any]]:
    return Bot(db, directory, action).finish()


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def kinds(db: Database) -> Counter[str]:
    return Counter(e.kind for e in audit.events(db, 1))


def phase_starts(db: Database) -> list[tuple[int, int]]:
    out = []
    for e in audit.events(db, 1):
        if e.kind == "phase.started":
            data = json.loads(e.data)
            out.append((data["index"], data["attempt"]))
    return out


def state(db: Database) -> tuple[Run, list[PhaseRun], list[Gate]]:
    with db.session() as s:
        run = s.get(Run, 1)
        prs = list(s.exec(select(PhaseRun).order_by(col(PhaseRun.id))))
        gates = list(s.exec(select(Gate).order_by(col(Gate.id))))
    assert run is not None
    return run, prs, gates


def assert_consistent(db: Database) -> None:
    """Whatever the crash: the chain verifies and no phase attempt started twice."""
    assert audit.verify(db) == []
    starts = phase_starts(db)
    assert len(starts) == len(set(starts)), starts
    _, prs, gates = state(db)
    assert sorted(starts) == sorted((p.phase_index, p.attempt) for p in prs)
    decided = Counter(
        json.loads(e.data)["gate"] for e in audit.events(db, 1) if e.kind == "gate.decided"
    )
    assert all(n == 1 for n in decided.values())
    assert {g.id for g in gates if g.status != "open"} == set(decided)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    d = tmp_path / "bot"
    d.mkdir()
    return d


def test_kill_mid_check_of_a_phase_of_checks_runs_them_again_and_says_so(
    db: Database, directory: Path
) -> None:
    """Phase one has checks only: they change nothing, and no action of it began (its
    began_at is unset), so the restarted bot runs the phase again and says why."""
    (directory / "hold").write_text("")
    bot = Bot(db, directory, "start")
    bot.until("ready")
    wait_for(lambda: (directory / "check.pid").exists() and "phase.started" in kinds(db))
    bot.kill9()
    check_pid = int((directory / "check.pid").read_text())
    os.kill(check_pid, signal.SIGKILL)  # the orphaned check (its own session) goes too

    run, prs, gates = state(db)
    assert run.status == "running" and [(p.attempt, p.status) for p in prs] == [(1, "running")]
    assert prs[0].began_at is None and gates == []

    (directory / "hold").unlink()
    report = run_to_end(db, directory, "recover")
    assert report[-2]["report"] == ["run #1: phase one had not begun; started again"]
    notices = [line["args"][1] for line in report if line.get("call") == "notice"]
    surface_calls = [line["call"] for line in report if line["event"] == "surface"]
    assert surface_calls[0] == "notice" and "checkpoint" in surface_calls
    run, prs, gates = state(db)
    assert [(p.attempt, p.status) for p in prs] == [(1, "retried"), (2, "checked")]
    assert len(gates) == 1 and gates[0].status == "open" and gates[0].checks_passed
    assert "half done" not in (gates[0].note or "")
    with db.session() as s:  # the killed check left no result; the second attempt's did
        assert [r.phase_run_id for r in s.exec(select(StepRun)).all()] == [prs[1].id]
    # What the channel was told is what the trail holds.
    (not_begun,) = [e for e in audit.events(db, 1) if e.kind == "phase.not_begun"]
    owner = json.loads(not_begun.data)["owner"]
    assert notices == [
        f"{owner} stopped after claiming phase *One* of run #1, before any of its actions "
        "began: starting it again."
    ]
    again = run_to_end(db, directory, "recover")
    assert again[-2]["report"] == ["run #1: waiting at phase 1"]
    assert phase_starts(db) == [(0, 1), (0, 2)]
    assert_consistent(db)


def test_kill_mid_action_then_the_phase_is_interrupted_never_rerun_silently(
    db: Database, directory: Path
) -> None:
    (directory / "with-action").write_text("")
    (directory / "hold-action").write_text("")
    bot = Bot(db, directory, "start")
    bot.until("ready")
    wait_for(lambda: (directory / "action.pid").exists() and "phase.started" in kinds(db))
    bot.kill9()
    os.kill(int((directory / "action.pid").read_text()), signal.SIGKILL)  # the orphan too

    run, prs, gates = state(db)
    assert run.status == "running" and [(p.attempt, p.status) for p in prs] == [(1, "running")]
    assert prs[0].began_at is not None and gates == []  # marked before the action began

    report = run_to_end(db, directory, "recover")
    assert report[-2]["report"] == ["run #1: phase one interrupted; gate opened"]
    surface_calls = [line["call"] for line in report if line["event"] == "surface"]
    assert surface_calls == ["run_changed", "checkpoint"]  # the new gate is posted
    run, prs, gates = state(db)
    assert [(p.attempt, p.status) for p in prs] == [(1, "interrupted")]
    assert len(gates) == 1 and gates[0].status == "open" and not gates[0].checks_passed
    assert "half done" in (gates[0].note or "")
    with db.session() as s:
        assert s.exec(select(StepRun)).all() == []  # the killed action left no result
    # a second restart finds the gate waiting; nothing is run again
    again = run_to_end(db, directory, "recover")
    assert again[-2]["report"] == ["run #1: waiting at phase 1"]
    assert phase_starts(db) == [(0, 1)]

    engine = Engine(db, crash_runbook(directory), background=False)
    assert engine.decide(gates[0].id or 0, BOB, "continue").outcome == "refused"
    (directory / "hold-action").unlink()
    assert engine.decide(gates[0].id or 0, BOB, "retry").outcome == "retried"
    assert phase_starts(db) == [(0, 1), (0, 2)]
    assert Counter(kinds(db))["phase.interrupted"] == 1
    assert_consistent(db)


def test_kill_right_after_a_decision_commits_starts_the_next_phase_once(
    db: Database, directory: Path
) -> None:
    """The Continue's commit claimed phase two; the process died before its thread began:
    nothing of it ran, so the restarted bot starts it again (attempt 2), once."""
    run_to_end(db, directory, "start")
    bot = Bot(db, directory, "continue", block_on="spawn")
    bot.until("blocked")  # committed; the follow-up (next phase, posts) never happened
    bot.kill9()

    run, prs, gates = state(db)
    assert run.status == "running" and run.phase_index == 1
    assert [g.status for g in gates] == ["approved"] and phase_starts(db) == [(0, 1), (1, 1)]
    assert [(p.status, p.began_at) for p in prs][1] == ("running", None)

    report = run_to_end(db, directory, "recover")
    assert report[-2]["report"] == ["run #1: phase two had not begun; started again"]
    again = run_to_end(db, directory, "recover")
    assert again[-2]["report"] == ["run #1: waiting at phase 2"]
    assert phase_starts(db) == [(0, 1), (1, 1), (1, 2)]
    run, prs, gates = state(db)
    assert [g.status for g in gates] == ["approved", "open"]
    assert [p.status for p in prs] == ["passed", "retried", "checked"]
    assert kinds(db)["gate.decided"] == 1 and kinds(db)["gate.vote"] == 1
    assert kinds(db)["phase.not_begun"] == 1
    assert_consistent(db)


def test_kill_while_posting_the_checkpoint_keeps_the_gate_and_posts_again(
    db: Database, directory: Path
) -> None:
    bot = Bot(db, directory, "start", block_on="checkpoint")
    bot.until("blocked")
    bot.kill9()
    run, prs, gates = state(db)
    assert run.status == "waiting" and len(gates) == 1

    report = run_to_end(db, directory, "recover")
    assert report[-2]["report"] == ["run #1: waiting at phase 1"]
    notices = [line for line in report if line.get("call") == "notice"]
    assert len(notices) == 1 and "still waiting for a decision" in notices[0]["args"][1]
    assert kinds(db)["gate.opened"] == 1 and phase_starts(db) == [(0, 1)]
    assert open_gate_id(db, 1) == gates[0].id

    run_to_end(db, directory, "continue")  # the gate works after the restart
    assert phase_starts(db) == [(0, 1), (1, 1)]
    assert_consistent(db)


def test_kill_while_posting_the_rollback_notice_finishes_the_rollback_once(
    db: Database, directory: Path
) -> None:
    run_to_end(db, directory, "start")
    bot = Bot(db, directory, "rollback", block_on="notice")
    bot.until("blocked")  # "Rolling back run #1…" hangs; no rollback step has run
    bot.kill9()
    run, _, _ = state(db)
    assert run.status == "rolling_back" and not (directory / "rolled-back").exists()

    report = run_to_end(db, directory, "recover")
    assert report[-2]["report"] == ["run #1: rollback resumed"]
    assert (directory / "rolled-back").exists()
    run, prs, gates = state(db)
    assert run.status == "rolled_back" and run.active_env is None
    assert [g.status for g in gates] == ["rolled_back"]
    events = kinds(db)
    assert events["gate.decided"] == 1 and events["run.rolled_back"] == 1
    assert events["rollback.resumed"] == 1
    rollback_steps = [
        json.loads(e.data)["step"]
        for e in audit.events(db, 1)
        if e.kind == "step.result" and '"rollback"' in e.data
    ]
    assert rollback_steps == ["mark"]  # each rollback step ran and was audited once
    assert run_to_end(db, directory, "recover")[-2]["report"] == []
    assert_consistent(db)
