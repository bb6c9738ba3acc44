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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from bot.checklists import Checklists, Scope
from bot.domain.states import ScheduleStatus
from bot.notices import ItemState, cutover_label, t0_text
from bot.runpage.tokens import RunLinks
from bot.signoffs import refusal_for, run_signoff_state, signoff_view
from bot.slack.blocks import (
    MAX_BLOCKS,
    REPLY_TEXT,
    Block,
    Notice,
    channel_ref,
    checklist_blocks,
    checklist_message,
    checklist_notice,
    checklist_redraw_short,
    clip,
    escape,
    gate_details,
    gate_message,
    group_mention,
    mask_blocks,
    mention,
    minimal_gate_message,
    reminder_message,
    run_message,
    scheduled_notice,
    section,
    sections,
    short_checklist_notice,
    short_notice,
    slackify,
    when,
)
from bot.slack.channels import ChannelDirectory, is_channel_id
from bot.slack.outbox import (
    GONE,
    REFUSALS,
    Gone,
    Outbox,
    Pacer,
    RateLimited,
    Refused,
    SlackCallFailed,
)
from bot.slack.post_task_actions import PostTaskMessages
from bot.slack.signoff import signoff_message
from bot.store import message_refs
from bot.store.rate_slots import SharedSlots
from bot.views import (
    GateView,
    RunView,
    ScheduleView,
    gate_ids,
    gate_view,
    open_gate_id,
    run_view,
    schedule_view,
)
from phases.checks.base import Clock, SystemClock
from phases.runbook import RunbookError

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)
_QUIET = logging.getLogger(__name__ + ".webhook")  # a response_url is a credential: never logged
_QUIET.setLevel(logging.INFO)

DEFAULT_API_URL = "https://slack.com/api/"
# chat.postMessage: "one message per second per channel" (Slack's rate-limit page); a
# little more between posts, so jitter on the way never makes two land in one second.
POST_INTERVAL = 1.1


def retry_handlers(
    *,
    rate_limited: int = 3,
    server_errors: int = 2,
    connection_errors: int = 2,
    backoff: float = 0.5,
) -> list[RetryHandler]:
    """429 waits for Retry-After; 500/503 and connection errors back off exponentially."""
    interval = BackoffRetryIntervalCalculator(backoff_factor=backoff)
    return [
        ConnectionErrorRetryHandler(
            max_retry_count=connection_errors, interval_calculator=interval
        ),
        RateLimitErrorRetryHandler(max_retry_count=rate_limited),
        ServerErrorRetryHandler(max_retry_count=server_errors, interval_calculator=interval),
    ]


def api_base_url(url: str | None) -> str:
    base = (url or DEFAULT_API_URL).strip()
    return base if base.endswith("/") else base + "/"


def make_client(
    token: str, api_url: str | None = None, handlers: list[RetryHandler] | None = None
) -> WebClient:
    return WebClient(
        token=token,
        base_url=api_base_url(api_url),
        timeout=15,
        retry_handlers=handlers if handlers is not None else retry_handlers(),
    )


def split_ref(ref: str) -> tuple[str, str]:
    channel, _, ts = ref.partition(":")
    return channel, ts


