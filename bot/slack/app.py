"""The Bolt app: builds it and registers the listeners, one module per interaction.

How a listener module is made (bolt-python splits its listeners the same way,
slack_bolt/listener/): each module of `bot.slack.listeners` holds one interaction and
exposes `register(app, deps)`, which adds its listeners to the Bolt `App`; `deps`
(bot.slack.deps.Deps) carries the services they work with. To add an interaction, write
a new module with its own `register(app, deps)` and add it to `LISTENERS` below: nothing
else here changes.

| module            | what it answers                                                   |
|-------------------|-------------------------------------------------------------------|
| `commands`        | `/cutover` (its work: `command_work`)                             |
| `gate_buttons`    | Continue, Retry, the Run page link                                |
| `ticks`           | the manual-step boxes (and the form of a tick with a value)       |
| `gate_forms`      | Rollback…, Continue with comment…, Override…, Show output         |
| `run_forms`       | abort / revert / emergency start / schedule forms, Revert…        |
| `home`            | the App Home tab                                                  |
| `checklist`       | the T-1h checklist's boxes                                        |
| `schedule_start`  | the T-0 reminder's Start button                                   |
| `signoff`         | the sign-off message's buttons (criteria, the cutover's own)      |
| `post_tasks`      | the post-cutover checklist's Done buttons                         |

Every slash command and click is acknowledged at once (Slack allows 3 s): the
listener only parses and calls ack(); the work runs after, on a small pool of its own
(bot.slack.dispatch), and answers the person through the response_url. Identity is
built by a middleware from the signed body's team id + user id, never from a name
(bot.slack.middleware); approver user groups are read from Slack through a cache
(bot.slack.approvers), so permission is re-checked on every click against a list at most
a minute old, and asked of bot.domain.approvals only. The engine's gate lock makes a
retried delivery (X-Slack-Retry-Num) or fifty clicks at once decide a gate exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.engine import Engine
from bot.ports import ReadsPort, SurfaceRowsPort
from bot.slack.approvers import Approvers
from bot.slack.deps import Deps
from bot.slack.listeners import (
    checklist,
    commands,
    gate_buttons,
    gate_forms,
    home,
    post_tasks,
    run_forms,
    schedule_start,
    signoff,
    ticks,
)
from bot.slack.listeners.command_work import resync
from bot.slack.middleware import Identify, ReplayGuard
from bot.slack.surface import SlackSurface
from bot.slack.transport import make_client, retry_handlers
from bot.store.rate_slots import SharedSlots
from bot.store.replays import SeenRequests

log = logging.getLogger(__name__)

PROCESS_BEFORE_RESPONSE = True  # see CutoverSlackApp.__init__; bench/slack_bench.py reads it

# Every listener module, each with its `register(app, deps)`.
LISTENERS: tuple[Callable[[App, Deps], None], ...] = (
    commands.register,
    gate_buttons.register,
    ticks.register,
    gate_forms.register,
    run_forms.register,
    home.register,
    checklist.register,
    schedule_start.register,
    signoff.register,
    post_tasks.register,
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
        reads: ReadsPort,
        rows: SurfaceRowsPort,
        seen: SeenRequests,
        slots: SharedSlots,
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
        groups_client = make_client(
            token, str(self.client.base_url), retry_handlers(rate_limited=0, server_errors=0)
        )
        self.approvers = Approvers(engine, groups_client, surface.channels)
        self.groups = self.approvers.groups
        surface.directory = self.approvers.directory_problems  # preflight asks the surface
        self.deps = Deps(
            engine,
            surface,
            self.approvers,
            ReplayGuard(seen),
            reads=reads,
            rows=rows,
            slots=slots,
            workers=workers,
        )
        self.acks_first = self.deps.dispatch.acks_first
        self.homes = self.deps.homes = home.refresher(self.deps)
        surface.on_change = self.homes.poke
        bolt_log = logging.getLogger("cutover.bolt")
        if not any(isinstance(f, _NotTheTokenWarning) for f in bolt_log.filters):
            bolt_log.addFilter(_NotTheTokenWarning())
        self.app = App(  # the client carries the bot token
            signing_secret=signing_secret,
            client=self.client,
            # The listeners only parse, ack() and hand the work to a pool, so they run in
            # the request's own thread: no hand-off to another pool and no 10 ms ack polling.
            process_before_response=PROCESS_BEFORE_RESPONSE,
            token_verification_enabled=token_verification,
            logger=bolt_log,
        )
        self.app.use(Identify())
        for register in LISTENERS:
            register(self.app, self.deps)

        @self.app.error
        def on_error(error: Exception, body: dict[str, Any]) -> None:
            log.error("slack listener failed: %s", engine.masker.mask(repr(error)))

    def resync(self, env: str | None = None) -> None:
        """Re-posts what an outage left missing in Slack, for the active runs (of one env)."""
        resync(self.deps, env)

    def close(self) -> None:
        self.deps.dispatch.close()
        self.homes.close()
        self.surface.outbox.settle(timeout=5.0)  # the last edits, then the senders stop
        self.surface.outbox.close()
