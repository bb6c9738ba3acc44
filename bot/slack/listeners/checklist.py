"""The T-1h checklist's boxes: each box a person changed is a tick or an untick of a
pre-cutover item (permission checked now), and the message is drawn again from the
database either way.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.domain.errors import CutoverError
from bot.ports import TickResult
from bot.slack.blocks import (
    CHECKLIST_TICK,
    OPTIONS_PER_GROUP,
    parse_checklist_block,
    parse_number_and_id,
)
from bot.slack.deps import Deps
from bot.slack.payloads import message_ref
from bot.surface import Actor

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    app.action(CHECKLIST_TICK)(deps.dispatch.on_click(checklist_tick, deps))


def _checklist_items(schedule_id: int, options: Any) -> set[str]:
    """The item ids among a checkbox group's options (selected or initial) of one schedule."""
    items: set[str] = set()
    for option in options if isinstance(options, list) else []:
        parsed = parse_number_and_id(option.get("value") if isinstance(option, dict) else None)
        if parsed and parsed[0] == schedule_id:
            items.add(parsed[1])
    return items


def checklist_tick(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    """A box of the T-1h checklist: the boxes now checked in the clicked group (ten items
    each) are compared with the boxes that message showed; each box this person changed
    is a tick or an untick (permission checked now) unless the database already has it
    so. The message is drawn again from the database either way (a refused click
    unchecks)."""
    where = parse_checklist_block(action.get("block_id"))
    schedule_id, group = where if where is not None else (None, 0)
    sched = deps.schedule(schedule_id) if schedule_id is not None else None
    if sched is None or sched.id is None:
        deps.answer(body, "No such scheduled cutover; see `/cutover schedule list`.")
        return
    message = body.get("message")
    blocks = message.get("blocks") if isinstance(message, dict) else None
    blocks = blocks if isinstance(blocks, list) else []
    # What this person changed: the boxes checked now against the boxes the clicked
    # message showed. A tick someone else made since, not yet drawn here, is left alone.
    chosen = _checklist_items(sched.id, action.get("selected_options"))
    shown_block = next(
        (b for b in blocks if isinstance(b, dict) and b.get("block_id") == action.get("block_id")),
        {},
    )
    elements = shown_block.get("elements") or [{}]
    shown = _checklist_items(sched.id, elements[0].get("initial_options"))
    actor = deps.approvers.with_groups(actor, sched.environment)
    lists = deps.services.checklists
    results: list[TickResult] = []
    answers: list[str] = []
    try:
        scope = deps.services.schedules.scope(sched.id)
        people = [st for st in lists.states(scope) if not st.item.check]
        for st in people[group * OPTIONS_PER_GROUP : (group + 1) * OPTIONS_PER_GROUP]:
            if st.id in chosen - shown and not st.done:
                results.append(lists.tick(scope, st.id, actor))
            elif st.id in shown - chosen and st.done:
                results.append(lists.untick(scope, st.id, actor))
    except CutoverError as exc:
        answers.append("🚫 " + deps.md(str(exc)))
    answers = [r.message for r in results] + answers
    ref = message_ref(body)
    if ref is not None and isinstance(message, dict):
        try:
            deps.surface.checklist_redraw(
                sched.id,
                *ref,
                str(message.get("text") or ""),
                blocks,
                redrawn=any(r.changed for r in results),  # by the tick itself
            )
        except Exception as exc:
            log.warning("cannot redraw the checklist: %s", deps.engine.masker.mask(str(exc)))
    if answers:
        deps.answer(body, deps.md("\n".join(answers)))