class SlackSurface(PostTaskMessages):  # post_tasks_changed: bot/slack/post_task_actions.py
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
        self.clock: Clock = clock or SystemClock()
        self._clock_given = clock is not None
        # The same client without the SDK's rate-limit handler: it sleeps on Retry-After in
        # the calling thread, which may hold the run's lock.
        self._api = WebClient(
            token=client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            retry_handlers=[
                h for h in client.retry_handlers if not isinstance(h, RateLimitErrorRetryHandler)
            ],
        )
        # The runbook's channel names as ids, looked up once (bot.slack.channels).
        self.channels = ChannelDirectory(self._api)
        self.pacer = Pacer(post_interval, self.clock.monotonic, sleep=self.clock.sleep)
        self.outbox = Outbox(self._update, self._audit_failure)
        self._engine = engine
        self._locks: dict[int, threading.RLock] = {}
        self._settled: set[int] = set()  # gates Slack was last sent as decided
        self._homes: dict[str, str] = {}  # environment → its "starting…" message (claim_home)
        self._iterations: dict[int, int] = {}
        # Told (it must return at once) whenever a run or a gate changed: the Home tabs.
        self.on_change: Callable[[], None] | None = None
        # Signed links to run pages (bot/runpage), when CUTOVER_PUBLIC_URL and the secret are set.
        self.run_links: RunLinks | None = None
        # The approver groups that cannot be read (set by CutoverSlackApp, which reads them).
        self.directory: Callable[[str], list[str]] | None = None
        # Message refs once known (they are written once, never changed): a redraw of a
        # posted message goes straight to the outbox, with no read before it.
        self._run_refs: dict[int, str] = {}
        self._gate_refs: dict[int, tuple[str, int]] = {}  # gate → (its message, its run)
        self._locks_guard = threading.Lock()

    def bind(self, engine: Engine) -> None:
        self._engine = engine
        # Posting budgets per channel in the database: every replica shares each channel's,
        # on the database's clock (or on the clock a test gave every replica and the stand-in).
        self.pacer.slots = SharedSlots(engine.db, self.clock.now if self._clock_given else None)

    def api_clients(self) -> list[WebClient]:
        """Every Web API client this surface calls through (for instrumentation)."""
        return [self.client, self._api]

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("SlackSurface is not bound to an engine")
        return self._engine

    def _lock(self, run_id: int) -> threading.RLock:
        """One lock per run: the parent and its checkpoints are posted once, edited in order."""
        with self._locks_guard:
            return self._locks.setdefault(run_id, threading.RLock())

    def _mask(self, text: str) -> str:
        return self.engine.masker.mask(text)

    # ------------------------------------------------------------------ Surface

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def run_changed(self, run_id: int) -> None:
        """Redraws the run's message through the outbox (this thread goes on at once); a
        message not posted yet is posted now, in this thread."""
        self._changed()
        known = self._run_ref(run_id)
        if known is not None:
            self._edit_run(known, run_id)
            return
        view = run_view(self.engine.db, self.engine.runbook, run_id)
        if view is None:
            return
        if view.surface_ref:
            self._edit_run(self._learn_run(run_id, view.surface_ref), run_id)
            return
        self._posting(run_id, view.channel, lambda: self._sync_run(run_id))

    def checkpoint(self, gate_id: int) -> None:
        self.gate_changed(gate_id)

    def gate_changed(self, gate_id: int) -> None:
        """As run_changed, for a checkpoint."""
        self._changed()
        with self._locks_guard:
            known = self._gate_refs.get(gate_id)
        if known is not None:
            self._edit_gate(known[0], gate_id, known[1])
            return
        first = gate_view(self.engine.db, self.engine.runbook, gate_id)
        if first is None:
            return
        if first.surface_ref:
            self._learn_gate(gate_id, first.run_id, first.surface_ref)
            self._edit_gate(first.surface_ref, gate_id, first.run_id)
            return
        channel = split_ref(first.run_surface_ref)[0] if first.run_surface_ref else first.channel
        details = self._posting(first.run_id, channel, lambda: self._post_gate(gate_id, first))
        for fallback, reply in details or []:  # no lock held: the decision is up already
            try:
                self._call_waiting(
                    "chat_postMessage",
                    channel=reply[0],
                    thread_ts=reply[1],
                    text=fallback,
                    blocks=mask_blocks(reply[2], self._mask),
                    unfurl_links=False,
                    unfurl_media=False,
                )
            except Exception as exc:
                self._audit_failure("checkpoint details", str(exc), first.run_id)
                break

    def _posting(self, run_id: int, channel: str | None, post: Any) -> Any:
        """Runs `post` under the run's lock, in the channel's next post slot; a 429 is waited
        out with the lock released, then `post` runs again (it re-reads what is posted)."""
        for attempt in range(4):
            if channel:
                self.pacer.wait(channel)
            try:
                with self._lock(run_id):
                    return post()
            except RateLimited as exc:
                if attempt == 3:
                    raise SlackCallFailed(exc.method, "ratelimited", 429) from None
                if channel:
                    self.pacer.hold(channel, exc.retry_after)
                self.clock.sleep(exc.retry_after)
        return None

    def _run_ref(self, run_id: int) -> str | None:
        with self._locks_guard:
            return self._run_refs.get(run_id)

    def _learn_run(self, run_id: int, ref: str) -> str:
        with self._locks_guard:
            self._run_refs[run_id] = ref
        return ref

    def known_gate_ref(self, gate_id: int) -> str | None:
        """The gate's recorded message, if this process has seen it (no read)."""
        with self._locks_guard:
            known = self._gate_refs.get(gate_id)
        return known[0] if known is not None else None

    def _learn_gate(self, gate_id: int, run_id: int, ref: str) -> str:
        with self._locks_guard:
            self._gate_refs[gate_id] = (ref, run_id)
        return ref

    def _post_gate(
        self, gate_id: int, view: GateView
    ) -> list[tuple[str, tuple[str, str, list[Block]]]]:
        """Posts the checkpoint drawn from `view` if it is not posted yet (caller holds the
        run's lock); returns the thread replies of results to post after it. A post by
        another thread of this process is known here (it learned the ref under this lock);
        one by another replica is caught by `set_surface_ref` (this copy is deleted)."""
        with self._locks_guard:
            known = self._gate_refs.get(gate_id)
        if known is not None:  # posted meanwhile: redraw instead
            self._edit_gate(known[0], gate_id, view.run_id)
            return []
        parent = view.run_surface_ref or self._run_ref(view.run_id) or self._sync_run(view.run_id)
        channel, thread_ts = split_ref(parent) if parent else (view.channel, None)
        text, blocks = gate_message(
            view,
            self._mask,
            self._iteration(gate_id),
            self._waiting_for(view.environment, view.votes),
        )

        def own(mine: str) -> str:
            winner = self.engine.set_surface_ref(mine, gate_id=gate_id)
            return self._learn_gate(gate_id, view.run_id, winner)

        try:
            self._post_or_update(None, channel, text, blocks, thread_ts=thread_ts, own=own)
        except Refused as exc:
            # Slack will never take this checkpoint: post the decision alone, so the gate
            # stays decidable, and say why in the audit trail.
            self._audit_failure(f"checkpoint {exc.method}", str(exc), view.run_id)
            text, blocks = minimal_gate_message(view, self._mask)
            self._post_or_update(None, channel, text, blocks, thread_ts=thread_ts, own=own)
        if thread_ts is None or channel is None:
            return []
        return [(t, (channel, thread_ts, b)) for t, b in gate_details(view, self._mask)]

    def _page_url(self, view: RunView) -> str | None:
        """The run page's link for an ended run's message (None: not configured, or live)."""
        if self.run_links is None or view.ended_at is None:
            return None
        return self.run_links.for_run(view.id)

    def _revertable(self, view: RunView) -> bool:
        """Whether the completion message carries a Revert… button: a completed real run
        within the runbook's revert window, no later run started (the click checks again)."""
        if view.status != "completed" or view.dry_run:
            return False
        return self.engine.revert_refusal(view.id) is None

    def _edit_run(self, ref: str, run_id: int) -> None:
        def draw() -> tuple[str, list[Block]] | None:
            view = run_view(self.engine.db, self.engine.runbook, run_id)
            if view is None:
                return None
            return run_message(
                view,
                datetime.now(UTC),
                self._mask,
                self._run_waiting(run_id),
                self._page_url(view),
                self._revertable(view),
            )

        self.outbox.edit(
            *split_ref(ref), draw, run_id=run_id, on_gone=lambda: self._repost_run(run_id, ref)
        )

    def _repost_run(self, run_id: int, lost: str) -> None:
        """The run's message can no longer be edited (deleted, edit window closed…): post it
        again, buttons and all, and keep the new reference; later checkpoints go in its
        thread."""
        with self._locks_guard:
            if self._run_refs.get(run_id) == lost:
                del self._run_refs[run_id]
        self.engine.set_surface_ref(None, run_id=run_id, replacing=lost)
        self.run_changed(run_id)

    def _repost_gate(self, gate_id: int, run_id: int, lost: str) -> None:
        """As `_repost_run`, for a checkpoint (an open one keeps its buttons)."""
        with self._locks_guard:
            if self._gate_refs.get(gate_id, (None,))[0] == lost:
                del self._gate_refs[gate_id]
            self._settled.discard(gate_id)
        self.engine.set_surface_ref(None, gate_id=gate_id, replacing=lost)
        self.gate_changed(gate_id)

    def _edit_gate(self, ref: str, gate_id: int, run_id: int) -> None:
        drawn: list[str] = []  # the gate's status in the drawing Slack was sent

        def draw() -> tuple[str, list[Block]] | None:
            view = gate_view(self.engine.db, self.engine.runbook, gate_id)
            if view is None:
                return None
            drawn.append(view.status)
            waiting = self._waiting_for(view.environment, view.votes)
            return gate_message(view, self._mask, self._iteration(gate_id), waiting)

        def sent() -> None:
            if drawn and drawn[-1] != "open":  # Slack shows it decided: nothing to reconcile
                with self._locks_guard:
                    self._settled.add(gate_id)

        def minimal() -> tuple[str, list[Block]] | None:
            view = gate_view(self.engine.db, self.engine.runbook, gate_id)
            return minimal_gate_message(view, self._mask) if view else None

        self.outbox.edit(
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
            view = gate_view(self.engine.db, self.engine.runbook, gate_id)
            if view is None:
                return None
            text = (
                f"This copy of the checkpoint of phase {view.phase_number} is out of date "
                f"(Slack took a post twice); the live one is in this thread."
            )
            return text, [section(text)]

        self.outbox.edit(channel, ts, draw)

    def _update(self, channel: str, ts: str, text: str, blocks: list[Block]) -> None:
        self._call(
            "chat_update", channel=channel, ts=ts, text=text, blocks=mask_blocks(blocks, self._mask)
        )

    def waiting_for(self, env_name: str, votes: list[str]) -> str:
        """Mentions of the approvers (users by id, then groups) who have not voted yet."""
        return self._waiting_for(env_name, votes)

    def _waiting_for(self, env_name: str, votes: list[str]) -> str:
        """Mentions of the approvers (users by id, then groups) who have not voted yet."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return ""
        users = [mention(a) for a in sorted(env.approver_set() - set(votes)) if ":" in a]
        users = [u for u in users if u.startswith("<@")]
        return ", ".join(users + [group_mention(g) for g in env.approver_groups])

    def _run_waiting(self, run_id: int) -> str:
        gate_id = open_gate_id(self.engine.db, run_id)
        view = gate_view(self.engine.db, self.engine.runbook, gate_id) if gate_id else None
        return self._waiting_for(view.environment, view.votes) if view else ""

    def _iteration(self, gate_id: int) -> str:
        """A new suffix for each drawing of a checkpoint: Slack asks for a new block_id per
        iteration of an updated message, or clients keep their own checkbox state."""
        with self._locks_guard:  # microseconds: new after a restart too, and always increasing
            n = max(self._iterations.get(gate_id, 0) + 1, time.time_ns() // 1000)
            self._iterations[gate_id] = n
        return f"{n:x}"

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        thread_ts: str | None = None
        known = self._run_ref(run_id) if run_id is not None else None
        if known is not None:
            channel, thread_ts = split_ref(known)
        elif run_id is not None:
            view = run_view(self.engine.db, self.engine.runbook, run_id)
            if view is not None:
                if view.surface_ref:
                    channel, thread_ts = split_ref(self._learn_run(run_id, view.surface_ref))
                else:
                    channel = channel or view.channel
        if not channel:
            raise RuntimeError(f"no channel to post a notice of run #{run_id} in")
        self.pacer.wait(channel)
        self._call_waiting(
            "chat_postMessage",
            channel=channel,
            text=clip(slackify(self._mask(text)), REPLY_TEXT),
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )

    # ------------------------------------------------------------------ SignoffSurface

    def signoff_changed(self, run_id: int) -> None:
        """Posts the run's sign-off message in its thread, or redraws the one it has."""
        ref = self._signoff_ref(run_id)
        if ref:
            self._edit_signoff(ref, run_id)
            return
        view = run_view(self.engine.db, self.engine.runbook, run_id)
        if view is None or (  # rolled back: none new; completed: the cutover's own, if asked
            refusal_for(str(view.status), run_id)
            and run_signoff_state(self.engine.db, run_id) is None
        ):
            return
        channel = split_ref(view.surface_ref)[0] if view.surface_ref else view.channel
        self._posting(run_id, channel, lambda: self._post_signoff(run_id))

    def _signoff_ref(self, run_id: int) -> str | None:
        """The run's sign-off message ("CHANNEL:TS"), as the database has it: posted by this
        process or another, before a restart or after."""
        posted = message_refs.lookup(self.engine.db, message_refs.signoff_key(run_id))
        return posted.ref if posted else None

    def adopt_signoff(self, run_id: int, channel: str, ts: str) -> None:
        """A sign-off click came from this message: it is the run's sign-off message, unless
        the database already names one (a message posted before its ref was kept)."""
        message_refs.remember(
            self.engine.db, message_refs.signoff_key(run_id), f"{channel}:{ts}", run_id=run_id
        )

    def _post_signoff(self, run_id: int) -> None:
        """Caller holds the run's lock (of this process: another replica may post at the same
        time; the database keeps the first ref and the other copy is deleted)."""
        ref = self._signoff_ref(run_id)
        if ref:  # posted meanwhile
            self._edit_signoff(ref, run_id)
            return
        view = signoff_view(self.engine.db, self.engine.runbook, run_id)
        if view is None:
            return
        parent = run_view(self.engine.db, self.engine.runbook, run_id)
        ref = parent.surface_ref if parent else None
        ref = ref or self._sync_run(run_id)
        channel, thread_ts = split_ref(ref) if ref else (parent.channel if parent else None, None)
        if not channel:
            raise RuntimeError(f"no channel to post the sign-off of run #{run_id} in")
        text, blocks = signoff_message(view, self._mask)
        resp = self._call(
            "chat_postMessage",
            channel=channel,
            text=text,
            blocks=mask_blocks(blocks, self._mask),
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )
        mine = f"{resp['channel']}:{resp['ts']}"
        winner = message_refs.remember(
            self.engine.db, message_refs.signoff_key(run_id), mine, run_id=run_id
        )
        if winner != mine:  # another replica posted first: keep one message
            self._delete(mine)
            self._edit_signoff(winner, run_id)

    def _edit_signoff(self, ref: str, run_id: int) -> None:
        def draw() -> tuple[str, list[Block]] | None:
            view = signoff_view(self.engine.db, self.engine.runbook, run_id)
            return signoff_message(view, self._mask) if view is not None else None

        self.outbox.edit(*split_ref(ref), draw, run_id=run_id)

    # ------------------------------------------------------------------ SchedulingSurface

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
            states = Checklists(self.engine).states(Scope(sched.environment, schedule_id))
            ref = self._post_notice(
                channel,
                checklist_notice(schedule_id, text, label, states, self._mask),
                lambda error: short_checklist_notice(
                    schedule_id, text, label, states, error, self._mask
                ),
            )
            self._remember_checklist(schedule_id, ref, text)
            return
        self._post_notice(
            channel,
            scheduled_notice(kind, text, label, self._mask),
            lambda error: short_notice(kind, text, label, error, self._mask),
        )

    def _post_notice(self, channel: str, notice: Notice, short: Callable[[str], Notice]) -> str:
        """Posts `notice` (or, refused, `short(error)`) and then its replies in its thread;
        returns the notice's ref. A reply that fails is audited: the notice stands."""
        try:
            ref = self._post_top_level(channel, notice.fallback, notice.blocks)
        except Refused as exc:
            self._audit_failure(f"scheduled notice {exc.method}", str(exc), None)
            notice = short(exc.error)
            ref = self._post_top_level(channel, notice.fallback, notice.blocks)
        where, ts = split_ref(ref)
        for fallback, blocks in notice.replies:
            self.pacer.wait(where)
            try:
                self._call_waiting(
                    "chat_postMessage",
                    channel=where,
                    thread_ts=ts,
                    text=fallback,
                    blocks=mask_blocks(blocks, self._mask),
                    unfurl_links=False,
                    unfurl_media=False,
                )
            except Exception as exc:  # the notice is posted: raising would post it again
                self._audit_failure("scheduled notice reply", str(exc), None)
                break
        return ref

    def _remember_checklist(self, schedule_id: int, ref: str, text: str) -> None:
        """Keeps where the T-1h checklist is, and the notice text it is drawn from, so a tick
        typed as a command redraws it (from any replica, after a restart). A notice posted
        again (a reclaimed claim) becomes the one redrawn: it is the newer, complete one."""
        key = message_refs.checklist_key(schedule_id)
        if message_refs.remember(self.engine.db, key, ref, body=text) != ref:
            message_refs.replace(self.engine.db, key, ref, body=text)

    def checklist_changed(self, schedule_id: int) -> None:
        """Redraws the T-1h checklist message of a scheduled cutover from the database (who
        ticked what, the bot's results), through the channel's outbox; nothing when it was
        never posted (or was posted before its ref was kept)."""
        posted = message_refs.lookup(self.engine.db, message_refs.checklist_key(schedule_id))
        if posted is None:
            return
        body = posted.body or ""

        def facts() -> tuple[str, list[ItemState], str] | None:
            """The checklist as it stands now: its label, its items, a new iteration."""
            sched = self._schedule(schedule_id)
            if sched is None:
                return None
            states = Checklists(self.engine).states(Scope(sched.environment, schedule_id))
            return cutover_label(sched.environment), states, f"{time.time_ns():x}"[-8:]

        def draw() -> tuple[str, list[Block]] | None:
            now = facts()
            if now is None:
                return None
            label, states, iteration = now
            return checklist_message(schedule_id, body, label, states, self._mask, iteration)

        def short() -> tuple[str, list[Block]] | None:
            now = facts()
            if now is None:
                return None
            label, states, iteration = now
            return checklist_redraw_short(schedule_id, label, states, self._mask, iteration)

        self.outbox.edit(*split_ref(posted.ref), draw, fallback=short)

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
        posted = message_refs.lookup(self.engine.db, message_refs.checklist_key(schedule_id))
        if posted is not None and posted.ref == f"{channel}:{ts}":
            if not redrawn:  # nothing changed (a refused click): its boxes drawn back
                self.checklist_changed(schedule_id)
            return
        sched = self._schedule(schedule_id)
        if sched is None:
            return
        states = Checklists(self.engine).states(Scope(sched.environment, schedule_id))
        kept = [
            b
            for b in blocks
            if not (isinstance(b, dict) and str(b.get("block_id", "")).startswith("checklist"))
        ]
        iteration = f"{time.time_ns():x}"[-8:]
        fresh = checklist_blocks(schedule_id, states, self._mask, iteration=iteration)
        self._update(channel, ts, text, kept[: MAX_BLOCKS - len(fresh)] + fresh)

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
            mask=self._mask,
        )
        self._post_top_level(channel, fallback, blocks)

    def _post_top_level(self, channel: str, fallback: str, blocks: list[Any]) -> str:
        """A new message outside any run's thread (no run exists yet); returns its ref."""
        self.pacer.wait(channel)
        resp = self._call_waiting(
            "chat_postMessage",
            channel=channel,
            text=fallback,
            blocks=mask_blocks(blocks, self._mask),
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
        run = (
            run_view(self.engine.db, self.engine.runbook, sched.run_id)
            if sched.run_id is not None
            else None
        )
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
            env = self.engine.environment(sched.environment)
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
            mask=self._mask,
        )
        self._call_waiting(
            "chat_update",
            channel=channel,
            ts=ts,
            text=fallback,
            blocks=mask_blocks(blocks, self._mask),
        )
        return True

    def _schedule(self, schedule_id: int) -> ScheduleView | None:
        return schedule_view(self.engine.db, schedule_id)

    def _approver_groups(self, env_name: str) -> list[str]:
        try:
            return list(self.engine.environment(env_name).approver_groups)
        except RunbookError:
            return []

    def directory_problems(self, env_name: str) -> list[str]:
        """What keeps the environment's approvers from being known (DirectorySurface)."""
        return self.directory(env_name) if self.directory is not None else []

    def resync(self, run_id: int) -> None:
        """Posts whatever of an active run is missing in Slack (after an outage or a restart)
        and redraws the rest: the parent message, the open checkpoint, and every earlier
        checkpoint (whatever edit was lost on the way, a decided gate shows no buttons)."""
        self.run_changed(run_id)
        gate_id = open_gate_id(self.engine.db, run_id)
        with self._locks_guard:
            settled = set(self._settled)
        for other in gate_ids(self.engine.db, run_id):
            if other != gate_id and other not in settled:
                view = gate_view(self.engine.db, self.engine.runbook, other)
                if view is not None and view.surface_ref:
                    self._edit_gate(view.surface_ref, other, run_id)
        if gate_id is not None:
            self.gate_changed(gate_id)

    # ------------------------------------------------------------------ a run's home channel

    def claim_home(self, env_name: str, channel: str, requested_by: str) -> str | None:
        """Posts "starting…" in the channel a run of `env_name` is to live in, before the run
        exists: Slack's answer says whether the bot may post there. Returns None, or why not
        (as mrkdwn for the person who typed) when Slack refuses the channel. The run's parent
        message becomes this one."""
        self.pacer.wait(channel)
        where = channel_ref(channel)
        try:
            resp = self._call_waiting(
                "chat_postMessage",
                channel=channel,
                text=f"⏳ Starting the cutover of {escape(self._mask(env_name))} for "
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
            self.pacer.wait(resp["channel"])
            self._call_waiting(
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
                self._delete(parent)
                return refusal
        with self._locks_guard:
            old = self._homes.pop(env_name, None)
            self._homes[env_name] = parent
        if old:
            self._delete(old)
        return None

    def _refused_home(self, exc: Exception, where: str, env_name: str) -> str | None:
        """None when Slack is failing rather than refusing (429, 5xx, a connection error,
        `fatal_error`…: the run may start and its messages follow when Slack is back);
        otherwise why no run can live in that channel, with what to do about it."""
        if not isinstance(exc, SlackCallFailed) or exc.transient:
            log.warning("cannot post the starting message: %s", self._mask(str(exc)))
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
        with self._locks_guard:
            ref = self._homes.pop(env_name, None)
        if ref:
            self._delete(ref)

    def _delete(self, ref: str) -> None:
        try:
            self._call_waiting("chat_delete", channel=split_ref(ref)[0], ts=split_ref(ref)[1])
        except Exception as exc:
            log.warning("cannot delete a starting message: %s", self._mask(str(exc)))

    # ------------------------------------------------------------------ replies to one person

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
        """Answers the person who typed or clicked: via response_url, else chat.postEphemeral.
        `blocks` (a Run page button) go under the text, which is then repeated as a section.

        A reply that cannot be delivered is audited (surface.failed) and logged.
        """
        body = clip(self._mask(text), REPLY_TEXT)
        extra: dict[str, Any] = (
            {"blocks": [*sections(body.split("\n"))[: MAX_BLOCKS - len(blocks)], *blocks]}
            if blocks
            else {}
        )
        errors: list[str] = []
        if response_url:
            try:
                hook = WebhookClient(  # its DEBUG log line would carry the URL: kept quiet
                    url=response_url, timeout=10, retry_handlers=retry_handlers(), logger=_QUIET
                )
                resp = hook.send_dict(
                    {
                        "text": body,
                        "response_type": "ephemeral" if ephemeral else "in_channel",
                        "replace_original": False,
                        **extra,
                    }
                )
                if resp.status_code == 200:
                    return True
                errors.append(f"response_url answered {resp.status_code}")
            except Exception as exc:
                errors.append(f"response_url: {str(exc).replace(response_url, '[url]')}")
        if channel and user:
            try:
                if ephemeral:
                    self._call_waiting(
                        "chat_postEphemeral", channel=channel, user=user, text=body, **extra
                    )
                else:
                    self.pacer.wait(channel)
                    self._call_waiting("chat_postMessage", channel=channel, text=body, **extra)
                return True
            except Exception as exc:
                errors.append(f"chat.postEphemeral: {exc}")
        self._audit_failure("reply", "; ".join(errors) or "nowhere to reply", run_id)
        return False

    # ------------------------------------------------------------------ views (modals, Home)

    def open_view(self, trigger_id: str, view: dict[str, Any], run_id: int | None = None) -> str:
        """Opens a modal (views.open) with a click's or command's trigger_id: "" when it is
        open, else Slack's error (`expired_trigger_id`: more than 3 s after the click).
        Never waits on a Retry-After; a failure is audited (surface.failed)."""
        try:
            self._call("views_open", trigger_id=trigger_id, view=mask_blocks(view, self._mask))
            return ""
        except (RateLimited, Refused, SlackCallFailed) as exc:
            error = getattr(exc, "error", "ratelimited")
            self._audit_failure("views.open", str(exc), run_id)
            return str(error)

    def publish_home(
        self, user: str, view: dict[str, Any], *, view_hash: str | None = None
    ) -> tuple[bool, str]:
        """Publishes a person's Home tab (views.publish): (True, the view's new hash), or
        (False, Slack's error), logged. With `view_hash` (the hash of the view last
        published), Slack refuses it (`hash_conflict`) if another publish came in between."""
        try:
            resp = self._call(
                "views_publish",
                user_id=user,
                view=mask_blocks(view, self._mask),
                hash=view_hash,
            )
            return True, str((resp.get("view") or {}).get("hash") or "")
        except (RateLimited, Refused, SlackCallFailed) as exc:
            error = str(getattr(exc, "error", "ratelimited"))
            if error != "hash_conflict":
                log.warning("cannot publish the Home tab: %s", self._mask(str(exc)))
            return False, error

    # ------------------------------------------------------------------ internals

    def _sync_run(self, run_id: int) -> str | None:
        """Posts or edits the run's parent message; returns its ref. Caller holds the lock."""
        view = run_view(self.engine.db, self.engine.runbook, run_id)
        if view is None:
            return None
        if view.surface_ref is None:
            with self._locks_guard:
                home = self._homes.pop(view.environment, None)
            if home is not None:  # the "starting…" message becomes the run's message
                winner = self._learn_run(run_id, self.engine.set_surface_ref(home, run_id=run_id))
                if winner != home:
                    self._delete(home)
                self._edit_run(winner, run_id)
                return winner
        text, blocks = run_message(
            view,
            datetime.now(UTC),
            self._mask,
            self._run_waiting(run_id),
            self._page_url(view),
            self._revertable(view),
        )
        return self._post_or_update(
            view.surface_ref,
            view.channel,
            text,
            blocks,
            thread_ts=None,
            own=lambda ref: self._learn_run(
                run_id, self.engine.set_surface_ref(ref, run_id=run_id)
            ),
        )

    def _post_or_update(
        self,
        ref: str | None,
        channel: str | None,
        text: str,
        blocks: list[Block],
        *,
        thread_ts: str | None,
        own: Any,
    ) -> str:
        blocks = mask_blocks(blocks, self._mask)
        if ref:
            ch, ts = split_ref(ref)
            self._call("chat_update", channel=ch, ts=ts, text=text, blocks=blocks)
            return ref
        if not channel:
            raise RuntimeError(
                "no channel: run it from a channel, or set the environment's channel"
            )
        resp = self._call(
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
            self._call("chat_delete", channel=ch, ts=ts)
            wch, wts = split_ref(winner)
            self._call("chat_update", channel=wch, ts=wts, text=text, blocks=blocks)
        return winner

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One Web API call. Raises RateLimited (429), Refused (Slack will never take it) or
        SlackCallFailed; 5xx and connection errors were retried by the client."""
        args = {k: v for k, v in kwargs.items() if v is not None}
        channel = args.get("channel")
        if isinstance(channel, str) and not is_channel_id(channel):
            args["channel"] = self.channels.resolve(channel)  # a runbook's #name: its id
        name = method.replace("_", ".")
        try:
            return getattr(self._api, method)(**args)
        except SlackApiError as exc:
            resp = exc.response
            error = str((resp.get("error") if resp is not None else None) or "error")
            status = resp.status_code if resp is not None else "?"
            if status == 429:
                headers = resp.headers if resp is not None else {}
                raise RateLimited(name, _retry_after(headers)) from None
            if error in REFUSALS:
                raise Refused(name, error, status) from None
            if method == "chat_update" and error in GONE:
                raise Gone(name, error, status) from None
            raise SlackCallFailed(name, error, status) from None

    def _call_waiting(self, method: str, **kwargs: Any) -> Any:
        """`_call`, waiting out up to three 429s. Only where no lock is held."""
        for attempt in range(4):
            try:
                return self._call(method, **kwargs)
            except RateLimited as exc:
                if attempt == 3:
                    raise SlackCallFailed(exc.method, "ratelimited", 429) from None
                self.clock.sleep(exc.retry_after)
        return None

    def _audit_failure(self, call: str, error: str, run_id: int | None) -> None:
        log.warning("slack %s failed: %s", call, self._mask(error))
        self.engine.record_surface_failure(call, self._mask(error), run_id)


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


def _retry_after(headers: Any) -> float:
    """Seconds from a Retry-After header (1 if it is missing or unreadable)."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value[0] if isinstance(value, list) else value))
            except (TypeError, ValueError):
                break
    return 1.0
