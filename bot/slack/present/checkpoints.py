"""A phase's checkpoint: a reply in the run's thread, posted once, edited as votes, ticks and
the decision arrive; posted minimal (the decision alone) when Slack refuses the full one;
a stray copy (a post Slack took twice) loses its buttons.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.slack.blocks import (
    Block,
    gate_details,
    gate_message,
    mask_blocks,
    minimal_gate_message,
    section,
)
from bot.slack.outbox import (
    Refused,
)
from bot.views import GateView

if TYPE_CHECKING:
    pass

from bot.slack.present.base import SurfaceContext
from bot.slack.present.runs import RunMessages
from bot.slack.transport import split_ref

log = logging.getLogger(__name__)


class CheckpointMessages:
    """The checkpoints of a run, and a resync of everything a run has in Slack."""

    def __init__(self, ctx: SurfaceContext, runs: RunMessages) -> None:
        self.ctx = ctx
        self.runs = runs  # the run's parent message, which each checkpoint is a reply to

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        """A gate opened: posted from `opened` (what its transaction wrote) when given."""
        self._show(gate_id, opened)

    def gate_changed(self, gate_id: int) -> None:
        """As run_changed, for a checkpoint."""
        self._show(gate_id, None)

    def _show(self, gate_id: int, opened: GateView | None) -> None:
        """Edits the checkpoint's message if it is known, else posts it (from `opened`, or
        from a read)."""
        self.ctx.changed()
        known = self.ctx.refs.gate(gate_id)
        if known is not None:
            self._edit_gate(known[0], gate_id, known[1])
            return
        first = opened or self.ctx.reads.gate_view(gate_id)
        if first is None:
            return
        if first.surface_ref:
            self.ctx.refs.learn_gate(gate_id, first.run_id, first.surface_ref)
            self._edit_gate(first.surface_ref, gate_id, first.run_id)
            return
        channel = split_ref(first.run_surface_ref)[0] if first.run_surface_ref else first.channel
        details = self.ctx.pacing.posting(
            first.run_id, channel, lambda: self._post_gate(gate_id, first)
        )
        for fallback, reply in details or []:  # no lock held: the decision is up already
            try:
                self.ctx.transport.call_waiting(
                    "chat_postMessage",
                    channel=reply[0],
                    thread_ts=reply[1],
                    text=fallback,
                    blocks=mask_blocks(reply[2], self.ctx.mask),
                    unfurl_links=False,
                    unfurl_media=False,
                )
            except Exception as exc:
                self.ctx.audit_failure("checkpoint details", str(exc), first.run_id)
                break

    def known_gate_ref(self, gate_id: int) -> str | None:
        """The gate's recorded message, if this process has seen it (no read)."""
        known = self.ctx.refs.gate(gate_id)
        return known[0] if known is not None else None

    def _post_gate(
        self, gate_id: int, view: GateView
    ) -> list[tuple[str, tuple[str, str, list[Block]]]]:
        """Posts the checkpoint drawn from `view` if it is not posted yet (caller holds the
        run's lock); returns the thread replies of results to post after it. A post by
        another thread of this process is known here (it learned the ref under this lock);
        one by another replica is caught by `set_surface_ref` (this copy is deleted)."""
        known = self.ctx.refs.gate(gate_id)
        if known is not None:  # posted meanwhile: redraw instead
            self._edit_gate(known[0], gate_id, view.run_id)
            return []
        parent = (
            view.run_surface_ref
            or self.ctx.refs.run(view.run_id)
            or self.runs.sync_run(view.run_id)
        )
        channel, thread_ts = split_ref(parent) if parent else (view.channel, None)
        text, blocks = gate_message(
            view,
            self.ctx.mask,
            self.ctx.refs.iteration(gate_id),
            self.ctx.waiting_for(view.environment, view.votes),
        )

        def own(mine: str) -> str:
            winner = self.ctx.engine.set_surface_ref(mine, gate_id=gate_id)
            return self.ctx.refs.learn_gate(gate_id, view.run_id, winner)

        try:
            self.ctx.post_or_update(None, channel, text, blocks, thread_ts=thread_ts, own=own)
        except Refused as exc:
            # Slack will never take this checkpoint: post the decision alone, so the gate
            # stays decidable, and say why in the audit trail.
            self.ctx.audit_failure(f"checkpoint {exc.method}", str(exc), view.run_id)
            text, blocks = minimal_gate_message(view, self.ctx.mask)
            self.ctx.post_or_update(None, channel, text, blocks, thread_ts=thread_ts, own=own)
        if thread_ts is None or channel is None:
            return []
        return [(t, (channel, thread_ts, b)) for t, b in gate_details(view, self.ctx.mask)]

    def _repost_gate(self, gate_id: int, run_id: int, lost: str) -> None:
        """As `_repost_run`, for a checkpoint (an open one keeps its buttons)."""
        self.ctx.refs.forget_gate(gate_id, lost)
        self.ctx.engine.set_surface_ref(None, gate_id=gate_id, replacing=lost)
        self.gate_changed(gate_id)

    def _edit_gate(self, ref: str, gate_id: int, run_id: int) -> None:
        drawn: list[str] = []  # the gate's status in the drawing Slack was sent

        def draw() -> tuple[str, list[Block]] | None:
            view = self.ctx.reads.gate_view(gate_id)
            if view is None:
                return None
            drawn.append(view.status)
            waiting = self.ctx.waiting_for(view.environment, view.votes)
            return gate_message(view, self.ctx.mask, self.ctx.refs.iteration(gate_id), waiting)

        def sent() -> None:
            if drawn and drawn[-1] != "open":  # Slack shows it decided: nothing to reconcile
                self.ctx.refs.settle(gate_id)

        def minimal() -> tuple[str, list[Block]] | None:
            view = self.ctx.reads.gate_view(gate_id)
            return minimal_gate_message(view, self.ctx.mask) if view else None

        self.ctx.outbox.edit(
            *split_ref(ref),
            draw,
            run_id=run_id,
            fallback=minimal,
            on_sent=sent,
            on_gone=lambda: self._repost_gate(gate_id, run_id, ref),
        )

    def retire_copy(self, channel: str, ts: str, gate_id: int) -> None:
        """Redraws a stray copy of a checkpoint without buttons, pointing at the live one."""

        def draw() -> tuple[str, list[Block]] | None:
            view = self.ctx.reads.gate_view(gate_id)
            if view is None:
                return None
            text = (
                f"This copy of the checkpoint of phase {view.phase_number} is out of date "
                f"(Slack took a post twice); the live one is in this thread."
            )
            return text, [section(text)]

        self.ctx.outbox.edit(channel, ts, draw)

    def resync(self, run_id: int) -> None:
        """Posts whatever of an active run is missing in Slack (after an outage or a restart)
        and redraws the rest: the parent message, the open checkpoint, and every earlier
        checkpoint (whatever edit was lost on the way, a decided gate shows no buttons)."""
        self.runs.run_changed(run_id)
        gate_id = self.ctx.reads.open_gate_id(run_id)
        settled = self.ctx.refs.settled()
        for other in self.ctx.reads.gate_ids(run_id):
            if other != gate_id and other not in settled:
                view = self.ctx.reads.gate_view(other)
                if view is not None and view.surface_ref:
                    self._edit_gate(view.surface_ref, other, run_id)
        if gate_id is not None:
            self.gate_changed(gate_id)
