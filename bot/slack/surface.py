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
- bot.slack.present: how each kind of message is drawn and posted, one presenter each (runs,
  checkpoints, sign-offs, scheduled cutovers, a run's home channel, replies and views; the
  post-cutover tasks in bot.slack.post_task_actions), composed, not mixed in: each is given
  the shared `SurfaceContext` (bot.slack.present.base) and only the presenters it calls.
  `SlackSurface` hands every call to the one presenter it is about.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from bot.ports import ChecklistsPort, EnginePort, ReadsPort, SurfaceRowsPort
from bot.runpage.tokens import RunLinks
from bot.slack.blocks import Block
from bot.slack.channels import ChannelDirectory
from bot.slack.outbox import Outbox, Pacer, Slots
from bot.slack.pacing import POST_INTERVAL, RunPacing
from bot.slack.post_task_actions import PostTaskMessages
from bot.slack.present.base import SurfaceContext
from bot.slack.present.checkpoints import CheckpointMessages
from bot.slack.present.home_channel import HomeChannel
from bot.slack.present.replies import Replies
from bot.slack.present.runs import RunMessages
from bot.slack.present.schedules import ScheduleMessages
from bot.slack.present.signoffs import SignoffMessages
from bot.slack.refs import MessageRefs
from bot.slack.transport import SlackTransport
from bot.views import GateView
from phases.checks.base import Clock, SystemClock


