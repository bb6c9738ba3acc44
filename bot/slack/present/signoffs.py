"""The sign-off message of a run (SignoffSurface): posted in the run's thread, redrawn as
people sign off; one per run across replicas (bot.store.message_refs).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.signoffs import refusal_for
from bot.slack.blocks import (
    Block,
    mask_blocks,
)
from bot.slack.signoff import signoff_message

if TYPE_CHECKING:
    pass

from bot.slack.present.base import SurfaceContext
from bot.slack.present.runs import RunMessages
from bot.slack.transport import split_ref

log = logging.getLogger(__name__)


class SignoffMessages:
    """The run's sign-off message."""

    def __init__(self, ctx: SurfaceContext, runs: RunMessages) -> None:
        self.ctx = ctx
        self.runs = runs  # the run's parent message, which the sign-off is a reply to

    def signoff_changed(self, run_id: int) -> None:
        """Posts the run's sign-off message in its thread, or redraws the one it has."""
        ref = self._signoff_ref(run_id)
        if ref:
            self._edit_signoff(ref, run_id)
            return
        view = self.ctx.reads.run_view(run_id)
        if view is None or (  # rolled back: none new; completed: the cutover's own, if asked
            refusal_for(str(view.status), run_id)
            and self.ctx.reads.run_signoff_state(run_id) is None
        ):
            return
        channel = split_ref(view.surface_ref)[0] if view.surface_ref else view.channel
        self.ctx.pacing.posting(run_id, channel, lambda: self._post_signoff(run_id))

    def _signoff_ref(self, run_id: int) -> str | None:
        """The run's sign-off message ("CHANNEL:TS"), as the database has it: posted by this
        process or another, before a restart or after."""
        return self.ctx.refs.signoff(run_id)

    def adopt_signoff(self, run_id: int, channel: str, ts: str) -> None:
        """A sign-off click came from this message: it is the run's sign-off message, unless
        the database already names one (a message posted before its ref was kept)."""
        self.ctx.refs.own_signoff(run_id, f"{channel}:{ts}")

    def _post_signoff(self, run_id: int) -> None:
        """Caller holds the run's lock (of this process: another replica may post at the same
        time; the database keeps the first ref and the other copy is deleted)."""
        ref = self._signoff_ref(run_id)
        if ref:  # posted meanwhile
            self._edit_signoff(ref, run_id)
            return
        view = self.ctx.reads.signoff_view(run_id)
        if view is None:
            return
        parent = self.ctx.reads.run_view(run_id)
        ref = parent.surface_ref if parent else None
        ref = ref or self.runs.sync_run(run_id)
        channel, thread_ts = split_ref(ref) if ref else (parent.channel if parent else None, None)
        if not channel:
            raise RuntimeError(f"no channel to post the sign-off of run #{run_id} in")
        text, blocks = signoff_message(view, self.ctx.mask)
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
        winner = self.ctx.refs.own_signoff(run_id, mine)
        if winner != mine:  # another replica posted first: keep one message
            self.ctx.delete(mine)
            self._edit_signoff(winner, run_id)

    def _edit_signoff(self, ref: str, run_id: int) -> None:
        def draw() -> tuple[str, list[Block]] | None:
            view = self.ctx.reads.signoff_view(run_id)
            return signoff_message(view, self.ctx.mask) if view is not None else None

        self.ctx.outbox.edit(*split_ref(ref), draw, run_id=run_id)
