"""The cutover's "Sign off" button (action_id "signoff_run", value "RUN") and the sign-off
groups of a person: the engine checks, when the click arrives, that the clicker is one of the
people the environment's `signoff` names (by id or as a member of a group it names), and
counts one person once (bot/engine/run_signoff.py). Wired in bot/slack/listeners/signoff.py.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.domain.errors import CutoverError
from bot.slack.groups import GroupsUnknown
from bot.slack.signoff import note_from
from bot.surface import Actor
from phases.runbook import RunbookError

if TYPE_CHECKING:
    from bot.slack.deps import Deps

log = logging.getLogger(__name__)


def with_signoff_groups(deps: Deps, actor: Actor, env_name: str) -> Actor:
    """The actor with the environment's sign-off groups they belong to (read from Slack).
    A group that cannot be read counts as not containing them: named ids still work."""
    try:
        env = deps.engine.environment(env_name)
    except RunbookError:
        return actor
    spec = env.signoff
    if spec is None or not spec.groups or not actor.in_workspace(env.slack_team):
        return actor
    team = env.slack_team if (env.slack_team or "").startswith("T") else actor.team
    found = set(actor.groups)
    for group in spec.groups:
        try:
            if actor.user in deps.approvers.groups.members(group, team):
                found.add(group)
        except GroupsUnknown:
            log.warning("sign-off group %s of %s cannot be read now", group, env_name)
    return replace(actor, groups=frozenset(found))


def sign_run(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    """A click of the cutover's "Sign off" button, answered to the clicker only."""
    value = action.get("value")
    run_id = int(value) if isinstance(value, str) and value.isdigit() else None
    view = deps.reads.run_view(run_id) if run_id is not None else None
    if run_id is None or view is None:
        deps.answer(body, "This message is out of date; nothing was signed off.")
        return
    container = body.get("container")
    if isinstance(container, dict):
        channel, ts = container.get("channel_id"), container.get("message_ts")
        if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
            deps.surface.adopt_signoff(run_id, channel, ts)
    actor = with_signoff_groups(deps, actor, view.environment)
    try:
        result = deps.engine.sign_off_run(run_id, actor, note_from(body))
    except (CutoverError, RunbookError) as exc:
        deps.answer(body, "🚫 " + deps.md(str(exc)), run_id=run_id)
        return
    if result.outcome == "ticked":
        text = f"✅ {deps.md(result.message)}. The record shows it."
    elif result.outcome == "refused":
        text = "🚫 " + deps.md(result.message)
        deps.surface.signoff_changed(run_id)  # redrawn as it stands: a stale copy's button goes
    else:
        text = deps.md(result.message)
    deps.answer(body, text, run_id=run_id)
