"""A tick that carries a value, in Slack: ticking the box of a manual step with `value`
opens a small form asking for it (the step's label); the submission is checked against the
step's rule on the form itself (a missing or non-matching value: an error beside the field,
nothing ticked), then ticked like a box, with the value (bot/engine/tick_checks.py).

The box itself ticks nothing: it is redrawn as the database has it (unticked) until the form
is sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bot.domain import approvals
from bot.slack import modals
from bot.slack.blocks import escape, parse_tick_block, parse_tick_value, stale_text
from bot.slack.deps import Deps
from bot.slack.listeners.forms import show
from bot.slack.listeners.gate_buttons import tick
from bot.slack.modals import FormMeta
from bot.surface import Actor
from bot.views import GateView
from phases import tick_values
from phases.runbook import ManualStep, Runbook

TICK_VALUE_FORM = "cutover_tick_value"
VALUE = "tick_value"  # block_id = action_id of the form's one input

Check = tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]


def value_steps(runbook: Runbook) -> frozenset[str]:
    """Ids of the manual steps (in any phase) whose tick carries a value."""
    return frozenset(m.id for p in runbook.phases for m in p.manual if m.value is not None)


def chosen(action: dict[str, Any]) -> set[str]:
    """The manual step ids a checkbox click leaves selected."""
    out = set()
    options = action.get("selected_options")
    for option in options if isinstance(options, list) else []:
        tick = parse_tick_value(option.get("value") if isinstance(option, dict) else None)
        if tick:
            out.add(tick[2])
    return out


def wants_form(runbook: Runbook, action: dict[str, Any]) -> bool:
    """Whether a checkbox click may need the form (no database read: the trigger lasts 3 s)."""
    return bool(chosen(action) & value_steps(runbook))


def form(meta: FormMeta, item: str, step: ManualStep, mask: Callable[[str], str]) -> dict[str, Any]:
    assert step.value is not None
    spec = step.value
    rule = (
        "a 64-hex public key or an npub1… (NIP-19)"
        if spec.type == "nostr_pubkey"
        else f"it must match {spec.pattern}"
    )
    blocks = [
        modals.section(
            f"*Tick {escape(mask(item))}*: {escape(mask(step.text))}\n"
            "The value goes into the audit trail and the record; the bot checks it "
            "once the step is ticked."
        ),
        {
            "type": "input",
            "block_id": VALUE,
            "label": modals.plain(mask(spec.label), 2000),
            "hint": modals.plain(f"{spec.name}: {rule}", 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": VALUE,
                "max_length": tick_values.VALUE_CHARS,
            },
        },
    ]
    view = modals._modal(TICK_VALUE_FORM, f"Tick {item}", "Tick", blocks, meta)
    view["private_metadata"] = json.dumps(
        {**json.loads(view["private_metadata"]), "i": item}, separators=(",", ":")
    )
    return view


def item_of(view: dict[str, Any]) -> str | None:
    try:
        data = json.loads(view.get("private_metadata") or "")
    except ValueError:
        return None
    item = data.get("i") if isinstance(data, dict) else None
    return item if isinstance(item, str) else None


def _step(runbook: Runbook, view: GateView, item: str) -> ManualStep | None:
    return next((m for m in runbook.phase(view.phase_id).manual if m.id == item), None)


class TickValueForms:
    """Wired into the Slack app (bot.slack.listeners.ticks) with the listeners' `deps`."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def open_or_tick(self, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
        """A box click that selects a value step: its form (one at a time), then the other
        boxes of the click as usual."""
        engine = self.deps.engine
        where = parse_tick_block(action.get("block_id"))
        view = self.deps.reads.gate_view(where[0]) if where else None
        if where is None or view is None or view.attempt != where[1] or view.status != "open":
            tick(self.deps, action, actor, body)  # out of date or decided: it says so
            return
        ticked = {m.id for m in view.manual if m.ticked_by}
        wanted = [m for m in engine.runbook.phase(view.phase_id).manual if m.value is not None]
        new = [m for m in wanted if m.id in chosen(action) - ticked]
        if not new:
            tick(self.deps, action, actor, body)
            return
        refusal = approvals.may_open_form(
            view.environment, engine.environment(view.environment), actor
        )
        if refusal:
            engine.refuse(actor, "tick", refusal, run_id=view.run_id, gate=view.id, item=new[0].id)
            self.deps.surface.gate_changed(view.id)
            self.deps.answer(body, "🚫 " + self.deps.md(refusal), run_id=view.run_id)
            return
        response_url = body.get("response_url")
        channel = body.get("channel") or {}
        meta = FormMeta(
            "tick",
            actor.id,
            gate=view.id,
            attempt=view.attempt,
            run=view.run_id,
            env=view.environment,
            channel=channel.get("id") if isinstance(channel, dict) else None,
            response_url=response_url if isinstance(response_url, str) else None,
        )
        show(self.deps, body, form(meta, new[0].id, new[0], engine.masker.mask), view.run_id)
        self.deps.surface.gate_changed(view.id)  # the box stays empty until the form is sent
        rest = [
            o
            for o in action.get("selected_options") or []
            if (parse_tick_value(o.get("value")) or (0, 0, ""))[2] not in {m.id for m in new}
        ]
        if chosen({"selected_options": rest}) - ticked:
            tick(self.deps, {**action, "selected_options": rest}, actor, body)

    def check(self, _deps: Deps, meta: FormMeta, actor: Actor, view: dict[str, Any]) -> Check:
        """The submitted value: judged by the step's rule on the form, then ticked."""
        engine = self.deps.engine
        item = item_of(view)
        gate = self.deps.reads.gate_view(meta.gate) if meta.gate else None
        step = _step(engine.runbook, gate, item) if gate and item else None
        if gate is None or step is None or step.value is None or gate.attempt != meta.attempt:
            return {VALUE: "This checkpoint is out of date; nothing was ticked."}, None
        if gate.status != "open":
            return {VALUE: engine.masker.mask(stale_text(gate))[:150]}, None
        _kept, problem = tick_values.accept(step.value, modals.value(view, VALUE))
        if problem:
            return {VALUE: engine.masker.mask(problem)}, None
        return {}, (self.tick, (gate.id, gate.run_id, gate.environment, step.id, view))

    def tick(
        self,
        _deps: Deps,
        gate_id: int,
        run_id: int,
        environment: str,
        item: str,
        view: dict[str, Any],
        actor: Actor,
        reply_to: dict[str, Any],
    ) -> None:
        actor = self.deps.approvers.with_groups(actor, environment)
        result = self.deps.engine.tick(gate_id, item, actor, modals.value(view, VALUE))
        if result.outcome != "ticked":
            self.deps.answer(reply_to, "🚫 " + self.deps.md(result.message), run_id=run_id)
