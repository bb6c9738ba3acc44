"""A run's home channel: "starting…" is posted there before the run exists, so Slack's answer
says whether the bot may post (and thread) there; the run's parent message becomes it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.slack.blocks import (
    channel_ref,
    escape,
    mention,
)
from bot.slack.outbox import (
    SlackCallFailed,
)

if TYPE_CHECKING:
    pass

from bot.slack.present.base import SurfaceContext

log = logging.getLogger(__name__)


class HomeChannel:
    """Claims (and releases) the channel a run is to live in."""

    def __init__(self, ctx: SurfaceContext) -> None:
        self.ctx = ctx

    def claim_home(self, env_name: str, channel: str, requested_by: str) -> str | None:
        """Posts "starting…" in the channel a run of `env_name` is to live in, before the run
        exists: Slack's answer says whether the bot may post there. Returns None, or why not
        (as mrkdwn for the person who typed) when Slack refuses the channel. The run's parent
        message becomes this one."""
        self.ctx.pacer.wait(channel)
        where = channel_ref(channel)
        try:
            resp = self.ctx.transport.call_waiting(
                "chat_postMessage",
                channel=channel,
                text=f"⏳ Starting the cutover of {escape(self.ctx.mask(env_name))} for "
                f"{mention(requested_by)}…",
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            return self._refused_home(exc, where, env_name)
        # Checkpoints are replies in the run message's thread: a channel that takes no thread
        # replies must refuse the start now, not silently lose every checkpoint later.
        parent = f"{resp['channel']}:{resp['ts']}"
        try:
            self.ctx.pacer.wait(resp["channel"])
            self.ctx.transport.call_waiting(
                "chat_postMessage",
                channel=resp["channel"],
                thread_ts=resp["ts"],
                text="Checkpoints of this run follow in this thread.",
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            refusal = self._refused_home(exc, where, env_name)
            if refusal is not None:
                self.ctx.delete(parent)
                return refusal
        old = self.ctx.refs.claim_home(env_name, parent)
        if old:
            self.ctx.delete(old)
        return None

    def _refused_home(self, exc: Exception, where: str, env_name: str) -> str | None:
        """None when Slack is failing rather than refusing (429, 5xx, a connection error,
        `fatal_error`…: the run may start and its messages follow when Slack is back);
        otherwise why no run can live in that channel, with what to do about it."""
        if not isinstance(exc, SlackCallFailed) or exc.transient:
            log.warning("cannot post the starting message: %s", self.ctx.mask(str(exc)))
            return None
        env = escape(env_name)
        advice = HOME_REFUSALS.get(exc.error)
        if advice is None:
            advice = (
                f"Slack refused my message in {{where}} (`{exc.error}`). Fix that, or set the "
                f"`channel` of {{env}} in the runbook to a channel I may post in."
            )
        return advice.format(where=where, env=env) + " No run was started."

    def release_home(self, env_name: str) -> None:
        """The start was refused after all: the "starting…" message goes."""
        ref = self.ctx.refs.take_home(env_name)
        if ref:
            self.ctx.delete(ref)


# Why a run cannot live in a channel, by the error Slack gave (chat.postMessage's error list),
# and what the person can do about it. `{where}`: the channel, `{env}`: the environment.
HOME_REFUSALS = {
    "not_in_channel": (
        "I am not a member of {where}, where runs of {env} are posted: type "
        "`/invite @cutover-bot` in {where}, then start again."
    ),
    "channel_not_found": (
        "I cannot post in {where} (channel_not_found): a DM or a private channel I am not in. "
        "Start from a channel I am in (`/invite @cutover-bot` there), or set the `channel` of "
        "{env} in the runbook."
    ),
    "is_archived": (
        "I cannot post in {where} (is_archived): the channel is archived. Unarchive it, or set "
        "the `channel` of {env} in the runbook to a live channel."
    ),
    "restricted_action": (
        "Slack's workspace settings do not let me post in {where} (restricted_action): ask a "
        "workspace admin to let the app post there, or set the `channel` of {env} in the "
        "runbook to another channel. Inviting me again changes nothing."
    ),
    "restricted_action_read_only_channel": (
        "{where} is read-only for me (restricted_action_read_only_channel): ask a workspace "
        "admin to let the app post there, or set the `channel` of {env} in the runbook to "
        "another channel."
    ),
    "restricted_action_thread_only_channel": (
        "{where} takes thread replies only (restricted_action_thread_only_channel), but a "
        "run's message is a top-level message with its checkpoints in its thread: set the "
        "`channel` of {env} in the runbook to a channel that takes top-level messages."
    ),
    "restricted_action_non_threadable_channel": (
        "{where} takes no thread replies (restricted_action_non_threadable_channel), but every "
        "checkpoint is a reply in the run's thread: set the `channel` of {env} in the runbook "
        "to a channel that allows threads."
    ),
    "restricted_action_thread_locked": (
        "The run's thread in {where} is locked (restricted_action_thread_locked), so no "
        "checkpoint could be posted: ask an admin to unlock threads there, or set the "
        "`channel` of {env} in the runbook to another channel."
    ),
    "message_limit_exceeded": (
        "Slack refuses new messages in this workspace (message_limit_exceeded: a free "
        "workspace past its message limit), so no checkpoint could be posted: upgrade the "
        "workspace or run the cutover at the console (`cutover console`)."
    ),
    "team_not_found": (
        "Slack could not tell which workspace {where} is in (team_not_found): an org-wide "
        "install needs the channel's id, not its name. Set the `channel` of {env} in the "
        "runbook to the channel's id (C…; in Slack: channel details → About)."
    ),
}
