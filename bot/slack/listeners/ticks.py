"""A checkpoint's manual-step boxes: a plain tick is worked on after the ack like any click
(bot.slack.listeners.gate_buttons.tick); a box whose step carries a value opens its form at
once (bot.slack.tick_value_form: the trigger_id lasts 3 s), and the form's submission ticks
it with the value."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.slack.blocks import TICK
from bot.slack.deps import Deps
from bot.slack.listeners.forms import on_submission
from bot.slack.listeners.gate_buttons import tick
from bot.slack.tick_value_form import TICK_VALUE_FORM, TickValueForms, wants_form


def register(app: App, deps: Deps) -> None:
    forms = TickValueForms(deps)  # a tick that carries a value: its form
    plain_tick = deps.dispatch.on_click(tick, deps)
    value_tick = deps.dispatch.on_form_click(forms.open_or_tick)

    @app.action(TICK)
    def on_tick(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext
    ) -> None:  # Bolt passes arguments by name
        listener = value_tick if wants_form(deps.engine.runbook, action) else plain_tick
        listener(ack, body, action, context)

    app.view(TICK_VALUE_FORM)(on_submission(deps, forms.check))
