"""The work of a typed `/cutover` command, after its ack: the person's approver groups read
for the environment the command needs them for, a start's home channel claimed first, the
command run by `commands.handlers.CommandService`, and its reply answered to the person.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.slack import signoff_actions
from bot.slack.blocks import (
    channel_ref,
    fit_lines,
    page_buttons,
)
from bot.slack.deps import Deps
from bot.surface import Actor
from commands.parser import (
    Abort,
    Command,
    Deviation,
    Lock,
    Note,
    Revert,
    SignOff,
    Start,
    StatusCmd,
    TickCmd,
    Unlock,
    Unschedule,
    UntickCmd,
)
from commands.parser import Schedule as ScheduleCmd

log = logging.getLogger(__name__)


def command_env(deps: Deps, cmd: Command) -> str | None:
    """The environment whose approvers a command needs (None: it needs none), so that a
    member of an approver group is one on every command, not only on buttons."""
    if isinstance(cmd, Abort | ScheduleCmd | Lock | Unlock | Revert):
        return cmd.env
    if isinstance(cmd, Unschedule):
        sched = deps.schedule(cmd.schedule_id)
        return sched.environment if sched is not None else None
    if isinstance(cmd, SignOff | Note | Deviation):
        view = deps.reads.run_view(cmd.run_id)
        return view.environment if view is not None else None
    if isinstance(cmd, TickCmd | UntickCmd):
        if cmd.target.isdigit():
            sched = deps.schedule(int(cmd.target))
            return sched.environment if sched is not None else None
        return cmd.target if cmd.target in deps.engine.runbook.environments else None
    return None


def run_command(deps: Deps, cmd: Command, actor: Actor, body: dict[str, Any]) -> None:
    members: list[str] | None = None
    home: str | None = None
    if isinstance(cmd, Start):
        actor, members = deps.approvers.for_start(actor, cmd.env)
        # The environment's channel is the run's home; where it was typed gets a link.
        home = deps.env_channel(cmd.env, resolve=True) or body.get("channel_id")
        if home and deps.approvers.may_start(cmd.env, actor, members):
            refusal = deps.surface.claim_home(cmd.env, home, actor.id)
            if refusal is not None:
                deps.answer(body, refusal)
                return
    else:
        env = command_env(deps, cmd)
        if isinstance(cmd, SignOff) and cmd.criterion is None and env is not None:
            actor = signoff_actions.with_signoff_groups(deps, actor, env)  # the run's
        elif env is not None:
            actor = deps.approvers.with_groups(actor, env)
    reply = deps.commands.execute(
        cmd, actor, channel=home or body.get("channel_id"), group_members=members
    )
    text = deps.md(reply.text)
    if isinstance(cmd, Start) and reply.run_id is None:
        deps.surface.release_home(cmd.env)
    if isinstance(cmd, Start) and reply.run_id is not None:
        view = deps.reads.run_view(reply.run_id)
        if home and home != body.get("channel_id"):
            text += f"\nIts messages are in {channel_ref(home)}."
        if view is not None and view.surface_ref is None:
            text += (
                "\n⚠️ Slack did not take the run's message yet (it was failing, not "
                "refusing the channel); `/cutover status` posts it again. Nothing continues "
                f"without an approval; stop the run with `/cutover abort {cmd.env} --reason …`."
            )
    deps.answer(
        body,
        fit_lines(text.split("\n")),
        ephemeral=reply.ephemeral,
        run_id=reply.run_id,
        blocks=[page_buttons(reply.links)] if reply.links else None,
    )
    if isinstance(cmd, StatusCmd):
        resync(deps, cmd.env)
    if isinstance(cmd, Lock | Unlock):
        deps.homes.poke()  # Home shows the locks


def resync(deps: Deps, env: str | None = None) -> None:
    """Re-posts what an outage left missing in Slack, for the active runs (of one env)."""
    for run_id in deps.reads.active_runs(env):
        try:
            deps.surface.resync(run_id)
        except Exception as exc:
            log.warning("cannot resync run #%s: %s", run_id, deps.engine.masker.mask(str(exc)))
