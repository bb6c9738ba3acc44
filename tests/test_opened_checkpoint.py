"""The first drawing of a checkpoint comes from the transaction that opened its gate, not from
a read after it (issue 19, click → next checkpoint): it must say exactly what a read of the
committed rows says, for a phase whose checks passed and for one whose check failed."""

from __future__ import annotations

from pathlib import Path

from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import gate_view, open_gate_id
from bot.surface import Actor
from bot.views import GateView
from tests.small_runbook import small_runbook

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")


class OpenedViews:
    """A surface that keeps the view each checkpoint was told with (None: told without)."""

    def __init__(self) -> None:
        self.opened: dict[int, GateView | None] = {}

    def run_changed(self, run_id: int) -> None:
        pass

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        self.opened[gate_id] = opened

    def gate_changed(self, gate_id: int) -> None:
        pass

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        pass


def test_each_opened_checkpoint_is_what_a_read_of_its_committed_rows_shows(
    db: Database, tmp_path: Path
) -> None:
    surface = OpenedViews()
    runbook = small_runbook(tmp_path, act=True)
    engine = Engine(db, runbook, surface=surface, background=False)
    (tmp_path / "fail-two").touch()  # phase two's check fails: a failed, overridable gate
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    seen = []
    for _ in range(3):
        gate_id = open_gate_id(db, run.id)
        assert gate_id is not None
        opened = surface.opened[gate_id]
        assert opened is not None, "the executing phase hands its checkpoint over"
        assert opened == gate_view(db, runbook, gate_id)  # before anyone voted
        seen.append((opened.phase_id, opened.checks_passed, [s.step_id for s in opened.steps]))
        if not opened.checks_passed:
            (tmp_path / "fail-two").unlink()
            assert engine.decide(gate_id, BOB, "retry").outcome == "retried"
            continue
        if opened.manual:
            engine.tick(gate_id, opened.manual[0].id, BOB)
        assert engine.decide(gate_id, BOB, "continue").outcome == "approved"
    assert seen == [
        ("one", True, ["act", "ok"]),  # the action's row, written before, is read in it
        ("two", False, ["flag"]),
        ("two", True, ["flag"]),
    ]


def test_a_checkpoint_with_steps_the_bot_ticked_as_it_opened_is_what_a_read_shows(
    db: Database, tmp_path: Path
) -> None:
    """The gate-opening transaction also ticks the manual steps an action did (`done_by`) or
    a check made needless (`ask_unless`): the handed view shows those ticks, read in it."""
    step = {"kind": "command", "params": {"argv": ["true"]}}
    phase = {
        "id": "deploy",
        "name": "Deploy",
        "estimate_minutes": 1,
        "checkpoint": "deployed",
        "actions": [{"id": "push", "name": "push", "kind": "run", "params": {"argv": ["true"]}}],
        "checks": [{"id": "ok", "name": "ok", **step}],
        "manual": [
            {"id": "pushed", "text": "Pushed", "done_by": "push"},
            {"id": "looked", "text": "Looked at it", "ask_unless": "ok"},
            {"id": "browser", "text": "Click around"},
        ],
    }
    surface = OpenedViews()
    runbook = small_runbook(tmp_path, phases=[phase])
    engine = Engine(db, runbook, surface=surface, background=False)
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    gate_id = open_gate_id(db, run.id)
    assert gate_id is not None
    opened = surface.opened[gate_id]
    assert opened is not None
    assert opened == gate_view(db, runbook, gate_id)
    assert {m.id: m.ticked_by for m in opened.manual} == {
        "pushed": "system",
        "looked": "system",
        "browser": None,
    }
