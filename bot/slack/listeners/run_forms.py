"""A run's forms: `/cutover abort ENV` without --reason (the rollback form, for the active
run), Revert… (the completion message's button, or `/cutover revert ENV`), an emergency
start's justification (`/cutover start ENV --emergency`) and `/cutover schedule` alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import App

from bot.domain import approvals
from bot.schedules import ScheduleService, already_scheduled
from bot.slack import modals
from bot.slack.approvers import CHANNEL_ID
from bot.slack.blocks import (
    REVERT,
    escape,
)
from bot.slack.deps import Deps
from bot.slack.listeners.command_work import run_command
from bot.slack.listeners.forms import on_submission, show, typed
from bot.slack.modals import FormMeta
from bot.slack.payloads import where
from bot.surface import Actor
from commands.parser import (
    Abort,
    EmergencyForm,
    FieldError,
    Revert,
    ScheduleForm,
    Start,
    compose_time,
    epoch_time,
)
from commands.parser import Schedule as ScheduleCmd
from phases.runbook import RunbookError

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    app.action(REVERT)(deps.dispatch.on_form_click(open_revert_click, deps))
    for callback_id, check in (
        (modals.ABORT_FORM, check_abort_form),
        (modals.SCHEDULE_FORM, check_schedule_form),
        (modals.REVERT_FORM, check_revert_form),
        (modals.EMERGENCY_FORM, check_emergency_form),
    ):
        app.view(callback_id)(on_submission(deps, check))


def open_abort(deps: Deps, cmd: Abort, actor: Actor, body: dict[str, Any]) -> None:
    """`/cutover abort ENV` without --reason: the rollback form, for the active run."""
    try:
        env = deps.engine.environment(cmd.env)
    except RunbookError as exc:
        deps.answer(body, deps.md(str(exc)))
        return
    runs = deps.reads.active_runs(cmd.env)
    refusal = approvals.may_open_form(cmd.env, env, actor)  # no group lookup: 3 s trigger
    if refusal:  # audited as the abort itself would be; no engine call that could abort
        run_id = runs[0] if runs else None
        deps.engine.refuse(actor, "abort", refusal, run_id=run_id, environment=cmd.env)
        deps.answer(body, "🚫 " + deps.md(refusal), run_id=run_id)
        return
    if not runs:
        deps.answer(body, f"No active run of {escape(cmd.env)}; nothing to abort.")
        return
    w = where(body)
    meta = FormMeta(
        "abort",
        actor.id,
        run=runs[0],
        env=cmd.env,
        channel=w.channel,
        response_url=w.response_url,
    )
    form = modals.rollback_form(meta, "", False, deps.engine.masker.mask, abort=True)
    show(deps, body, form, runs[0])


def open_revert_click(
    deps: Deps, action: dict[str, Any], actor: Actor, body: dict[str, Any]
) -> None:
    """The completion message's Revert…: the form, for the run the button was drawn for;
    permission and the window are checked again now (the button may be hours old)."""
    value = action.get("value")
    run_id = int(value) if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value) else None
    view = deps.reads.run_view(run_id) if run_id else None
    if run_id is None or view is None:
        deps.answer(
            body, "This message is out of date; nothing was changed. See `/cutover status`."
        )
        return
    open_revert(deps, run_id, view.environment, actor, body, redraw=True)


def open_revert_command(deps: Deps, cmd: Revert, actor: Actor, body: dict[str, Any]) -> None:
    """`/cutover revert ENV` without --reason: the Revert form, for ENV's last run."""
    try:
        deps.engine.environment(cmd.env)
    except RunbookError as exc:
        deps.answer(body, deps.md(str(exc)))
        return
    target = deps.engine.revert_target(cmd.env)
    if target is None:
        said = f"{cmd.env} has no completed cutover to revert; nothing was started"
        deps.engine.refuse(actor, "revert", said, environment=cmd.env)
        deps.answer(body, "🚫 " + deps.md(said))
        return
    open_revert(deps, target, cmd.env, actor, body)


