"""Messages of a scheduled cutover (SchedulingSurface): the T-24h / T-1h notices, the T-1h
checklist and its redraws, and the T-0 reminder with its Start button.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.checklists import Checklists, Scope
from bot.domain.states import ScheduleStatus
from bot.notices import ItemState, cutover_label, t0_text
from bot.slack.blocks import (
    MAX_BLOCKS,
    Block,
    Notice,
    checklist_blocks,
    checklist_message,
    checklist_notice,
    checklist_redraw_short,
    mask_blocks,
    mention,
    reminder_message,
    scheduled_notice,
    short_checklist_notice,
    short_notice,
    slackify,
    when,
)
from bot.slack.outbox import (
    Refused,
)
from bot.views import ScheduleView
from phases.runbook import RunbookError

if TYPE_CHECKING:
    pass

from bot.slack.present.base import SurfaceContext
from bot.slack.transport import split_ref

log = logging.getLogger(__name__)


class ScheduleMessages:
    """Notices, checklists and reminders of scheduled cutovers."""

    def __init__(self, ctx: SurfaceContext) -> None:
        self.ctx = ctx

    def scheduled_notice(self, schedule_id: int, kind: str, channel: str | None, text: str) -> None:
        """A T-24h / T-1h notice as a new message in `channel`, within a checkpoint's budget,
        the lines it had no room for in its thread; raises if it was not posted (the
        scheduler retries it and audits notice.failed). A notice Slack refuses whole is
        posted short, every line in its thread, as a checkpoint falls back to its decision."""
        if not channel:
            raise RuntimeError(f"no channel for the {kind} notice of schedule #{schedule_id}")
        sched = self._schedule(schedule_id)
        label = cutover_label(sched.environment) if sched else f"Scheduled cutover #{schedule_id}"
        if kind == "t-1h-checklist" and sched is not None:
            states = Checklists(self.ctx.engine).states(Scope(sched.environment, schedule_id))
            ref = self._post_notice(
                channel,
                checklist_notice(schedule_id, text, label, states, self.ctx.mask),
                lambda error: short_checklist_notice(
                    schedule_id, text, label, states, error, self.ctx.mask
                ),
            )
            self._remember_checklist(schedule_id, ref, text)
            return
        self._post_notice(
            channel,
            scheduled_notice(kind, text, label, self.ctx.mask),
            lambda error: short_notice(kind, text, label, error, self.ctx.mask),
        )

    def _post_notice(self, channel: str, notice: Notice, short: Callable[[str], Notice]) -> str:
        """Posts `notice` (or, refused, `short(error)`) and then its replies in its thread;
        returns the notice's ref. A reply that fails is audited: the notice stands."""
        try:
            ref = self._post_top_level(channel, notice.fallback, notice.blocks)
        except Refused as exc:
            self.ctx.audit_failure(f"scheduled notice {exc.method}", str(exc), None)
            notice = short(exc.error)
            ref = self._post_top_level(channel, notice.fallback, notice.blocks)
        where, ts = split_ref(ref)
        for fallback, blocks in notice.replies:
            self.ctx.pacer.wait(where)
            try:
                self.ctx.transport.call_waiting(
                    "chat_postMessage",
                    channel=where,
                    thread_ts=ts,
                    text=fallback,
                    blocks=mask_blocks(blocks, self.ctx.mask),
                    unfurl_links=False,
                    unfurl_media=False,
                )
            except Exception as exc:  # the notice is posted: raising would post it again
                self.ctx.audit_failure("scheduled notice reply", str(exc), None)
                break
        return ref

    def _remember_checklist(self, schedule_id: int, ref: str, text: str) -> None:
        """Keeps where the T-1h checklist is, and the notice text it is drawn from
        (MessageRefs.remember_checklist)."""
        self.ctx.refs.remember_checklist(schedule_id, ref, text)

    def checklist_changed(self, schedule_id: int) -> None:
        """Redraws the T-1h checklist message of a scheduled cutover from the database (who
        ticked what, the bot's results), through the channel's outbox; nothing when it was
        never posted (or was posted before its ref was kept)."""
        posted = self.ctx.refs.checklist(schedule_id)
        if posted is None:
            return
        body = posted.body or ""

        def facts() -> tuple[str, list[ItemState], str] | None:
            """The checklist as it stands now: its label, its items, a new iteration."""
            sched = self._schedule(schedule_id)
            if sched is None:
                return None
            states = Checklists(self.ctx.engine).states(Scope(sched.environment, schedule_id))
            return cutover_label(sched.environment), states, f"{time.time_ns():x}"[-8:]

        def draw() -> tuple[str, list[Block]] | None:
            now = facts()
            if now is None:
                return None
            label, states, iteration = now
            return checklist_message(schedule_id, body, label, states, self.ctx.mask, iteration)

        def short() -> tuple[str, list[Block]] | None:
            now = facts()
            if now is None:
                return None
            label, states, iteration = now
            return checklist_redraw_short(schedule_id, label, states, self.ctx.mask, iteration)

        self.ctx.outbox.edit(*split_ref(posted.ref), draw, fallback=short)

    def checklist_redraw(
        self,
        schedule_id: int,
        channel: str,
        ts: str,
        text: str,
        blocks: list[Any],
        *,
        redrawn: bool = False,
    ) -> None:
        """The T-1h checklist after a click: redrawn from the database. A message whose ref
        was not kept (posted before it was, or a stray copy) keeps its other blocks as they
        were and gets the items that gate Start drawn again. `redrawn`: a tick or untick of
        this click already asked for the kept message's redraw."""
        posted = self.ctx.refs.checklist(schedule_id)
        if posted is not None and posted.ref == f"{channel}:{ts}":
            if not redrawn:  # nothing changed (a refused click): its boxes drawn back
                self.checklist_changed(schedule_id)
            return
        sched = self._schedule(schedule_id)
        if sched is None:
            return
        states = Checklists(self.ctx.engine).states(Scope(sched.environment, schedule_id))
        kept = [
            b
            for b in blocks
            if not (isinstance(b, dict) and str(b.get("block_id", "")).startswith("checklist"))
        ]
        iteration = f"{time.time_ns():x}"[-8:]
        fresh = checklist_blocks(schedule_id, states, self.ctx.mask, iteration=iteration)
        self.ctx.update(channel, ts, text, kept[: MAX_BLOCKS - len(fresh)] + fresh)

    def start_reminder(
        self, schedule_id: int, channel: str | None, text: str, approvers: list[str]
    ) -> None:
        """The T-0 reminder: the approvers (and their user groups) mentioned, a Start button
        whose click `CutoverSlackApp` hands to `ScheduleService.start`."""
        if not channel:
            raise RuntimeError(f"no channel for the start reminder of schedule #{schedule_id}")
        sched = self._schedule(schedule_id)
        env_name = sched.environment if sched else "?"
        groups = self._approver_groups(env_name)
        fallback, blocks = reminder_message(
            schedule_id,
            env_name,
            cutover_label(env_name),
            text,
            approvers,
            groups,
            mask=self.ctx.mask,
        )
        self._post_top_level(channel, fallback, blocks)

    def _post_top_level(self, channel: str, fallback: str, blocks: list[Any]) -> str:
        """A new message outside any run's thread (no run exists yet); returns its ref."""
        self.ctx.pacer.wait(channel)
        resp = self.ctx.transport.call_waiting(
            "chat_postMessage",
            channel=channel,
            text=fallback,
            blocks=mask_blocks(blocks, self.ctx.mask),
            unfurl_links=False,
            unfurl_media=False,
        )
        return f"{resp['channel']}:{resp['ts']}"

    def reminder_done(self, schedule_id: int, channel: str, ts: str) -> bool:
        """Redraws a T-0 reminder whose cutover started (who, when, which run) or was
        cancelled, without the Start button. False while it is still only scheduled."""
        sched = self._schedule(schedule_id)
        if sched is None or sched.status == ScheduleStatus.SCHEDULED:
            return False
        run = self.ctx.reads.run_view(sched.run_id) if sched.run_id is not None else None
        if run is not None:
            done = (
                f"▶️ *Started* by {mention(run.requested_by)} at {when(run.started_at)} "
                f"as run #{run.id}; follow it in its thread."
            )
        elif sched.status == ScheduleStatus.CANCELLED:
            done = f"🚫 *Cancelled* by {mention(sched.cancelled_by)}; nothing was started."
        else:
            done = f"This scheduled cutover is {slackify(str(sched.status))}."
        try:  # the reminder's first line: what was scheduled for when
            env = self.ctx.engine.environment(sched.environment)
            text = t0_text(sched.id, sched.environment, sched.start_at, env).split("\n")[0]
        except RunbookError:  # the environment left the runbook meanwhile
            text = f"Scheduled cutover #{sched.id} of {sched.environment}"
        fallback, blocks = reminder_message(
            sched.id,
            sched.environment,
            cutover_label(sched.environment),
            text,
            (),
            done=done,
            mask=self.ctx.mask,
        )
        self.ctx.transport.call_waiting(
            "chat_update",
            channel=channel,
            ts=ts,
            text=fallback,
            blocks=mask_blocks(blocks, self.ctx.mask),
        )
        return True

    def _schedule(self, schedule_id: int) -> ScheduleView | None:
        return self.ctx.reads.schedule_view(schedule_id)

    def _approver_groups(self, env_name: str) -> list[str]:
        try:
            return list(self.ctx.engine.environment(env_name).approver_groups)
        except RunbookError:
            return []
