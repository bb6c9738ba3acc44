"""`SlackSurface`: the engine's `Surface` in Slack, through the Web API (slack_sdk).

One parent message per run, posted once and then edited in place (chat.update);
each phase's checkpoint is a reply in the run's thread, edited as votes, ticks
and the decision arrive. Message refs ("CHANNEL:TS") live in the database
(`Engine.set_surface_ref`), so a restarted bot edits the same messages.

New messages are posted at most one per second per channel (`Pacer`, on a budget every
replica shares in the database: bot.store.rate_slots), waited for before the run's lock
is taken; edits of posted messages go through the channel's
`Outbox`, drawn from the database when sent, so a rate-limited chat.update delays
nothing else and a decided gate always loses its buttons in the end. A 429 is never
waited out while a lock is held (the SDK's rate-limit retry handler is not used);
5xx answers and dropped connections are retried by slack_sdk's handlers. A call that
still fails raises, and the engine audits it as "surface.failed". Everything posted is
masked first.

Made of one part per concern (issue 19):

- bot.slack.transport: Web API calls, Slack's errors, retries;
- bot.slack.pacing: the channels' post slots and the runs' locks;
- bot.slack.refs: which message is whose (message refs);
- bot.slack.present: how each kind of message is drawn and posted (runs, checkpoints,
  sign-offs, scheduled cutovers, a run's home channel, replies and views).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.ports import ReadsPort, SurfaceRowsPort
from bot.slack.outbox import Outbox, Pacer
from bot.slack.pacing import POST_INTERVAL, RunPacing
from bot.slack.post_task_actions import PostTaskMessages
from bot.slack.present.checkpoints import CheckpointMessages
from bot.slack.present.home_channel import HomeChannel
from bot.slack.present.replies import Replies
from bot.slack.present.schedules import ScheduleMessages
from bot.slack.present.signoffs import SignoffMessages
from bot.slack.refs import MessageRefs
from bot.slack.transport import SlackTransport
from bot.store.rate_slots import SharedSlots
from phases.checks.base import Clock, SystemClock

if TYPE_CHECKING:
    from bot.engine import Engine


class SlackSurface(
    PostTaskMessages, CheckpointMessages, SignoffMessages, ScheduleMessages, HomeChannel, Replies
):  # post_tasks_changed: bot/slack/post_task_actions.py
    """Implements `bot.surface.Surface`. Bind the engine before the first call."""

    def __init__(
        self,
        client: WebClient,
        engine: Engine | None = None,
        *,
        post_interval: float = POST_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        # What post pacing and Retry-After waits read and sleep on: the system's, or a
        # test's clock that fast-forwards them (shared with the Slack stand-in's limits).
        self.clock = clock or SystemClock()
        self._clock_given = clock is not None
        self.transport = SlackTransport(client, self.clock)
        self.channels = self.transport.channels  # the runbook's channel names as ids
        self.pacer = Pacer(post_interval, self.clock.monotonic, sleep=self.clock.sleep)
        self.pacing = RunPacing(self.pacer, self.clock)
        self.refs = MessageRefs()
        self.outbox = Outbox(self._update, self._audit_failure)
        self._engine = engine
        self._reads = None
        # Told (it must return at once) whenever a run or a gate changed: the Home tabs.
        self.on_change = None
        # Signed links to run pages (bot/runpage), when CUTOVER_PUBLIC_URL and the secret are set.
        self.run_links = None
        # The approver groups that cannot be read (set by CutoverSlackApp, which reads them).
        self.directory = None

    def bind(
        self, engine: Engine, reads: ReadsPort, rows: SurfaceRowsPort, slots: SharedSlots
    ) -> None:
        """The engine, what messages are drawn from, the surface's own rows (message refs)
        and the posting budgets per channel in the database (`slots`: every replica shares
        each channel's, on the database's clock, or on `slot_clock()` when a test gave one)."""
        self._engine = engine
        self._reads = reads
        self.refs.rows = rows
        self.pacer.slots = slots

    def slot_clock(self) -> Callable[[], float] | None:
        """The clock posting budgets are kept on: the one a test gave every replica and the
        stand-in, or None (the database's)."""
        return self.clock.now if self._clock_given else None

    def api_clients(self) -> list[WebClient]:
        """Every Web API client this surface calls through (for instrumentation)."""
        return [self.client, self.transport.api]

    def directory_problems(self, env_name: str) -> list[str]:
        """What keeps the environment's approvers from being known (DirectorySurface)."""
        return self.directory(env_name) if self.directory is not None else []
