"""`/cutover`: parsed and acknowledged at once (a usage error or `help` is the ack's own
answer); then a form is opened (abort or revert without --reason, `schedule` alone,
`start --emergency` without --reason: bot.slack.listeners.run_forms) or the command is
worked on after the ack (bot.slack.listeners.command_work).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.slack.approvers import CHANNEL_ID
from bot.slack.blocks import escape
from bot.slack.deps import Deps
from bot.slack.listeners.command_work import run_command
from bot.slack.listeners.run_forms import (
    open_abort,
    open_emergency,
    open_revert_command,
    open_schedule,
)
from bot.slack.middleware import NO_IDENTITY
from bot.slack.payloads import typed_text
from bot.surface import Actor
from commands.parser import (
    USAGE,
    Abort,
    EmergencyForm,
    Help,
    Revert,
    ScheduleForm,
    UsageError,
    parse,
)
from commands.parser import Schedule as ScheduleCmd

log = logging.getLogger(__name__)


def stakeholders_channel(value: str, body: dict[str, Any], env_channel: str | None) -> str:
    """The stakeholder channel of `/cutover schedule … --stakeholders X` as a channel id.

    The parser already turned Slack's link `<#C0123|general>` into its id. A bare name
    (`#general`: the manifest does not ask Slack to escape channels) is only known for the
    channel the command was typed in and the environment's own channel; any other name
    would need a channel listing before the 3 s answer, so the person is told what to type.
    """
    if CHANNEL_ID.fullmatch(value):
        return value
    name = value.removeprefix("#").lower()
    here, here_id = body.get("channel_name"), body.get("channel_id")
    if isinstance(here, str) and isinstance(here_id, str) and name == here.lower():
        return here_id
    if env_channel and name == env_channel.removeprefix("#").lower():
        return env_channel
    raise UsageError(
        f"I cannot tell which channel #{name} is: by name I only know this channel and the "
        f"environment's own. Give its id instead, e.g. --stakeholders C0123ABCD (open "
        f"#{name}, click its name: the Channel ID is at the bottom), and invite me there "
        "with /invite @cutover-bot"
    )


def register(app: App, deps: Deps) -> None:
    @app.command("/cutover")
    def on_command(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        try:
            cmd = parse(typed_text(body.get("text")), now=deps.engine.now())
            if isinstance(cmd, ScheduleCmd) and cmd.stakeholders:
                cmd = replace(
                    cmd,
                    stakeholders=stakeholders_channel(
                        cmd.stakeholders, body, deps.env_channel(cmd.env)
                    ),
                )
        except UsageError as exc:
            ack(text=escape(str(exc)), response_type="ephemeral")
            return
        if isinstance(cmd, Help):
            ack(text=USAGE, response_type="ephemeral")
            return
        actor = context.get("actor")
        if not isinstance(actor, Actor):
            ack(text=NO_IDENTITY, response_type="ephemeral")
            return
        ack()
        if isinstance(cmd, Abort) and cmd.reason is None:
            deps.dispatch.form(context, open_abort, deps, cmd, actor, body)
        elif isinstance(cmd, ScheduleForm):
            deps.dispatch.form(context, open_schedule, deps, cmd, actor, body)
        elif isinstance(cmd, Revert) and cmd.reason is None:
            deps.dispatch.form(context, open_revert_command, deps, cmd, actor, body)
        elif isinstance(cmd, EmergencyForm):
            deps.dispatch.form(context, open_emergency, deps, cmd, actor, body)
        else:
            deps.dispatch.submit(context, run_command, deps, cmd, actor, body)