def open_revert(
    deps: Deps, run_id: int, env_name: str, actor: Actor, body: dict[str, Any], redraw: bool = False
) -> None:
    env = deps.engine.environment(env_name)
    # No group lookup before views.open (the 3 s trigger): the submission checks in full.
    refusal = approvals.may_open_form(env_name, env, actor) or deps.engine.revert_refusal(run_id)
    if refusal:
        deps.engine.refuse(actor, "revert", refusal, run_id=run_id, environment=env_name)
        deps.answer(body, "🚫 " + deps.md(refusal), run_id=run_id)
        if redraw:  # a button past its window: the message loses it
            deps.engine.notify.run_changed(run_id)
        return
    w = where(body)
    meta = FormMeta(
        "revert",
        actor.id,
        run=run_id,
        env=env_name,
        channel=w.channel,
        response_url=w.response_url,
    )
    form = modals.revert_form(
        meta, env.quorum, deps.engine.runbook.revert_window_hours, deps.engine.masker.mask
    )
    show(deps, body, form, run_id)


def open_emergency(deps: Deps, cmd: EmergencyForm, actor: Actor, body: dict[str, Any]) -> None:
    """`/cutover start ENV --emergency` without --reason: the justification form, while
    a change freeze is in force (else there is nothing to break: a plain start)."""
    try:
        env = deps.engine.environment(cmd.env)
    except RunbookError as exc:
        deps.answer(body, deps.md(str(exc)))
        return
    refusal = approvals.may_open_override_form(cmd.env, env, actor)
    if refusal:
        said = f"you may not break the change freeze of {cmd.env}; nothing was started"
        deps.engine.refuse(actor, "start", said, environment=cmd.env)
        deps.answer(body, "🚫 " + deps.md(said))
        return
    frozen = deps.engine.frozen(cmd.env)
    if frozen is None:
        deps.answer(
            body,
            f"No change freeze is in force for {escape(cmd.env)}: nothing to break. "
            f"Start it with `/cutover start {escape(cmd.env)}`.",
        )
        return
    w = where(body)
    meta = FormMeta(
        "emergency", actor.id, env=cmd.env, channel=w.channel, response_url=w.response_url
    )
    said = f"the change freeze {frozen.freeze.id!r} ({frozen.freeze.reason})"
    form = modals.emergency_form(
        meta, escape(said), env.override_quorum_for(), deps.engine.masker.mask
    )
    show(deps, body, form, None)


def open_schedule(deps: Deps, cmd: ScheduleForm, actor: Actor, body: dict[str, Any]) -> None:
    """`/cutover schedule` without arguments: the schedule form."""
    w = where(body)
    meta = FormMeta("schedule", actor.id, channel=w.channel, response_url=w.response_url)
    form = modals.schedule_form(
        meta,
        list(deps.engine.runbook.environments),
        deps.engine.masker.mask,
        today=deps.engine.now(),
    )
    show(deps, body, form, None)


def check_revert_form(
    deps: Deps, meta: FormMeta, actor: Actor, view: dict[str, Any]
) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
    """The revert's reason (required), and the window: still open for the run the form
    was opened for. Permission (groups included) and the quorum: the engine's."""
    why = "Say why you revert: it goes into the audit trail and the cutover records."
    reason, errors = typed(view, modals.REASON, required=why)
    if errors or reason is None:
        return errors, None
    if meta.kind != "revert" or meta.run is None or meta.env is None:
        return {modals.REASON: "This form is out of date; nothing was changed."}, None
    closed = deps.engine.revert_refusal(meta.run)
    if closed:
        deps.engine.refuse(actor, "revert", closed, run_id=meta.run, environment=meta.env)
        return {modals.REASON: deps.engine.masker.mask(closed)}, None
    return {}, (revert_form, (meta.env, meta.run, reason))


def revert_form(
    deps: Deps, env: str, run_id: int, reason: str, actor: Actor, reply_to: dict[str, Any]
) -> None:
    actor = deps.approvers.with_groups(actor, env)
    result = deps.engine.revert(env, actor, reason, run_id=run_id)
    prefix = "🚫 " if result.outcome == "refused" else ""
    deps.answer(reply_to, prefix + deps.md(result.message), run_id=result.run_id)


