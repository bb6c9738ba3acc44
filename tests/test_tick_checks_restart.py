"""A check bound to a tick that was running when its process died is never left waiting for
nobody: the process that now holds the run re-runs it when the step declares that safe
(`on_restart: rerun`, the shipped NIP-05 claim), or marks it interrupted on the checkpoint
(the default, `ask`), saying when and why, from the audit rows. A real `kill -9` of a bot
process mid-lookup (tests/tick_crash_driver.py), on SQLite and on PostgreSQL; the lookup is
held on the loopback NostrMaxi until the process is dead."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import select

from bot import audit
from bot.engine import Engine
from bot.slack.blocks import gate_message
from bot.standin import (
    NostrMaxiStandin,
    Request,
    Response,
    json_response,
    make_ca,
    make_leaf,
    nostrmaxi_standin,
)
from bot.store.db import Database
from bot.store.models import Run, StepRun
from bot.store.reads import gate_view, open_gate_id
from bot.text import checkpoint_text
from phases.runbook import Runbook, load_runbook
from tests.forked import Driver
from tests.schedule_helpers import BOB, RecordingSurface
from tests.servers import ManualClock
from tests.test_nostrmaxi_e2e_ticks import HEX, OTHER, e2e_runbook, step
from tests.trail_checker import exported_rows
from tests.trail_checker_ticks import check_checkpoint_ticks

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 12, 7, 4, 31, 12, tzinfo=UTC)  # when the new process recovers


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """NostrMaxi over HTTPS (as tests/test_nostrmaxi_e2e_ticks.py's), trusted by every
    process of the test (SSL_CERT_FILE reaches the drivers)."""
    ca = make_ca(tmp_path)
    leaf = make_leaf(tmp_path, ca, "localhost", 90, sans=["localhost", "127.0.0.1"])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
    server = nostrmaxi_standin(tls=leaf)
    try:
        yield server
    finally:
        server.stop()


class HeldLookup:
    """The NIP-05 route answers `first` to the first request, once released; later ones at
    once with the stand-in's names."""

    def __init__(self, app: NostrMaxiStandin, first: str | None = None) -> None:
        self.asked, self.release, self.count = threading.Event(), threading.Event(), 0
        original = app.routes[("GET", "/.well-known/nostr.json")]

        def handler(req: Request) -> Response:
            self.count += 1
            if self.count == 1:
                self.asked.set()
                self.release.wait(60)
                if first is not None:
                    return json_response({"names": {"cutover-test": first}})
            return original(req)

        app.route("GET", "/.well-known/nostr.json", handler)


def runbook_file(tmp_path: Path, app: NostrMaxiStandin, *, rerun: bool) -> Path:
    runbook = e2e_runbook(tmp_path, app.url, payment_checks=False)
    path = tmp_path / "e2e.yml"
    if not rerun:  # the default: a check bound to a tick is not repeated silently
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        claim = next(m for m in data["phases"][0]["manual"] if m["id"] == "nip05-claim")
        claim.pop("on_restart", None)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert runbook is not None
    return path


class TickDriver:
    """One tick driver process (forked with the bot imported: tests/forked.py)."""

    def __init__(self, db: Database, runbook: Path, action: str, replica: str, lease: float):
        argv = ["--db", db.url, "--runbook", str(runbook), "--replica", replica]
        argv += ["--at", str(AT.timestamp() - 60), "--lease", str(lease), action]
        self.proc = Driver("tests.tick_crash_driver", argv)

    def finish(self) -> None:
        self.proc.stdout.read()  # to its end: the driver has exited or closed its output
        code = self.proc.wait(timeout=90)
        err = self.proc.stderr()
        self.proc.close()
        assert code == 0, err[-2000:]

    def kill9(self) -> None:
        assert self.proc.kill9() == -signal.SIGKILL
        self.proc.close()


def killed_mid_lookup(
    db: Database,
    app: NostrMaxiStandin,
    path: Path,
    *,
    replica: str = "bot",
    lease: float = 30.0,
    first: str | None = None,
) -> HeldLookup:
    """A process starts the run, another ticks nip05-claim and is killed during its lookup."""
    TickDriver(db, path, "start", replica, lease).finish()
    held = HeldLookup(app, first)
    ticking = TickDriver(db, path, "tick", replica, lease)
    try:
        assert held.asked.wait(60), "the lookup never reached NostrMaxi"
    finally:
        ticking.kill9()
    return held


def engine_at(db: Database, runbook: Runbook, replica: str = "bot", **kw: Any) -> Engine:
    surface = RecordingSurface()
    engine = Engine(
        db,
        runbook,
        surface=surface,
        clock=ManualClock(AT.timestamp()),
        background=False,
        replica_id=replica,
        **kw,
    )
    engine.recorded = surface  # type: ignore[attr-defined]
    return engine


def kinds(db: Database, prefix: str = "tick.") -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, json.loads(e.data)) for e in audit.events(db, 1) if e.kind.startswith(prefix)]


