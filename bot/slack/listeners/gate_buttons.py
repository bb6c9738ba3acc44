"""A checkpoint's buttons: Continue and Retry (one click each: a decision), the work of the
manual-step boxes (`tick`; bot.slack.listeners.ticks routes the clicks), and the Run page
link (Slack opens it; the click asks for nothing).
Rollback…, Continue with comment…, Override… and Show output open forms
(bot.slack.listeners.gate_forms).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App

from bot.slack.blocks import (
    CONTINUE,
    OPTIONS_PER_GROUP,
    RETRY,
    RUN_PAGE,
    parse_gate_value,
    parse_tick_block,
    parse_tick_value,
    stale_text,
)
from bot.slack.deps import Deps
from bot.slack.payloads import message_ref
from bot.surface import Actor

log = logging.getLogger(__name__)

DECISIONS = {CONTINUE: "continue", RETRY: "retry"}  # one click; Rollback opens a form
OUT_OF_DATE = "This message is out of date; nothing was changed. See `/cutover status`."


def register(app: App, deps: Deps) -> None:
    for action_id in DECISIONS:
        app.action(action_id)(deps.dispatch.on_click(decide, deps))

    @app.action(re.compile(rf"^{RUN_PAGE}(:\d)?$"))
    def on_run_page(ack: Ack) -> None:
        ack()  # a link button: Slack opened the URL; the click itself asks for nothing


def decide(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    """A Continue or Retry click. The gate is read once, by the decision under its lock
    (which also finds a message of another attempt out of date); its run and
    environment are known to the engine without a read (issue 19)."""
    kind = DECISIONS[action.get("action_id", "")]
    parsed = parse_gate_value(action.get("value"))
    found = deps.engine.gate_run(parsed[0]) if parsed else None
    if parsed is None or found is None:
        deps.answer(body, OUT_OF_DATE)
        return
    decide_gate(deps, parsed[0], found[0], found[1], kind, actor, body, attempt=parsed[1])


def decide_gate(
    deps: Deps,
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
    actor = deps.approvers.with_groups(actor, environment)
    known = deps.surface.known_gate_ref(gate_id)
    if known is not None:  # a stray copy loses its buttons before the decision's redraws
        retire_copy(deps, body, gate_id, known)
    result = deps.engine.decide(
        gate_id,
        actor,
        kind,  # type: ignore[arg-type]
        reason,
        attempt=attempt,
    )
    if result.outcome == "unknown_gate":
        deps.answer(body, OUT_OF_DATE)
        return
    if known is None:  # recorded by another replica: known from the decision's read
        retire_copy(deps, body, gate_id, result.surface_ref)
    if result.outcome == "already_decided":
        fresh = deps.reads.gate_view(gate_id)
        text = stale_text(fresh) if fresh is not None else deps.md(result.message)
        deps.answer(body, text, run_id=run_id)
    elif result.outcome == "refused":
        deps.answer(body, "🚫 " + deps.md(result.message), run_id=run_id)
    elif result.outcome == "vote_recorded":
        said = " with your comment" if reason else ""
        deps.answer(
            body,
            f"Your approval is recorded{said}: {result.message}. It needs "
            f"{result.quorum} approvers; waiting for another.",
            run_id=run_id,
        )
    elif not result.changed:
        deps.answer(body, deps.md(result.message), run_id=run_id)


def retire_copy(deps: Deps, body: dict[str, Any], gate_id: int, live: str | None) -> None:
    """A click on a copy of a checkpoint that is not the recorded one (a post Slack took
    although it answered 5xx, then the retry posted again): the copy loses its buttons."""
    ref = message_ref(body)
    if ref is not None and live and f"{ref[0]}:{ref[1]}" != live:
        deps.surface.retire_copy(ref[0], ref[1], gate_id)


def tick(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    where = parse_tick_block(action.get("block_id"))
    view = deps.reads.gate_view(where[0]) if where else None
    if where is None or view is None or view.attempt != where[1]:
        deps.answer(body, "This message is out of date; nothing was changed.")
        return
    retire_copy(deps, body, view.id, view.surface_ref)
    if view.status != "open":
        deps.answer(body, stale_text(view), run_id=view.run_id)
        return
    group = view.manual[where[2] * OPTIONS_PER_GROUP : (where[2] + 1) * OPTIONS_PER_GROUP]
    chosen = set()
    options = action.get("selected_options")
    for option in options if isinstance(options, list) else []:
        tick = parse_tick_value(option.get("value") if isinstance(option, dict) else None)
        if tick and tick[0] == view.id:
            chosen.add(tick[2])
    ticked = {m.id for m in group if m.ticked_by}
    actor = deps.approvers.with_groups(actor, view.environment)
    problems = []
    for item in [m.id for m in group if m.id in chosen - ticked]:
        result = deps.engine.tick(view.id, item, actor)
        if result.outcome != "ticked":
            problems.append(
                stale_text(deps.reads.gate_view(view.id) or view)
                if result.outcome == "already_decided"
                else "🚫 " + deps.md(result.message)
            )
            break
    if ticked - chosen:
        problems.append(
            "A ticked manual step stays ticked (the audit trail says who ticked it). If it "
            "is not done after all, Rollback or Retry the phase."
        )
    if problems:
        deps.surface.gate_changed(view.id)  # redraw the boxes as the database has them
        deps.answer(body, "\n".join(dict.fromkeys(problems)), run_id=view.run_id)
