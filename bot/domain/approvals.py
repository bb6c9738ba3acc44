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
| tick            | an approver                                                         |
| tick checklist  | an approver: a pre-cutover item that gates Start (tick or untick)   |
| start gate      | every pre-cutover item with gates_start done, preflight passing     |
|                 | (bot.schedules; a dry run is not gated)                             |
| schedule        | an approver                                                         |
| view status     | anyone the surface lets in (the workspace)                          |
| view audit      | anyone the surface lets in: the trail holds no secrets (masked)     |
| view output     | anyone the surface lets in: a step's kept output is masked too      |
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bot.domain.actor import Actor
from bot.domain.states import DecisionKind, GateStatus
from phases.runbook import EnvironmentSpec


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


def is_approver(env: EnvironmentSpec, actor: Actor) -> bool:
    """Listed by id (TEAM:USER, ENTERPRISE:USER, console:NAME) or a member of an approver group.

    An actor from another workspace than the environment's `slack_team` is never one.
    """
    if not actor.in_workspace(env.slack_team) and not actor.id.startswith("console:"):
        return False
    if any(actor.is_(entry) for entry in env.approver_set()):
        return True
    return bool(actor.groups & set(env.approver_groups))


def _not_approver(env_name: str) -> str:
    return f"you are not an approver for {env_name}; nothing was changed"


def may_start(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    if not is_approver(env, actor):
        return f"only approvers of {env_name} may start a run there; nothing was started"
    return None


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
    if any(actor.is_(v) for v in gate.votes):
        return "you already approved this gate; it needs another approver"
    return None


def _may_self_approve(env: EnvironmentSpec, actor: Actor, requested_by: str) -> bool:
    return env.allow_self_approval or not actor.is_(requested_by)


def may_tick(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    return None if is_approver(env, actor) else _not_approver(env_name)


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


def may_schedule(env_name: str, env: EnvironmentSpec, actor: Actor) -> str | None:
    if is_approver(env, actor):
        return None
    return f"only approvers of {env_name} may schedule or cancel its cutovers; nothing was changed"
