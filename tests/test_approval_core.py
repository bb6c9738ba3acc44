"""The approval core as an attacker and an operator would try it: races, hand-made clicks,
Enterprise Grid identities, replicas, unreachable quorums and runs with nothing to undo."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot import audit
from bot.domain import states
from bot.domain.actor import Actor
from bot.domain.errors import Conflict, IllegalTransition, Refused
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import AuditEvent, Gate, PhaseRun, Run
from bot.store.reads import open_gate_id
from phases.checks.base import Status, StepResult
from phases.runbook import PhaseSpec, Runbook, RunbookError, load_runbook
from phases.runner import StepOutcome
from tests.claimed_phases import begin_action, begin_first_action, claimed_phase
from tests.schedule_helpers import RecordingSurface
from tests.small_runbook import small_runbook

ALICE, BOB, CAROL = Actor("T1:U1", "alice"), Actor("T1:U2", "bob"), Actor("T1:U3", "carol")
MALLORY = Actor("T1:U9", "mallory")
ROOT = Path(__file__).resolve().parent.parent


def kinds(db: Database, run_id: int | None) -> list[str]:
    return [e.kind for e in audit.events(db, run_id or 0)]


def last_event(db: Database) -> AuditEvent:
    with db.session() as s:
        row = s.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
    assert row is not None
    return row


def run_row(db: Database, run_id: int | None) -> Run:
    with db.session() as s:
        run = s.get(Run, run_id)
    assert run is not None
    return run


def gate_row(db: Database, gate_id: int) -> Gate:
    with db.session() as s:
        gate = s.get(Gate, gate_id)
    assert gate is not None
    return gate


def touching_phases(tmp: Path, log: Path) -> list[dict[str, Any]]:
    """Phase one changes something (appends to `log`, so a re-run shows) and its check passes."""
    return [
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
                    "params": {"argv": ["sh", "-c", f"echo deployed >> {log}"]},
                },
            ],
            "checks": [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
        },
        {
            "id": "smoke",
            "name": "Smoke",
            "estimate_minutes": 1,
            "checkpoint": "smoke ok",
            "checks": [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
        },
    ]


# ------------------------------------------------------------ the machine


def test_the_transition_table_refuses_a_move_it_does_not_have() -> None:
    gate = Gate(run_id=1, phase_run_id=1, phase_id="x", status="approved", checks_passed=True)
    with pytest.raises(IllegalTransition):
        states.transition(gate, "rollback")
    assert gate.status == "approved"


def test_the_transition_table_never_retries_a_passed_phase() -> None:
    gate = Gate(run_id=1, phase_run_id=1, phase_id="x", status="open", checks_passed=True)
    assert not states.can(gate, "retry")
    with pytest.raises(IllegalTransition, match="never re-run"):
        states.transition(gate, "retry")


def test_the_state_diagram_in_docs_matches_the_table() -> None:
    drawn = (ROOT / "docs" / "state-machine.md").read_text(encoding="utf-8")
    assert drawn == states.mermaid(), (
        "regenerate: python -m bot.domain.states > docs/state-machine.md"
    )


# ------------------------------------------------------------ defect 1: abort vs click


def released_together(**calls: Any) -> tuple[dict[str, Any], list[BaseException]]:
    """Runs every call in its own thread, all released at once; their results and errors."""
    barrier = threading.Barrier(len(calls))
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def one(name: str, fn: Any) -> None:
        try:
            barrier.wait()
            results[name] = fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=item) for item in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


@pytest.mark.postgres
def test_abort_racing_quorum_clicks_never_deadlocks_and_always_stops_the_run(
    pg_db: Database, tmp_path: Path
) -> None:
    engine = Engine(pg_db, small_runbook(tmp_path, quorum=2, act=True), background=False)
    outcomes: list[str] = []
    for _round in range(12):
        run = engine.start_run("staging", ALICE)
        gate = open_gate_id(pg_db, run.id or 0)
        assert gate is not None
        engine.decide(gate, BOB, "continue")  # 1/2
        results, errors = released_together(
            abort=lambda: engine.abort("staging", CAROL, "x"),
            click=lambda g=gate: engine.decide(g, ALICE, "continue"),
            stranger=lambda g=gate: engine.decide(g, MALLORY, "continue"),
        )
        assert errors == []
        abort = results["abort"]
        assert abort.outcome == "rolled_back", abort
        outcomes.append(
            "abort first" if gate_row(pg_db, gate).status == "rolled_back" else "click first"
        )
        if outcomes[-1] == "click first":
            assert "decided first" in abort.message
        engine.execute_rollback(run.id or 0)
        assert run_row(pg_db, run.id).status == "rolled_back"
    assert audit.verify(pg_db) == []


# ------------------------------------------------------------ defect 2: hand-made Retry


def test_a_hand_made_retry_on_a_passed_gate_reruns_nothing(db: Database, tmp_path: Path) -> None:
    log = tmp_path / "deploy.log"
    runbook = small_runbook(
        tmp_path, quorum=2, allow_self_approval=False, phases=touching_phases(tmp_path, log)
    )
    engine = Engine(db, runbook, background=False)
    run = engine.start_run("staging", ALICE)
    gate = open_gate_id(db, run.id or 0)
    assert gate is not None and gate_row(db, gate).checks_passed
    result = engine.decide(gate, ALICE, "retry")  # the requester, alone, same encoding as a button
    assert result.outcome == "refused" and "Retry is only for" in result.message
    assert log.read_text().count("deployed") == 1
    assert gate_row(db, gate).status == "open"
    assert kinds(db, run.id)[-1] == "action.refused"


# ------------------------------------------------------------ defect 3: Grid identity


def grid_runbook(tmp_path: Path, **env: Any) -> Any:
    return small_runbook(tmp_path, approvers=[], allow_self_approval=False, env=env)


def test_one_grid_user_in_two_workspaces_is_one_person(db: Database, tmp_path: Path) -> None:
    engine = Engine(db, grid_runbook(tmp_path, approver_groups=["S0APPROVERS"]), background=False)
    groups = frozenset({"S0APPROVERS"})
    typed_in_second = Actor.slack("T0SECOND", "W0ALICE", enterprise="E0ORG", groups=groups)
    clicked_at_home = Actor.slack("T0HOME", "W0ALICE", enterprise="E0ORG", groups=groups)
    assert typed_in_second.id == clicked_at_home.id == "E0ORG:W0ALICE"
    run = engine.start_run("staging", typed_in_second)
    gate = open_gate_id(db, run.id or 0)
    result = engine.decide(gate or 0, clicked_at_home, "continue")
    assert result.outcome == "refused" and "you started this run" in result.message


def test_enterprise_qualified_approvers_and_team_work(db: Database, tmp_path: Path) -> None:
    runbook = small_runbook(
        tmp_path, approvers=["E0ORG:W0BOB", "W0CAROL"], env={"slack_team": "E0ORG"}
    )
    engine = Engine(db, runbook, background=False)
    bob = Actor.slack("T0HOME", "W0BOB", enterprise="E0ORG", name="bob")
    carol = Actor.slack("T0OTHER", "W0CAROL", enterprise="E0ORG", name="carol")
    outsider = Actor.slack("T0ELSEWHERE", "U0BOB", name="bob")
    run = engine.start_run("staging", bob)
    gate = open_gate_id(db, run.id or 0)
    assert engine.decide(gate or 0, outsider, "continue").outcome == "refused"
    assert engine.decide(gate or 0, carol, "continue").outcome == "approved"


def test_a_workspace_user_of_another_team_is_not_the_same_person() -> None:
    assert not Actor.slack("T2", "U1").is_("T1:U1")
    assert Actor.slack("T2", "W1", enterprise="E1").is_("T1:W1")


# ------------------------------------------------------------ defect 5: leases


def test_recovery_leaves_a_phase_whose_owner_is_alive(db: Database, tmp_path: Path) -> None:
    runbook = small_runbook(tmp_path)
    a = Engine(db, runbook, background=False, replica_id="replica-a")
    run = a.start_run("staging", ALICE)
    a.spawn = lambda *_: None  # type: ignore[method-assign]
    a.decide(open_gate_id(db, run.id or 0) or 0, BOB, "continue")  # claims phase two on A
    _, phase_run, phase = claimed_phase(a, run.id)
    b = Engine(db, runbook, background=False, replica_id="replica-b")
    assert b.recover() == [f"run #{run.id}: executing on replica-a"]
    assert a.open_gate(run.id or 0, phase_run.id or 0, phase, True, executor=True) is not None
    assert "phase.interrupted" not in kinds(db, run.id)


def lapsed(b: Engine, lease: float, *, holds_first: bool = False) -> list[str]:
    """What `b` reaped once the dead replica's lease lapsed. `holds_first`: it is checked
    that the lease still holds at first (give the dead replica a lease a loaded machine
    cannot let lapse while `b` starts)."""
    if holds_first:
        assert b.reap() == []  # the lease still holds
    deadline = time.monotonic() + 2 * lease + 1
    taken: list[str] = []
    while not taken and time.monotonic() < deadline:
        taken = b.reap()
        time.sleep(0.05)
    return taken


def continued_on_a(
    db: Database, tmp_path: Path, lease: float = 0.5
) -> tuple[Runbook, Engine, Run, PhaseRun, PhaseSpec]:
    """Replica A (a lease of `lease` s) started a run and Continue claimed phase two on it;
    the phase's thread never ran."""
    runbook = small_runbook(tmp_path, two_acts=True)
    a = Engine(db, runbook, background=False, replica_id="replica-a", lease_seconds=lease)
    run = a.start_run("staging", ALICE)
    a.spawn = lambda *_: None  # type: ignore[method-assign]
    a.decide(open_gate_id(db, run.id or 0) or 0, BOB, "continue")
    _, phase_run, phase = claimed_phase(a, run.id)
    return runbook, a, run, phase_run, phase


