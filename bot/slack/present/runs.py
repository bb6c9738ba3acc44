"""A run's parent message: posted once (the "starting…" message becomes it), then edited in
place through the outbox; posted again if Slack lost it. Thread notices of a run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.slack.blocks import (
    REPLY_TEXT,
    Block,
    clip,
    run_message,
    slackify,
)
from bot.views import RunView

if TYPE_CHECKING:
    pass

from bot.slack.present.base import SurfaceContext
from bot.slack.transport import split_ref

log = logging.getLogger(__name__)


class RunMessages:
    """The run's parent message and its thread notices."""

    def __init__(self, ctx: SurfaceContext) -> None:
        self.ctx = ctx

    def run_changed(self, run_id: int) -> None:
        """Redraws the run's message through the outbox (this thread goes on at once); a
        message not posted yet is posted now, in this thread."""
        self.ctx.changed()
        known = self.ctx.refs.run(run_id)
        if known is not None:
            self._edit_run(known, run_id)
            return
        view = self.ctx.reads.run_view(run_id)
        if view is None:
            return
        if view.surface_ref:
            self._edit_run(self.ctx.refs.learn_run(run_id, view.surface_ref), run_id)
            return
        self.ctx.pacing.posting(run_id, view.channel, lambda: self.sync_run(run_id))

    def _page_url(self, view: RunView) -> str | None:
        """The run page's link for an ended run's message (None: not configured, or live)."""
        if self.ctx.run_links is None or view.ended_at is None:
            return None
        return self.ctx.run_links.for_run(view.id)

    def _revertable(self, view: RunView) -> bool:
        """Whether the completion message carries a Revert… button: a completed real run
        within the runbook's revert window, no later run started (the click checks again)."""
        if view.status != "completed" or view.dry_run:
            return False
        return self.ctx.engine.revert_refusal(view.id) is None

    def _edit_run(self, ref: str, run_id: int) -> None:
        def draw() -> tuple[str, list[Block]] | None:
            view = self.ctx.reads.run_view(run_id)
            if view is None:
                return None
            return run_message(
                view,
                datetime.now(UTC),
                self.ctx.mask,
                self._run_waiting(run_id),
                self._page_url(view),
                self._revertable(view),
            )

        self.ctx.outbox.edit(
            *split_ref(ref), draw, run_id=run_id, on_gone=lambda: self._repost_run(run_id, ref)
        )

    def _repost_run(self, run_id: int, lost: str) -> None:
        """The run's message can no longer be edited (deleted, edit window closed…): post it
        again, buttons and all, and keep the new reference; later checkpoints go in its
        thread."""
        self.ctx.refs.forget_run(run_id, lost)
        self.ctx.engine.set_surface_ref(None, run_id=run_id, replacing=lost)
        self.run_changed(run_id)

    def _run_waiting(self, run_id: int) -> str:
        gate_id = self.ctx.reads.open_gate_id(run_id)
        view = self.ctx.reads.gate_view(gate_id) if gate_id else None
        return self.ctx.waiting_for(view.environment, view.votes) if view else ""

    def sync_run(self, run_id: int) -> str | None:
        """Posts or edits the run's parent message; returns its ref. Caller holds the lock."""
        view = self.ctx.reads.run_view(run_id)
        if view is None:
            return None
        if view.surface_ref is None:
            home = self.ctx.refs.take_home(view.environment)
            if home is not None:  # the "starting…" message becomes the run's message
                winner = self.ctx.refs.learn_run(
                    run_id, self.ctx.engine.set_surface_ref(home, run_id=run_id)
                )
                if winner != home:
                    self.ctx.delete(home)
                self._edit_run(winner, run_id)
                return winner
        text, blocks = run_message(
            view,
            datetime.now(UTC),
            self.ctx.mask,
            self._run_waiting(run_id),
            self._page_url(view),
            self._revertable(view),
        )
        return self.ctx.post_or_update(
            view.surface_ref,
            view.channel,
            text,
            blocks,
            thread_ts=None,
            own=lambda ref: self.ctx.refs.learn_run(
                run_id, self.ctx.engine.set_surface_ref(ref, run_id=run_id)
            ),
        )

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        thread_ts: str | None = None
        known = self.ctx.refs.run(run_id) if run_id is not None else None
        if known is not None:
            channel, thread_ts = split_ref(known)
        elif run_id is not None:
            view = self.ctx.reads.run_view(run_id)
            if view is not None:
                if view.surface_ref:
                    channel, thread_ts = split_ref(
                        self.ctx.refs.learn_run(run_id, view.surface_ref)
                    )
                else:
                    channel = channel or view.channel
        if not channel:
            raise RuntimeError(f"no channel to post a notice of run #{run_id} in")
        self.ctx.pacer.wait(channel)
        self.ctx.transport.call_waiting(
            "chat_postMessage",
            channel=channel,
            text=clip(slackify(self.ctx.mask(text)), REPLY_TEXT),
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )
