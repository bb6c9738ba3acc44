"""Who may do what: every authorization rule of the bot, as pure functions.

Each `may_*` returns None when the actor may, or the refusal to show them (and to audit as
`action.refused`). Every surface and the scheduler go through the engine, and the engine asks
only these functions, at the moment the request arrives: permission is never cached in a
message or a button.

| action          | who                                                                 |
|-----------------|---------------------------------------------------------------------|
| start           | an approver of the environment, and only if quorum stays reachable  |
| continue (vote) | an approver; not the requester when self-approval is off; one vote  |
|                 | per person; checks passed (or dry run); every manual step ticked    |
| retry           | an approver, on a gate whose checks failed or whose phase was       |
|                 | interrupted (the state machine refuses it on a passed gate)         |
| rollback, abort | any approver, from any state of an active run (one is final)        |
| revert          | an approver, within the runbook's revert window after the           |
|                 | environment's last real run completed, and only while no later run  |
|                 | of it has started; the request is the requester's vote unless       |
|                 | self-approval is off; the steps run once quorum approvers voted     |
| tick            | an approver                                                         |
| tick checklist  | an approver: a pre-cutover item that gates Start (tick or untick)   |
| start gate      | every pre-cutover item with gates_start done, preflight passing     |
|                 | (bot.schedules; a dry run is not gated); with self-approval off, an |
|                 | item ticked only by the starter does not count for their start      |
| sign off        | an approver; not the requester when self-approval is off; only      |
|                 | while the run goes on (running or waiting)                          |
| schedule        | an approver                                                         |
| view status     | anyone the surface lets in (the workspace)                          |
| see on Home     | an approver of the environment, or one of its workspace in the      |
|                 | channel its run or schedule posts in                                |
| view audit      | anyone the surface lets in: the trail holds no secrets (masked)     |
| view output     | anyone the surface lets in: a step's kept output is masked too      |
| lock, unlock    | an approver of the environment; a lock refuses every start there    |
| start in freeze | refused; `--emergency --reason` is a break-glass: override approvers,|
|                 | each with a justification, at the override quorum                   |
| override (vote) | break-glass: an override approver (default: the approvers); not the |
|                 | requester when self-approval is off; one vote per person, each with |
|                 | a justification; only past failed steps that are all overridable    |
|                 | (never `critical: hard`), every step ran, every manual step ticked; |
|                 | decided at the override quorum (default gate quorum + 1, at least 2:|
|                 | never whoever asks alone)                                           |
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.actor import Actor
from bot.domain.states import DecisionKind, GateStatus, RunStatus
from phases.checks.base import Status
from phases.runbook import EnvironmentSpec, PhaseSpec, Runbook


@dataclass(frozen=True)
class GateFacts:
    """What the rules need to know of a gate when a click arrives."""

    environment: str
    status: GateStatus
    checks_passed: bool
    dry_run: bool
    requested_by: str
    votes: tuple[str, ...]
    unticked: tuple[str, ...]
    quorum: int
    # checks of ticked manual steps that have no result yet (bot/engine/tick_checks.py)
    checking: tuple[str, ...] = ()
    # checks bound to a tick whose process died, each "CHECK was interrupted by … at …"
    interrupted: tuple[str, ...] = ()


def is_approver(env: EnvironmentSpec, actor: Actor) -> bool:
    """Listed by id (TEAM:USER, ENTERPRISE:USER, console:NAME) or a member of an approver group.

    An actor from another workspace than the environment's `slack_team` is never one, except
    an Enterprise Grid user listed by their org-wide `W…` id (`_org_wide_listed`).
    """
    if is_listed(env, actor):
        return True
    if not actor.in_workspace(env.slack_team) and not actor.id.startswith("console:"):
        return False
    return bool(actor.groups & set(env.approver_groups))


def is_listed(env: EnvironmentSpec, actor: Actor) -> bool:
    """An approver by id alone, whatever their groups: what a surface asks before it looks
    up the approver groups (none is needed for such a person)."""
    if _org_wide_listed(env, actor):
        return True
    if not actor.in_workspace(env.slack_team) and not actor.id.startswith("console:"):
        return False
    return any(_listed_as(entry, actor) for entry in env.approver_set())


def _listed_as(entry: str, actor: Actor) -> bool:
    """`actor.is_(entry)`, except that an entry naming an enterprise (`E…:W…`) is a user of
    that enterprise only: the payload must say so. (`Actor.is_` alone matches a `W…` id
    wherever it comes from, which is right for refusing self-approval, not for granting.)"""
    prefix = entry.partition(":")[0]
    if prefix.startswith("E") and actor.enterprise != prefix:
        return False
    return actor.is_(entry)


def _org_wide_listed(env: EnvironmentSpec, actor: Actor) -> bool:
    """A `W…` id is one person in every workspace of their Enterprise Grid org (and Slack never
    gives the same `W…` id to two people), so an approver listed as `W…` with `slack_team: T…`
    (or `T…:W…`) is an approver whichever workspace of the org they act from, when Slack's
    payload says it came from an org (an enterprise id). Written with an enterprise (`E…:W…`,
    or `slack_team: E…`), only that enterprise counts. A `U…` id is one workspace's user, and
    a payload without an enterprise id proves nothing: both fail closed here."""
    if not actor.enterprise or not actor.user.startswith("W"):
        return False
    if env.slack_team and env.slack_team.startswith("E") and env.slack_team != actor.enterprise:
        return False
    for entry in env.approver_set():
        prefix, _, user = entry.partition(":")
        if user != actor.user:
            continue
        if prefix.startswith("T") or prefix == actor.enterprise:
            return True
    return False


@dataclass(frozen=True)
class FailedStep:
    """A step whose FAIL or ERROR blocks a gate, and whether the runbook lets an override
    pass over it."""

    ref: str  # "actions/migrate", "checks/health"
    overridable: bool
    hard: bool  # critical: hard


@dataclass(frozen=True)
class OverrideFacts:
    """What the break-glass rules need to know of a gate when an override vote arrives."""

    gate: GateFacts
    failed: tuple[FailedStep, ...]
    not_run: tuple[str, ...]  # steps of the phase that never ran (an action failed first)
    votes: tuple[str, ...]  # override votes so far
    quorum: int  # the override quorum


def failed_steps(
    runbook: Runbook, phase: PhaseSpec, results: list[tuple[str, str, str]]
) -> tuple[tuple[FailedStep, ...], tuple[str, ...]]:
    """(the steps whose FAIL/ERROR blocks the gate, the steps that never ran) of a phase
    attempt, from its step results (section, step id, status)."""
    specs = {("actions", s.id): s for s in phase.actions}
    specs.update({("checks", s.id): s for s in phase.checks})
    ran = {(sec, sid) for sec, sid, _ in results}
    not_run = tuple(f"{sec}/{sid}" for sec, sid in specs if (sec, sid) not in ran)
    specs.update({("checks", s.id): s for s in phase.tick_checks})  # run once ticked
    failed = []
    for sec, sid, status in results:
        spec = specs.get((sec, sid))
        if spec is None or not Status(status).blocks_gate:
            continue
        failed.append(
            FailedStep(f"{sec}/{sid}", runbook.step_overridable(spec), spec.critical == "hard")
        )
    return tuple(failed), not_run


def is_override_approver(env: EnvironmentSpec, actor: Actor) -> bool:
    """Listed in `override_approvers` (or a member of an override group); with neither set,
    an approver of the environment. The same identity rules as `is_approver`."""
    scoped = env.model_copy(
        update={
            "approvers": sorted(env.override_approver_set()),
            "approver_groups": env.override_groups(),
        }
    )
    return is_approver(scoped, actor)


def may_override(env: EnvironmentSpec, actor: Actor, facts: OverrideFacts) -> str | None:
    """One break-glass vote: continue past failed steps with a justification. Refused where
    the runbook does not allow it (a hard step, a step not marked overridable) or where
    steps never ran: an override passes over a result someone has read, never over an
    action that did not happen."""
    gate = facts.gate
    if not is_override_approver(env, actor):
        return f"you may not override checks in {gate.environment}; nothing was changed"
    if gate.checks_passed:
        return "this phase passed its checks: nothing to override. Continue or Rollback"
    if not _may_self_approve(env, actor, gate.requested_by):
        return "you started this run, and this environment forbids approving your own run"
    hard = [f.ref for f in facts.failed if f.hard]
    if hard:
        return (
            f"{', '.join(hard)} is critical: hard: no override may pass over it. "
            "Retry the phase or Rollback"
        )
    closed = [f.ref for f in facts.failed if not f.overridable]
    if closed:
        return (
            f"the runbook does not allow overriding {', '.join(closed)} (overridable is not "
            "set). Retry the phase or Rollback"
        )
    if facts.not_run or not facts.failed:
        missing = ", ".join(facts.not_run) or "its steps"
        return (
            f"{missing} never ran (the phase stopped early or was interrupted): an override "
            "passes over a failed result, never over a step that did not run. Retry or Rollback"
        )
    if gate.unticked:
        return "tick every manual step first: " + ", ".join(gate.unticked)
    if gate.interrupted:
        return "; ".join(gate.interrupted)
    if gate.checking:
        return _still_checking(gate.checking)
    if any(actor.is_(v) for v in facts.votes):
        return "you already voted to override this gate; it needs another override approver"
    return None


def may_open_override_form(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    """The Override… form opens before groups are known (the 3 s trigger), as
    `may_open_form`: only who cannot be an override approver whatever their groups is
    refused here; the submission is checked in full."""
    if is_override_approver(env, actor):
        return None
    maybe_in_group = env.override_groups() and (
        actor.in_workspace(env.slack_team) or actor.id.startswith("console:")
    )
    if maybe_in_group:
        return None
    return f"you may not override checks in {env_name}; nothing was changed"


def _not_approver(env_name: str) -> str:
    return f"you are not an approver for {env_name}; nothing was changed"


def may_start(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    if not is_approver(env, actor):
        return f"only approvers of {env_name} may start a run there; nothing was started"
    return None


def start_refusal(
    env_name: str, env: EnvironmentSpec, actor: Actor, group_members: Collection[str] | None
) -> str | None:
    """Why `actor` may not start a run of `env_name` now: not an approver, or its gates
    could never reach quorum (`quorum_shortfall`); None: they may."""
    return may_start(env_name, env, actor) or quorum_shortfall(env, actor, group_members)


def quorum_shortfall(
    env: EnvironmentSpec, starter: Actor, group_members: Collection[str] | None = None
) -> str | None:
    """Why the gates of a run started by `starter` could never reach quorum, or None.

    `group_members` are the qualified ids of the approver groups' members, when the surface
    could list them (None: groups cannot be counted, so only listed approvers count and a
    shortfall is not claimed while groups exist).
    """
    eligible = set(env.approver_set()) | set(group_members or ())
    if not env.allow_self_approval:
        eligible = {e for e in eligible if not starter.is_(e)}
    if len(eligible) >= env.quorum:
        return None
    if env.approver_groups and group_members is None:
        return None
    who = "other approvers" if not env.allow_self_approval else "approvers"
    return (
        f"each gate needs {env.quorum} approvals but only {len(eligible)} {who} could give "
        f"them{' (you may not approve your own run)' if not env.allow_self_approval else ''}; "
        "add approvers or lower quorum in the runbook. Nothing was started"
    )


def may_decide(
    env: EnvironmentSpec, actor: Actor, decision: DecisionKind, gate: GateFacts
) -> str | None:
    if not is_approver(env, actor):
        return _not_approver(gate.environment)
    if decision == DecisionKind.RETRY and gate.checks_passed:
        return (
            "this phase passed its checks: Retry is only for a failed or interrupted phase. "
            "Continue or Rollback"
        )
    if decision != DecisionKind.CONTINUE:
        return None
    if not _may_self_approve(env, actor, gate.requested_by):
        return "you started this run, and this environment forbids approving your own run"
    # A dry run changed nothing, so a check that fails because an action was only described
    # may be passed over; a real run fails closed.
    if not gate.checks_passed and not gate.dry_run:
        return (
            "checks did not pass (or the phase was interrupted): Continue is refused. "
            "Retry the phase or Rollback"
        )
    if gate.unticked:
        return "tick every manual step first: " + ", ".join(gate.unticked)
    if gate.interrupted:
        return "; ".join(gate.interrupted)
    if gate.checking:
        return _still_checking(gate.checking)
    if any(actor.is_(v) for v in gate.votes):
        return "you already approved this gate; it needs another approver"
    return None


def _still_checking(checks: tuple[str, ...]) -> str:
    return (
        f"the bot is still checking {', '.join(checks)} after its tick: wait for the result "
        "(the checkpoint shows it), then decide"
    )


def _may_self_approve(env: EnvironmentSpec, actor: Actor, requested_by: str) -> bool:
    return env.allow_self_approval or not actor.is_(requested_by)


def may_tick(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    return None if is_approver(env, actor) else _not_approver(env_name)


SIGNABLE = (RunStatus.RUNNING, RunStatus.WAITING)  # a run going on takes sign-offs
SELF_SIGNOFF = (
    "you started this run, and this environment forbids approving your own run: another "
    "approver signs off; nothing was recorded"
)


def may_sign_off(
    env_name: str, env: EnvironmentSpec, actor: Actor, requested_by: str
) -> str | None:
    """A sign-off vouches for the run as a vote does: an approver, and not the requester when
    self-approval is off. (Which runs take sign-offs at all: `signoff_refusal`.)"""
    if not is_approver(env, actor):
        return _not_approver(env_name)
    if not _may_self_approve(env, actor, requested_by):
        return SELF_SIGNOFF
    return None


def signoff_refusal(run_id: int, status: str) -> str | None:
    """Sign-offs are taken while the run goes on; an ended run takes none (its record is
    written), and a run rolling back, rolled back or cancelled has nothing to vouch for."""
    if status in SIGNABLE:
        return None
    word = str(status).replace("_", " ")
    if status == RunStatus.COMPLETED:
        return (
            f"run #{run_id} has ended ({word}): sign-offs are taken while it runs; nothing "
            "was recorded"
        )
    return f"run #{run_id} is {word}: there is nothing to sign off; nothing was recorded"


def start_tick_counts(env: EnvironmentSpec, tickers: Collection[str], starter: Actor) -> bool:
    """Whether a pre-cutover item that gates Start, ticked by `tickers` (qualified ids), counts
    for a start by `starter`: the tick is an approver's word that the start may go ahead, so
    with self-approval off someone other than the starter must have given it."""
    return any(_may_self_approve(env, starter, t) for t in tickers)


def self_tick_refusal(actor_id: str) -> str:
    """How an item ticked only by the starter is shown when self-approval is off."""
    return f"ticked only by you ({actor_id}): this environment forbids approving your own run"


def may_see(env: EnvironmentSpec, actor: Actor, in_channel: Callable[[], bool]) -> bool:
    """Whether a person is shown an environment's runs and schedules (Slack's Home tab):
    an approver of it, or someone of its workspace who is in the channel the run (or the
    schedule) posts in. `in_channel` is asked only when it decides (a lookup in Slack)."""
    if is_approver(env, actor):
        return True
    return actor.in_workspace(env.slack_team) and in_channel()


def may_tick_checklist(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    """A pre-cutover item that gates Start is an approver's word that it is done."""
    if is_approver(env, actor):
        return None
    return (
        f"only approvers of {env_name} may tick or untick its pre-cutover items; "
        "nothing was changed"
    )