def test_a_dead_replicas_phase_is_taken_over_once_its_lease_lapses(
    db: Database, tmp_path: Path
) -> None:
    runbook, a, run, phase_run, phase = continued_on_a(db, tmp_path, lease=1.5)
    begin_first_action(a, run.id, phase_run.id)  # its action begins, then A dies
    a.shutdown()  # nothing renews its lease any more
    b = Engine(db, runbook, background=False, replica_id="replica-b", lease_seconds=1.5)
    taken = lapsed(b, 1.5, holds_first=True)
    assert taken == [f"run #{run.id}: phase two interrupted; gate opened"]
    gate = open_gate_id(db, run.id or 0)
    assert gate is not None and not gate_row(db, gate).checks_passed
    assert "half done" in (gate_row(db, gate).note or "")
    # What the gate says is what the trail holds, and names the action that had begun.
    opened = [e for e in audit.events(db, run.id or 0) if e.kind == "gate.opened"]
    note = json.loads(opened[-1].data)["note"]
    assert note == gate_row(db, gate).note and "during action *act two* (it had begun" in note
    assert not (tmp_path / "two-acted").exists()  # nothing re-ran it: a person decides
    # A comes back to life too late: its result opens nothing and breaks nothing.
    assert a.open_gate(run.id or 0, phase_run.id or 0, phase, True, executor=True) is None
    assert kinds(db, run.id).count("gate.opened") == 2  # phase one's, and the takeover's