def check_emergency_form(
    deps: Deps, meta: FormMeta, actor: Actor, view: dict[str, Any]
) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
    """The justification of an emergency start (required); the start itself (its rules,
    the freeze, the override quorum) is `/cutover start ENV --emergency --reason …`."""
    why = "Say why it must start now: an emergency start needs a justification."
    text, errors = typed(view, modals.JUSTIFICATION, required=why)
    if errors or text is None:
        return errors, None
    if meta.kind != "emergency" or meta.env is None:
        return {modals.JUSTIFICATION: "This form is out of date; nothing was changed."}, None
    return {}, (emergency_form, (meta.env, text))


def emergency_form(deps: Deps, env: str, text: str, actor: Actor, reply_to: dict[str, Any]) -> None:
    run_command(deps, Start(env, emergency=text), actor, reply_to)


def check_abort_form(
    deps: Deps, meta: FormMeta, actor: Actor, view: dict[str, Any]
) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
    why = "Say why you abort: it goes into the audit trail and the cutover record."
    reason, errors = typed(view, modals.REASON, required=why)
    if errors or reason is None:
        return errors, None
    if meta.env is None or meta.run not in deps.reads.active_runs(meta.env):
        said = f"Run #{meta.run} has ended meanwhile; nothing was changed. Close this form."
        deps.engine.refuse(actor, "abort", said, run_id=meta.run, environment=meta.env)
        return {modals.REASON: said}, None
    return {}, (abort_form, (meta.env, meta.run, reason))


def abort_form(
    deps: Deps, env: str, run_id: int, reason: str, actor: Actor, reply_to: dict[str, Any]
) -> None:
    if run_id not in deps.reads.active_runs(env):  # not another run started since
        deps.answer(reply_to, f"Run #{run_id} has ended meanwhile; nothing was changed.")
        return
    actor = deps.approvers.with_groups(actor, env)
    reply = deps.commands.execute(Abort(env, reason), actor)
    deps.answer(reply_to, deps.md(reply.text), ephemeral=reply.ephemeral, run_id=run_id)


def check_schedule_form(
    deps: Deps, meta: FormMeta, actor: Actor, view: dict[str, Any]
) -> tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None]:
    """The schedule form, checked as `/cutover schedule ENV TIME` is: an environment of
    the runbook, a start after now (see _form_time), no cutover of it
    scheduled already. Permission is checked when it is scheduled (groups read then)."""
    env = modals.value(view, modals.ENV)
    if not env or env not in deps.engine.runbook.environments:
        return {modals.ENV: "Pick an environment of the runbook."}, None
    try:
        at = form_time(deps, view)
    except FieldError as exc:
        return {exc.field: exc.problem}, None
    other = ScheduleService(deps.engine).blocking(env)  # the rule `schedule` applies
    if other is not None:
        return {modals.ENV: already_scheduled(other)}, None
    channel = modals.value(view, modals.CHANNEL)
    stakeholders = modals.value(view, modals.STAKEHOLDERS)
    for block, picked in ((modals.CHANNEL, channel), (modals.STAKEHOLDERS, stakeholders)):
        if picked and not CHANNEL_ID.fullmatch(picked):
            return {block: "Pick a channel (not a direct message)."}, None
    if channel is None and deps.env_channel(env) is None:
        channel = meta.channel  # as the text command: the channel it was typed in
    return {}, (schedule_form, (env, at, channel, stakeholders))


def form_time(deps: Deps, view: dict[str, Any]) -> datetime:
    """The start a schedule form gives: its datetimepicker's instant; from a form the
    previous version opened (day, time, zone list), that local time, refused when the
    clocks skip it or show it twice. Raises FieldError."""
    now = deps.engine.now()
    if modals.WHEN in ((view.get("state") or {}).get("values") or {}):
        return epoch_time(modals.picked_time(view, modals.WHEN), now)
    return compose_time(
        modals.value(view, modals.DATE),
        modals.value(view, modals.TIME),
        modals.value(view, modals.TZ),
        now,
    )


def schedule_form(
    deps: Deps,
    env: str,
    at: Any,
    channel: str | None,
    stakeholders: str | None,
    actor: Actor,
    reply_to: dict[str, Any],
) -> None:
    actor = deps.approvers.with_groups(actor, env)
    channel = channel or deps.env_channel(env, resolve=True)  # the id, not a #name
    reply = deps.commands.execute(ScheduleCmd(env, at, stakeholders), actor, channel=channel)
    deps.answer(reply_to, deps.md(reply.text), ephemeral=reply.ephemeral)
