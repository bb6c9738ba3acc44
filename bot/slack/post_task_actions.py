"""Post-cutover tasks in Slack (issue 24): when a run completes, a checklist in its thread
with a **Done** button per open task; a done task shows who and when instead, an overdue one
says so and keeps its button. The message is posted once (its ref kept in `message_ref`, so a
restart or another replica edits it instead of posting a copy) and redrawn after each tick.

Button: action_id "post_task:TASK", value "RUN:TASK" (the run is in the value, so a click is
understood whatever message it came from). The click is checked when it arrives: the task's
owner (the user, or a member of the user group it names) or an approver of the run's
environment; a second click, or Slack's retry of the first, records nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.domain.errors import CutoverError
from bot.post_task_view import TasksView
from bot.post_tasks import PostTasks
from bot.slack.blocks import (
    MAX_BLOCKS,
    Block,
    button,
    clip,
    context,
    escape,
    mask_blocks,
    mention,
    parse_number_and_id,
    section,
    when,
)
from bot.slack.groups import GroupsBroken, GroupsUnknown
from bot.surface import Actor
from phases.runbook import RunbookError

if TYPE_CHECKING:
    from bot.slack.deps import Deps
    from bot.slack.present.base import SurfaceContext
    from bot.slack.present.runs import RunMessages

log = logging.getLogger(__name__)

TASK_DONE = re.compile(r"^post_task:[a-z0-9][a-z0-9_-]{0,39}$")


def tasks_key(run_id: int) -> str:
    return f"run:{run_id}:post-tasks"


def _owner(owner: str | None) -> str:
    if owner is None:
        return "the approvers"
    return f"<!subteam^{owner}>" if owner.startswith("S") else mention(owner)


def tasks_message(view: TasksView, mask: Any) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of the run's post-cutover checklist, drawn from `view`."""
    blocks: list[Block] = [
        section(
            f"📝 *Post-cutover tasks* — run #{view.run_id}, {escape(mask(view.environment))}: "
            f"within 24 h of its end, by {when(view.due_at)}. Its owner or an approver marks "
            "each done; open ones are reminded until then, and named to the stakeholders after."
        )
    ]
    for t in view.tasks[: (MAX_BLOCKS - 2) // 2]:
        text = escape(mask(t.text))
        if t.done_by is not None and t.done_at is not None:
            late = " (after the deadline)" if t.overdue else ""
            at = when(datetime.fromisoformat(t.done_at))
            blocks.append(
                section(clip(f"✅ *{text}* — done by {mention(t.done_by)} at {at}{late}", 3000))
            )
            continue
        state = "⚠️ overdue" if t.overdue else "⬜ open"
        blocks.append(section(f"{state}: *{text}* — owner {_owner(t.owner)}"))
        done = button("Done", f"post_task:{t.id}", f"{view.run_id}:{t.id}", style="primary")
        blocks.append({"type": "actions", "block_id": f"post_task:{t.id}", "elements": [done]})
    left = len(view.open)
    blocks.append(context("Every task is done." if not left else f"{left} open."))
    fallback = (
        f"Post-cutover tasks of run #{view.run_id}: {len(view.tasks) - left}/{len(view.tasks)} done"
    )
    return fallback, blocks


class PostTaskMessages:
    """The run's post-cutover checklist, one of SlackSurface's presenters: post it once in
    the run's thread, then redraw it."""

    def __init__(self, ctx: SurfaceContext, runs: RunMessages) -> None:
        self.ctx = ctx
        self.runs = runs  # the run's parent message, which the checklist is a reply to

    def post_tasks_changed(self, run_id: int) -> None:
        posted = self.ctx.refs.rows.posted(tasks_key(run_id))
        if posted is not None:
            self._edit_tasks(posted.ref, run_id)
            return
        parent = self.ctx.reads.run_view(run_id)
        channel = parent.surface_ref.partition(":")[0] if parent and parent.surface_ref else None
        self.ctx.pacing.posting(
            run_id,
            channel or (parent.channel if parent else None),
            lambda: self._post_tasks(run_id),
        )

    def _post_tasks(self, run_id: int) -> None:
        posted = self.ctx.refs.rows.posted(tasks_key(run_id))
        if posted is not None:  # posted meanwhile
            self._edit_tasks(posted.ref, run_id)
            return
        view = self.ctx.reads.tasks_view(run_id)
        if view is None:
            return
        parent = self.ctx.reads.run_view(run_id)
        ref = (parent.surface_ref if parent else None) or self.runs.sync_run(run_id)
        channel, thread_ts = (
            ref.split(":", 1) if ref else (parent.channel if parent else None, None)
        )
        if not channel:
            raise RuntimeError(f"no channel to post the post-cutover tasks of run #{run_id} in")
        text, blocks = tasks_message(view, self.ctx.mask)
        resp = self.ctx.transport.call(
            "chat_postMessage",
            channel=channel,
            text=text,
            blocks=mask_blocks(blocks, self.ctx.mask),
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )
        mine = f"{resp['channel']}:{resp['ts']}"
        winner = self.ctx.refs.rows.remember_post(tasks_key(run_id), mine, run_id=run_id)
        if winner != mine:  # another replica posted first: keep one message
            self.ctx.delete(mine)
            self._edit_tasks(winner, run_id)

    def _edit_tasks(self, ref: str, run_id: int) -> None:

        def draw() -> tuple[str, list[Block]] | None:
            view = self.ctx.reads.tasks_view(run_id)
            return tasks_message(view, self.ctx.mask) if view is not None else None

        channel, ts = ref.split(":", 1)
        self.ctx.outbox.edit(channel, ts, draw, run_id=run_id)


def with_owner_group(deps: Deps, actor: Actor, owner: str | None) -> Actor:
    """The actor, with the owner's user group when they are a member of it (read from Slack's
    group cache; a group that cannot be read now adds nothing: an approver still may)."""
    if not owner or not owner.startswith("S"):
        return actor
    try:
        members = deps.approvers.groups.members(owner, actor.team)
    except (GroupsUnknown, GroupsBroken):
        return actor
    if actor.user in members:
        return Actor(actor.id, actor.name, actor.groups | {owner}, actor.team, actor.enterprise)
    return actor


def done_click(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    """A "Done" button: PostTasks.done checks the clicker (owner or approver), now, and
    counts the task done once."""
    parsed = parse_number_and_id(action.get("value"))
    view = deps.reads.tasks_view(parsed[0]) if parsed else None
    task = view.task(parsed[1]) if parsed and view else None
    if parsed is None or view is None or task is None:
        deps.answer(body, "This message is out of date; nothing was marked done.")
        return
    run_id = parsed[0]
    container = body.get("container")
    if isinstance(container, dict) and container.get("channel_id") and container.get("message_ts"):
        ref = f"{container['channel_id']}:{container['message_ts']}"
        deps.rows.remember_post(tasks_key(run_id), ref, run_id=run_id)
    try:
        actor = with_owner_group(deps, actor, task.owner)
        with contextlib.suppress(GroupsUnknown, GroupsBroken):  # an owner still may
            actor = deps.approvers.with_groups(actor, view.environment)
        result = PostTasks(deps.engine).done(run_id, task.id, actor)
    except (CutoverError, RunbookError) as exc:
        deps.answer(body, "🚫 " + deps.md(str(exc)), run_id=run_id)
        return
    if result.outcome == "ticked":
        text = f"✅ Marked done: {deps.md(result.message)}. The record will show it."
    elif result.outcome == "refused":
        text = "🚫 " + deps.md(result.message)
    else:
        text = deps.md(result.message)
    deps.answer(body, text, run_id=run_id)