def test_a_dead_replicas_phase_that_never_began_is_started_again_not_gated(
    db: Database, tmp_path: Path
) -> None:
    """A died between the Continue's commit (which claimed phase two) and the phase's first
    action: nothing can be half done, so B runs the phase again, and says so."""
    runbook, a, run, phase_run, phase = continued_on_a(db, tmp_path)
    a.shutdown()
    surface = RecordingSurface()
    b = Engine(
        db, runbook, surface=surface, background=False, replica_id="replica-b", lease_seconds=0.5
    )
    assert lapsed(b, 0.5) == [f"run #{run.id}: phase two had not begun; started again"]
    assert (tmp_path / "two-acted").read_text() == "acted\n"  # its action ran once, on B
    with db.session() as s:
        attempts = s.exec(
            select(PhaseRun).where(PhaseRun.run_id == run.id, PhaseRun.phase_id == "two")
        ).all()
    assert [(p.attempt, p.status, p.began_at is not None) for p in attempts] == [
        (1, "retried", False),
        (2, "checked", True),
    ]
    gate = open_gate_id(db, run.id or 0)
    assert gate is not None and gate_row(db, gate).checks_passed
    assert "half done" not in (gate_row(db, gate).note or "")
    # What the channel was told is what the trail holds: who stopped, which phase.
    trail = [e for e in audit.events(db, run.id or 0) if e.kind == "phase.not_begun"]
    assert len(trail) == 1
    data = json.loads(trail[0].data)
    assert data == {"phase": "two", "attempt": 1, "owner": "replica-a"}
    said = [c.args[1] for c in surface.notices("before any") if c.args[0] == run.id]
    assert said == [
        f"{data['owner']} stopped after claiming phase *{phase.name}* of run #{run.id}, before "
        "any of its actions began: starting it again."
    ]
    # A comes back to life too late: its stale claim opens nothing.
    assert a.open_gate(run.id or 0, phase_run.id or 0, phase, True, executor=True) is None


