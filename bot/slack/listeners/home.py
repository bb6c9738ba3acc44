"""The App Home tab (bot.slack.home draws it): published when a person opens it, and kept
up to date for recent viewers when a run changes (`refresher`), one replica at a time
per person, never over a newer drawing. A person sees only the environments they may
(approvals.may_see).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt import App, BoltContext

from bot.slack.deps import Deps
from bot.slack.home import HomeData, HomeRefresher, home_data, home_view
from bot.store import home_viewers
from bot.surface import Actor

log = logging.getLogger(__name__)

# Home tabs kept up to date when a run changes: of the people who opened Home within this
# time, at most this many (the latest first); everyone else gets a fresh Home on opening it.
HOME_RECENT = timedelta(hours=24)
HOME_REFRESH_LIMIT = 50
# The longest one replica keeps the turn to publish a person's Home (bot.store.rate_slots):
# past it (a replica died mid-publish) another may publish. A publish slower than that is
# still refused by Slack if it was overtaken (views.publish's `hash`).
HOME_TURN = 30.0


def refresher(deps: Deps) -> HomeRefresher:
    """Home tabs of recent viewers, republished when a run changes (off every click's path)."""
    return HomeRefresher(
        lambda: home_viewers_of(deps),
        lambda: draw_home(deps),
        lambda user, where, data: publish_drawn(deps, user, where, data),
        slots=deps.slots,
    )


def register(app: App, deps: Deps) -> None:
    @app.event("app_home_opened")
    def on_home(event: dict[str, Any], context: BoltContext) -> None:
        user = event.get("user")
        team = home_viewers.where(context.team_id, context.enterprise_id)
        if event.get("tab", "home") == "home" and isinstance(user, str) and user:
            # Off the forms pool (kept free for trigger_ids that last 3 s): the Home tab
            # is drawn with the rest of the work, after the answers in flight.
            deps.dispatch.later(home_opened, deps, user, team)


def home_opened(deps: Deps, user: str, team: str) -> None:
    """Someone opened Home: remembered (for the refreshes when a run changes), then their
    Home is published now."""
    try:
        deps.rows.home_opened(user, team, datetime.now(UTC))
    except Exception as exc:
        log.warning("cannot remember a Home viewer: %s", deps.engine.masker.mask(str(exc)))
    publish_home(deps, user, team)
    deps.homes.published_now(user)


def home_viewers_of(deps: Deps) -> list[tuple[str, str]]:
    since = datetime.now(UTC) - HOME_RECENT
    return deps.rows.home_recent(since, HOME_REFRESH_LIMIT)


def draw_home(deps: Deps) -> HomeData:
    version = deps.rows.home_drawing_version()  # before anything is read
    return home_data(deps.engine, deps.reads, deps.surface.waiting_for, datetime.now(UTC), version)


def render_home(deps: Deps, data: HomeData, user: str, where: str) -> dict[str, Any]:
    """`user`'s own Home: only the environments they may see (approvals.may_see)."""
    team, enterprise = home_viewers.parse_where(where)
    return home_view(data, deps.approvers.may_see(Actor.slack(team, user, enterprise=enterprise)))


def publish_home(deps: Deps, user: str, where: str) -> None:
    """The App Home tab of `user`, drawn from the database now, in the next views.publish
    slot every replica shares."""
    try:
        data = draw_home(deps)
        pause = deps.homes.publish_slot()
        if pause > 0:
            time.sleep(pause)
        if publish_drawn(deps, user, where, data) is None:
            deps.homes.poke()  # another replica is publishing it: drawn again soon
    except Exception:
        log.exception("cannot draw the Home tab")


def publish_drawn(deps: Deps, user: str, where: str, data: HomeData) -> bool | None:
    """Publishes `user`'s Home drawn from `data`, never over a newer drawing: one replica
    at a time per person (a turn in the database, HOME_TURN seconds at most), skipped
    when the drawing Slack shows is as new (`home_viewer.shown_version`), and sent with
    Slack's hash of the view last published, so a publish that was overtaken on its way
    is refused by Slack (`hash_conflict`). True: Slack took it; False: not (refused, or
    a newer one is up); None: not now (another replica's turn, or overtaken)."""
    rows = deps.rows
    turn = f"home-turn:{where}:{user}"
    if deps.slots.take(turn, HOME_TURN) > 0:
        return None
    try:
        version, view_hash = rows.home_shown(user, where)
        if version is not None and version >= data.version:
            return False  # what Slack shows was drawn as late or later
        ok, answer = deps.surface.publish_home(
            user, render_home(deps, data, user, where), view_hash=view_hash
        )
        if ok:
            rows.home_published(user, where, data.version, answer)
            return True
        if answer == "hash_conflict" and view_hash:  # overtaken on its way: drawn again
            rows.home_forget_hash(user, where, view_hash)
            return None
        return False
    finally:
        deps.slots.free(turn)
