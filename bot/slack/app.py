"""The Bolt app: `/cutover`, the gate buttons and the manual-step checkboxes.

Every slash command and click is acknowledged at once (Slack allows 3 s): the
listener only parses and calls ack(); the engine work runs after, on a small
pool of its own, and answers the person through the response_url. Identity is
built by a middleware from the signed body's team id + user id, never from a
name; user groups are read when the click arrives, so permission is re-checked
on every click. The engine's gate lock makes a retried delivery (X-Slack-Retry-Num)
or fifty clicks at once decide a gate exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.engine import Engine
from bot.slack.blocks import (
    CONTINUE,
    OPTIONS_PER_GROUP,
    RETRY,
    ROLLBACK,
    TICK,
    escape,
    fit_lines,
    parse_gate_value,
    parse_tick_block,
    parse_tick_value,
    slackify,
    stale_text,
)
from bot.slack.surface import SlackSurface
from bot.surface import Actor
from bot.views import active_runs, gate_view, run_view
from commands.handlers import CommandService
from commands.parser import USAGE, Abort, Command, Help, Start, StatusCmd, UsageError, parse
from phases.runbook import RunbookError

log = logging.getLogger(__name__)

DECISIONS = {CONTINUE: "continue", ROLLBACK: "rollback", RETRY: "retry"}
NO_IDENTITY = "Slack did not say who you are (no team or user id); nothing was done."


def actor_from_body(body: dict[str, Any]) -> Actor | None:
    """TEAM:USER from a slash command form or an interaction payload; the name is display only."""
    user = body.get("user")
    if isinstance(user, dict):  # block_actions
        team_obj = body.get("team")
        team = user.get("team_id") or (team_obj.get("id") if isinstance(team_obj, dict) else None)
        user_id, name = user.get("id"), user.get("username") or user.get("name")
    else:  # slash command
        team, user_id, name = body.get("team_id"), body.get("user_id"), body.get("user_name")
    if not team or not user_id:
        return None
    return Actor(f"{team}:{user_id}", name)


@dataclass(frozen=True)
class Where:
    """Where to answer the person: response_url, else an ephemeral in the channel."""

    response_url: str | None
    channel: str | None
    user: str | None


def _where(body: dict[str, Any]) -> Where:
    user = body.get("user")
    channel = body.get("channel")
    return Where(
        body.get("response_url"),
        (channel.get("id") if isinstance(channel, dict) else None) or body.get("channel_id"),
        user.get("id") if isinstance(user, dict) else body.get("user_id"),
    )


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
        self.commands = CommandService(engine)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-work")
        bolt_log = logging.getLogger("cutover.bolt")
        if not any(isinstance(f, _NotTheTokenWarning) for f in bolt_log.filters):
            bolt_log.addFilter(_NotTheTokenWarning())
        self.app = App(  # the client carries the bot token
            signing_secret=signing_secret,
            client=self.client,
            process_before_response=False,  # ack() answers Slack at once; work runs after
            token_verification_enabled=token_verification,
            listener_executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="slack-ack"),
            logger=bolt_log,
        )
        self._register()

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    # ------------------------------------------------------------------ wiring

    def _register(self) -> None:
        app = self.app

        @app.middleware
        def identify(context: BoltContext, body: dict[str, Any], next: Callable[[], Any]) -> Any:  # noqa: A002
            actor = actor_from_body(body)
            if actor is not None:
                context["actor"] = actor
            return next()

        @app.command("/cutover")
        def on_command(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            try:
                cmd = parse(body.get("text") or "")
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
            self._submit(self._command, cmd, actor, body)

        def on_click(
            work: Callable[..., None],
        ) -> Callable[[Ack, dict[str, Any], dict[str, Any], BoltContext], None]:
            def listener(
                ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext
            ) -> None:
                ack()  # at once; the click is worked on after Slack has its answer
                actor = context.get("actor")
                if isinstance(actor, Actor):
                    self._submit(work, action, actor, body)
                else:
                    self._submit(self._answer, body, NO_IDENTITY)

            return listener

        for action_id in DECISIONS:
            app.action(action_id)(on_click(self._decide))
        app.action(TICK)(on_click(self._tick))

        @app.error
        def on_error(error: Exception, body: dict[str, Any]) -> None:
            log.error("slack listener failed: %s", self.engine.masker.mask(repr(error)))

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self.pool.submit(self._guard, fn, *args)

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.exception("slack work %s failed", fn.__name__)
            body = args[-1] if args and isinstance(args[-1], dict) else {}
            self._answer(
                body,
                f"Something went wrong while handling that ({type(exc).__name__}); "
                "`/cutover status` shows where the run stands.",
            )

    def _md(self, text: str) -> str:
        """Engine text as mrkdwn: masked first (a secret is matched before it is escaped)."""
        return slackify(self.engine.masker.mask(text))

    def _answer(
        self, body: dict[str, Any], text: str, *, ephemeral: bool = True, run_id: int | None = None
    ) -> None:
        """Answers the person who typed or clicked; `text` is mrkdwn already."""
        w = _where(body)
        self.surface.reply(
            text,
            response_url=w.response_url,
            channel=w.channel,
            user=w.user,
            ephemeral=ephemeral,
            run_id=run_id,
        )

    # ------------------------------------------------------------------ identity

    def with_groups(self, actor: Actor, env_name: str) -> Actor:
        """Adds the environment's approver groups the actor belongs to, read now from Slack."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return actor
        if not env.approver_groups:
            return actor
        team, _, user = actor.id.partition(":")
        if env.slack_team and team != env.slack_team:
            return actor
        groups: set[str] = set()
        for group in env.approver_groups:
            try:
                users = self.client.usergroups_users_list(usergroup=group).get("users") or []
            except SlackApiError as exc:
                err = exc.response.get("error") if exc.response is not None else exc
                log.warning("cannot read user group %s: %s", group, err)
                continue
            if user in users:
                groups.add(group)
        return replace(actor, groups=frozenset(groups))

    # ------------------------------------------------------------------ work (after ack)

    def _command(self, cmd: Command, actor: Actor, body: dict[str, Any]) -> None:
        if isinstance(cmd, Start | Abort):
            actor = self.with_groups(actor, cmd.env)
        reply = self.commands.execute(cmd, actor, channel=body.get("channel_id"))
        text = self._md(reply.text)
        if isinstance(cmd, Start) and reply.run_id is not None:
            view = run_view(self.engine.db, self.engine.runbook, reply.run_id)
            if view is not None and view.surface_ref is None:
                text += (
                    "\n⚠️ I could not post the run's message in this channel (invite me with "
                    "`/invite`); `/cutover status` posts it again. Nothing continues without "
                    f"an approval; stop the run with `/cutover abort {cmd.env} --reason …`."
                )
        self._answer(
            body, fit_lines(text.split("\n")), ephemeral=reply.ephemeral, run_id=reply.run_id
        )
        if isinstance(cmd, StatusCmd):
            self.resync(cmd.env)

    def resync(self, env: str | None = None) -> None:
        """Re-posts what an outage left missing in Slack, for the active runs (of one env)."""
        for run_id in active_runs(self.engine.db, env):
            try:
                self.surface.resync(run_id)
            except Exception as exc:
                log.warning("cannot resync run #%s: %s", run_id, self.engine.masker.mask(str(exc)))

    def _decide(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        kind = DECISIONS[action.get("action_id", "")]
        parsed = parse_gate_value(action.get("value"))
        view = gate_view(self.engine.db, self.engine.runbook, parsed[0]) if parsed else None
        if parsed is None or view is None or view.attempt != parsed[1]:
            self._answer(
                body, "This message is out of date; nothing was changed. See `/cutover status`."
            )
            return
        actor = self.with_groups(actor, view.environment)
        result = self.engine.decide(view.id, actor, kind)  # type: ignore[arg-type]
        if result.outcome == "already_decided":
            fresh = gate_view(self.engine.db, self.engine.runbook, view.id)
            self._answer(body, stale_text(fresh or view), run_id=view.run_id)
        elif result.outcome == "refused":
            self._answer(body, "🚫 " + self._md(result.message), run_id=view.run_id)
        elif result.outcome == "vote_recorded":
            self._answer(
                body,
                f"Your approval is recorded: {result.message}. It needs "
                f"{view.quorum} approvers; waiting for another.",
                run_id=view.run_id,
            )
        elif not result.changed:
            self._answer(body, self._md(result.message), run_id=view.run_id)

    def _tick(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        where = parse_tick_block(action.get("block_id"))
        view = gate_view(self.engine.db, self.engine.runbook, where[0]) if where else None
        if where is None or view is None or view.attempt != where[1]:
            self._answer(body, "This message is out of date; nothing was changed.")
            return
        if view.status != "open":
            self._answer(body, stale_text(view), run_id=view.run_id)
            return
        group = view.manual[where[2] * OPTIONS_PER_GROUP : (where[2] + 1) * OPTIONS_PER_GROUP]
        chosen = set()
        for option in action.get("selected_options") or []:
            tick = parse_tick_value(option.get("value"))
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