def test_a_phase_claimed_by_a_version_that_does_not_mark_its_beginning_is_never_restarted(
    db: Database, tmp_path: Path
) -> None:
    """A phase claimed before r0012, or by an older replica beside a newer one, has no
    began_at whether its action began or not (`marks_begin` false, the migration's default):
    its take-over asks a person, and an abort rolls back, as before began_at existed."""
    runbook, a, run, phase_run, _ = continued_on_a(db, tmp_path)
    with db.session() as s:  # as an older version wrote it
        row = s.get(PhaseRun, phase_run.id)
        assert row is not None and row.marks_begin and row.began_at is None
        row.marks_begin = False
        s.add(row)
    a.shutdown()
    b = Engine(db, runbook, background=False, replica_id="replica-b", lease_seconds=0.5)
    assert lapsed(b, 0.5) == [f"run #{run.id}: phase two interrupted; gate opened"]
    assert not (tmp_path / "two-acted").exists()  # not re-run
    assert b.abort("staging", BOB, "unsure what ran").outcome == "rolled_back"


# ------------------------------------------------------------ defect 6: starts race


@pytest.mark.postgres
def test_simultaneous_starts_start_one_run_and_tell_the_rest_which(
    pg_db: Database, tmp_path: Path
) -> None:
    engine = Engine(pg_db, small_runbook(tmp_path), background=True)
    barrier = threading.Barrier(11)
    answers: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            run = engine.start_run("staging", ALICE)
            answers.append(f"started #{run.id}")
        except Conflict as exc:
            answers.append(str(exc))

    threads = [threading.Thread(target=start) for _ in range(11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    engine.shutdown()
    started = [a for a in answers if a.startswith("started")]
    assert len(started) == 1 and len(answers) == 11
    run_id = started[0].removeprefix("started #")
    assert all(f"run #{run_id} is already active" in a for a in answers if a not in started)


# ------------------------------------------------------------ defect 7: quorum


def test_runbook_check_refuses_a_quorum_the_starter_makes_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "rb.yml"
    text = (ROOT / "runbooks" / "nostrmaxi.yml").read_text(encoding="utf-8")
    text = text.replace(
        "approvers: [U00000001, U00000002, U00000003]\n    quorum: 2",
        "approvers: [U00000001, U00000002]\n    quorum: 2",
        1,
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RunbookError, match="quorum"):
        load_runbook(path)


def test_the_shipped_prod_environment_can_pass_a_gate() -> None:
    runbook = load_runbook(ROOT / "runbooks" / "nostrmaxi.yml")
    for name, env in runbook.environments.items():
        assert env.listed_voters_per_starter() >= env.quorum, name


def test_start_is_refused_when_group_members_cannot_reach_quorum(
    db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(
        tmp_path,
        approvers=[],
        quorum=2,
        allow_self_approval=False,
        env={"approver_groups": ["S0OPS"], "slack_team": "T1"},
    )
    engine = Engine(db, runbook, background=False)
    alice = Actor("T1:U1", "alice", frozenset({"S0OPS"}), team="T1")
    with pytest.raises(Refused, match="needs 2 approvals but only 1"):
        engine.start_run("staging", alice, group_members=["T1:U1", "T1:U2"])
    with db.session() as s:
        assert s.exec(select(Run)).first() is None
    assert last_event(db).kind == "action.refused"
    run = engine.start_run("staging", alice, group_members=["T1:U1", "T1:U2", "T1:U3"])
    assert run.id is not None


def test_a_refused_start_is_audited(db: Database, tmp_path: Path) -> None:
    engine = Engine(db, small_runbook(tmp_path), background=False)
    with pytest.raises(Refused, match="only approvers"):
        engine.start_run("staging", MALLORY)
    last = last_event(db)
    assert last.kind == "action.refused" and last.actor == MALLORY.id and '"start"' in last.data


# ------------------------------------------------------------ defect 8: cancel


def test_a_run_that_changed_nothing_is_cancelled_without_rollback_steps(
    db: Database, tmp_path: Path
) -> None:
    engine = Engine(db, small_runbook(tmp_path), background=False)  # phase one only checks
    run = engine.start_run("staging", ALICE)
    result = engine.abort("staging", BOB, "posted nowhere")
    assert result.outcome == "cancelled" and "no rollback steps" in result.message
    assert not (tmp_path / "rolled-back").exists()
    row = run_row(db, run.id)
    assert row.status == "cancelled" and row.active_env is None
    assert "run.cancelled" in kinds(db, run.id) and "rollback.started" not in kinds(db, run.id)
    with db.session() as s:
        phases = s.exec(select(PhaseRun).where(PhaseRun.run_id == run.id)).all()
    assert [p.status for p in phases] == ["cancelled"]
    assert engine.start_run("staging", ALICE).id != run.id  # the environment is free


def test_a_run_whose_action_ran_is_rolled_back_not_cancelled(db: Database, tmp_path: Path) -> None:
    engine = Engine(db, small_runbook(tmp_path, act=True), background=False)
    engine.start_run("staging", ALICE)
    assert engine.abort("staging", BOB, "changed my mind").outcome == "rolled_back"
    assert (tmp_path / "rolled-back").exists()


def test_a_claim_retried_after_its_commit_landed_resumes_its_own_phase(
    db: Database, tmp_path: Path
) -> None:
    """The database dropped the connection after the claim's COMMIT landed: the retry finds
    the phase it claimed instead of leaving it 'running' with nobody running it."""
    engine = Engine(db, small_runbook(tmp_path), background=False)
    run = engine.start_run("staging", ALICE)
    held: list[Any] = []
    engine.spawn = lambda fn, *_: held.append(fn)  # type: ignore[method-assign]
    engine.decide(open_gate_id(db, run.id or 0) or 0, BOB, "continue")  # committed, answer lost
    token = held[0].keywords["handoff"].token  # the claim the Continue made
    again = engine._claim_phase(run.id or 0, token)  # noqa: SLF001  the retry
    assert again is not None and again[1].id == claimed_phase(engine, run.id)[1].id
    assert engine._claim_phase(run.id or 0, "token-2") is None  # noqa: SLF001  anyone else: no
    assert kinds(db, run.id).count("phase.started") == 2


def died_in_phase_two(
    db: Database, tmp_path: Path, *, second_began: bool
) -> tuple[Engine, Run, str]:
    """Phase two has two actions; its first ran and its result is recorded; the second's start
    was marked (`second_began`) or not; then the process died. Returns its restart, the run
    and the note of the gate the restart opened (as the gate row holds it)."""
    runbook = small_runbook(tmp_path, two_acts_twice=True)
    a = Engine(db, runbook, background=False, replica_id="replica-a")
    run = a.start_run("staging", ALICE)
    a.spawn = lambda *_: None  # type: ignore[method-assign]
    a.decide(open_gate_id(db, run.id or 0) or 0, BOB, "continue")
    _, phase_run, phase = claimed_phase(a, run.id)
    begin_action(a, run.id, phase_run.id, 0)
    first = StepOutcome(phase.actions[0], "actions", StepResult(Status.PASS, "exit 0"))
    a.record_step(run.id or 0, phase_run.id, first, fenced=True)
    if second_began:
        begin_action(a, run.id, phase_run.id, 1)
    a.shutdown()
    b = Engine(db, runbook, background=False, replica_id="replica-a")  # its restart
    assert b.recover() == [f"run #{run.id}: phase two interrupted; gate opened"]
    gate = open_gate_id(db, run.id or 0)
    assert gate is not None
    note = gate_row(db, gate).note or ""
    opened = [e for e in audit.events(db, run.id or 0) if e.kind == "gate.opened"]
    assert json.loads(opened[-1].data)["note"] == note  # what the gate says, the trail holds
    return b, run, note


def test_an_interrupted_gate_says_the_next_action_did_not_run_when_its_start_was_not_marked(
    db: Database, tmp_path: Path
) -> None:
    _, _, note = died_in_phase_two(db, tmp_path, second_began=False)
    assert note == (
        "the bot stopped while this phase ran, after action *act two* ended (its result is "
        "recorded) and before action *act two again* began (it did not run). Check, then "
        "Retry the phase or Rollback"
    )


def test_an_interrupted_gate_says_which_later_action_had_begun(
    db: Database, tmp_path: Path
) -> None:
    _, _, note = died_in_phase_two(db, tmp_path, second_began=True)
    assert note.startswith(
        "the bot stopped while this phase ran, during action *act two again* (it had begun; "
        "no result was recorded): it may be half done."
    )
