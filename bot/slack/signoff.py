"""The sign-off message in a run's thread: one "Sign off" button per success criterion the
runbook binds to `signoff`, and an optional note. A criterion signed off shows who and when
instead of its button; a run that ended (completed, rolled back, cancelled) shows no buttons.

Button: action_id "signoff:CRITERION", value "RUN:CRITERION" (the run is in the value, so
a click is understood whatever message it came from). The note is the message's input block
(`state.values` of the click), masked before it is stored.

Once the run completed and its environment names people to sign it off (`signoff:`), the
same message gets the cutover's own sign-off: who is asked, who signed and when, and a
"Sign off" button (action_id "signoff_run", value "RUN") until enough of them have.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.signoffs import RunSignoffState, SignoffView
from bot.slack.blocks import (
    MAX_BLOCKS,
    Block,
    button,
    clip,
    context,
    escape,
    group_mention,
    mention,
    section,
    when,
)

SIGNOFF_ACTION = re.compile(r"^signoff:[a-z0-9][a-z0-9_-]{0,39}$")
RUN_SIGNOFF_ACTION = "signoff_run"
NOTE_BLOCK = "signoff_note"
NOTE_ACTION = "note"
NOTE_CHARS = 300


def signoff_value(run_id: int, criterion: str) -> str:
    return f"{run_id}:{criterion}"


def note_from(body: dict[str, Any]) -> str | None:
    """The note typed in the message's input block, if any (block_actions `state.values`)."""
    state = body.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    block = values.get(NOTE_BLOCK) if isinstance(values, dict) else None
    field = block.get(NOTE_ACTION) if isinstance(block, dict) else None
    value = field.get("value") if isinstance(field, dict) else None
    return value.strip()[:NOTE_CHARS] or None if isinstance(value, str) else None


def signoff_message(view: SignoffView, mask: Any) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of the run's sign-off message, drawn from `view`."""
    if not view.criteria and view.run is not None:
        return _run_message(view, mask, [])
    text, blocks = _criteria_message(view, mask)
    if view.run is not None:
        return _run_message(view, mask, blocks)
    return text, blocks


def _run_message(view: SignoffView, mask: Any, blocks: list[Block]) -> tuple[str, list[Block]]:
    """The cutover's own sign-off, below the criteria's (if any)."""
    state = view.run
    assert state is not None
    blocks = blocks[: MAX_BLOCKS - 4]
    blocks.append(section(clip(_run_text(view, state, mask), 3000)))
    if view.run_signable:
        sign = button("Sign off", RUN_SIGNOFF_ACTION, str(view.run_id), style="primary")
        blocks.append({"type": "actions", "block_id": RUN_SIGNOFF_ACTION, "elements": [sign]})
        blocks.append(_note_input())
        blocks.append(context("Only the people named may sign off; each counts once."))
    signed = len(state.signatures)
    fallback = (
        f"Sign-off of run #{view.run_id}: {min(signed, state.quorum)}/{state.quorum} signed off"
    )
    return fallback, blocks


def _run_text(view: SignoffView, state: RunSignoffState, mask: Any) -> str:
    env = escape(mask(view.environment))
    who = " or ".join(
        x
        for x in (
            ", ".join(mention(p) for p in state.by),
            ", ".join(f"a member of {group_mention(g)}" for g in state.groups),
        )
        if x
    )
    head = f"✍️ *Sign-off of the cutover* — run #{view.run_id}, {env}, completed"
    if view.status != "completed":
        head = f"✍️ *Sign-off of the cutover* — run #{view.run_id}, {env}"
    lines = [f"{head}: {state.quorum} of {who} sign it off."]
    for s in state.signatures:
        note = f" — “{escape(mask(s.note))}”" if s.note else ""
        lines.append(
            f"✅ signed off by {mention(s.actor)} at {when(datetime.fromisoformat(s.at))}{note}"
        )
    if state.done:
        lines.append("The cutover is signed off.")
    elif not state.signatures:
        lines.append("❔ not signed off yet")
    return "\n".join(lines)


def _note_input() -> Block:
    return {
        "type": "input",
        "block_id": NOTE_BLOCK,
        "optional": True,
        "label": {"type": "plain_text", "text": "Note with your sign-off (optional)"},
        "element": {
            "type": "plain_text_input",
            "action_id": NOTE_ACTION,
            "max_length": NOTE_CHARS,
        },
    }


def _criteria_message(view: SignoffView, mask: Any) -> tuple[str, list[Block]]:
    intro = (
        f"✍️ *Sign-off* — run #{view.run_id}, {escape(mask(view.environment))}: an approver "
        "vouches for each of these. The record shows who signed off what, and when."
    )
    if not view.signable:
        state = escape(view.status.replace("_", " "))
        after = (
            "sign-offs were taken while it ran."
            if view.status == "completed"
            else "there is nothing to sign off."
        )
        intro = (
            f"✍️ *Sign-off* — run #{view.run_id}, {escape(mask(view.environment))}: the run "
            f"is {state}; {after}"
        )
    blocks: list[Block] = [section(intro)]
    for c in view.criteria[: (MAX_BLOCKS - 3) // 2]:
        text = escape(mask(c.text))
        if c.signatures:
            who = "; ".join(
                f"{mention(s.actor)} at {when(datetime.fromisoformat(s.at))}"
                + (f" — “{escape(mask(s.note))}”" if s.note else "")
                for s in c.signatures
            )
            blocks.append(section(clip(f"✅ *{text}* — signed off by {who}", 3000)))
            continue
        blocks.append(section(f"❔ *{text}* — not signed off yet"))
        if view.signable:
            sign = button(
                "Sign off", f"signoff:{c.id}", signoff_value(view.run_id, c.id), style="primary"
            )
            blocks.append({"type": "actions", "block_id": f"signoff:{c.id}", "elements": [sign]})
    if view.signable and not view.done:
        blocks.append(_note_input())
        blocks.append(context("Only the environment's approvers may sign off."))
    elif view.done:
        blocks.append(context("Every criterion is signed off."))
    signed = sum(bool(c.signatures) for c in view.criteria)
    fallback = f"Sign-off of run #{view.run_id}: {signed}/{len(view.criteria)} signed off"
    return fallback, blocks
