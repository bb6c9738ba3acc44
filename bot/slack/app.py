"""The Bolt app: `/cutover`, the gate buttons and the manual-step checkboxes.

Every slash command and click is acknowledged at once (Slack allows 3 s): the
listener only parses and calls ack(); the engine work runs after, on a small
pool of its own, and answers the person through the response_url. Identity is
built by a middleware from the signed body's team id + user id, never from a
name; approver user groups are read from Slack through a cache (bot.slack.groups:
one lookup per group per minute, none for people listed by id), so permission is
re-checked on every click against a list at most a minute old. The engine's gate
lock makes a retried delivery (X-Slack-Retry-Num) or fifty clicks at once decide a
gate exactly once.

Rollback, "Continue with comment", `/cutover abort ENV` without --reason and
`/cutover schedule` without arguments open a modal (bot.slack.modals): the trigger_id is
good for 3 seconds, so forms are opened on a pool of their own, right after the ack and
before any slow work. A submission is checked before its ack (bad input: `response_action:
errors` on the field), then worked on like a click, with permission checked again. The
App Home tab (bot.slack.home) is drawn when a person opens it.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient

from bot.checklists import Checklists, TickResult
from bot.domain import approvals
from bot.domain.errors import CutoverError, Unavailable
from bot.engine import Engine
from bot.schedules import ScheduleService, already_scheduled
from bot.slack import modals, signoff_actions
from bot.slack.blocks import (
    CHECKLIST_TICK,
    COMMENT,
    CONTINUE,
    OPTIONS_PER_GROUP,
    OVERRIDE,
    RETRY,
    REVERT,
    ROLLBACK,
    RUN_PAGE,
    SHOW_OUTPUT,
    START,
    TICK,
    Block,
    channel_ref,
    escape,
    fit_lines,
    page_buttons,
    parse_checklist_block,
    parse_gate_value,
    parse_number_and_id,
    parse_output_value,
    parse_schedule_value,
    parse_tick_block,
    parse_tick_value,
    slackify,
    stale_text,
)
from bot.slack.groups import UNKNOWN_TEXT as GROUPS_UNKNOWN
from bot.slack.groups import GroupCache, GroupsBroken, GroupsUnknown
from bot.slack.home import HomeData, HomeRefresher, home_data, home_view
from bot.slack.modals import FormMeta
from bot.slack.post_task_actions import TASK_DONE, done_click
from bot.slack.signoff import RUN_SIGNOFF_ACTION, SIGNOFF_ACTION, note_from
from bot.slack.surface import SlackSurface, make_client, retry_handlers
from bot.slack.tick_value_form import TICK_VALUE_FORM, TickValueForms, wants_form
from bot.store import home_viewers, step_outputs
from bot.store.rate_slots import SharedSlots
from bot.store.replays import SEEN, TOO_OLD, SeenRequests
from bot.surface import Actor
from bot.text import in_words, who
from bot.views import (
    ScheduleView,
    active_runs,
    gate_view,
    run_view,
    schedule_view,
)
from commands.handlers import CommandService
from commands.parser import (
    USAGE,
    Abort,
    Command,
    Deviation,
    EmergencyForm,
    FieldError,
    Help,
    Lock,
    Note,
    Revert,
    ScheduleForm,
    SignOff,
    Start,
    StatusCmd,
    TickCmd,
    Unlock,
    Unschedule,
    UntickCmd,
    UsageError,
    compose_time,
    epoch_time,
    parse,
)
from commands.parser import Schedule as ScheduleCmd
from phases.runbook import RunbookError

log = logging.getLogger(__name__)

# Home tabs kept up to date when a run changes: of the people who opened Home within this
# time, at most this many (the latest first); everyone else gets a fresh Home on opening it.
HOME_RECENT = timedelta(hours=24)
HOME_REFRESH_LIMIT = 50
# The longest one replica keeps the turn to publish a person's Home (bot.store.rate_slots):
# past it (a replica died mid-publish) another may publish. A publish slower than that is
# still refused by Slack if it was overtaken (views.publish's `hash`).
HOME_TURN = 30.0
PROCESS_BEFORE_RESPONSE = True  # see CutoverSlackApp.__init__; bench/slack_bench.py reads it
DECISIONS = {CONTINUE: "continue", RETRY: "retry"}  # one click; Rollback opens a form
OUT_OF_DATE = "This message is out of date; nothing was changed. See `/cutover status`."
OPENED_TOO_LATE = (
    "I couldn't open the form in time (Slack allows 3 seconds after a click; it said "
    "`{error}`); nothing was changed. Click again"
)
ALREADY_RECEIVED = "That request was already received; nothing was done again."
UNAVAILABLE = "The bot's database is unavailable; nothing was done. Try again."
TOO_OLD_TEXT = (
    "That request was signed too long ago to be told apart from a replay (this bot's clock "
    "may be off); nothing was done. Try again."
)
NO_IDENTITY = "Slack did not say who you are (no team or user id); nothing was done."


CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{6,}")
CHANNEL_UNREADABLE = frozenset(
    {"channel_not_found", "missing_scope", "method_not_supported_for_channel_type"}
)
MEMBER_PAGES = 20  # conversations.members pages read per channel (1,000 people each)
Signed = tuple[str | None, str | None]  # a request's signature and its signed timestamp


def stakeholders_channel(value: str, body: dict[str, Any], env_channel: str | None) -> str:
    """The stakeholder channel of `/cutover schedule … --stakeholders X` as a channel id.

    The parser already turned Slack's link `<#C0123|general>` into its id. A bare name
    (`#general`: the manifest does not ask Slack to escape channels) is only known for the
    channel the command was typed in and the environment's own channel; any other name
    would need a channel listing before the 3 s answer, so the person is told what to type.
    """
    if CHANNEL_ID.fullmatch(value):
        return value
    name = value.removeprefix("#").lower()
    here, here_id = body.get("channel_name"), body.get("channel_id")
    if isinstance(here, str) and isinstance(here_id, str) and name == here.lower():
        return here_id
    if env_channel and name == env_channel.removeprefix("#").lower():
        return env_channel
    raise UsageError(
        f"I cannot tell which channel #{name} is: by name I only know this channel and the "
        f"environment's own. Give its id instead, e.g. --stakeholders C0123ABCD (open "
        f"#{name}, click its name: the Channel ID is at the bottom), and invite me there "
        "with /invite @cutover-bot"
    )


def _team(slack_team: str | None) -> str | None:
    """An environment's workspace id (T…), for lookups an org-wide token must scope."""
    return slack_team if (slack_team or "").startswith("T") else None


def _enterprise_of(body: dict[str, Any]) -> str | None:
    """The Enterprise Grid org of a request, wherever this payload kind carries it."""
    candidates: list[Any] = [body.get("enterprise_id")]
    for key in ("enterprise", "team", "user"):
        obj = body.get(key)
        if isinstance(obj, dict):
            candidates += [obj.get("enterprise_id"), obj.get("id") if key == "enterprise" else None]
    return next((c for c in candidates if isinstance(c, str) and c.startswith("E")), None)


def actor_from_body(body: dict[str, Any]) -> Actor | None:
    """The person of a slash command form or an interaction payload: team + user, or
    enterprise + user for Grid's org-wide W… ids (one person in every workspace of the org).
    The name is display only."""
    user = body.get("user")
    if isinstance(user, dict):  # block_actions
        team_obj = body.get("team")
        team = user.get("team_id") or (team_obj.get("id") if isinstance(team_obj, dict) else None)
        user_id, name = user.get("id"), user.get("username") or user.get("name")
    else:  # slash command
        team, user_id, name = body.get("team_id"), body.get("user_id"), body.get("user_name")
    if not isinstance(team, str) or not isinstance(user_id, str) or not team or not user_id:
        return None
    return Actor.slack(
        team, user_id, enterprise=_enterprise_of(body), name=name if isinstance(name, str) else None
    )


