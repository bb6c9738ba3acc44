"""What every kind of message shares (`SurfaceContext`): the transport (bot.slack.transport),
the runs' post slots and locks (bot.slack.pacing), the message refs (bot.slack.refs), the
outbox of edits, the engine and reads they draw from, the masker, the clock, the run links,
the approver directory and the change hook. Posting a message and owning its ref (the first
one the database keeps wins; a copy is deleted) is here.

Each presenter (bot.slack.present.*) is given this context and only the other presenters it
calls; `SlackSurface` (bot.slack.surface) composes them (issue 19: services, not mixins).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot.ports import ReadsPort
from bot.runpage.tokens import RunLinks
from bot.slack.blocks import (
    Block,
    group_mention,
    mask_blocks,
    mention,
)
from bot.slack.channels import ChannelDirectory
from bot.slack.outbox import (
    Outbox,
    Pacer,
)
from phases.checks.base import Clock
from phases.runbook import RunbookError

if TYPE_CHECKING:
    from bot.engine import Engine

from bot.slack.pacing import RunPacing
from bot.slack.refs import MessageRefs
from bot.slack.transport import SlackTransport, split_ref

log = logging.getLogger(__name__)


class SurfaceContext:
    """What every presenter of `SlackSurface` needs, shared by all of them (one per surface).
    `run_links`, `on_change` and `directory` are set after it is built (through the
    surface); the engine and the reads when the surface is bound."""

    client: WebClient
    clock: Clock
    transport: SlackTransport
    channels: ChannelDirectory
    pacer: Pacer
    pacing: RunPacing
    refs: MessageRefs
    outbox: Outbox
    run_links: RunLinks | None
    on_change: Callable[[], None] | None
    directory: Callable[[str], list[str]] | None
    _engine: Engine | None
    _reads: ReadsPort | None

    def __init__(
        self,
        client: WebClient,
        clock: Clock,
        transport: SlackTransport,
        pacer: Pacer,
        pacing: RunPacing,
        refs: MessageRefs,
        engine: Engine | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.transport = transport
        self.channels = transport.channels  # the runbook's channel names as ids
        self.pacer = pacer
        self.pacing = pacing
        self.refs = refs
        # Edits of posted messages, per channel: drawn when sent (bot.slack.outbox).
        self.outbox = Outbox(self.update, self.audit_failure)
        self._engine = engine
        self._reads = None
        # Told (it must return at once) whenever a run or a gate changed: the Home tabs.
        self.on_change = None
        # Signed links to run pages (bot/runpage), when CUTOVER_PUBLIC_URL and the secret are set.
        self.run_links = None
        # The approver groups that cannot be read (set by CutoverSlackApp, which reads them).
        self.directory = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("SlackSurface is not bound to an engine")
        return self._engine

    @property
    def reads(self) -> ReadsPort:
        """What every message is drawn from (the store's `Reads`, given when bound)."""
        if self._reads is None:
            raise RuntimeError("SlackSurface is not bound to its reads")
        return self._reads

    def mask(self, text: str) -> str:
        """The engine's masker: every text is masked before it leaves."""
        return self.engine.masker.mask(text)

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def update(self, channel: str, ts: str, text: str, blocks: list[Block]) -> None:
        self.transport.call(
            "chat_update", channel=channel, ts=ts, text=text, blocks=mask_blocks(blocks, self.mask)
        )

    def delete(self, ref: str) -> None:
        try:
            self.transport.call_waiting(
                "chat_delete", channel=split_ref(ref)[0], ts=split_ref(ref)[1]
            )
        except Exception as exc:
            log.warning("cannot delete a starting message: %s", self.mask(str(exc)))

    def post_or_update(
        self,
        ref: str | None,
        channel: str | None,
        text: str,
        blocks: list[Block],
        *,
        thread_ts: str | None,
        own: Any,
    ) -> str:
        blocks = mask_blocks(blocks, self.mask)
        if ref:
            ch, ts = split_ref(ref)
            self.transport.call("chat_update", channel=ch, ts=ts, text=text, blocks=blocks)
            return ref
        if not channel:
            raise RuntimeError(
                "no channel: run it from a channel, or set the environment's channel"
            )
        resp = self.transport.call(
            "chat_postMessage",
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )
        mine = f"{resp['channel']}:{resp['ts']}"
        winner: str = own(mine)
        if winner != mine:  # another process posted first: keep one message
            ch, ts = split_ref(mine)
            self.transport.call("chat_delete", channel=ch, ts=ts)
            wch, wts = split_ref(winner)
            self.transport.call("chat_update", channel=wch, ts=wts, text=text, blocks=blocks)
        return winner

    def waiting_for(self, env_name: str, votes: list[str]) -> str:
        """Mentions of the approvers (users by id, then groups) who have not voted yet."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return ""
        users = [mention(a) for a in sorted(env.approver_set() - set(votes)) if ":" in a]
        users = [u for u in users if u.startswith("<@")]
        return ", ".join(users + [group_mention(g) for g in env.approver_groups])

    def audit_failure(self, call: str, error: str, run_id: int | None) -> None:
        log.warning("slack %s failed: %s", call, self.mask(error))
        self.engine.record_surface_failure(call, self.mask(error), run_id)
