"""Who may mark a post-cutover task done: its owner (the user it names, or a member of the
user group it names) or an approver of the run's environment. Nobody else; never the bot
(the scheduler reminds and escalates, it never marks a task done)."""

from __future__ import annotations

from bot.domain.actor import SYSTEM, Actor
from bot.domain.approvals import is_approver
from phases.runbook import EnvironmentSpec


def qualified_owner(owner: str | None, env: EnvironmentSpec) -> str | None:
    """A bare user id (U…) with the environment's workspace, as approvers are; a group id
    (S…), a qualified id or console:NAME as written."""
    if owner is None or ":" in owner or owner.startswith("S") or not env.slack_team:
        return owner
    return f"{env.slack_team}:{owner}"


def is_owner(actor: Actor, owner: str | None) -> bool:
    if not owner or actor.id == SYSTEM.id:
        return False
    if owner.startswith("S"):
        return owner in actor.groups
    return actor.is_(owner)


def may_mark_done(
    env_name: str, env: EnvironmentSpec, actor: Actor, owner: str | None, text: str
) -> tuple[str | None, str]:
    """(the refusal or None, "owner" | "approver": why this person may)."""
    if is_owner(actor, owner):
        return None, "owner"
    if actor.id != SYSTEM.id and is_approver(env, actor):
        return None, "approver"
    whose = f"the task's owner ({owner}) or " if owner else ""
    return (
        f"only {whose}an approver of {env_name} may mark {text!r} done; nothing was recorded",
        "",
    )
