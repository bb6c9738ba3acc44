"""Forms (modals), common to every one: opening a form with the request's trigger_id (good for
3 seconds, so forms are opened on a pool of their own, right after the ack and before any
slow work), and the submission listener: the form is checked before its ack (bad input:
`response_action: errors` on the field), then worked on like a click, with permission
checked again. The forms themselves: bot.slack.listeners.gate_forms and run_forms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.domain.errors import Unavailable
from bot.slack import modals
from bot.slack.blocks import escape
from bot.slack.deps import Deps
from bot.slack.middleware import UNAVAILABLE, signed
from bot.slack.modals import FormMeta
from bot.surface import Actor

log = logging.getLogger(__name__)

OPENED_TOO_LATE = (
    "I couldn't open the form in time (Slack allows 3 seconds after a click; it said "
    "`{error}`); nothing was changed. Click again"
)
# A form's check: (errors to show on its fields, or the work to do: a function and its
# arguments, called with deps first and the sender and where to answer them last).
Check = Callable[
    [Deps, FormMeta, Actor, dict[str, Any]],
    tuple[dict[str, str], tuple[Callable[..., None], tuple[Any, ...]] | None],
]


def show(deps: Deps, body: dict[str, Any], form: dict[str, Any], run_id: int | None) -> None:
    """Opens `form` with the request's trigger_id; if Slack refuses (too late: the
    trigger lasts 3 s), the person is told what happened and how to go on."""
    trigger = body.get("trigger_id")
    error = (
        deps.surface.open_view(trigger, form, run_id)
        if isinstance(trigger, str) and trigger
        else "no trigger_id"
    )
    if error:
        hint = (
            ", or type `/cutover abort ENV --reason …`."
            if form.get("callback_id") in (modals.ROLLBACK_FORM, modals.ABORT_FORM)
            else "."
        )
        deps.answer(body, OPENED_TOO_LATE.format(error=escape(error)) + hint, run_id=run_id)


def on_submission(
    deps: Deps, check: Check
) -> Callable[[Ack, dict[str, Any], dict[str, Any], BoltContext], None]:
    """A view_submission listener: `check` reads the form (bad input: errors shown on its
    fields, nothing done); then the ack closes the form and the work runs like a click's,
    answered where the form was opened from."""

    def listener(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
    ) -> None:
        actor = context.get("actor")
        meta = modals.FormMeta.decode(view.get("private_metadata"))
        first = next(
            (b.get("block_id") for b in view.get("blocks") or [] if b.get("type") == "input"),
            None,
        )
        if not isinstance(actor, Actor) or meta is None or not actor.is_(meta.user):
            ack(
                response_action="errors",
                errors={
                    str(first): "This form is not one I opened for you; nothing was done. "
                    "Close it and start again."
                },
            )
            return
        # The replay guard first: checking the form may write an audit row (a refusal in
        # the sender's name), and the same signed submission replayed must write none.
        again = replayed(deps, context)
        if again is not None:
            ack(response_action="errors", errors={str(first): again})
            return
        try:
            errors, work = check(deps, meta, actor, view)
        except Exception as exc:  # the database, most likely: say so on the form
            log.exception("checking a form failed")
            errors, work = (
                {
                    str(first): f"I couldn't check that ({type(exc).__name__}); "
                    "nothing was done. Try again."
                },
                None,
            )
        if errors or work is None:
            ack(response_action="errors", errors=errors)
            return
        ack()
        reply_to = {
            "response_url": meta.response_url,
            "channel_id": meta.channel,
            "user_id": actor.user,
        }
        fn, args = work
        deps.dispatch.later(fn, deps, *args, actor, reply_to)  # guarded above

    return listener


def replayed(deps: Deps, context: BoltContext) -> str | None:
    """Records the request's signature; the answer to give if it came before (or cannot
    be checked now), else None."""
    try:
        refusal = deps.replays.refusal(*signed(context))
        if refusal is not None:
            return refusal
    except Unavailable:
        log.warning("cannot check for a replayed request: the database is unavailable")
        return UNAVAILABLE
    return None


def typed(
    view: dict[str, Any], field: str, *, required: str | None
) -> tuple[str | None, dict[str, str]]:
    """What a form's `field` holds, or the error to show beside it: `required` says why it
    may not be left empty (None: it may), and no field is longer than REASON_CHARS."""
    text = modals.value(view, field)
    if not text:
        return None, ({field: required} if required else {})
    if len(text) > modals.REASON_CHARS:
        return None, {field: f"Keep it under {modals.REASON_CHARS} characters."}
    return text, {}
