"""A checkpoint's forms: Rollback… (a reason), Continue with comment… (optional), Override…
(break-glass: a justification), and Show output (a step's kept output, read only). Each
opens for whoever may use it (no group lookup before views.open: the trigger lasts 3 s);
its submission is checked in full, groups included, then decided like a click.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.domain import approvals
from bot.slack import modals
from bot.slack.blocks import (
    COMMENT,
    OVERRIDE,
    ROLLBACK,
    SHOW_OUTPUT,
    escape,
    parse_gate_value,
    parse_output_value,
    stale_text,
)
from bot.slack.deps import Deps
from bot.slack.listeners.forms import on_submission, show, typed
from bot.slack.listeners.gate_buttons import decide_gate, retire_copy
from bot.slack.modals import FormMeta
from bot.slack.payloads import where
from bot.store import step_outputs
from bot.surface import Actor
from bot.text import in_words, who

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    form_click = deps.dispatch.on_form_click
    app.action(ROLLBACK)(form_click(open_rollback, deps))
    app.action(re.compile(rf"^{SHOW_OUTPUT}(:\d{{1,2}})?$"))(form_click(show_output, deps))
    app.action(COMMENT)(form_click(open_comment, deps))
    app.action(OVERRIDE)(form_click(open_override, deps))
    for callback_id, check in (
        (modals.ROLLBACK_FORM, check_gate_form),
        (modals.COMMENT_FORM, check_gate_form),
        (modals.OVERRIDE_FORM, check_override_form),
    ):
        app.view(callback_id)(on_submission(deps, check))


def open_rollback(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    open_gate_form(deps, "rollback", action, actor, body)


def open_comment(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    open_gate_form(deps, "comment", action, actor, body)


def open_override(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    open_gate_form(deps, "override", action, actor, body)


def open_gate_form(
    deps: Deps, kind: str, action: dict[str, Any], actor: Actor, body: dict[str, Any]
) -> None:
    """Rollback… / Continue with comment…: the form opens for an approver of an open gate;
    anyone else is refused here (the engine audits it) and sees no form."""
    parsed = parse_gate_value(action.get("value"))
    view = deps.reads.gate_view(parsed[0]) if parsed else None
    if parsed is None or view is None or view.attempt != parsed[1]:
        deps.answer(
            body, "This message is out of date; nothing was changed. See `/cutover status`."
        )
        return
    retire_copy(deps, body, view.id, view.surface_ref)
    if view.status != "open":
        deps.answer(body, stale_text(view), run_id=view.run_id)
        return
    # No group lookup before views.open (the trigger lasts 3 s): the submission is checked
    # in full, groups included.
    env = deps.engine.environment(view.environment)
    refusal = (
        approvals.may_open_override_form(view.environment, env, actor)
        if kind == "override"
        else approvals.may_open_form(view.environment, env, actor)
    )
    if refusal:
        decision = kind if kind in ("rollback", "override") else "continue"
        deps.engine.refuse(actor, decision, refusal, run_id=view.run_id, gate=view.id)
        deps.answer(body, "🚫 " + deps.md(refusal), run_id=view.run_id)
        return
    w = where(body)
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
    mask = deps.engine.masker.mask
    if kind == "override":
        form = modals.override_form(
            meta, phase, view.failed, len(view.overrides), view.override_quorum, mask
        )
    elif kind == "rollback":
        form = modals.rollback_form(meta, phase, view.on_fail == "restore_and_rollback", mask)
    else:
        form = modals.comment_form(meta, phase, mask)
    show(deps, body, form, view.run_id)


def show_output(deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]) -> None:
    """Show output: a step's kept output in a modal, for anyone who sees the checkpoint
    (it was masked before it was kept, and is masked again here)."""
    step_run_id = parse_output_value(action.get("value"))
    kept = deps.reads.output_of(step_run_id) if step_run_id is not None else None
    if kept is None:
        deps.answer(body, "That step kept no output; nothing to show. See `/cutover status`.")
        return
    mask = deps.engine.masker.mask
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
    show(deps, body, form, kept.run_id)


def check_gate_form(
    deps: Deps, meta: FormMeta, actor: Actor, view: dict[str, Any]
) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
    """Rollback's reason (required) or Continue's comment (optional), and the gate: still
    the one the form was opened for, still open."""
    field = modals.REASON if meta.kind == "rollback" else modals.COMMENT
    why = "Say why you roll back: it goes into the audit trail and the cutover record."
    text, errors = typed(view, field, required=why if meta.kind == "rollback" else None)
    if errors:
        return errors, None
    gate = deps.reads.gate_view(meta.gate) if meta.gate else None
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
        deps.engine.refuse(
            actor,
            decision,
            f"the gate was decided before the form was sent: {said}",
            run_id=gate.run_id,
            gate=gate.id,
            phase=gate.phase_id,
        )
        return {field: deps.engine.masker.mask(said)}, None
    decision = "rollback" if meta.kind == "rollback" else "continue"
    return {}, (
        decide_form,
        (gate.id, gate.run_id, gate.environment, decision, text),
    )


def decide_form(
    deps: Deps,
    gate_id: int,
    run_id: int,
    environment: str,
    decision: str,
    text: str | None,
    actor: Actor,
    reply_to: dict[str, Any],
) -> None:
    decide_gate(deps, gate_id, run_id, environment, decision, actor, reply_to, text)


def check_override_form(
    deps: Deps, meta: FormMeta, actor: Actor, view: dict[str, Any]
) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
    """Break-glass: the justification (required), and the gate: still the one the form
    was opened for, still open. Permission and the runbook's rules: the engine's."""
    field = modals.JUSTIFICATION
    why = "Say why it is safe to go on: an override needs a justification."
    text, errors = typed(view, field, required=why)
    if errors or text is None:
        return errors, None
    gate = deps.reads.gate_view(meta.gate) if meta.gate else None
    if gate is None or gate.attempt != meta.attempt or meta.kind != "override":
        return {
            field: "This checkpoint is out of date; nothing was changed. See `/cutover status`."
        }, None
    if gate.status != "open":
        said = (
            f"Meanwhile phase {gate.phase_number} was {in_words(gate.status)}"
            f" by {who(gate.decided_by)}; nothing was changed. Close this form."
        )
        deps.engine.refuse(
            actor,
            "override",
            f"the gate was decided before the form was sent: {said}",
            run_id=gate.run_id,
            gate=gate.id,
            phase=gate.phase_id,
        )
        return {field: deps.engine.masker.mask(said)}, None
    return {}, (override_form, (gate.id, gate.run_id, gate.environment, text))


def override_form(
    deps: Deps,
    gate_id: int,
    run_id: int,
    environment: str,
    text: str,
    actor: Actor,
    reply_to: dict[str, Any],
) -> None:
    """One break-glass vote (override groups read now), answered to the person."""
    actor = deps.approvers.with_override_groups(actor, environment)
    result = deps.engine.override(gate_id, actor, text)
    if result.outcome == "already_decided":
        fresh = deps.reads.gate_view(gate_id)
        said = stale_text(fresh) if fresh is not None else deps.md(result.message)
        deps.answer(reply_to, said, run_id=run_id)
    elif result.outcome == "refused":
        deps.answer(reply_to, "🚫 " + deps.md(result.message), run_id=run_id)
    elif result.outcome == "vote_recorded":
        deps.answer(
            reply_to,
            f"🟥 Your override vote is recorded with your justification: "
            f"{deps.md(result.message)}. Another override approver must send the "
            "Override… form too.",
            run_id=run_id,
        )
    elif result.outcome == "overridden":
        deps.answer(reply_to, "🟥 " + deps.md(result.message), run_id=run_id)