class AcksFirst:
    """Work after an ack waits while requests are being answered: Slack's deadline is on the
    answer, not on the work.

    On a small machine the work of one click (database, Web API calls) would otherwise take
    the CPU and the GIL from the acks of the clicks arriving with it. The HTTP server enters
    this around each request; `wait()` returns once no request has been in flight for
    `quiet` seconds (a burst arrives spread out), or after `max_wait` under steady load.
    A request that came alone (none other began within `quiet` before it) holds nothing
    back once it is answered: there is no burst to make way for, and a click's next
    checkpoint would wait the quiet period for nothing.
    """

    def __init__(self, quiet: float = 0.01, max_wait: float = 0.25) -> None:
        self.quiet, self.max_wait = quiet, max_wait
        self._busy = 0
        self._last = 0.0  # time.monotonic() when the last request was answered
        self._began = (-1e9, -1e9)  # when the two latest requests began
        self._cond = threading.Condition()

    def __enter__(self) -> AcksFirst:
        with self._cond:
            self._busy += 1
            self._began = (self._began[1], time.monotonic())
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._busy -= 1
            self._last = time.monotonic()
            if self._busy == 0:  # waiters re-check then; no wake-ups during a burst
                self._cond.notify_all()

    def wait(self) -> None:
        deadline = time.monotonic() + self.max_wait
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return
                alone = self._began[1] - self._began[0] >= self.quiet
                if self._busy == 0 and (alone or now - self._last >= self.quiet):
                    return
                pause = self.quiet - (now - self._last) if self._busy == 0 else deadline - now
                self._cond.wait(min(pause, deadline - now))


class ReplayGuard:
    """Refuses the same signed request twice, across restarts and replicas (the database).

    Only requests that passed Bolt's signature check get here, so a forger cannot fill it.
    Socket Mode requests carry no signature and are not checked here. Time is the
    database's (bot.store.replays): replicas' clocks may disagree.
    """

    def __init__(self, seen: SeenRequests) -> None:
        self.seen_requests = seen

    def refusal(self, signature: str | None, signed_at: str | None = None) -> str | None:
        """None if this signature is new (it is recorded now); else what to tell the person."""
        if not signature:
            return None
        when = None
        if signed_at and signed_at.isdigit():
            when = datetime.fromtimestamp(int(signed_at), UTC)
        verdict = self.seen_requests.receive(signature, when)
        if verdict == SEEN:
            log.warning("replayed Slack request ignored")
            return ALREADY_RECEIVED
        if verdict == TOO_OLD:
            log.warning("Slack request older than the replay window (by the database's clock)")
            return TOO_OLD_TEXT
        return None


@dataclass(frozen=True)
class Where:
    """Where to answer the person: response_url, else an ephemeral in the channel."""

    response_url: str | None
    channel: str | None
    user: str | None


def _checklist_items(schedule_id: int, options: Any) -> set[str]:
    """The item ids among a checkbox group's options (selected or initial) of one schedule."""
    items: set[str] = set()
    for option in options if isinstance(options, list) else []:
        parsed = parse_number_and_id(option.get("value") if isinstance(option, dict) else None)
        if parsed and parsed[0] == schedule_id:
            items.add(parsed[1])
    return items


def _message_ref(body: dict[str, Any]) -> tuple[str, str] | None:
    """(channel, ts) of the message a button was clicked in."""
    container = body.get("container")
    if isinstance(container, dict):
        channel, ts = container.get("channel_id"), container.get("message_ts")
        if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
            return channel, ts
    return None


def _where(body: dict[str, Any]) -> Where:
    """Where to answer; a click's `channel` can be `{}` (slack-morphism-rust #370), so the
    container's channel_id is the fallback."""
    user = body.get("user")
    channel = body.get("channel")
    container = body.get("container")
    return Where(
        body.get("response_url"),
        (channel.get("id") if isinstance(channel, dict) else None)
        or body.get("channel_id")
        or (container.get("channel_id") if isinstance(container, dict) else None),
        user.get("id") if isinstance(user, dict) else body.get("user_id"),
    )


def typed_text(text: object) -> str:
    """What the person typed: Slack escapes `&`, `<` and `>` in a command's text as `&amp;`,
    `&lt;` and `&gt;` (its own links and mentions keep their brackets), so a reason typed as
    "db < 5% & rising" is decoded once here, before it is parsed, audited or shown."""
    if not isinstance(text, str):
        return ""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class _Identify(Middleware):
    """After Bolt's signature check: puts the person (team or enterprise + user) and the
    request's signature in the context. Replays are refused after the ack, where the work
    starts (`CutoverSlackApp._guard`), so no database call delays an answer to Slack.
    A class, not a function middleware: Bolt builds no keyword arguments for it."""

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # noqa: A002
    ) -> BoltResponse | None:
        sig = (req.headers.get("x-slack-signature") or [""])[0]
        req.context["signature"] = sig or None
        req.context["signed_at"] = (req.headers.get("x-slack-request-timestamp") or [""])[0]
        actor = actor_from_body(req.body)
        if actor is not None:
            req.context["actor"] = actor
        return next()


class _NotTheTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that our client's token wins; it does."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