def results(db: Database, step_id: str) -> list[str]:
    with db.session() as s:
        return [r.status for r in s.exec(select(StepRun).where(StepRun.step_id == step_id))]


def test_a_restart_mid_lookup_reruns_it_when_the_step_declares_it_safe(
    db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    app.names["cutover-test"] = HEX
    path = runbook_file(tmp_path, app, rerun=True)
    held = killed_mid_lookup(db, app, path)
    assert results(db, "nip05-pubkey") == []  # the killed lookup left no result
    held.release.set()

    engine = engine_at(db, load_runbook(path))
    try:
        assert engine.recover() == [
            "run #1: waiting at phase 1; nip05-pubkey re-run after a restart"
        ]
        gate = open_gate_id(db, 1)
        assert gate is not None
        assert results(db, "nip05-pubkey") == ["pass"]
        assert held.count == 2  # the killed lookup, then the re-run
        [started, resumed, again] = kinds(db)
        assert started[0] == "tick.checks_started" and started[1]["item"] == "nip05-claim"
        assert resumed == (
            "tick.checks_resumed",
            {
                "gate": gate,
                "phase": "e2e",
                "item": "nip05-claim",
                "checks": ["nip05-pubkey"],
                "cause": "restart",
                "owner": "bot",
            },
        )
        assert again[0] == "tick.checks_started"
        for item in ("login", "payment", "admin"):
            engine.tick(gate, item, BOB)
        assert engine.decide(gate, BOB, "continue").outcome == "approved"
        with db.session() as s:
            run = s.get(Run, 1)
            assert run is not None and run.owner is None  # nothing holds a finished check
    finally:
        engine.shutdown()


def test_a_restart_mid_lookup_of_a_step_not_declared_safe_marks_it_interrupted(
    db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    app.names["cutover-test"] = HEX
    path = runbook_file(tmp_path, app, rerun=False)
    held = killed_mid_lookup(db, app, path)
    held.release.set()

    engine = engine_at(db, load_runbook(path))
    try:
        assert engine.recover() == [
            "run #1: waiting at phase 1; nip05-pubkey interrupted (tick nip05-claim again or Retry)"
        ]
        assert held.count == 1  # nothing ran it again
        gate = open_gate_id(db, 1)
        assert gate is not None
        shown = step(engine, gate, "nip05-pubkey")
        said = "interrupted by a restart at 04:31 UTC; tick nip05-claim again or Retry"
        assert (shown.status, shown.evidence) == ("interrupted", said)
        view = gate_view(db, engine.runbook, gate)
        assert view is not None
        text = checkpoint_text(view)
        assert f"NIP-05 cutover-test returns the ticked pubkey: {said}" in text
        assert "Decision point: checks PASS so far; nip05-pubkey " + said in text
        check_checkpoint_ticks(text, gate, exported_rows(db, 1), engine.runbook)
        _, blocks = gate_message(view)  # Slack's checkpoint says the same, never "Continue"
        posted = json.dumps(blocks, ensure_ascii=False)
        assert f"*Decision point:* PASS so far; nip05-pubkey {said}" in posted
        assert "PASS → Continue" not in posted
        notices = [c.args[1] for c in engine.recorded.calls if c.method == "notice"]
        assert notices == [
            f"Run #1, phase e2e: NIP-05 cutover-test returns the ticked pubkey: {said}."
        ]

        for item in ("login", "payment", "admin"):
            engine.tick(gate, item, BOB)
        refused = engine.decide(gate, BOB, "continue")
        assert refused.outcome == "refused"
        assert refused.message == f"nip05-pubkey was {said}"

        assert engine.tick(gate, "nip05-claim", BOB, HEX).outcome == "ticked"  # a person asks
        assert results(db, "nip05-pubkey") == ["pass"]
        assert [k for k, _ in kinds(db)] == [
            "tick.checks_started",
            "tick.checks_interrupted",
            "tick.checks_resumed",
            "tick.checks_started",
        ]
        assert kinds(db)[2][1]["cause"] == "tick"
        view = gate_view(db, engine.runbook, gate)
        assert view is not None
        check_checkpoint_ticks(checkpoint_text(view), gate, exported_rows(db, 1), engine.runbook)
        assert engine.decide(gate, BOB, "continue").outcome == "approved"
    finally:
        engine.shutdown()


@pytest.mark.postgres
def test_a_dead_replicas_lookup_is_rerun_by_the_replica_that_takes_the_run_over(
    pg_db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    db = pg_db
    app.names["cutover-test"] = HEX
    path = runbook_file(tmp_path, app, rerun=True)
    held = killed_mid_lookup(db, app, path, replica="bot-a", lease=0.5)
    held.release.set()

    engine = engine_at(db, load_runbook(path), replica="bot-b", lease_seconds=0.5)
    try:
        deadline = time.monotonic() + 30
        taken: list[str] = []
        while not taken and time.monotonic() < deadline:  # until bot-a's lease lapsed
            taken = engine.reap()
        assert taken == [
            "run #1: waiting at phase 1; nip05-pubkey re-run after replica bot-a stopped"
        ]
        assert results(db, "nip05-pubkey") == ["pass"]
        [_, resumed, again] = kinds(db)
        assert resumed[1]["cause"] == "takeover" and resumed[1]["owner"] == "bot-a"
        assert again[0] == "tick.checks_started" and again[1]["replica"] == "bot-b"
    finally:
        engine.shutdown()


def test_a_stale_holders_lookup_result_is_refused_once_the_run_was_taken_over(
    sqlite_db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    db = sqlite_db
    app.names["cutover-test"] = HEX
    path = runbook_file(tmp_path, app, rerun=True)
    TickDriver(db, path, "start", "bot", 30.0).finish()
    held = HeldLookup(app, first=OTHER)  # the stale holder would see another key: a FAIL
    stale = engine_at(db, load_runbook(path))
    gate = open_gate_id(db, 1)
    assert gate is not None
    ticking = threading.Thread(target=stale.tick, args=(gate, "nip05-claim", BOB, HEX))
    ticking.start()
    fresh = engine_at(db, load_runbook(path))  # the same replica, restarted
    try:
        assert held.asked.wait(30)
        assert fresh.recover() == [
            "run #1: waiting at phase 1; nip05-pubkey re-run after a restart"
        ]
        held.release.set()
        ticking.join(30)
        assert results(db, "nip05-pubkey") == ["pass"]  # the stale FAIL was never written
        assert [k for k, _ in kinds(db, "gate.rechecked")] == []
    finally:
        held.release.set()
        stale.shutdown()
        fresh.shutdown()


@pytest.mark.postgres
def test_a_dead_replicas_lookup_not_declared_safe_is_shown_interrupted_naming_that_replica(
    pg_db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    db = pg_db
    app.names["cutover-test"] = HEX
    path = runbook_file(tmp_path, app, rerun=False)
    held = killed_mid_lookup(db, app, path, replica="bot-a", lease=0.5)
    held.release.set()

    engine = engine_at(db, load_runbook(path), replica="bot-b", lease_seconds=0.5)
    try:
        deadline = time.monotonic() + 30
        taken: list[str] = []
        while not taken and time.monotonic() < deadline:  # until bot-a's lease lapsed
            taken = engine.reap()
        assert taken == [
            "run #1: waiting at phase 1; nip05-pubkey interrupted (tick nip05-claim again or Retry)"
        ]
        assert held.count == 1 and results(db, "nip05-pubkey") == []
        gate = open_gate_id(db, 1)
        assert gate is not None
        said = "interrupted by replica bot-a stopping at 04:31 UTC; tick nip05-claim again or Retry"
        assert step(engine, gate, "nip05-pubkey").evidence == said
        view = gate_view(db, engine.runbook, gate)
        assert view is not None
        check_checkpoint_ticks(checkpoint_text(view), gate, exported_rows(db, 1), engine.runbook)
        with db.session() as s:
            run = s.get(Run, 1)
            assert run is not None and run.owner is None  # nothing runs: nobody holds it
    finally:
        engine.shutdown()
