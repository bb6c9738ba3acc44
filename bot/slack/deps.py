"""What every listener module is handed (`register(app, deps)` in bot.slack.app): the engine
and the Slack surface, the command service, who a person is to an environment
(bot.slack.approvers), where work goes after the ack (bot.slack.dispatch), what they read
(`reads`, bot.ports.ReadsPort) and the surface's own rows (`rows`), and the few helpers
every listener answers with."""

from __future__ import annotations

import threading
from typing import Any

from bot.engine import Engine
from bot.ports import ReadsPort, SurfaceRowsPort
from bot.slack.approvers import Approvers
from bot.slack.blocks import Block, slackify
from bot.slack.dispatch import Dispatcher
from bot.slack.home import HomeRefresher
from bot.slack.middleware import ReplayGuard
from bot.slack.payloads import where
from bot.slack.surface import SlackSurface
from bot.store.rate_slots import SharedSlots
from bot.views import ScheduleView
from commands.handlers import CommandService
from phases.runbook import RunbookError


def _team(slack_team: str | None) -> str | None:
    """An environment's workspace id (T…), for lookups an org-wide token must scope."""
    return slack_team if (slack_team or "").startswith("T") else None


class Deps:
    """The services the listeners share. `homes` is set once the Home listener built it."""

    homes: HomeRefresher

    def __init__(
        self,
        engine: Engine,
        surface: SlackSurface,
        approvers: Approvers,
        replays: ReplayGuard,
        *,
        reads: ReadsPort,
        rows: SurfaceRowsPort,
        slots: SharedSlots,
        workers: int = 8,
    ) -> None:
        self.engine = engine
        self.surface = surface
        self.approvers = approvers
        self.replays = replays
        # What listeners draw from, and the surface's own rows (Home viewers, message refs).
        self.reads = reads
        self.rows = rows
        self.commands = CommandService(engine, reads, surface.run_links)
        self.dispatch = Dispatcher(replays, self.answer, workers=workers)
        # Rate budgets every replica shares (views.publish's tier, each person's Home).
        self.slots = slots
        # One Start click at a time per schedule in this process (listeners.schedule_start).
        self.start_locks: dict[int, threading.Lock] = {}

    def md(self, text: str) -> str:
        """Engine text as mrkdwn: masked first (a secret is matched before it is escaped)."""
        return slackify(self.engine.masker.mask(text))

    def answer(
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
        w = where(body)
        self.surface.reply(
            text,
            response_url=w.response_url,
            channel=w.channel,
            user=w.user,
            ephemeral=ephemeral,
            run_id=run_id,
            blocks=blocks,
        )

    def env_channel(self, env_name: str, *, resolve: bool = False) -> str | None:
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

    def schedule(self, schedule_id: int) -> ScheduleView | None:
        return self.reads.schedule_view(schedule_id)
