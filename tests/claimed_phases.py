"""A phase claimed by the Continue that moved its run to it (in the decision's transaction),
seen before its thread has run: as a process that dies right after that commit leaves it."""

from __future__ import annotations

from sqlmodel import select

from bot.engine import Engine
from bot.store.models import PhaseRun, PhaseStatus, Run
from phases.runbook import PhaseSpec


def claimed_phase(engine: Engine, run_id: int | None) -> tuple[Run, PhaseRun, PhaseSpec]:
    """The run's running phase attempt, claimed by this engine's process (not begun)."""
    with engine.db.session() as s:
        run = s.get(Run, run_id)
        running = s.exec(
            select(PhaseRun).where(
                PhaseRun.run_id == run_id, PhaseRun.status == PhaseStatus.RUNNING
            )
        ).one()
    assert run is not None and run.owner == engine.services.leases.me, run
    return run, running, engine.runbook.phases[running.phase_index]


def begin_action(
    engine: Engine, run_id: int | None, phase_run_id: int | None, index: int = 0
) -> None:
    """What the phase's thread does right before its action at `index`: the action's start
    marked (the phase begun), under the run's lock, only while its lease is this process's."""
    assert run_id is not None and phase_run_id is not None
    with engine.db.session() as s:
        row = s.get(PhaseRun, phase_run_id)
        assert row is not None
    step = engine.runbook.phases[row.phase_index].actions[index]
    assert engine.services.leases.standing(run_id, (phase_run_id, step.id)) == "mine"


def begin_first_action(engine: Engine, run_id: int | None, phase_run_id: int | None) -> None:
    begin_action(engine, run_id, phase_run_id, 0)