class CutoverSlackApp:
    """Wires the engine to Bolt. `app` is the `slack_bolt.App` to serve (HTTP or Socket Mode)."""

    def __init__(
        self,
        engine: Engine,
        surface: SlackSurface,
        *,
        token: str,
        signing_secret: str,
        client: WebClient | None = None,
        workers: int = 8,
        token_verification: bool = True,
    ) -> None:
        self.engine = engine
        self.surface = surface
        self.client = client or surface.client
        if self.client.token is None:
            self.client.token = token
        # Group lookups go through a client that never sleeps on Retry-After (GroupCache).
        self._groups_client = make_client(
            token, str(self.client.base_url), retry_handlers(rate_limited=0, server_errors=0)
        )
        self.groups = GroupCache(self._fetch_group)
        surface.directory = self.directory_problems  # preflight asks the surface (engine side)
        # Who is in a channel, for the Home tab (a person sees the runs of channels they are
        # in); one conversations.members read per channel per minute. A channel that cannot
        # be read (private and the bot not in it, scope missing) counts as nobody's.
        self.channel_members = GroupCache(
            self._fetch_members, what="channel", permanent=CHANNEL_UNREADABLE
        )
        self.commands = CommandService(engine, surface.run_links)
        self.tick_values = TickValueForms(self)  # a tick that carries a value: its form
        self.replays = ReplayGuard(SeenRequests(engine.db))
        self._start_locks: dict[int, threading.Lock] = {}
        self.acks_first = AcksFirst()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-work")
        # Forms open here, never queued behind engine work: a trigger_id lasts 3 seconds.
        self.forms = ThreadPoolExecutor(max_workers=4, thread_name_prefix="slack-forms")
        self._work: queue.SimpleQueue[
            tuple[Signed, Callable[..., None], tuple[Any, ...]] | None
        ] = queue.SimpleQueue()
        self._hand_out_thread = threading.Thread(
            target=self._hand_out, name="slack-hand-out", daemon=True
        )
        self._hand_out_thread.start()
        # Home tabs of recent viewers, republished when a run changes (off every click's path).
        # Rate budgets every replica shares (views.publish's tier, each person's Home).
        self.slots = SharedSlots(engine.db)
        self.homes = HomeRefresher(
            self._home_viewers, self._draw_home, self._publish_drawn, slots=self.slots
        )
        surface.on_change = self.homes.poke
        bolt_log = logging.getLogger("cutover.bolt")
        if not any(isinstance(f, _NotTheTokenWarning) for f in bolt_log.filters):
            bolt_log.addFilter(_NotTheTokenWarning())
        self.app = App(  # the client carries the bot token
            signing_secret=signing_secret,
            client=self.client,
            # The listeners only parse, ack() and hand the work to self.pool, so they run in
            # the request's own thread: no hand-off to another pool and no 10 ms ack polling.
            process_before_response=PROCESS_BEFORE_RESPONSE,
            token_verification_enabled=token_verification,
            logger=bolt_log,
        )
        self._register()

    def close(self) -> None:
        self._work.put(None)
        self._hand_out_thread.join()
        self.forms.shutdown(wait=True)
        self.pool.shutdown(wait=True)
        self.homes.close()
        self.surface.outbox.settle(timeout=5.0)  # the last edits, then the senders stop
        self.surface.outbox.close()

    # ------------------------------------------------------------------ wiring

    def _register(self) -> None:
        app = self.app

        app.use(_Identify())

        @app.command("/cutover")
        def on_command(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            try:
                cmd = parse(typed_text(body.get("text")), now=self.engine.now())
                if isinstance(cmd, ScheduleCmd) and cmd.stakeholders:
                    cmd = replace(
                        cmd,
                        stakeholders=stakeholders_channel(
                            cmd.stakeholders, body, self._env_channel(cmd.env)
                        ),
                    )
            except UsageError as exc:
                ack(text=escape(str(exc)), response_type="ephemeral")
                return
            if isinstance(cmd, Help):
                ack(text=USAGE, response_type="ephemeral")
                return
            actor = context.get("actor")
            if not isinstance(actor, Actor):
                ack(text=NO_IDENTITY, response_type="ephemeral")
                return
            ack()
            if isinstance(cmd, Abort) and cmd.reason is None:
                self._form(context, self._open_abort, cmd, actor, body)
            elif isinstance(cmd, ScheduleForm):
                self._form(context, self._open_schedule, cmd, actor, body)
            elif isinstance(cmd, Revert) and cmd.reason is None:
                self._form(context, self._open_revert_command, cmd, actor, body)
            elif isinstance(cmd, EmergencyForm):
                self._form(context, self._open_emergency, cmd, actor, body)
            else:
                self._submit(context, self._command, cmd, actor, body)

        def on_click(
            work: Callable[..., None],
        ) -> Callable[[Ack, dict[str, Any], dict[str, Any], BoltContext], None]:
            def listener(
                ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext
            ) -> None:
                ack()  # at once; the click is worked on after Slack has its answer
                actor = context.get("actor")
                if isinstance(actor, Actor):
                    self._submit(context, work, action, actor, body)
                else:
                    self._submit(context, self._answer, body, NO_IDENTITY)

            return listener

        for action_id in DECISIONS:
            app.action(action_id)(on_click(self._decide))

        def on_form_click(
            work: Callable[..., None],
        ) -> Callable[[Ack, dict[str, Any], dict[str, Any], BoltContext], None]:
            def listener(
                ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext
            ) -> None:
                ack()
                actor = context.get("actor")
                if isinstance(actor, Actor):
                    self._form(context, work, action, actor, body)
                else:
                    self._submit(context, self._answer, body, NO_IDENTITY)

            return listener

        app.action(ROLLBACK)(on_form_click(self._open_rollback))
        app.action(re.compile(rf"^{SHOW_OUTPUT}(:\d{{1,2}})?$"))(on_form_click(self._show_output))
        app.action(COMMENT)(on_form_click(self._open_comment))
        app.action(OVERRIDE)(on_form_click(self._open_override))
        app.action(REVERT)(on_form_click(self._open_revert_click))
        for callback_id, check in (
            (modals.ROLLBACK_FORM, self._check_gate_form),
            (modals.COMMENT_FORM, self._check_gate_form),
            (modals.OVERRIDE_FORM, self._check_override_form),
            (modals.ABORT_FORM, self._check_abort_form),
            (modals.SCHEDULE_FORM, self._check_schedule_form),
            (modals.REVERT_FORM, self._check_revert_form),
            (modals.EMERGENCY_FORM, self._check_emergency_form),
            (TICK_VALUE_FORM, self.tick_values.check),
        ):
            app.view(callback_id)(self._on_submission(check))

        @app.event("app_home_opened")
        def on_home(event: dict[str, Any], context: BoltContext) -> None:
            user = event.get("user")
            team = home_viewers.where(context.team_id, context.enterprise_id)
            if event.get("tab", "home") == "home" and isinstance(user, str) and user:
                # Off the forms pool (kept free for trigger_ids that last 3 s): the Home tab
                # is drawn with the rest of the work, after the answers in flight.
                self._work.put(((None, None), self._home_opened, (user, team)))

        plain_tick, value_tick = on_click(self._tick), on_form_click(self.tick_values.open_or_tick)

        @app.action(TICK)
        def on_tick(
            ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext
        ) -> None:  # Bolt passes arguments by name
            tick = value_tick if wants_form(self.engine.runbook, action) else plain_tick
            tick(ack, body, action, context)

        app.action(START)(on_click(self._schedule_start))
        app.action(CHECKLIST_TICK)(on_click(self._checklist_tick))
        app.action(SIGNOFF_ACTION)(on_click(self._signoff))
        app.action(TASK_DONE)(on_click(lambda *args: done_click(self, *args)))  # issue 24
        app.action(RUN_SIGNOFF_ACTION)(
            on_click(lambda act, who, body: signoff_actions.sign_run(self, act, who, body))
        )

        @app.action(re.compile(rf"^{RUN_PAGE}(:\d)?$"))
        def on_run_page(ack: Ack) -> None:
            ack()  # a link button: Slack opened the URL; the click itself asks for nothing

        @app.error
        def on_error(error: Exception, body: dict[str, Any]) -> None:
            log.error("slack listener failed: %s", self.engine.masker.mask(repr(error)))

    @staticmethod
    def _signed(context: BoltContext) -> Signed:
        """(signature, its X-Slack-Request-Timestamp) of the request, for the replay guard."""
        signature, at = context.get("signature"), context.get("signed_at")
        return (
            signature if isinstance(signature, str) else None,
            at if isinstance(at, str) else None,
        )

    def _submit(self, context: BoltContext, fn: Callable[..., None], *args: Any) -> None:
        self._work.put((self._signed(context), fn, args))

    def _form(self, context: BoltContext, fn: Callable[..., None], *args: Any) -> None:
        """Work that opens a form: at once, on its own pool (the trigger_id lasts 3 s)."""
        self.forms.submit(self._guard, self._signed(context), fn, *args)

    def _hand_out(self) -> None:
        """One thread holds the work back while answers are in flight (acks first), then
        hands everything queued to the pool: a burst wakes one waiter, not every worker."""
        while True:
            first = self._work.get()
            self.acks_first.wait()
            batch = [first]
            while not self._work.empty():
                batch.append(self._work.get_nowait())
            for item in batch:
                if item is None:  # close(): everything before it has been handed out
                    return
                self.pool.submit(self._guard, item[0], item[1], *item[2])

    def _guard(self, signed: Signed, fn: Callable[..., None], *args: Any) -> None:
        body = args[-1] if args and isinstance(args[-1], dict) else {}
        try:
            refusal = self.replays.refusal(*signed)  # the same signed bytes again, or stale
            if refusal is not None:
                self._answer(body, refusal)
                return
        except Unavailable:
            log.warning("cannot check for a replayed request: the database is unavailable")
            self._answer(body, UNAVAILABLE)
            return
        try:
            fn(*args)
        except GroupsUnknown as exc:
            log.warning("%s", exc)
            body = args[-1] if args and isinstance(args[-1], dict) else {}
            self._answer(body, GROUPS_UNKNOWN)
        except GroupsBroken as exc:
            log.warning("%s", exc)
            self._answer(body, escape(str(exc)))
        except Exception as exc:
            log.exception("slack work %s failed", fn.__name__)
            self._answer(
                body,
                f"Something went wrong while handling that ({type(exc).__name__}); "
                "`/cutover status` shows where the run stands.",
            )

    def _md(self, text: str) -> str:
        """Engine text as mrkdwn: masked first (a secret is matched before it is escaped)."""
        return slackify(self.engine.masker.mask(text))

    def _answer(
        self,
        body: dict[str, Any],
        text: str,
        *,
        ephemeral: bool = True,
        run_id: int | None = None,
        blocks: list[Block] | None = None,
    ) -> None:
        """Answers the person who typed or clicked; `text` is mrkdwn already; `blocks` (a
        Run page button) go under it."""
        w = _where(body)
        self.surface.reply(
            text,
            response_url=w.response_url,
            channel=w.channel,
            user=w.user,
            ephemeral=ephemeral,
            run_id=run_id,
            blocks=blocks,
        )

    # ------------------------------------------------------------------ identity

    def _fetch_group(self, group: str, team: str | None) -> list[str]:
        """One usergroups.users.list call, without the SDK's Retry-After sleeps (GroupCache).
        `team_id` is passed whenever the workspace is known: an org-wide (Enterprise Grid)
        token needs it, a workspace token ignores it (docs.slack.dev usergroups.users.list)."""
        resp = self._groups_client.usergroups_users_list(usergroup=group, team_id=team)
        users = resp.get("users") or []
        return [u for u in users if isinstance(u, str)]

    def _group_lists(self, env_name: str, actor: Actor) -> dict[str, tuple[str, ...] | None] | None:
        """Members (bare user ids) of the environment's approver groups, from the cache
        (None for a group that cannot be read now); None where there are no groups or the
        actor is from another workspace."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return None
        if not env.approver_groups or not actor.in_workspace(env.slack_team):
            return None
        # The workspace the groups live in: the environment's, unless that is an Enterprise
        # Grid org id (E…), then the workspace of the click.
        team = env.slack_team if (env.slack_team or "").startswith("T") else actor.team
        lists: dict[str, tuple[str, ...] | None] = {}
        for group in env.approver_groups:
            try:
                lists[group] = self.groups.members(group, team)
            except GroupsUnknown:
                lists[group] = None
        return lists

    def directory_problems(self, env_name: str) -> list[str]:
        """Approver groups of the environment that Slack will never let the bot read
        (preflight). A busy Slack is not such a problem (the click asks again), and groups of
        an org-wide environment (`slack_team: E…`) live in the workspace of each click, so
        they are looked up there, not here."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return []
        team = env.slack_team
        if team is not None and not team.startswith("T"):
            return []
        problems = []
        for group in env.approver_groups:
            try:
                self.groups.members(group, team)
            except GroupsUnknown as exc:
                log.warning("preflight: %s", exc)
                continue
            problem = self.groups.problem(group)
            if problem is not None:
                problems.append(problem)
        return problems

    def _listed(self, actor: Actor, env_name: str) -> bool:
        """Listed by id among the environment's approvers: no group lookup needed."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return False
        return any(actor.is_(entry) for entry in env.approver_set())

    def with_groups(self, actor: Actor, env_name: str) -> Actor:
        """Adds the environment's approver groups the actor belongs to. Raises GroupsUnknown
        when it depends on a group that cannot be read now."""
        if self._listed(actor, env_name):
            return actor
        return self.for_start(actor, env_name)[0]

    def for_start(self, actor: Actor, env_name: str) -> tuple[Actor, list[str] | None]:
        """The actor with their approver groups, and the qualified ids of every member of the
        environment's approver groups (for the quorum check at start; None: no groups, or
        not every group could be read)."""
        lists = self._group_lists(env_name, actor)
        if lists is None:
            return actor, None
        groups = frozenset(g for g, users in lists.items() if users and actor.user in users)
        if not groups and None in lists.values() and not self._listed(actor, env_name):
            raise GroupsUnknown(f"approver groups of {env_name}")
        broken = [p for g in lists if (p := self.groups.problem(g)) is not None]
        if not groups and broken and not self._listed(actor, env_name):
            # Counted as empty, the group would make them "not an approver": say what is wrong.
            raise GroupsBroken(
                f"I can't tell whether you approve for {env_name}: "
                + "; ".join(broken)
                + ". Nothing was done; an approver listed by id can act meanwhile."
            )
        team = actor.team or actor.id.partition(":")[0]
        if None in lists.values():
            return replace(actor, groups=groups), None
        members = {
            Actor.slack(team, uid, enterprise=actor.enterprise).id
            for users in lists.values()
            for uid in users or ()
        }
        return replace(actor, groups=groups), sorted(members)

    # ------------------------------------------------------------------ work (after ack)

    def _may_start(self, env_name: str, actor: Actor, members: list[str] | None) -> bool:
        """Whether the engine would let `actor` start a run (it checks again, and audits a
        refusal): only then is "starting…" posted in the run's channel."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return False
        refusal = approvals.may_start(env_name, env, actor) or approvals.quorum_shortfall(
            env, actor, members
        )
        return refusal is None

    def _env_channel(self, env_name: str, *, resolve: bool = False) -> str | None:
        """The environment's channel as the runbook gives it; with `resolve`, a #name as its
        id (looked up once per process: a rename changes nothing; bot.slack.channels). Not
        resolved where Slack waits for the answer (a lookup may take longer than 3 s)."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return None
        if resolve and env.channel:
            return self.surface.channels.resolve(env.channel, _team(env.slack_team))
        return env.channel

    def _schedule(self, schedule_id: int) -> ScheduleView | None:
        return schedule_view(self.engine.db, schedule_id)

    def _command_env(self, cmd: Command) -> str | None:
        """The environment whose approvers a command needs (None: it needs none), so that a
        member of an approver group is one on every command, not only on buttons."""
        if isinstance(cmd, Abort | ScheduleCmd | Lock | Unlock | Revert):
            return cmd.env
        if isinstance(cmd, Unschedule):
            sched = self._schedule(cmd.schedule_id)
            return sched.environment if sched is not None else None
        if isinstance(cmd, SignOff | Note | Deviation):
            view = run_view(self.engine.db, self.engine.runbook, cmd.run_id)
            return view.environment if view is not None else None
        if isinstance(cmd, TickCmd | UntickCmd):
            if cmd.target.isdigit():
                sched = self._schedule(int(cmd.target))
                return sched.environment if sched is not None else None
            return cmd.target if cmd.target in self.engine.runbook.environments else None
        return None

    def _command(self, cmd: Command, actor: Actor, body: dict[str, Any]) -> None:
        members: list[str] | None = None
        home: str | None = None
        if isinstance(cmd, Start):
            actor, members = self.for_start(actor, cmd.env)
            # The environment's channel is the run's home; where it was typed gets a link.
            home = self._env_channel(cmd.env, resolve=True) or body.get("channel_id")
            if home and self._may_start(cmd.env, actor, members):
                refusal = self.surface.claim_home(cmd.env, home, actor.id)
                if refusal is not None:
                    self._answer(body, refusal)
                    return
        else:
            env = self._command_env(cmd)
            if isinstance(cmd, SignOff) and cmd.criterion is None and env is not None:
                actor = signoff_actions.with_signoff_groups(self, actor, env)  # the run's
            elif env is not None:
                actor = self.with_groups(actor, env)
        reply = self.commands.execute(
            cmd, actor, channel=home or body.get("channel_id"), group_members=members
        )
        text = self._md(reply.text)
        if isinstance(cmd, Start) and reply.run_id is None:
            self.surface.release_home(cmd.env)
        if isinstance(cmd, Start) and reply.run_id is not None:
            view = run_view(self.engine.db, self.engine.runbook, reply.run_id)
            if home and home != body.get("channel_id"):
                text += f"\nIts messages are in {channel_ref(home)}."
            if view is not None and view.surface_ref is None:
                text += (
                    "\n⚠️ Slack did not take the run's message yet (it was failing, not "
                    "refusing the channel); `/cutover status` posts it again. Nothing continues "
                    f"without an approval; stop the run with `/cutover abort {cmd.env} --reason …`."
                )
        self._answer(
            body,
            fit_lines(text.split("\n")),
            ephemeral=reply.ephemeral,
            run_id=reply.run_id,
            blocks=[page_buttons(reply.links)] if reply.links else None,
        )
        if isinstance(cmd, StatusCmd):
            self.resync(cmd.env)
        if isinstance(cmd, Lock | Unlock):
            self.homes.poke()  # Home shows the locks

    def resync(self, env: str | None = None) -> None:
        """Re-posts what an outage left missing in Slack, for the active runs (of one env)."""
        for run_id in active_runs(self.engine.db, env):
            try:
                self.surface.resync(run_id)
            except Exception as exc:
                log.warning("cannot resync run #%s: %s", run_id, self.engine.masker.mask(str(exc)))

    def _decide(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        """A Continue or Retry click. The gate is read once, by the decision under its lock
        (which also finds a message of another attempt out of date); its run and
        environment are known to the engine without a read (issue 19)."""
        kind = DECISIONS[action.get("action_id", "")]
        parsed = parse_gate_value(action.get("value"))
        found = self.engine.gate_run(parsed[0]) if parsed else None
        if parsed is None or found is None:
            self._answer(body, OUT_OF_DATE)
            return
        self._decide_gate(parsed[0], found[0], found[1], kind, actor, body, attempt=parsed[1])

    def _decide_gate(
        self,
        gate_id: int,
        run_id: int,
        environment: str,
        kind: str,
        actor: Actor,
        body: dict[str, Any],
        reason: str | None = None,
        *,
        attempt: int | None = None,
    ) -> None:
        """One decision by `actor` (groups read now), answered to them; `reason`: a
        rollback's reason or a continue's comment, from a form; `attempt`: the one the
        clicked message shows."""
        actor = self.with_groups(actor, environment)
        known = self.surface.known_gate_ref(gate_id)
        if known is not None:  # a stray copy loses its buttons before the decision's redraws
            self._retire_copy(body, gate_id, known)
        result = self.engine.decide(
            gate_id,
            actor,
            kind,  # type: ignore[arg-type]
            reason,
            attempt=attempt,
        )
        if result.outcome == "unknown_gate":
            self._answer(body, OUT_OF_DATE)
            return
        if known is None:  # recorded by another replica: known from the decision's read
            self._retire_copy(body, gate_id, result.surface_ref)
        if result.outcome == "already_decided":
            fresh = gate_view(self.engine.db, self.engine.runbook, gate_id)
            text = stale_text(fresh) if fresh is not None else self._md(result.message)
            self._answer(body, text, run_id=run_id)
        elif result.outcome == "refused":
            self._answer(body, "🚫 " + self._md(result.message), run_id=run_id)
        elif result.outcome == "vote_recorded":
            said = " with your comment" if reason else ""
            self._answer(
                body,
                f"Your approval is recorded{said}: {result.message}. It needs "
                f"{result.quorum} approvers; waiting for another.",
                run_id=run_id,
            )
        elif not result.changed:
            self._answer(body, self._md(result.message), run_id=run_id)

    # ------------------------------------------------------------------ forms (modals)

    def _show(self, body: dict[str, Any], form: dict[str, Any], run_id: int | None) -> None:
        """Opens `form` with the request's trigger_id; if Slack refuses (too late: the
        trigger lasts 3 s), the person is told what happened and how to go on."""
        trigger = body.get("trigger_id")
        error = (
            self.surface.open_view(trigger, form, run_id)
            if isinstance(trigger, str) and trigger
            else "no trigger_id"
        )
        if error:
            hint = (
                ", or type `/cutover abort ENV --reason …`."
                if form.get("callback_id") in (modals.ROLLBACK_FORM, modals.ABORT_FORM)
                else "."
            )
            self._answer(body, OPENED_TOO_LATE.format(error=escape(error)) + hint, run_id=run_id)

    def _open_rollback(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        self._open_gate_form("rollback", action, actor, body)

    def _open_comment(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        self._open_gate_form("comment", action, actor, body)

    def _open_override(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        self._open_gate_form("override", action, actor, body)

    def _open_gate_form(
        self, kind: str, action: dict[str, Any], actor: Actor, body: dict[str, Any]
    ) -> None:
        """Rollback… / Continue with comment…: the form opens for an approver of an open gate;
        anyone else is refused here (the engine audits it) and sees no form."""
        parsed = parse_gate_value(action.get("value"))
        view = gate_view(self.engine.db, self.engine.runbook, parsed[0]) if parsed else None
        if parsed is None or view is None or view.attempt != parsed[1]:
            self._answer(
                body, "This message is out of date; nothing was changed. See `/cutover status`."
            )
            return
        self._retire_copy(body, view.id, view.surface_ref)
        if view.status != "open":
            self._answer(body, stale_text(view), run_id=view.run_id)
            return
        # No group lookup before views.open (the trigger lasts 3 s): the submission is checked
        # in full, groups included.
        env = self.engine.environment(view.environment)
        refusal = (
            approvals.may_open_override_form(view.environment, env, actor)
            if kind == "override"
            else approvals.may_open_form(view.environment, env, actor)
        )
        if refusal:
            decision = kind if kind in ("rollback", "override") else "continue"
            self.engine.refuse(actor, decision, refusal, run_id=view.run_id, gate=view.id)
            self._answer(body, "🚫 " + self._md(refusal), run_id=view.run_id)
            return
        w = _where(body)
        meta = FormMeta(
            kind,
            actor.id,
            gate=view.id,
            attempt=view.attempt,
            run=view.run_id,
            env=view.environment,
            channel=w.channel,
            response_url=w.response_url,
        )
        phase = f"{view.phase_number} ({view.phase_name})"
        mask = self.engine.masker.mask
        if kind == "override":
            form = modals.override_form(
                meta, phase, view.failed, len(view.overrides), view.override_quorum, mask
            )
        elif kind == "rollback":
            form = modals.rollback_form(meta, phase, view.on_fail == "restore_and_rollback", mask)
        else:
            form = modals.comment_form(meta, phase, mask)
        self._show(body, form, view.run_id)

    def _open_abort(self, cmd: Abort, actor: Actor, body: dict[str, Any]) -> None:
        """`/cutover abort ENV` without --reason: the rollback form, for the active run."""
        try:
            env = self.engine.environment(cmd.env)
        except RunbookError as exc:
            self._answer(body, self._md(str(exc)))
            return
        runs = active_runs(self.engine.db, cmd.env)
        refusal = approvals.may_open_form(cmd.env, env, actor)  # no group lookup: 3 s trigger
        if refusal:  # audited as the abort itself would be; no engine call that could abort
            run_id = runs[0] if runs else None
            self.engine.refuse(actor, "abort", refusal, run_id=run_id, environment=cmd.env)
            self._answer(body, "🚫 " + self._md(refusal), run_id=run_id)
            return
        if not runs:
            self._answer(body, f"No active run of {escape(cmd.env)}; nothing to abort.")
            return
        w = _where(body)
        meta = FormMeta(
            "abort",
            actor.id,
            run=runs[0],
            env=cmd.env,
            channel=w.channel,
            response_url=w.response_url,
        )
        form = modals.rollback_form(meta, "", False, self.engine.masker.mask, abort=True)
        self._show(body, form, runs[0])

    def _open_revert_click(
        self, action: dict[str, Any], actor: Actor, body: dict[str, Any]
    ) -> None:
        """The completion message's Revert…: the form, for the run the button was drawn for;
        permission and the window are checked again now (the button may be hours old)."""
        value = action.get("value")
        run_id = int(value) if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value) else None
        view = run_view(self.engine.db, self.engine.runbook, run_id) if run_id else None
        if run_id is None or view is None:
            self._answer(
                body, "This message is out of date; nothing was changed. See `/cutover status`."
            )
            return
        self._open_revert(run_id, view.environment, actor, body, redraw=True)

    def _open_revert_command(self, cmd: Revert, actor: Actor, body: dict[str, Any]) -> None:
        """`/cutover revert ENV` without --reason: the Revert form, for ENV's last run."""
        try:
            self.engine.environment(cmd.env)
        except RunbookError as exc:
            self._answer(body, self._md(str(exc)))
            return
        target = self.engine.revert_target(cmd.env)
        if target is None:
            said = f"{cmd.env} has no completed cutover to revert; nothing was started"
            self.engine.refuse(actor, "revert", said, environment=cmd.env)
            self._answer(body, "🚫 " + self._md(said))
            return
        self._open_revert(target, cmd.env, actor, body)

    def _open_revert(
        self, run_id: int, env_name: str, actor: Actor, body: dict[str, Any], redraw: bool = False
    ) -> None:
        env = self.engine.environment(env_name)
        # No group lookup before views.open (the 3 s trigger): the submission checks in full.
        refusal = approvals.may_open_form(env_name, env, actor) or self.engine.revert_refusal(
            run_id
        )
        if refusal:
            self.engine.refuse(actor, "revert", refusal, run_id=run_id, environment=env_name)
            self._answer(body, "🚫 " + self._md(refusal), run_id=run_id)
            if redraw:  # a button past its window: the message loses it
                self.engine.notify.run_changed(run_id)
            return
        w = _where(body)
        meta = FormMeta(
            "revert",
            actor.id,
            run=run_id,
            env=env_name,
            channel=w.channel,
            response_url=w.response_url,
        )
        form = modals.revert_form(
            meta, env.quorum, self.engine.runbook.revert_window_hours, self.engine.masker.mask
        )
        self._show(body, form, run_id)

    def _open_emergency(self, cmd: EmergencyForm, actor: Actor, body: dict[str, Any]) -> None:
        """`/cutover start ENV --emergency` without --reason: the justification form, while
        a change freeze is in force (else there is nothing to break: a plain start)."""
        try:
            env = self.engine.environment(cmd.env)
        except RunbookError as exc:
            self._answer(body, self._md(str(exc)))
            return
        refusal = approvals.may_open_override_form(cmd.env, env, actor)
        if refusal:
            said = f"you may not break the change freeze of {cmd.env}; nothing was started"
            self.engine.refuse(actor, "start", said, environment=cmd.env)
            self._answer(body, "🚫 " + self._md(said))
            return
        frozen = self.engine.frozen(cmd.env)
        if frozen is None:
            self._answer(
                body,
                f"No change freeze is in force for {escape(cmd.env)}: nothing to break. "
                f"Start it with `/cutover start {escape(cmd.env)}`.",
            )
            return
        w = _where(body)
        meta = FormMeta(
            "emergency", actor.id, env=cmd.env, channel=w.channel, response_url=w.response_url
        )
        said = f"the change freeze {frozen.freeze.id!r} ({frozen.freeze.reason})"
        form = modals.emergency_form(
            meta, escape(said), env.override_quorum_for(), self.engine.masker.mask
        )
        self._show(body, form, None)

    def _show_output(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        """Show output: a step's kept output in a modal, for anyone who sees the checkpoint
        (it was masked before it was kept, and is masked again here)."""
        step_run_id = parse_output_value(action.get("value"))
        kept = (
            step_outputs.by_step_run(self.engine.db, None, step_run_id)
            if step_run_id is not None
            else None
        )
        if kept is None:
            self._answer(body, "That step kept no output; nothing to show. See `/cutover status`.")
            return
        mask = self.engine.masker.mask
        heading = (
            f"*{escape(mask(kept.name))}* · `{escape(kept.address)}` · {escape(kept.status)}\n"
            f"{escape(mask(step_outputs.describe(kept)))}"
        )
        more = (
            f"All that was kept: `cutover logs {kept.run_id} {escape(kept.address)}` on the "
            f"bot's host, or `/cutover logs {kept.run_id} {escape(kept.address)}`. Masked: the "
            "environment's secrets show as [redacted]."
        )
        form = modals.output_view(heading, kept.text, more, mask)
        self._show(body, form, kept.run_id)

    def _open_schedule(self, cmd: ScheduleForm, actor: Actor, body: dict[str, Any]) -> None:
        """`/cutover schedule` without arguments: the schedule form."""
        w = _where(body)
        meta = FormMeta("schedule", actor.id, channel=w.channel, response_url=w.response_url)
        form = modals.schedule_form(
            meta,
            list(self.engine.runbook.environments),
            self.engine.masker.mask,
            today=self.engine.now(),
        )
        self._show(body, form, None)

    Check = Callable[
        [FormMeta, Actor, dict[str, Any]],
        tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None],
    ]

    def _on_submission(
        self, check: CutoverSlackApp.Check
    ) -> Callable[[Ack, dict[str, Any], dict[str, Any], BoltContext], None]:
        """A view_submission listener: `check` reads the form (bad input: errors shown on its
        fields, nothing done); then the ack closes the form and the work runs like a click's,
        answered where the form was opened from."""

        def listener(
            ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
        ) -> None:
            actor = context.get("actor")
            meta = modals.FormMeta.decode(view.get("private_metadata"))
            first = next(
                (b.get("block_id") for b in view.get("blocks") or [] if b.get("type") == "input"),
                None,
            )
            if not isinstance(actor, Actor) or meta is None or not actor.is_(meta.user):
                ack(
                    response_action="errors",
                    errors={
                        str(first): "This form is not one I opened for you; nothing was done. "
                        "Close it and start again."
                    },
                )
                return
            # The replay guard first: checking the form may write an audit row (a refusal in
            # the sender's name), and the same signed submission replayed must write none.
            replayed = self._replayed(context)
            if replayed is not None:
                ack(response_action="errors", errors={str(first): replayed})
                return
            try:
                errors, work = check(meta, actor, view)
            except Exception as exc:  # the database, most likely: say so on the form
                log.exception("checking a form failed")
                errors, work = (
                    {
                        str(first): f"I couldn't check that ({type(exc).__name__}); "
                        "nothing was done. Try again."
                    },
                    None,
                )
            if errors or work is None:
                ack(response_action="errors", errors=errors)
                return
            ack()
            reply_to = {
                "response_url": meta.response_url,
                "channel_id": meta.channel,
                "user_id": actor.user,
            }
            fn, args = work
            self._work.put(((None, None), fn, (*args, actor, reply_to)))  # guarded above

        return listener

    def _replayed(self, context: BoltContext) -> str | None:
        """Records the request's signature; the answer to give if it came before (or cannot
        be checked now), else None."""
        try:
            refusal = self.replays.refusal(*self._signed(context))
            if refusal is not None:
                return refusal
        except Unavailable:
            log.warning("cannot check for a replayed request: the database is unavailable")
            return UNAVAILABLE
        return None

    def _check_gate_form(
        self, meta: FormMeta, actor: Actor, view: dict[str, Any]
    ) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
        """Rollback's reason (required) or Continue's comment (optional), and the gate: still
        the one the form was opened for, still open."""
        field = modals.REASON if meta.kind == "rollback" else modals.COMMENT
        why = "Say why you roll back: it goes into the audit trail and the cutover record."
        text, errors = _typed(view, field, required=why if meta.kind == "rollback" else None)
        if errors:
            return errors, None
        gate = gate_view(self.engine.db, self.engine.runbook, meta.gate) if meta.gate else None
        if gate is None or gate.attempt != meta.attempt or meta.kind not in ("rollback", "comment"):
            return {
                field: "This checkpoint is out of date; nothing was changed. See `/cutover status`."
            }, None
        if gate.status != "open":
            said = (
                f"Meanwhile phase {gate.phase_number} was {in_words(gate.status)}"
                f" by {who(gate.decided_by)}; nothing was changed. Close this form."
            )
            decision = "rollback" if meta.kind == "rollback" else "continue"
            self.engine.refuse(
                actor,
                decision,
                f"the gate was decided before the form was sent: {said}",
                run_id=gate.run_id,
                gate=gate.id,
                phase=gate.phase_id,
            )
            return {field: self.engine.masker.mask(said)}, None
        decision = "rollback" if meta.kind == "rollback" else "continue"
        return {}, (
            self._decide_form,
            (gate.id, gate.run_id, gate.environment, decision, text),
        )

    def _decide_form(
        self,
        gate_id: int,
        run_id: int,
        environment: str,
        decision: str,
        text: str | None,
        actor: Actor,
        reply_to: dict[str, Any],
    ) -> None:
        self._decide_gate(gate_id, run_id, environment, decision, actor, reply_to, text)

    def _check_override_form(
        self, meta: FormMeta, actor: Actor, view: dict[str, Any]
    ) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
        """Break-glass: the justification (required), and the gate: still the one the form
        was opened for, still open. Permission and the runbook's rules: the engine's."""
        field = modals.JUSTIFICATION
        why = "Say why it is safe to go on: an override needs a justification."
        text, errors = _typed(view, field, required=why)
        if errors or text is None:
            return errors, None
        gate = gate_view(self.engine.db, self.engine.runbook, meta.gate) if meta.gate else None
        if gate is None or gate.attempt != meta.attempt or meta.kind != "override":
            return {
                field: "This checkpoint is out of date; nothing was changed. See `/cutover status`."
            }, None
        if gate.status != "open":
            said = (
                f"Meanwhile phase {gate.phase_number} was {in_words(gate.status)}"
                f" by {who(gate.decided_by)}; nothing was changed. Close this form."
            )
            self.engine.refuse(
                actor,
                "override",
                f"the gate was decided before the form was sent: {said}",
                run_id=gate.run_id,
                gate=gate.id,
                phase=gate.phase_id,
            )
            return {field: self.engine.masker.mask(said)}, None
        return {}, (self._override_form, (gate.id, gate.run_id, gate.environment, text))

    def _override_form(
        self,
        gate_id: int,
        run_id: int,
        environment: str,
        text: str,
        actor: Actor,
        reply_to: dict[str, Any],
    ) -> None:
        """One break-glass vote (override groups read now), answered to the person."""
        actor = self.with_override_groups(actor, environment)
        result = self.engine.override(gate_id, actor, text)
        if result.outcome == "already_decided":
            fresh = gate_view(self.engine.db, self.engine.runbook, gate_id)
            said = stale_text(fresh) if fresh is not None else self._md(result.message)
            self._answer(reply_to, said, run_id=run_id)
        elif result.outcome == "refused":
            self._answer(reply_to, "🚫 " + self._md(result.message), run_id=run_id)
        elif result.outcome == "vote_recorded":
            self._answer(
                reply_to,
                f"🟥 Your override vote is recorded with your justification: "
                f"{self._md(result.message)}. Another override approver must send the "
                "Override… form too.",
                run_id=run_id,
            )
        elif result.outcome == "overridden":
            self._answer(reply_to, "🟥 " + self._md(result.message), run_id=run_id)

    def with_override_groups(self, actor: Actor, env_name: str) -> Actor:
        """The actor with the override groups they belong to (when the environment names
        its own; else its approver groups, as `with_groups`)."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return actor
        if not env.override_approvers and not env.override_approver_groups:
            return self.with_groups(actor, env_name)
        if approvals.is_override_approver(env, actor) or not actor.in_workspace(env.slack_team):
            return actor
        team = env.slack_team if (env.slack_team or "").startswith("T") else actor.team
        mine = {
            g for g in env.override_approver_groups if actor.user in self.groups.members(g, team)
        }
        return replace(actor, groups=actor.groups | frozenset(mine))

    def _check_revert_form(
        self, meta: FormMeta, actor: Actor, view: dict[str, Any]
    ) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
        """The revert's reason (required), and the window: still open for the run the form
        was opened for. Permission (groups included) and the quorum: the engine's."""
        why = "Say why you revert: it goes into the audit trail and the cutover records."
        reason, errors = _typed(view, modals.REASON, required=why)
        if errors or reason is None:
            return errors, None
        if meta.kind != "revert" or meta.run is None or meta.env is None:
            return {modals.REASON: "This form is out of date; nothing was changed."}, None
        closed = self.engine.revert_refusal(meta.run)
        if closed:
            self.engine.refuse(actor, "revert", closed, run_id=meta.run, environment=meta.env)
            return {modals.REASON: self.engine.masker.mask(closed)}, None
        return {}, (self._revert_form, (meta.env, meta.run, reason))

    def _revert_form(
        self, env: str, run_id: int, reason: str, actor: Actor, reply_to: dict[str, Any]
    ) -> None:
        actor = self.with_groups(actor, env)
        result = self.engine.revert(env, actor, reason, run_id=run_id)
        prefix = "🚫 " if result.outcome == "refused" else ""
        self._answer(reply_to, prefix + self._md(result.message), run_id=result.run_id)

    def _check_emergency_form(
        self, meta: FormMeta, actor: Actor, view: dict[str, Any]
    ) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
        """The justification of an emergency start (required); the start itself (its rules,
        the freeze, the override quorum) is `/cutover start ENV --emergency --reason …`."""
        why = "Say why it must start now: an emergency start needs a justification."
        text, errors = _typed(view, modals.JUSTIFICATION, required=why)
        if errors or text is None:
            return errors, None
        if meta.kind != "emergency" or meta.env is None:
            return {modals.JUSTIFICATION: "This form is out of date; nothing was changed."}, None
        return {}, (self._emergency_form, (meta.env, text))

    def _emergency_form(self, env: str, text: str, actor: Actor, reply_to: dict[str, Any]) -> None:
        self._command(Start(env, emergency=text), actor, reply_to)

    def _check_abort_form(
        self, meta: FormMeta, actor: Actor, view: dict[str, Any]
    ) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
        why = "Say why you abort: it goes into the audit trail and the cutover record."
        reason, errors = _typed(view, modals.REASON, required=why)
        if errors or reason is None:
            return errors, None
        if meta.env is None or meta.run not in active_runs(self.engine.db, meta.env):
            said = f"Run #{meta.run} has ended meanwhile; nothing was changed. Close this form."
            self.engine.refuse(actor, "abort", said, run_id=meta.run, environment=meta.env)
            return {modals.REASON: said}, None
        return {}, (self._abort_form, (meta.env, meta.run, reason))

    def _abort_form(
        self, env: str, run_id: int, reason: str, actor: Actor, reply_to: dict[str, Any]
    ) -> None:
        if run_id not in active_runs(self.engine.db, env):  # not another run started since
            self._answer(reply_to, f"Run #{run_id} has ended meanwhile; nothing was changed.")
            return
        actor = self.with_groups(actor, env)
        reply = self.commands.execute(Abort(env, reason), actor)
        self._answer(reply_to, self._md(reply.text), ephemeral=reply.ephemeral, run_id=run_id)

    def _check_schedule_form(
        self, meta: FormMeta, actor: Actor, view: dict[str, Any]
    ) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
        """The schedule form, checked as `/cutover schedule ENV TIME` is: an environment of
        the runbook, a start after now (see _form_time), no cutover of it
        scheduled already. Permission is checked when it is scheduled (groups read then)."""
        env = modals.value(view, modals.ENV)
        if not env or env not in self.engine.runbook.environments:
            return {modals.ENV: "Pick an environment of the runbook."}, None
        try:
            at = self._form_time(view)
        except FieldError as exc:
            return {exc.field: exc.problem}, None
        other = ScheduleService(self.engine).blocking(env)  # the rule `schedule` applies
        if other is not None:
            return {modals.ENV: already_scheduled(other)}, None
        channel = modals.value(view, modals.CHANNEL)
        stakeholders = modals.value(view, modals.STAKEHOLDERS)
        for block, picked in ((modals.CHANNEL, channel), (modals.STAKEHOLDERS, stakeholders)):
            if picked and not CHANNEL_ID.fullmatch(picked):
                return {block: "Pick a channel (not a direct message)."}, None
        if channel is None and self._env_channel(env) is None:
            channel = meta.channel  # as the text command: the channel it was typed in
        return {}, (self._schedule_form, (env, at, channel, stakeholders))

    def _form_time(self, view: dict[str, Any]) -> datetime:
        """The start a schedule form gives: its datetimepicker's instant; from a form the
        previous version opened (day, time, zone list), that local time, refused when the
        clocks skip it or show it twice. Raises FieldError."""
        now = self.engine.now()
        if modals.WHEN in ((view.get("state") or {}).get("values") or {}):
            return epoch_time(modals.picked_time(view, modals.WHEN), now)
        return compose_time(
            modals.value(view, modals.DATE),
            modals.value(view, modals.TIME),
            modals.value(view, modals.TZ),
            now,
        )

    def _schedule_form(
        self,
        env: str,
        at: Any,
        channel: str | None,
        stakeholders: str | None,
        actor: Actor,
        reply_to: dict[str, Any],
    ) -> None:
        actor = self.with_groups(actor, env)
        channel = channel or self._env_channel(env, resolve=True)  # the id, not a #name
        reply = self.commands.execute(ScheduleCmd(env, at, stakeholders), actor, channel=channel)
        self._answer(reply_to, self._md(reply.text), ephemeral=reply.ephemeral)

    def _home_opened(self, user: str, team: str) -> None:
        """Someone opened Home: remembered (for the refreshes when a run changes), then their
        Home is published now."""
        try:
            home_viewers.opened(self.engine.db, user, team, datetime.now(UTC))
        except Exception as exc:
            log.warning("cannot remember a Home viewer: %s", self.engine.masker.mask(str(exc)))
        self._publish_home(user, team)
        self.homes.published_now(user)

    def _home_viewers(self) -> list[tuple[str, str]]:
        since = datetime.now(UTC) - HOME_RECENT
        return home_viewers.recent(self.engine.db, since, HOME_REFRESH_LIMIT)

    def _draw_home(self) -> HomeData:
        version = home_viewers.drawing_version(self.engine.db)  # before anything is read
        return home_data(self.engine, self.surface.waiting_for, datetime.now(UTC), version)

    def _render_home(self, data: HomeData, user: str, where: str) -> dict[str, Any]:
        """`user`'s own Home: only the environments they may see (approvals.may_see)."""
        team, enterprise = home_viewers.parse_where(where)
        return home_view(data, self._may_see(Actor.slack(team, user, enterprise=enterprise)))

    def _publish_home(self, user: str, where: str) -> None:
        """The App Home tab of `user`, drawn from the database now, in the next views.publish
        slot every replica shares."""
        try:
            data = self._draw_home()
            pause = self.homes.publish_slot()
            if pause > 0:
                time.sleep(pause)
            if self._publish_drawn(user, where, data) is None:
                self.homes.poke()  # another replica is publishing it: drawn again soon
        except Exception:
            log.exception("cannot draw the Home tab")

    def _publish_drawn(self, user: str, where: str, data: HomeData) -> bool | None:
        """Publishes `user`'s Home drawn from `data`, never over a newer drawing: one replica
        at a time per person (a turn in the database, HOME_TURN seconds at most), skipped
        when the drawing Slack shows is as new (`home_viewer.shown_version`), and sent with
        Slack's hash of the view last published, so a publish that was overtaken on its way
        is refused by Slack (`hash_conflict`). True: Slack took it; False: not (refused, or
        a newer one is up); None: not now (another replica's turn, or overtaken)."""
        db = self.engine.db
        turn = f"home-turn:{where}:{user}"
        if self.slots.take(turn, HOME_TURN) > 0:
            return None
        try:
            version, view_hash = home_viewers.shown(db, user, where)
            if version is not None and version >= data.version:
                return False  # what Slack shows was drawn as late or later
            ok, answer = self.surface.publish_home(
                user, self._render_home(data, user, where), view_hash=view_hash
            )
            if ok:
                home_viewers.published(db, user, where, data.version, answer)
                return True
            if answer == "hash_conflict" and view_hash:  # overtaken on its way: drawn again
                home_viewers.forget_hash(db, user, where, view_hash)
                return None
            return False
        finally:
            self.slots.free(turn)

    def _may_see(self, actor: Actor) -> Callable[[str, str | None], bool]:
        """Whether `actor` may see an environment's run or schedule posted in a channel."""

        def see(env_name: str, channel: str | None) -> bool:
            try:
                env = self.engine.environment(env_name)
            except RunbookError:
                return False
            try:
                who = self.with_groups(actor, env_name)
            except GroupsUnknown:  # groups unreadable now: listed ids and channels still count
                who = actor
            return approvals.may_see(env, who, lambda: self._in_channel(channel, actor))

        return see

    def _in_channel(self, channel: str | None, actor: Actor) -> bool:
        """In the channel, by Slack's member list (cached a minute). A #name is looked up as
        its id first (conversations.members takes ids); an unreadable list is nobody's: no."""
        if channel and not CHANNEL_ID.fullmatch(channel):
            channel = self.surface.channels.resolve(channel)  # a runbook's #name: its id
        if not channel or not CHANNEL_ID.fullmatch(channel):
            return False
        try:
            return actor.user in self.channel_members.members(channel)
        except GroupsUnknown:
            return False

    def _fetch_members(self, channel: str, _team: str | None) -> list[str]:
        """conversations.members, every page (up to MEMBER_PAGES of 1,000)."""
        users: list[str] = []
        cursor: str | None = None
        for _ in range(MEMBER_PAGES):
            resp = self._groups_client.conversations_members(
                channel=channel, limit=1000, cursor=cursor
            )
            users += [u for u in resp.get("members") or [] if isinstance(u, str)]
            meta = resp.get("response_metadata") or {}
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not cursor:
                break
        return users

    def _retire_copy(self, body: dict[str, Any], gate_id: int, live: str | None) -> None:
        """A click on a copy of a checkpoint that is not the recorded one (a post Slack took
        although it answered 5xx, then the retry posted again): the copy loses its buttons."""
        ref = _message_ref(body)
        if ref is not None and live and f"{ref[0]}:{ref[1]}" != live:
            self.surface.retire_copy(ref[0], ref[1], gate_id)

    def _schedule_start(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        """The reminder's Start button: `ScheduleService.start` checks the clicker is an
        approver (user groups read now) and starts the run once however often it is clicked."""
        schedule_id = parse_schedule_value(action.get("value"))
        sched = self._schedule(schedule_id) if schedule_id is not None else None
        if sched is None or sched.id is None:
            self._answer(body, "No such scheduled cutover; see `/cutover schedule list`.")
            return
        actor, members = self.for_start(actor, sched.environment)
        with self._start_locks.setdefault(sched.id, threading.Lock()):
            # One click at a time per schedule in this process, so a double click is told
            # "already started" (the engine's one-active-run rule covers other processes).
            result = ScheduleService(self.engine).start(sched.id, actor, members)
        after = self._schedule(sched.id)
        run_id = result.run_id or (after.run_id if after else None)
        if result.outcome == "started":
            text = f"▶️ {self._md(result.message)} Its phases follow in this channel."
        elif result.outcome != "refused" or (after is not None and after.run_id is not None):
            # Clicked twice, or by two people at once: the other click started it.
            text = (
                f"Scheduled cutover #{sched.id} was already started as run #{run_id}; "
                "your click changed nothing."
                if run_id is not None
                else self._md(result.message)
            )
        else:
            text = "🚫 " + self._md(result.message)
        ref = _message_ref(body)
        if ref is not None and after is not None and after.status != "scheduled":
            try:
                self.surface.reminder_done(sched.id, *ref)
            except Exception as exc:
                log.warning("cannot redraw the reminder: %s", self.engine.masker.mask(str(exc)))
        self._answer(body, text, run_id=run_id)

    def _checklist_tick(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        """A box of the T-1h checklist: the boxes now checked in the clicked group (ten items
        each) are compared with the boxes that message showed; each box this person changed
        is a tick or an untick (permission checked now) unless the database already has it
        so. The message is drawn again from the database either way (a refused click
        unchecks)."""
        where = parse_checklist_block(action.get("block_id"))
        schedule_id, group = where if where is not None else (None, 0)
        sched = self._schedule(schedule_id) if schedule_id is not None else None
        if sched is None or sched.id is None:
            self._answer(body, "No such scheduled cutover; see `/cutover schedule list`.")
            return
        message = body.get("message")
        blocks = message.get("blocks") if isinstance(message, dict) else None
        blocks = blocks if isinstance(blocks, list) else []
        # What this person changed: the boxes checked now against the boxes the clicked
        # message showed. A tick someone else made since, not yet drawn here, is left alone.
        chosen = _checklist_items(sched.id, action.get("selected_options"))
        shown_block = next(
            (
                b
                for b in blocks
                if isinstance(b, dict) and b.get("block_id") == action.get("block_id")
            ),
            {},
        )
        elements = shown_block.get("elements") or [{}]
        shown = _checklist_items(sched.id, elements[0].get("initial_options"))
        actor = self.with_groups(actor, sched.environment)
        lists = Checklists(self.engine)
        results: list[TickResult] = []
        answers: list[str] = []
        try:
            scope = ScheduleService(self.engine).scope(sched.id)
            people = [st for st in lists.states(scope) if not st.item.check]
            for st in people[group * OPTIONS_PER_GROUP : (group + 1) * OPTIONS_PER_GROUP]:
                if st.id in chosen - shown and not st.done:
                    results.append(lists.tick(scope, st.id, actor))
                elif st.id in shown - chosen and st.done:
                    results.append(lists.untick(scope, st.id, actor))
        except CutoverError as exc:
            answers.append("🚫 " + self._md(str(exc)))
        answers = [r.message for r in results] + answers
        ref = _message_ref(body)
        if ref is not None and isinstance(message, dict):
            try:
                self.surface.checklist_redraw(
                    sched.id,
                    *ref,
                    str(message.get("text") or ""),
                    blocks,
                    redrawn=any(r.changed for r in results),  # by the tick itself
                )
            except Exception as exc:
                log.warning("cannot redraw the checklist: %s", self.engine.masker.mask(str(exc)))
        if answers:
            self._answer(body, self._md("\n".join(answers)))

    def _signoff(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        """A "Sign off" button: the engine checks the clicker is an approver of the run's
        environment, now, and counts one person's sign-off of a criterion once."""
        parsed = parse_number_and_id(action.get("value"))
        view = run_view(self.engine.db, self.engine.runbook, parsed[0]) if parsed else None
        if parsed is None or view is None:
            self._answer(body, "This message is out of date; nothing was signed off.")
            return
        run_id, criterion = parsed
        ref = _message_ref(body)
        if ref is not None:
            self.surface.adopt_signoff(run_id, *ref)
        actor = self.with_groups(actor, view.environment)
        try:
            result = self.engine.sign_off(run_id, criterion, actor, note_from(body))
        except (CutoverError, RunbookError) as exc:
            self._answer(body, "🚫 " + self._md(str(exc)), run_id=run_id)
            return
        if result.outcome == "ticked":
            text = f"✅ Signed off: {self._md(result.message)}. The record will show it."
        elif result.outcome == "refused":
            text = "🚫 " + self._md(result.message)
            self.surface.signoff_changed(run_id)  # e.g. rolled back: the buttons go
        else:
            text = self._md(result.message)
        self._answer(body, text, run_id=run_id)

    def _tick(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        where = parse_tick_block(action.get("block_id"))
        view = gate_view(self.engine.db, self.engine.runbook, where[0]) if where else None
        if where is None or view is None or view.attempt != where[1]:
            self._answer(body, "This message is out of date; nothing was changed.")
            return
        self._retire_copy(body, view.id, view.surface_ref)
        if view.status != "open":
            self._answer(body, stale_text(view), run_id=view.run_id)
            return
        group = view.manual[where[2] * OPTIONS_PER_GROUP : (where[2] + 1) * OPTIONS_PER_GROUP]
        chosen = set()
        options = action.get("selected_options")
        for option in options if isinstance(options, list) else []:
            tick = parse_tick_value(option.get("value") if isinstance(option, dict) else None)
            if tick and tick[0] == view.id:
                chosen.add(tick[2])
        ticked = {m.id for m in group if m.ticked_by}
        actor = self.with_groups(actor, view.environment)
        problems = []
        for item in [m.id for m in group if m.id in chosen - ticked]:
            result = self.engine.tick(view.id, item, actor)
            if result.outcome != "ticked":
                problems.append(
                    stale_text(gate_view(self.engine.db, self.engine.runbook, view.id) or view)
                    if result.outcome == "already_decided"
                    else "🚫 " + self._md(result.message)
                )
                break
        if ticked - chosen:
            problems.append(
                "A ticked manual step stays ticked (the audit trail says who ticked it). If it "
                "is not done after all, Rollback or Retry the phase."
            )
        if problems:
            self.surface.gate_changed(view.id)  # redraw the boxes as the database has them
            self._answer(body, "\n".join(dict.fromkeys(problems)), run_id=view.run_id)


def _typed(
    view: dict[str, Any], field: str, *, required: str | None
) -> tuple[str | None, dict[str, str]]:
    """What a form's `field` holds, or the error to show beside it: `required` says why it
    may not be left empty (None: it may), and no field is longer than REASON_CHARS."""
    text = modals.value(view, field)
    if not text:
        return None, ({field: required} if required else {})
    if len(text) > modals.REASON_CHARS:
        return None, {field: f"Keep it under {modals.REASON_CHARS} characters."}
    return text, {}
