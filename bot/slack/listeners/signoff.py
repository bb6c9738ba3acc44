"""The sign-off message's "Sign off" buttons: one person's sign-off of a success criterion,
counted once; the engine checks the clicker is an approver of the run's environment.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.domain.errors import CutoverError
from bot.slack import signoff_actions
from bot.slack.blocks import parse_number_and_id
from bot.slack.deps import Deps
from bot.slack.payloads import message_ref
from bot.slack.signoff import RUN_SIGNOFF_ACTION, SIGNOFF_ACTION, note_from
from bot.surface import Actor
from phases.runbook import RunbookError

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    app.action(SIGNOFF_ACTION)(deps.dispatch.on_click(signoff, deps))
    # The cutover's own sign-off, once the run completed (issue 24)
    app.action(RUN_SIGNOFF_ACTION)(deps.dispatch.on_click(signoff_actions.sign_run, deps))


def signoff(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    """A "Sign off" button: the engine checks the clicker is an approver of the run's
    environment, now, and counts one person's sign-off of a criterion once."""
    parsed = parse_number_and_id(action.get("value"))
    view = deps.reads.run_view(parsed[0]) if parsed else None
    if parsed is None or view is None:
        deps.answer(body, "This message is out of date; nothing was signed off.")
        return
    run_id, criterion = parsed
    ref = message_ref(body)
    if ref is not None:
        deps.surface.adopt_signoff(run_id, *ref)
    actor = deps.approvers.with_groups(actor, view.environment)
    try:
        result = deps.engine.sign_off(run_id, criterion, actor, note_from(body))
    except (CutoverError, RunbookError) as exc:
        deps.answer(body, "🚫 " + deps.md(str(exc)), run_id=run_id)
        return
    if result.outcome == "ticked":
        text = f"✅ Signed off: {deps.md(result.message)}. The record will show it."
    elif result.outcome == "refused":
        text = "🚫 " + deps.md(result.message)
        deps.surface.signoff_changed(run_id)  # e.g. rolled back: the buttons go
    else:
        text = deps.md(result.message)
    deps.answer(body, text, run_id=run_id)
