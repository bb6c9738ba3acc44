"""The rules, table by table, with no database: every `may_*` function of
bot/domain/approvals.py (with GateFacts as a click finds the gate) and every move of every
machine in bot/domain/states.py. Each row reads as the rule it checks; the Grid, sign-off,
Start-tick and Home rules have their own tables in tests/test_approvals_table.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.domain import approvals, states
from bot.domain.actor import Actor
from bot.domain.approvals import GateFacts
from bot.domain.errors import IllegalTransition
from bot.domain.states import DecisionKind, GateStatus
from bot.store.models import Gate, MonitorRound, PhaseRun, Run, Schedule, ScheduledEvent
from phases.runbook import EnvironmentSpec

ALICE = Actor.slack("T1", "U1")  # an approver, and the requester below
BOB = Actor.slack("T1", "U2")  # another approver
CAROL = Actor.slack("T1", "U3")  # a third approver
STRANGER = Actor.slack("T1", "U9")  # same workspace, not listed
ELSEWHERE = Actor.slack("T2", "U1")  # Alice's user id, in another workspace
OPS_MEMBER = Actor.slack("T1", "U7", groups=frozenset({"S0OPS"}))
CONSOLE = Actor("console:ops")
GRID_ALICE = Actor.slack("T2", "W1", enterprise="E1")  # org-wide id, from another workspace


def env(**kw: Any) -> EnvironmentSpec:
    base: dict[str, Any] = {
        "domain": "prod.test",
        "base_url": "https://prod.test",
        "slack_team": "T1",
        "approvers": ["T1:U1", "T1:U2", "T1:U3"],
    }
    return EnvironmentSpec(**{**base, **kw})


NO_SELF = env(allow_self_approval=False)
OPS3 = env(approvers=["T1:U1"], approver_groups=["S0OPS"], quorum=3)
GROUPS = env(approvers=[], approver_groups=["S0OPS"])
GRID = env(approvers=["T1:W1"])
CONSOLE_ENV = env(approvers=["console:ops"], slack_team=None)

# ------------------------------------------------------------------ one-actor permissions

APPROVER_ONLY = [
    approvals.may_start,
    approvals.may_tick,
    approvals.may_tick_checklist,
    approvals.may_abort,
    approvals.may_schedule,
]


@pytest.mark.parametrize("rule", APPROVER_ONLY, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("spec", "actor", "allowed"),
    [
        (env(), ALICE, True),
        (env(), STRANGER, False),
        (env(), ELSEWHERE, False),  # the same U… id in another workspace is someone else
        (GROUPS, OPS_MEMBER, True),  # a member of an approver group
        (GROUPS, STRANGER, False),
        (GRID, GRID_ALICE, True),  # a W… id from another workspace of the org
        (GRID, Actor.slack("T2", "W1"), False),  # … only when the payload names the org
        (CONSOLE_ENV, CONSOLE, True),
        (CONSOLE_ENV, Actor("console:someone"), False),
        (NO_SELF, ALICE, True),  # self-approval concerns votes, not these actions
    ],
)
def test_actions_an_approver_alone_may_take(
    rule: Any, spec: EnvironmentSpec, actor: Actor, allowed: bool
) -> None:
    refusal = rule("prod", spec, actor)
    assert (refusal is None) == allowed, refusal
    if refusal is not None:
        assert "prod" in refusal and "nothing was" in refusal


@pytest.mark.parametrize(
    ("spec", "actor", "allowed"),
    [
        (env(), ALICE, True),
        (env(), STRANGER, False),
        # groups are not known before the form opens (trigger_id lasts 3 s): anyone of the
        # workspace may be in one, so the form opens and the submission is checked in full
        (GROUPS, STRANGER, True),
        (GROUPS, ELSEWHERE, False),  # another workspace cannot be in the groups
        (env(approver_groups=["S0OPS"], slack_team=None), CONSOLE, True),
        (GRID, GRID_ALICE, True),
    ],
)
def test_who_may_open_a_decision_form(spec: EnvironmentSpec, actor: Actor, allowed: bool) -> None:
    assert (approvals.may_open_form("prod", spec, actor) is None) == allowed


# ------------------------------------------------------------------------ quorum at start


def replace_spec(spec: EnvironmentSpec, **kw: Any) -> EnvironmentSpec:
    return EnvironmentSpec(**{**spec.model_dump(), **kw})


@pytest.mark.parametrize(
    ("spec", "members", "short"),
    [
        (env(quorum=3), None, False),  # three approvers, three votes needed
        (env(quorum=2, allow_self_approval=False), None, False),  # Bob and Carol suffice
        # (a quorum the listed approvers alone can never reach is refused when the runbook
        # loads; with approver groups it is decided at start, once the members are known)
        (OPS3, None, False),  # groups that cannot be counted: no shortfall is claimed
        (OPS3, ["T1:U7", "T1:U8"], False),  # Alice, U7 and U8
        (OPS3, ["T1:U7"], True),  # short by one
        (OPS3, ["T1:U1", "T1:U7"], True),  # the starter in a group counts once
        (replace_spec(OPS3, allow_self_approval=False), ["T1:U7", "T1:U8"], True),
    ],
)
def test_a_run_is_not_started_when_its_gates_could_never_reach_quorum(
    spec: EnvironmentSpec, members: list[str] | None, short: bool
) -> None:
    refusal = approvals.quorum_shortfall(spec, ALICE, members)
    assert (refusal is not None) == short, refusal
    if refusal is not None:
        assert f"needs {spec.quorum} approvals" in refusal and "Nothing was started" in refusal


# --------------------------------------------------------------------- a click on a gate

OPEN = GateFacts(
    environment="prod",
    status=GateStatus.OPEN,
    checks_passed=True,
    dry_run=False,
    requested_by=ALICE.id,
    votes=(),
    unticked=(),
    quorum=2,
)
C, R, RE = DecisionKind.CONTINUE, DecisionKind.ROLLBACK, DecisionKind.RETRY
FAILED = replace(OPEN, checks_passed=False)


@pytest.mark.parametrize(
    ("spec", "actor", "decision", "gate", "refused_with"),
    [
        (env(), BOB, C, OPEN, None),
        (env(), STRANGER, C, OPEN, "not an approver for prod"),
        (env(), STRANGER, R, OPEN, "not an approver for prod"),
        (env(), STRANGER, RE, FAILED, "not an approver for prod"),
        # the requester: may approve their own run unless the environment forbids it
        (env(), ALICE, C, OPEN, None),
        (NO_SELF, ALICE, C, OPEN, "forbids approving your own run"),
        (NO_SELF, ALICE, R, OPEN, None),  # anyone may stop it
        (NO_SELF, BOB, C, OPEN, None),
        # the requester's org-wide id, acting from another workspace, is still the requester
        (
            env(approvers=["T1:W1", "T1:U2"], allow_self_approval=False),
            GRID_ALICE,
            C,
            replace(OPEN, requested_by="T1:W1"),
            "forbids approving your own run",
        ),
        # one vote per person; quorum short by one waits for another approver
        (env(), BOB, C, replace(OPEN, votes=(BOB.id,)), "already approved this gate"),
        (env(), CAROL, C, replace(OPEN, votes=(BOB.id,)), None),
        # checks failed: Continue refused on a real run, passed over on a dry run
        (env(), BOB, C, FAILED, "checks did not pass"),
        (env(), BOB, C, replace(FAILED, dry_run=True), None),
        (env(), BOB, R, FAILED, None),
        # Retry only for a failed or interrupted phase
        (env(), BOB, RE, FAILED, None),
        (env(), BOB, RE, OPEN, "Retry is only for a failed or interrupted phase"),
        # every manual step ticked first
        (env(), BOB, C, replace(OPEN, unticked=("browser",)), "tick every manual step first"),
        (env(), BOB, R, replace(OPEN, unticked=("browser",)), None),
        # a group member decides once the surface resolved their groups
        (GROUPS, OPS_MEMBER, C, OPEN, None),
        (GROUPS, replace(OPS_MEMBER, groups=frozenset()), C, OPEN, "not an approver"),
    ],
)
def test_who_may_decide_at_a_gate(
    spec: EnvironmentSpec,
    actor: Actor,
    decision: DecisionKind,
    gate: GateFacts,
    refused_with: str | None,
) -> None:
    refusal = approvals.may_decide(spec, actor, decision, gate)
    if refused_with is None:
        assert refusal is None
    else:
        assert refusal is not None and refused_with in refusal


def test_a_self_ticked_item_says_who_ticked_it_and_why_it_does_not_count() -> None:
    text = approvals.self_tick_refusal(ALICE.id)
    assert ALICE.id in text and "forbids approving your own run" in text


# -------------------------------------------------------------------- every state move
#
# Written out, not read from the table: a move added to or dropped from states.py must be
# added to or dropped from this list too.
MOVES = """
run      running       gate_opened          waiting
run      waiting       approved             running
run      waiting       retried              running
run      waiting       overridden           running
run      running       completed            completed
run      waiting       rolled_back_at_gate  rolling_back
run      running       aborted              rolling_back
run      waiting       aborted              rolling_back
run      running       monitoring_failed    rolling_back
run      rolling_back  rollback_finished    rolled_back
run      running       cancelled            cancelled
run      waiting       cancelled            cancelled
run      revert_pending revert_approved     rolling_back
run      revert_pending cancelled           cancelled
phase    running       checked              checked
phase    running       monitoring           monitoring
phase    monitoring    monitoring_done      checked
phase    running       interrupted          interrupted
phase    running       not_begun            retried
phase    checked       approved             passed
phase    interrupted   approved             passed
phase    checked       overridden           passed
phase    checked       retried              retried
phase    interrupted   retried              retried
phase    running       failed               failed
phase    checked       failed               failed
phase    interrupted   failed               failed
phase    monitoring    failed               failed
phase    running       cancelled            cancelled
phase    checked       cancelled            cancelled
phase    interrupted   cancelled            cancelled
gate     open          approve              approved
gate     open          rollback             rolled_back
gate     open          retry                retried
gate     open          override             overridden
gate     open          cancel               cancelled
schedule scheduled     cancel               cancelled
schedule scheduled     start                started
schedule started       done                 done
event    pending       claim                claimed
event    claimed       claim                claimed
event    claimed       sent                 sent
event    pending       skipped              skipped
event    claimed       skipped              skipped
event    claimed       release              pending
event    claimed       give_up              failed
event    pending       cancel               cancelled
round    running       passed               passed
round    running       failed               failed
round    running       missed               missed
"""
EXPECTED = {tuple(line.split()[:3]): line.split()[3] for line in MOVES.strip().splitlines()}
ROWS: dict[str, Any] = {
    "run": lambda: Run(environment="prod", runbook_name="r", runbook_digest="d", requested_by="x"),
    "phase": lambda: PhaseRun(run_id=1, phase_id="p", phase_index=0),
    "gate": lambda: Gate(run_id=1, phase_run_id=1, phase_id="p", checks_passed=False),
    "schedule": lambda: Schedule(environment="prod", created_by="x"),
    "event": lambda: ScheduledEvent(key="k", kind="t-0"),
    "round": lambda: MonitorRound(run_id=1, phase_run_id=1, round=0),
}
EVERY_PAIR = [
    (machine, status.value, trigger)
    for machine, (enum_cls, table) in states.MACHINES.items()
    for status in enum_cls
    for trigger in dict.fromkeys(t.trigger for t in table)
]


def test_the_table_has_exactly_the_moves_written_here() -> None:
    table = {
        (machine, src, t.trigger): t.dest
        for machine, (_, moves) in states.MACHINES.items()
        for t in moves
        for src in t.sources
    }
    assert table == EXPECTED


@pytest.mark.parametrize(("machine", "status", "trigger"), EVERY_PAIR)
def test_every_trigger_from_every_status_moves_or_is_refused(
    machine: str, status: str, trigger: str
) -> None:
    row = ROWS[machine]()
    row.status = status
    expected = EXPECTED.get((machine, status, trigger))
    assert states.can(row, trigger) == (expected is not None)
    if expected is None:
        with pytest.raises(IllegalTransition, match=f"cannot be {trigger.replace('_', ' ')}"):
            states.transition(row, trigger)
        assert row.status == status  # a refused move leaves the row as it was
    else:
        assert states.transition(row, trigger) == expected
        assert row.status == expected


# What each move writes besides the status (bot.store.unit.Tx.apply): written out, as MOVES.
# machine trigger: sets / clears / audit kind ("-": none).
EFFECTS = """
run   gate_opened      -                    owner,lease_until                -
run   completed        ended_at             active_env,owner,lease_until     run.completed
run   aborted          -                    -                                run.aborted
run   rollback_finished ended_at            active_env,owner,lease_until     -
run   cancelled        ended_at             active_env,owner,lease_until     run.cancelled
phase checked          ended_at             -                                -
phase monitoring_done  ended_at             -                                -
phase failed           ended_at             -                                -
phase interrupted      -                    -                                phase.interrupted
phase not_begun        -                    -                                phase.not_begun
gate  approve          decided_by,decided_at -                               gate.decided
gate  rollback         decided_by,decided_at -                               gate.decided
gate  retry            decided_by,decided_at -                               gate.decided
gate  cancel           decided_by,decided_at -                               gate.decided
gate  override         decided_by,decided_at -                               gate.overridden
schedule cancel        cancelled_by         -                                schedule.cancelled
schedule start         -                    -                                schedule.started
schedule done          -                    -                                schedule.done
"""


def _names(field: str) -> tuple[str, ...]:
    return () if field == "-" else tuple(field.split(","))


def test_the_table_declares_exactly_the_bookkeeping_written_here() -> None:
    declared = {
        (machine, t.trigger): (t.sets, t.clears, t.audit)
        for machine, (_, moves) in states.MACHINES.items()
        for t in moves
        if t.sets or t.clears or t.audit
    }
    expected = {
        (m, trig): (_names(sets), _names(clears), None if kind == "-" else kind)
        for m, trig, sets, clears, kind in (line.split() for line in EFFECTS.strip().splitlines())
    }
    assert declared == expected


@pytest.mark.parametrize(("checks_passed", "allowed"), [(False, True), (True, False)])
def test_a_gate_is_retried_only_when_its_checks_failed(checks_passed: bool, allowed: bool) -> None:
    gate = ROWS["gate"]()
    gate.status, gate.checks_passed = GateStatus.OPEN, checks_passed
    assert states.can(gate, "retry") == allowed
    if not allowed:
        with pytest.raises(IllegalTransition, match="unless its checks failed"):
            states.transition(gate, "retry")
        assert gate.status == GateStatus.OPEN


@pytest.mark.parametrize(
    ("machine", "trigger", "where"),
    [
        ("run", "aborted", ("running", "waiting")),
        ("phase", "failed", ("running", "checked", "interrupted", "monitoring")),
        ("event", "claim", ("pending", "claimed")),
        ("gate", "approve", ("open",)),
    ],
)
def test_a_conditional_update_leaves_only_from_the_sources_of_its_trigger(
    machine: str, trigger: str, where: tuple[str, ...]
) -> None:
    assert states.sources(machine, trigger) == where
    assert states.dest(machine, trigger) == EXPECTED[(machine, where[0], trigger)]


def test_a_trigger_the_machine_does_not_have_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no trigger 'approve'"):
        states.sources("run", "approve")


@pytest.mark.parametrize(("checks_passed", "allowed"), [(False, True), (True, False)])
def test_a_gate_is_overridden_only_when_its_checks_failed(
    checks_passed: bool, allowed: bool
) -> None:
    gate = ROWS["gate"]()
    gate.status, gate.checks_passed = GateStatus.OPEN, checks_passed
    assert states.can(gate, "override") == allowed
    if not allowed:
        with pytest.raises(IllegalTransition, match="never overridden"):
            states.transition(gate, "override")
        assert gate.status == GateStatus.OPEN
