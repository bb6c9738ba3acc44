"""Property-based test of runs and gates: random clicks, duplicates, retries, timeouts, restarts.

A hypothesis state machine drives the real engine on a real database (an SQLite
file; fewer examples on PostgreSQL) with a three-phase runbook whose steps are
real commands. After every step the invariants are read back from the database:

- a gate is decided at most once (one `gate.decided` audit row per gate, and a
  decided gate has exactly one);
- no phase starts without the gate of the phase before it approved, and no
  attempt n>1 without a Retry of attempt n-1; no phase start is audited twice;
- the requester never approves when the environment forbids it;
- at most one active run per environment; a waiting run has exactly one open gate;
- the audit chain verifies, with gap-free sequence numbers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import col, select

from bot import audit
from bot.domain import states
from bot.domain.errors import CutoverError
from bot.engine import Decision, Engine
from bot.store.db import Database
from bot.store.models import AuditEvent, Gate, PhaseRun, Run, RunStatus, Vote
from bot.surface import Actor
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.require import unavailable
from tests.small_runbook import small_runbook

APPROVERS = [Actor("T1:U1", "alice"), Actor("T1:U2", "bob"), Actor("T1:U3", "carol")]
STRANGERS = [Actor("T1:U9", "alice"), Actor("T2:U1", "alice")]  # a lookalike, another team
EVERYONE = APPROVERS + STRANGERS
DECISIONS = ["continue"] * 4 + ["retry", "rollback"]  # Continue is the common click
ENV = "staging"

actors = st.sampled_from(EVERYONE)
approvers = st.sampled_from(APPROVERS)
decisions = st.sampled_from(DECISIONS)
# -1: the newest gate (mostly); otherwise any gate so far, most of them decided (stale clicks)
gate_picks = st.sampled_from([-1, -1, -1, 0, 1, 2, 3, 5, 8])


def phases(tmp: Path) -> list[dict[str, Any]]:
    def check(step_id: str, argv: list[str], timeout: float = 10) -> dict[str, Any]:
        return {
            "id": step_id,
            "name": step_id,
            "kind": "command",
            "params": {"argv": argv},
            "timeout": timeout,
        }

    return [
        {
            "id": "one",
            "name": "One",
            "estimate_minutes": 1,
            "checkpoint": "one",
            "checks": [check("ok", ["true"])],
        },
        {
            "id": "two",
            "name": "Two",
            "estimate_minutes": 1,
            "checkpoint": "two",
            "manual": [{"id": "browser", "text": "Click around"}],
            "checks": [check("flag", ["test", "!", "-e", str(tmp / "fail")])],
        },
        # a check that times out while the "slow" flag is set: ERROR, the gate fails closed
        {
            "id": "three",
            "name": "Three",
            "estimate_minutes": 1,
            "checkpoint": "three",
            "checks": [check("slow", ["sh", "-c", f"test ! -e {tmp / 'slow'} || sleep 5"], 0.3)],
        },
    ]


def reachable(machine: str, source: str, target: str) -> bool:
    """True if the transition table leads from source to target in zero or more moves."""
    table = states.MACHINES[machine][1]
    frontier, seen = [source], {source}
    while frontier:
        here = frontier.pop()
        if here == target:
            return True
        for t in table:
            if here in t.sources and t.dest not in seen:
                seen.add(t.dest)
                frontier.append(t.dest)
    return False


class Cutover(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.tmp = Path(tempfile.mkdtemp(prefix="cutover-prop-"))
        self.stack.callback(shutil.rmtree, self.tmp, True)
        if self.backend == "sqlite":
            self.url = f"sqlite:///{self.tmp / 'cutover.db'}"
        else:
            self.url = self.stack.enter_context(throwaway_pg_database("cutover_prop"))
        self.db = Database(self.url)
        self.db.create_all()
        self.engine: Engine | None = None
        self.last_click: tuple[int, Actor, str, str] | None = None
        self.restarts = 0
        self.seen: dict[tuple[str, int], str] = {}  # (machine, row id) -> status last seen

    @initialize(quorum=st.sampled_from([1, 1, 2]), self_approval=st.booleans())
    def setup(self, quorum: int, self_approval: bool) -> None:
        self.runbook = small_runbook(
            self.tmp,
            quorum=quorum,
            allow_self_approval=self_approval,
            approvers=[a.id for a in APPROVERS],
            phases=phases(self.tmp),
        )
        self.self_approval = self_approval
        self.engine = Engine(self.db, self.runbook, background=False)

    def teardown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
        self.db.dispose()
        self.stack.close()

    # ------------------------------------------------------------------ helpers

    @property
    def eng(self) -> Engine:
        assert self.engine is not None
        return self.engine

    def gates(self) -> list[Gate]:
        with self.db.session() as s:
            return list(s.exec(select(Gate).order_by(col(Gate.id))))

    def gate(self, gate_id: int) -> Gate:
        with self.db.session() as s:
            gate = s.get(Gate, gate_id)
        assert gate is not None
        return gate

    def pick_gate(self, pick: int) -> Gate | None:
        gates = self.gates()
        if not gates:
            return None
        return gates[-1] if pick < 0 else gates[pick % len(gates)]

    def changes(self) -> Counter[str]:
        with self.db.session() as s:
            kinds = s.exec(select(AuditEvent.kind))
            return Counter(k for k in kinds if k in ("gate.decided", "gate.vote", "manual.ticked"))

    def restart(self) -> None:
        """A new process: fresh pool and engine on the same database; recover() picks up."""
        self.eng.shutdown()
        self.db.dispose()
        self.db = Database(self.url)
        self.db.create_all()
        self.engine = Engine(self.db, self.runbook, background=False)
        self.restarts += 1
        for line in self.eng.recover():
            assert line.startswith("run #"), line

    def click(self, gate: Gate, who: Actor, decision: str) -> Decision:
        assert gate.id is not None
        before = gate.status
        with self.db.session() as s:
            run = s.get(Run, gate.run_id)
        assert run is not None
        result = self.eng.decide(gate.id, who, decision)  # type: ignore[arg-type]
        if who in STRANGERS:  # refused before anything is locked or read, stale or not
            assert result.outcome == "refused" and "not an approver" in result.message
        elif before != "open":
            assert result.outcome == "already_decided", result
        elif decision == "continue" and not self.self_approval and who.id == run.requested_by:
            assert result.outcome == "refused" and "you started this run" in result.message
        elif decision == "retry" and gate.checks_passed:
            # the transition table has no retry of a passed phase, whatever the button says
            assert result.outcome == "refused" and "Retry is only for" in result.message
        elif decision in ("retry", "rollback"):
            assert result.outcome in ("retried", "rolled_back"), result
        self.last_click = (gate.id, who, decision, result.outcome)
        event(f"click: {result.outcome}")
        return result

    # ------------------------------------------------------------------ rules

    @rule(who=approvers)
    def start(self, who: Actor) -> None:
        try:
            run = self.eng.start_run(ENV, who)
        except CutoverError as exc:
            assert "is already active" in str(exc)
            return
        assert run.id is not None

    @rule(pick=gate_picks, who=actors, decision=decisions)
    def click_gate(self, pick: int, who: Actor, decision: str) -> None:
        gate = self.pick_gate(pick)
        if gate is not None:
            self.click(gate, who, decision)

    @rule(who=st.lists(approvers, min_size=1, max_size=4))
    def approve_newest(self, who: list[Actor]) -> None:
        """The path a cutover takes when all goes well: tick what is manual, Continue."""
        for person in who:
            gate = self.pick_gate(-1)
            if gate is None or gate.id is None or gate.status != "open":
                return
            self.eng.tick(gate.id, "browser", person)  # refused where there is no such step
            self.click(gate, person, "continue")

    @precondition(lambda self: self.last_click is not None)
    @rule()
    def slack_retry(self) -> None:
        """The same delivery again (X-Slack-Retry-Num): never a second state change."""
        assert self.last_click is not None
        gate_id, who, decision, first = self.last_click
        if first not in ("approved", "vote_recorded", "retried", "rolled_back"):
            # the first delivery changed nothing, so the retry is judged afresh
            self.click(self.gate(gate_id), who, decision)
            return
        before = self.changes()
        result = self.eng.decide(gate_id, who, decision)  # type: ignore[arg-type]
        assert result.outcome in ("already_decided", "refused"), result
        assert self.changes() == before

    @rule(pick=gate_picks, who=actors)
    def tick(self, pick: int, who: Actor) -> None:
        gate = self.pick_gate(pick)
        if gate is None or gate.id is None:
            return
        result = self.eng.tick(gate.id, "browser", who)
        if who in STRANGERS:
            assert result.outcome == "refused"
        elif gate.status != "open":
            assert result.outcome == "already_decided"

    @rule(which=st.sampled_from(["fail", "slow"]))
    def toggle_fault(self, which: str) -> None:
        flag = self.tmp / which
        if flag.exists():
            flag.unlink()
        else:
            flag.write_text("")

    @rule(who=actors)
    def abort(self, who: Actor) -> None:
        try:
            result = self.eng.abort(ENV, who, "property test abort")
        except CutoverError as exc:
            assert "no active run" in str(exc)
            return
        if who in STRANGERS:
            assert result.outcome == "refused"

    @rule()
    def restart_idle(self) -> None:
        self.restart()

    @rule(who=approvers, decision=decisions, mid_phase=st.booleans())
    def crash_after_decision(self, who: Actor, decision: str, mid_phase: bool) -> None:
        """The process dies right after a decision commits (which claims the next phase;
        optionally after the phase began, i.e. mid-check); the restarted bot must pick up
        without re-running anything that began."""
        gate = self.pick_gate(-1)
        if gate is None:
            return
        self.eng.spawn = lambda *_: None  # type: ignore[method-assign]
        result = self.click(gate, who, decision)
        if mid_phase and result.run_id is not None:
            with self.db.session() as s:
                running = s.exec(
                    select(PhaseRun).where(
                        PhaseRun.run_id == result.run_id, PhaseRun.status == "running"
                    )
                ).first()
            if running is not None and running.id is not None:  # claimed by the decision
                first = self.eng.runbook.phases[running.phase_index].actions[:1]
                if first:  # and its first action begun
                    begin = (running.id, first[0].id)
                    self.eng.services.leases.standing(result.run_id, begin)
        self.restart()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def invariants_hold(self) -> None:
        if self.engine is None:
            return
        with self.db.session() as s:
            events = list(s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))))
            gates = list(s.exec(select(Gate)))
            runs = {r.id: r for r in s.exec(select(Run))}
            votes = list(s.exec(select(Vote)))
            phase_runs = list(s.exec(select(PhaseRun)))
        index_of = {p.id: i for i, p in enumerate(self.runbook.phases)}

        # one decision per gate, and a decided gate has its decision audited
        decided = Counter(json.loads(e.data)["gate"] for e in events if e.kind == "gate.decided")
        assert all(n == 1 for n in decided.values()), decided
        for g in gates:
            assert (g.status != "open") == (decided[g.id] == 1), (g, decided[g.id])

        # no phase starts without the gate before it approved; no start audited twice
        approved: set[tuple[int | None, int]] = set()
        retried: Counter[tuple[int | None, int]] = Counter()
        started: set[tuple[int | None, int, int]] = set()
        for e in events:
            data = json.loads(e.data)
            if e.kind == "gate.decided" and data["decision"] == "continue":
                approved.add((e.run_id, index_of[data["phase"]]))
            elif (e.kind == "gate.decided" and data["decision"] == "retry") or (
                e.kind == "phase.not_begun"  # its claim died before any action: again
            ):
                retried[(e.run_id, index_of[data["phase"]])] += 1
            elif e.kind == "phase.started":
                key = (e.run_id, data["index"], data["attempt"])
                assert key not in started, f"phase start audited twice: {key}"
                started.add(key)
                if data["index"] > 0:
                    assert (e.run_id, data["index"] - 1) in approved, key
                assert data["attempt"] <= retried[(e.run_id, data["index"])] + 1, key
        assert started == {(p.run_id, p.phase_index, p.attempt) for p in phase_runs}

        # an open gate holds fewer votes than its quorum (so one of quorum 1 holds none: the
        # decision does not read them, bot/engine/manual_ticks.py's gate_facts)
        per_gate = Counter(v.gate_id for v in votes)
        for g in gates:
            if g.status == "open":
                assert per_gate[g.id] < g.quorum, (g, per_gate[g.id])

        # no self-approval where forbidden
        if not self.self_approval:
            gate_run = {g.id: g.run_id for g in gates}
            for v in votes:
                assert v.actor != runs[gate_run[v.gate_id]].requested_by, v

        # one active run per environment; a waiting run has exactly one open gate
        active = [r for r in runs.values() if r.active_env is not None]
        assert len(active) <= 1
        for r in runs.values():
            assert (r.active_env is not None) == RunStatus(r.status).active, r
            open_gates = [g for g in gates if g.run_id == r.id and g.status == "open"]
            assert len(open_gates) == (1 if r.status == RunStatus.WAITING else 0), (r, open_gates)

        # every status change since the last step follows the transition table
        for machine, rows in (("run", runs.values()), ("phase", phase_runs), ("gate", gates)):
            for row in rows:
                assert row.id is not None
                now_status, key = str(row.status), (machine, row.id)
                before = self.seen.get(key)
                assert before is None or reachable(machine, before, now_status), (
                    machine,
                    row.id,
                    before,
                    now_status,
                )
                self.seen[key] = now_status

        for r in runs.values():
            event(f"run reached phase {r.phase_index + 1}, {r.status}")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert audit.verify(self.db) == []


class CutoverOnPostgres(Cutover):
    backend = "postgres"


# The examples are split into shards, each its own test: pytest-xdist runs them on different
# workers at once (one test of 60 examples was the suite's longest by far). Each shard draws
# its own random examples; the totals are unchanged: 60 on SQLite, 10 on PostgreSQL.
SQLITE_SHARDS, POSTGRES_SHARDS = 4, 5
SQLITE_SETTINGS = settings(
    max_examples=60 // SQLITE_SHARDS,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
POSTGRES_SETTINGS = settings(
    max_examples=10 // POSTGRES_SHARDS,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("shard", range(SQLITE_SHARDS))
def test_cutover_state_machine_on_sqlite(shard: int) -> None:
    run_state_machine_as_test(Cutover, settings=SQLITE_SETTINGS)


@pytest.mark.postgres
@pytest.mark.parametrize("shard", range(POSTGRES_SHARDS))
def test_cutover_state_machine_on_postgres(shard: int) -> None:
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
    run_state_machine_as_test(CutoverOnPostgres, settings=POSTGRES_SETTINGS)
