"""`/cutover abort` while an action executes: the rollback begins only once that action has
ended (stopped by SIGTERM, killed after its grace, or finished on its own), the trail and the
channel say which; on SQLite and on the real PostgreSQL, with real running commands.

Every process writes its own timestamps (`date +%s.%N`) to one log: the proof that the
action and the rollback never overlapped is what the processes themselves recorded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import Run
from bot.surface import Actor
from phases.checks.base import CommandOutput, StepContext
from phases.runbook import EnvironmentSpec
from phases.secrets import Masker
from tests.schedule_helpers import RecordingSurface
from tests.slack_harness import wait_for
from tests.small_runbook import small_runbook

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")
STEP = "deploy (slow)"


def stamp(log: Path, what: str) -> str:
    return f'echo "{what} $(date +%s.%N)" >> {log}'


def deploy_script(log: Path, *, on_term: str) -> str:
    """Ticks every 0.1 s for at most 4 s; `on_term`: 'exit' (trap: stamp, exit) or 'ignore'."""
    trap = (
        f"trap '{stamp(log, 'deploy-term')}; exit 143' TERM"
        if on_term == "exit"
        else "trap '' TERM"
    )
    return (
        f"{stamp(log, 'deploy-start')}; {trap}; "
        f"for i in $(seq 40); do {stamp(log, 'deploy-tick')}; sleep 0.1; done; "
        f"{stamp(log, 'deploy-end')}"
    )


def engine_with_deploy(
    db: Database, tmp_path: Path, script: str, grace: float = 5.0, **kw: Any
) -> tuple[Engine, RecordingSurface, Path]:
    log = tmp_path / "times.log"
    rollback = [
        {
            "id": "undo",
            "name": "undo deploy",
            "kind": "run",
            "params": {"argv": ["sh", "-c", stamp(log, "rollback-start")]},
        }
    ]
    phases = [
        {
            "id": "deploy",
            "name": "Deploy",
            "estimate_minutes": 1,
            "checkpoint": "deployed",
            "actions": [
                {
                    "id": "deploy",
                    "name": STEP,
                    "kind": "run",
                    "timeout": 30,
                    "stop_grace_seconds": grace,
                    "params": {"argv": ["sh", "-c", script]},
                }
            ],
            "checks": [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
        }
    ]
    surface = RecordingSurface()
    runbook = small_runbook(tmp_path, phases=phases, rollback=rollback)
    engine = Engine(db, runbook, surface=surface, background=True, lease_seconds=2.0, **kw)
    return engine, surface, log


def times(log: Path) -> list[tuple[str, float]]:
    out = []
    for line in log.read_text().splitlines():
        what, at = line.split()
        out.append((what, float(at)))
    return out


def ended(db: Database, run_id: int) -> Run | None:
    with db.session() as s:
        run = s.get(Run, run_id)
    return run if run is not None and run.ended_at is not None else None


def abort_mid_deploy(engine: Engine, log: Path) -> int:
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    wait_for(lambda: log.exists() and "deploy-tick" in log.read_text(), "the deploy to run")
    decision = engine.abort("staging", BOB, "wrong build")
    assert decision.outcome == "rolled_back", decision
    wait_for(lambda: ended(engine.db, run.id or 0), "the rollback to finish", timeout=20)
    return run.id


def trail(db: Database, run_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, json.loads(e.data)) for e in audit.events(db, run_id)]


def index(rows: list[tuple[str, dict[str, Any]]], kind: str, **match: Any) -> int:
    for i, (k, data) in enumerate(rows):
        if k == kind and all(data.get(key) == v for key, v in match.items()):
            return i
    raise AssertionError(f"no {kind} {match} in {[k for k, _ in rows]}")


def notices(surface: RecordingSurface) -> list[str]:
    return [c.args[1] for c in surface.calls if c.method == "notice" and c.args[2] is None]


def assert_rollback_after_deploy(log: Path) -> None:
    rows = times(log)
    deploy_last = max(at for what, at in rows if what.startswith("deploy"))
    rollback_first = min(at for what, at in rows if what == "rollback-start")
    assert deploy_last < rollback_first, rows


def test_abort_during_an_action_stops_it_with_sigterm_before_the_rollback_begins(
    db: Database, tmp_path: Path
) -> None:
    engine, surface, log = engine_with_deploy(
        db, tmp_path, deploy_script(tmp_path / "times.log", on_term="exit")
    )
    try:
        run_id = abort_mid_deploy(engine, log)
    finally:
        engine.shutdown()
    assert_rollback_after_deploy(log)
    assert "deploy-term" in [what for what, _ in times(log)]
    assert "deploy-end" not in [what for what, _ in times(log)]
    rows = trail(db, run_id)
    step = index(rows, "step.result", section="actions", step="deploy")
    stopped = index(rows, "phase.stopped", phase="deploy")
    started = index(rows, "rollback.started")
    undo = index(rows, "step.result", section="rollback", step="undo")
    assert index(rows, "run.aborted") < step < stopped < started < undo
    evidence = rows[step][1]["evidence"]
    assert rows[step][1]["status"] == "error"
    assert evidence.startswith("stopped by abort: SIGTERM after "), evidence
    how = rows[stopped][1]
    assert how["how"] == "sigterm" and how["step"] == STEP
    said = notices(surface)
    assert f"Waiting for *{STEP}* to stop before rolling back run #{run_id}…" in said
    assert f"*{STEP}* stopped by SIGTERM after {how['seconds']:.1f} s. Rolling back now." in said
    assert said.index(
        f"*{STEP}* stopped by SIGTERM after {how['seconds']:.1f} s. Rolling back now."
    ) < next(i for i, t in enumerate(said) if t.startswith(f"Rolling back run #{run_id}"))


def test_an_action_that_ignores_sigterm_is_killed_after_its_grace_before_the_rollback(
    db: Database, tmp_path: Path
) -> None:
    engine, surface, log = engine_with_deploy(
        db, tmp_path, deploy_script(tmp_path / "times.log", on_term="ignore"), grace=0.6
    )
    try:
        run_id = abort_mid_deploy(engine, log)
    finally:
        engine.shutdown()
    assert_rollback_after_deploy(log)
    assert "deploy-end" not in [what for what, _ in times(log)]
    rows = trail(db, run_id)
    step = index(rows, "step.result", section="actions", step="deploy")
    stopped = index(rows, "phase.stopped", phase="deploy")
    assert step < stopped < index(rows, "rollback.started")
    assert rows[step][1]["evidence"] == (
        "stopped by abort: SIGKILL after the 0.6 s grace (it ignored SIGTERM)"
    )
    assert rows[stopped][1]["how"] == "sigkill"
    assert (
        f"*{STEP}* ignored SIGTERM and was killed (SIGKILL) after its 0.6 s grace. "
        "Rolling back now."
    ) in notices(surface)


def plain_runner(
    argv: list[str], *, timeout: float, cwd: str | None, env: dict[str, str] | None
) -> CommandOutput:
    """A runner that cannot be interrupted (as a Docker SDK call): it runs to its end."""
    done = subprocess.run(argv, timeout=timeout, cwd=cwd, env=env, capture_output=True, text=True)
    return CommandOutput(done.returncode, done.stdout, done.stderr)


def uninterruptible(env: EnvironmentSpec, dry_run: bool, masker: Masker) -> StepContext:
    return StepContext(dry_run=dry_run, masker=masker, command_runner=plain_runner)


def test_an_action_that_cannot_be_interrupted_is_waited_for_before_the_rollback(
    db: Database, tmp_path: Path
) -> None:
    log = tmp_path / "times.log"
    script = (
        f"{stamp(log, 'deploy-start')}; for i in $(seq 12); do {stamp(log, 'deploy-tick')}; "
        f"sleep 0.1; done; {stamp(log, 'deploy-end')}"
    )
    engine, surface, log = engine_with_deploy(db, tmp_path, script, context_factory=uninterruptible)
    try:
        run_id = abort_mid_deploy(engine, log)
    finally:
        engine.shutdown()
    assert_rollback_after_deploy(log)
    assert "deploy-end" in [what for what, _ in times(log)]
    rows = trail(db, run_id)
    step = index(rows, "step.result", section="actions", step="deploy")
    stopped = index(rows, "phase.stopped", phase="deploy")
    assert step < stopped < index(rows, "rollback.started")
    assert rows[stopped][1]["how"] == "finished"
    evidence = rows[step][1]["evidence"]
    assert f"*{STEP}* finished on its own (pass: {evidence}). Rolling back now." in notices(surface)