def may_abort(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    return None if is_approver(env, actor) else _not_approver(env_name)


def may_open_form(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    """Whether a decision form (Rollback…, Continue with comment…, abort) may open before the
    actor's user groups are known. Slack's trigger_id lasts 3 s and a cold group lookup may
    take longer, so no lookup runs before views.open: a listed approver, or someone who may be
    in an approver group, gets the form, and the submission is checked in full (groups
    included) when it arrives. Only who cannot be an approver whatever their groups is refused
    here."""
    if is_approver(env, actor):
        return None
    maybe_in_group = env.approver_groups and (
        actor.in_workspace(env.slack_team) or actor.id.startswith("console:")
    )
    return None if maybe_in_group else _not_approver(env_name)


def may_schedule(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    if is_approver(env, actor):
        return None
    return f"only approvers of {env_name} may schedule or cancel its cutovers; nothing was changed"


def may_lock(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    """A lock stops every start of the environment: an approver's call, as is lifting it."""
    if is_approver(env, actor):
        return None
    return f"only approvers of {env_name} may lock or unlock it; nothing was changed"


@dataclass(frozen=True)
class RevertFacts:
    """What the rules need to know of the environment's runs when a revert is asked for."""

    run_id: int | None  # the environment's last real (not dry) run, or None
    status: str | None
    ended_at: datetime | None
    later_run: int | None  # the first run of the environment started after it, if any
    later_reverts: int | None  # that later run's reverts_run_id (a revert of this run)
    now: datetime
    window_hours: float
    has_steps: bool  # the runbook has restore or rollback steps


def may_revert(env_name: str, env: EnvironmentSpec, actor: Actor, facts: RevertFacts) -> str | None:
    """A revert undoes a completed run (restore, rollback steps) as a new run. Refused to
    a non-approver; when there is nothing to undo; once a later run of the environment has
    started (undoing this one would undo that one's work too, unseen); after the window."""
    if not is_approver(env, actor):
        return f"only approvers of {env_name} may revert its cutover; nothing was started"
    return revert_closed(env_name, facts)


def revert_closed(env_name: str, facts: RevertFacts) -> str | None:
    """Whether a revert of the environment's last run is possible now, whoever asks: the
    completion message's Revert… button is drawn only then, and a click re-checks it."""
    if not facts.has_steps:
        return "the runbook has no restore or rollback steps: there is nothing a revert could run"
    if facts.run_id is None:
        return f"{env_name} has no completed cutover to revert; nothing was started"
    if facts.later_run is not None:
        if facts.later_reverts == facts.run_id:
            return (
                f"run #{facts.later_run} already reverts run #{facts.run_id}; nothing more "
                "was started"
            )
        return (
            f"run #{facts.later_run} of {env_name} started after run #{facts.run_id}: a "
            f"revert of #{facts.run_id} would undo it too, unseen. Nothing was started; "
            f"roll back with a new cutover run"
        )
    if facts.status != RunStatus.COMPLETED:
        word = str(facts.status).replace("_", " ")
        return (
            f"the last run of {env_name}, #{facts.run_id}, did not complete ({word}): there is "
            "no completed cutover to revert; nothing was started"
        )
    window = timedelta(hours=facts.window_hours)
    if facts.ended_at is None or facts.now - facts.ended_at > window:
        ended = facts.ended_at.strftime("%Y-%m-%d %H:%M UTC") if facts.ended_at else "never"
        return (
            f"run #{facts.run_id} completed at {ended}, more than {facts.window_hours:g} h ago "
            "(the runbook's revert_window_hours): revert refused; roll back with a new "
            "cutover run"
        )
    return None


def may_approve_revert(
    env_name: str, env: EnvironmentSpec, actor: Actor, requested_by: str, votes: Collection[str]
) -> str | None:
    """A vote for a revert is a gate vote: an approver, not the requester when self-approval
    is off, one vote per person."""
    if not is_approver(env, actor):
        return _not_approver(env_name)
    if not _may_self_approve(env, actor, requested_by):
        return "you asked for this revert, and this environment forbids approving your own run"
    if any(actor.is_(v) for v in votes):
        return "you already approved this revert; it needs another approver"
    return None
