"""Who may sign a completed cutover off, and which runs take it (pure rules; the engine
applies them when a click or a command arrives: bot/engine/run_signoff.py).

Only the people the environment's `signoff` names (by id, or as a member of a group it
names; identity is team + user, never a name), not the person who started the run when the
environment forbids approving one's own, and only a completed run that is not a dry run.
"""

from __future__ import annotations

from bot.domain.actor import Actor
from bot.domain.states import RunStatus
from phases.runbook import EnvironmentSpec
from phases.signoff_spec import signers

SELF_RUN_SIGNOFF = (
    "you started this run, and this environment forbids approving your own run: another of "
    "the people named signs it off; nothing was recorded"
)


def named(env: EnvironmentSpec, actor: Actor) -> bool:
    """Named by `signoff.by` (a listed id; a `W…` id names one person across the org), or a
    member of a `signoff.groups` group (the surface resolved `actor.groups`)."""
    spec = env.signoff
    if spec is None:
        return False
    if not actor.in_workspace(env.slack_team) and not actor.id.startswith("console:"):
        org_wide = bool(actor.enterprise) and actor.user.startswith("W")
        if not org_wide:
            return False
    for entry in signers(spec, env.slack_team):
        prefix = entry.partition(":")[0]
        if prefix.startswith("E") and actor.enterprise != prefix:
            continue
        if actor.is_(entry):
            return True
    return bool(actor.groups & set(spec.groups))


def may_sign_off_run(
    env_name: str, env: EnvironmentSpec, actor: Actor, requested_by: str
) -> str | None:
    """Why `actor` may not sign off a run of `env_name` started by `requested_by`, or None."""
    spec = env.signoff
    if spec is None:
        return f"the runbook names nobody to sign off {env_name}: no sign-off is asked"
    if not named(env, actor):
        return (
            f"you are not one of the people named to sign off {env_name} (its signoff); "
            "nothing was recorded"
        )
    if not env.allow_self_approval and actor.is_(requested_by):
        return SELF_RUN_SIGNOFF
    return None


def run_signoff_refusal(run_id: int, status: str, dry_run: bool) -> str | None:
    """A run is signed off once it completed; a dry run changed nothing to sign off."""
    if dry_run:
        return f"run #{run_id} is a dry run: there is no cutover to sign off; nothing was recorded"
    if status == RunStatus.COMPLETED:
        return None
    word = str(status).replace("_", " ")
    if status in (RunStatus.RUNNING, RunStatus.WAITING):
        return (
            f"run #{run_id} is {word}: the cutover is signed off once it has completed; "
            "nothing was recorded"
        )
    return (
        f"run #{run_id} is {word}: there is no completed cutover to sign off; nothing was recorded"
    )