class SlackSurface:
    """Implements `bot.surface.Surface`. Bind the engine before the first call."""

    def __init__(
        self,
        client: WebClient,
        engine: EnginePort | None = None,
        *,
        post_interval: float = POST_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        # What post pacing and Retry-After waits read and sleep on: the system's, or a
        # test's clock that fast-forwards them (shared with the Slack stand-in's limits).
        clock_ = clock or SystemClock()
        self._clock_given = clock is not None
        pacer = Pacer(post_interval, clock_.monotonic, sleep=clock_.sleep)
        self.ctx = SurfaceContext(
            client,
            clock_,
            SlackTransport(client, clock_),
            pacer,
            RunPacing(pacer, clock_),
            MessageRefs(),
            engine,
        )
        # One presenter per kind of message, each given only the others it calls.
        self.runs = RunMessages(self.ctx)
        self.checkpoints = CheckpointMessages(self.ctx, self.runs)
        self.signoffs = SignoffMessages(self.ctx, self.runs)
        self.post_tasks = PostTaskMessages(self.ctx, self.runs)
        self.schedules = ScheduleMessages(self.ctx)
        self.home = HomeChannel(self.ctx)
        self.replies = Replies(self.ctx)

    def bind(
        self,
        engine: EnginePort,
        reads: ReadsPort,
        rows: SurfaceRowsPort,
        slots: Slots,
        *,
        checklists: ChecklistsPort,
    ) -> None:
        """The engine, what messages are drawn from (`reads`, and the pre-cutover
        `checklists`), the surface's own rows (message refs)
        and the posting budgets per channel in the database (`slots`: every replica shares
        each channel's, on the database's clock, or on `slot_clock()` when a test gave one)."""
        self.ctx._engine = engine
        self.ctx._reads = reads
        self.ctx._checklists = checklists
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

    # ------------------------------------------------- the parts, as the context has them

    @property
    def client(self) -> WebClient:
        return self.ctx.client

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def transport(self) -> SlackTransport:
        return self.ctx.transport

    @property
    def channels(self) -> ChannelDirectory:
        """The runbook's channel names as ids."""
        return self.ctx.channels

    @property
    def pacer(self) -> Pacer:
        return self.ctx.pacer

    @property
    def pacing(self) -> RunPacing:
        return self.ctx.pacing

    @property
    def refs(self) -> MessageRefs:
        return self.ctx.refs

    @property
    def outbox(self) -> Outbox:
        return self.ctx.outbox

    @property
    def engine(self) -> EnginePort:
        return self.ctx.engine

    @property
    def reads(self) -> ReadsPort:
        return self.ctx.reads

    @property
    def on_change(self) -> Callable[[], None] | None:
        """Told (it must return at once) whenever a run or a gate changed: the Home tabs."""
        return self.ctx.on_change

    @on_change.setter
    def on_change(self, hook: Callable[[], None] | None) -> None:
        self.ctx.on_change = hook

    @property
    def run_links(self) -> RunLinks | None:
        """Signed links to run pages (bot/runpage), when CUTOVER_PUBLIC_URL and the secret
        are set."""
        return self.ctx.run_links

    @run_links.setter
    def run_links(self, links: RunLinks | None) -> None:
        self.ctx.run_links = links

    @property
    def directory(self) -> Callable[[str], list[str]] | None:
        """The approver groups that cannot be read (set by CutoverSlackApp, which reads them)."""
        return self.ctx.directory

    @directory.setter
    def directory(self, problems: Callable[[str], list[str]] | None) -> None:
        self.ctx.directory = problems

    # ------------------------------------------------------------------------- runs (Surface)

    def run_changed(self, run_id: int) -> None:
        self.runs.run_changed(run_id)

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        self.runs.notice(run_id, text, channel)

    def waiting_for(self, env_name: str, votes: list[str]) -> str:
        """Mentions of the approvers (users by id, then groups) who have not voted yet."""
        return self.ctx.waiting_for(env_name, votes)

    # ---------------------------------------------------------------------------- checkpoints

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        self.checkpoints.checkpoint(gate_id, opened)

    def gate_changed(self, gate_id: int) -> None:
        self.checkpoints.gate_changed(gate_id)

    def known_gate_ref(self, gate_id: int) -> str | None:
        return self.checkpoints.known_gate_ref(gate_id)

    def retire_copy(self, channel: str, ts: str, gate_id: int) -> None:
        self.checkpoints.retire_copy(channel, ts, gate_id)

    def resync(self, run_id: int) -> None:
        self.checkpoints.resync(run_id)

    # -------------------------------------------------------------- sign-offs and post tasks

    def signoff_changed(self, run_id: int) -> None:
        self.signoffs.signoff_changed(run_id)

    def adopt_signoff(self, run_id: int, channel: str, ts: str) -> None:
        self.signoffs.adopt_signoff(run_id, channel, ts)

    def post_tasks_changed(self, run_id: int) -> None:
        self.post_tasks.post_tasks_changed(run_id)

    # ------------------------------------------------------- scheduled cutovers (SchedulingSurface)

    def scheduled_notice(self, schedule_id: int, kind: str, channel: str | None, text: str) -> None:
        self.schedules.scheduled_notice(schedule_id, kind, channel, text)

    def checklist_changed(self, schedule_id: int) -> None:
        self.schedules.checklist_changed(schedule_id)

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
        self.schedules.checklist_redraw(schedule_id, channel, ts, text, blocks, redrawn=redrawn)

    def start_reminder(
        self, schedule_id: int, channel: str | None, text: str, approvers: list[str]
    ) -> None:
        self.schedules.start_reminder(schedule_id, channel, text, approvers)

    def reminder_done(self, schedule_id: int, channel: str, ts: str) -> bool:
        return self.schedules.reminder_done(schedule_id, channel, ts)

    # ------------------------------------------------------------------------ home channel

    def claim_home(self, env_name: str, channel: str, requested_by: str) -> str | None:
        return self.home.claim_home(env_name, channel, requested_by)

    def release_home(self, env_name: str) -> None:
        self.home.release_home(env_name)

    # ---------------------------------------------------------------------- replies and views

    def reply(
        self,
        text: str,
        *,
        response_url: str | None,
        channel: str | None,
        user: str | None,
        ephemeral: bool = True,
        run_id: int | None = None,
        blocks: list[Block] | None = None,
    ) -> bool:
        return self.replies.reply(
            text,
            response_url=response_url,
            channel=channel,
            user=user,
            ephemeral=ephemeral,
            run_id=run_id,
            blocks=blocks,
        )

    def open_view(self, trigger_id: str, view: dict[str, Any], run_id: int | None = None) -> str:
        return self.replies.open_view(trigger_id, view, run_id)

    def publish_home(
        self, user: str, view: dict[str, Any], *, view_hash: str | None = None
    ) -> tuple[bool, str]:
        return self.replies.publish_home(user, view, view_hash=view_hash)
