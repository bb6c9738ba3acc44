"""The T-0 reminder's Start button: the scheduled cutover started once, however often (and by
however many people) it is clicked; the reminder is redrawn without its button.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_bolt import App

from bot.slack.blocks import (
    START,
    parse_schedule_value,
)
from bot.slack.deps import Deps
from bot.slack.payloads import message_ref
from bot.surface import Actor

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    app.action(START)(deps.dispatch.on_click(schedule_start, deps))


def schedule_start(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    """The reminder's Start button: `ScheduleService.start` (deps.services.schedules) checks
    the clicker is an approver (user groups read now) and starts the run once however often
    it is clicked."""
    schedule_id = parse_schedule_value(action.get("value"))
    sched = deps.schedule(schedule_id) if schedule_id is not None else None
    if sched is None or sched.id is None:
        deps.answer(body, "No such scheduled cutover; see `/cutover schedule list`.")
        return
    actor, members = deps.approvers.for_start(actor, sched.environment)
    with deps.start_locks.setdefault(sched.id, threading.Lock()):
        # One click at a time per schedule in this process, so a double click is told
        # "already started" (the engine's one-active-run rule covers other processes).
        result = deps.services.schedules.start(sched.id, actor, members)
    after = deps.schedule(sched.id)
    run_id = result.run_id or (after.run_id if after else None)
    if result.outcome == "started":
        text = f"▶️ {deps.md(result.message)} Its phases follow in this channel."
    elif result.outcome != "refused" or (after is not None and after.run_id is not None):
        # Clicked twice, or by two people at once: the other click started it.
        text = (
            f"Scheduled cutover #{sched.id} was already started as run #{run_id}; "
            "your click changed nothing."
            if run_id is not None
            else deps.md(result.message)
        )
    else:
        text = "🚫 " + deps.md(result.message)
    ref = message_ref(body)
    if ref is not None and after is not None and after.status != "scheduled":
        try:
            deps.surface.reminder_done(sched.id, *ref)
        except Exception as exc:
            log.warning("cannot redraw the reminder: %s", deps.engine.masker.mask(str(exc)))
    deps.answer(body, text, run_id=run_id)
