"""Block Kit modals: the reason for a rollback or an abort, Continue's comment, the schedule
form, and a step's kept output (read only).

Pure functions: what the bot shows (a view dict for `views.open`) and what it reads back
from a `view_submission` (its `state.values` and `private_metadata`). Within the view
object's limits (docs.slack.dev/reference/views/modal-views): title, submit and close at
most 24 characters, at most 100 blocks, private_metadata at most 3,000 characters,
callback_id at most 255. Every text shown is masked and escaped by the caller's `mask`.

The metadata says who opened the form, for what (gate and attempt, or environment) and
where to answer; the submission is checked against it again (the person, the gate, its
attempt) before anything is done, since a gate may have been decided while the form was open.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.slack.blocks import Block, clip, clip_plain, context, escape, section

Mask = Callable[[str], str]

VIEW_TEXT = 24  # title, submit, close
VIEW_BLOCKS = 100
PRIVATE_METADATA = 3000
REASON_CHARS = 500  # as `/cutover abort --reason` keeps

# callback_ids (≤ 255) of the bot's modals
ROLLBACK_FORM, ABORT_FORM, COMMENT_FORM, SCHEDULE_FORM = (
    "cutover_rollback",
    "cutover_abort",
    "cutover_continue_comment",
    "cutover_schedule",
)
OVERRIDE_FORM = "cutover_override"  # break-glass: continue past failed steps
REVERT_FORM = "cutover_revert"  # undo a completed run: its restore and rollback steps
EMERGENCY_FORM = "cutover_emergency"  # break-glass start in a change freeze
REASON, COMMENT = "reason", "comment"  # block_id = action_id of the text inputs
JUSTIFICATION = "justification"
ENV, DATE, TIME, TZ, CHANNEL, STAKEHOLDERS = "env", "date", "time", "tz", "channel", "stakeholders"

# The schedule form asks for one instant with Slack's datetimepicker: the person picks a day
# and a time in their own Slack time zone and Slack sends the UNIX time, so no zone list and
# no daylight-saving gap or overlap can put the cutover an hour off. DATE, TIME and TZ are
# the fields of the form before it (date, time and a zone list): such a form, opened before
# an upgrade and submitted after it, is still read (bot.slack.listeners.run_forms.form_time).
WHEN = "when"
WHEN_HOURS = 24  # the picker starts at the next whole hour a day from now


@dataclass(frozen=True)
class FormMeta:
    """What a form was opened for. `user`: the qualified id of the person who opened it."""

    kind: str  # rollback | abort | comment | schedule
    user: str
    gate: int | None = None
    attempt: int | None = None
    run: int | None = None
    env: str | None = None
    channel: str | None = None  # where to answer (ephemeral) when response_url is gone
    response_url: str | None = None  # the click's or command's, good for 30 minutes

    def encode(self) -> str:
        data = {
            k: v
            for k, v in {
                "k": self.kind,
                "u": self.user,
                "g": self.gate,
                "a": self.attempt,
                "r": self.run,
                "e": self.env,
                "c": self.channel,
                "ru": self.response_url,
            }.items()
            if v is not None
        }
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > PRIVATE_METADATA:  # only a response_url could be that long
            data.pop("ru", None)
            text = json.dumps(data, separators=(",", ":"))
        return text

    @classmethod
    def decode(cls, text: Any) -> FormMeta | None:
        """None for anything this bot did not write."""
        try:
            data = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("k"), str):
            return None
        if not isinstance(data.get("u"), str):
            return None

        def num(key: str) -> int | None:
            v = data.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10**9 else None

        def text_of(key: str) -> str | None:
            v = data.get(key)
            return v if isinstance(v, str) and v else None

        return cls(
            data["k"],
            data["u"],
            num("g"),
            num("a"),
            num("r"),
            text_of("e"),
            text_of("c"),
            text_of("ru"),
        )


def plain(text: str, limit: int = VIEW_TEXT) -> Block:
    return {"type": "plain_text", "text": clip_plain(text, limit), "emoji": True}


def text_input(
    block_id: str,
    label: str,
    *,
    optional: bool,
    placeholder: str,
    hint: str | None = None,
    max_length: int = REASON_CHARS,
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": plain(label, 2000),
        "element": {
            "type": "plain_text_input",
            "action_id": block_id,
            "multiline": True,
            "max_length": max_length,
            "placeholder": plain(placeholder, 150),
        },
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _modal(
    callback_id: str, title: str, submit: str, blocks: list[Block], meta: FormMeta
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title),
        "submit": plain(submit),
        "close": plain("Cancel"),
        "blocks": blocks[:VIEW_BLOCKS],
        "private_metadata": meta.encode(),
    }


OUTPUT_VIEW = "cutover_step_output"  # a Show output modal: read only, nothing to submit
OUTPUT_TEXT = 9_000  # of output in one modal: within the text budget a message keeps
OUTPUT_SECTION = 2_900  # of output per section (3,000 with its code fences)


def output_view(heading: str, text: str, more: str, mask: Mask) -> dict[str, Any]:
    """A step's kept output (its last lines, within OUTPUT_TEXT characters, in code blocks of
    at most OUTPUT_SECTION) under `heading` (mrkdwn); `more` (mrkdwn) says where the rest is.
    `text` is masked and escaped here; its mentions and links cannot form (escaped `<`)."""
    lines = [escape(mask(ln)).replace("```", "ˋˋˋ") for ln in text.splitlines()]
    kept: list[str] = []
    room = OUTPUT_TEXT
    for line in reversed(lines):
        line = clip(line, OUTPUT_SECTION - 10)
        if len(line) + 1 > room:
            break
        kept.insert(0, line)
        room -= len(line) + 1
    chunks: list[str] = []
    for line in kept:
        if chunks and len(chunks[-1]) + 1 + len(line) <= OUTPUT_SECTION - 6:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    shown = len(kept)
    head = heading + (
        f"\nThe last {shown} of {len(lines)} lines kept:" if shown < len(lines) else ""
    )
    blocks: list[Block] = [section(clip(head, 2900))]
    blocks += [section(f"```{chunk or ' '}```") for chunk in chunks] or [
        section("_(no output kept)_")
    ]
    blocks.append(context(more))
    return {
        "type": "modal",
        "callback_id": OUTPUT_VIEW,
        "title": plain("Step output"),
        "close": plain("Close"),
        "blocks": blocks[:VIEW_BLOCKS],
    }


def rollback_form(
    meta: FormMeta, phase: str, restore: bool, mask: Mask, *, abort: bool = False
) -> dict[str, Any]:
    """Rollback at a gate (or `/cutover abort ENV`): a required reason; submitting is final."""
    what = (
        f"*Abort the run of {escape(mask(meta.env or '?'))}* (run #{meta.run})"
        if abort
        else f"*Roll back run #{meta.run}* at phase {escape(mask(phase))}"
    )
    restore_line = " The database is restored from the backup first." if restore else ""
    blocks = [
        section(
            clip(
                f"{what}.\nThis is final: the run stops and the runbook's rollback steps run."
                f"{restore_line} The channel sees who decided and why.",
                2900,
            )
        ),
        text_input(
            REASON,
            "Why roll back?",
            optional=False,
            placeholder="e.g. smoke test shows 502s from the relay",
            hint="Goes into the audit trail and the cutover record.",
        ),
    ]
    title = f"Abort {meta.env}" if abort else f"Roll back run #{meta.run}"
    return _modal(ABORT_FORM if abort else ROLLBACK_FORM, title, "Roll back", blocks, meta)


def comment_form(meta: FormMeta, phase: str, mask: Mask) -> dict[str, Any]:
    """Continue with a comment: the same approval as the Continue button, plus a note."""
    blocks = [
        section(
            clip(
                f"*Approve phase {escape(mask(phase))}* of run #{meta.run} and go on, with a "
                "comment for the audit trail and the cutover record.",
                2900,
            )
        ),
        text_input(
            COMMENT,
            "Comment",
            optional=True,
            placeholder="e.g. 3 slow queries in the log, known and harmless",
            hint="Optional; an empty comment approves just as Continue does.",
        ),
    ]
    return _modal(COMMENT_FORM, "Continue", "Continue", blocks, meta)


def override_form(
    meta: FormMeta, phase: str, failed: list[str], votes: int, quorum: int, mask: Mask
) -> dict[str, Any]:
    """Break-glass: continue past failed steps. The justification is required; the
    override is decided once `quorum` override approvers have each sent this form."""
    steps = ", ".join(escape(mask(f)) for f in failed) or "?"
    blocks = [
        section(
            clip(
                f"🟥 *Override the failed checks of phase {escape(mask(phase))}* of run "
                f"#{meta.run} and go on although {steps} failed.\nThis is break-glass: it "
                f"needs {quorum} override approvers ({votes} so far), each with a "
                "justification. It is shown in red on the checkpoint, in the cutover "
                "record's Deviations and to the stakeholders.",
                2900,
            )
        ),
        text_input(
            JUSTIFICATION,
            "Why is it safe to go on?",
            optional=False,
            placeholder="e.g. the resolver is slow to propagate; checked by hand from 3 regions",
            hint="Required. Goes into the audit trail, the record and the stakeholders' channel.",
        ),
    ]
    return _modal(OVERRIDE_FORM, "Override checks", "Override", blocks, meta)


def revert_form(meta: FormMeta, quorum: int, hours: float, mask: Mask) -> dict[str, Any]:
    """Revert a completed run (the Revert… button, or `/cutover revert ENV` without a reason):
    a required reason; the revert runs once `quorum` approvers have asked for it."""
    blocks = [
        section(
            clip(
                f"⏪ *Revert run #{meta.run} of {escape(mask(meta.env or '?'))}*: its restore and "
                f"rollback steps run as a new run linked to it, once {quorum} approver(s) have "
                f"asked for it. Possible within {hours:g} h of its completion, while no later "
                "run of the environment has started. The channel sees who asked and why.",
                2900,
            )
        ),
        text_input(
            REASON,
            "Why revert?",
            optional=False,
            placeholder="e.g. 5xx errors since the release",
            hint="Required. Goes into the audit trail and both runs' records.",
        ),
    ]
    return _modal(REVERT_FORM, f"Revert run #{meta.run}", "Revert", blocks, meta)


def emergency_form(meta: FormMeta, freeze: str, quorum: int, mask: Mask) -> dict[str, Any]:
    """`/cutover start ENV --emergency` without a reason: the justification of a break-glass
    start in a change freeze; the run starts once `quorum` override approvers sent one."""
    blocks = [
        section(
            clip(
                f"🟥 *Emergency start of {escape(mask(meta.env or '?'))}* during {freeze}.\n"
                f"This is break-glass: it needs {quorum} override approvers, each with a "
                "justification. It is shown in red in the cutover record's Deviations.",
                2900,
            )
        ),
        text_input(
            JUSTIFICATION,
            "Why must it start now?",
            optional=False,
            placeholder="e.g. payment outage: the fix cannot wait for the freeze to end",
            hint="Required. Goes into the audit trail and the cutover record.",
        ),
    ]
    return _modal(EMERGENCY_FORM, "Emergency start", "Start", blocks, meta)


def _option(value: str, label: str | None = None) -> Block:
    return {"text": plain(label or value, 75), "value": value[:150]}


def schedule_form(
    meta: FormMeta, environments: Iterable[str], mask: Mask, *, today: datetime
) -> dict[str, Any]:
    """`/cutover schedule` with no arguments: environment, start (a datetimepicker: the
    person's own time zone), channels."""
    envs = [e for e in environments][:100]
    env_el: Block = {
        "type": "static_select",
        "action_id": ENV,
        "placeholder": plain("Environment", 150),
        "options": [_option(mask(e)) for e in envs],
    }
    if len(envs) == 1:
        env_el["initial_option"] = env_el["options"][0]
    blocks: list[Block] = [
        section(
            "Schedule a cutover. The bot posts the T-24h readiness dry run, the T-1h notice "
            "and, at the start time, a reminder with a *Start* button: it never starts by itself."
        ),
        {"type": "input", "block_id": ENV, "label": plain("Environment", 2000), "element": env_el},
        {
            "type": "input",
            "block_id": WHEN,
            "label": plain("Start (your time zone)", 2000),
            "hint": plain(
                "In the time zone your Slack shows; everyone else sees it in theirs.", 2000
            ),
            "element": {
                "type": "datetimepicker",
                "action_id": WHEN,
                "initial_date_time": initial_start(today),
            },
        },
        {
            "type": "input",
            "block_id": CHANNEL,
            "optional": True,
            "label": plain("Run channel", 2000),
            "hint": plain(
                "Where the run's messages go; empty: the environment's channel. Invite the "
                "bot there.",
                2000,
            ),
            "element": {
                "type": "conversations_select",
                "action_id": CHANNEL,
                "default_to_current_conversation": True,
                "filter": {"include": ["public", "private"], "exclude_bot_users": True},
            },
        },
        {
            "type": "input",
            "block_id": STAKEHOLDERS,
            "optional": True,
            "label": plain("Stakeholders' channel", 2000),
            "hint": plain("Gets the T-1h notice; empty: the run channel.", 2000),
            "element": {
                "type": "conversations_select",
                "action_id": STAKEHOLDERS,
                "filter": {"include": ["public", "private"], "exclude_bot_users": True},
            },
        },
        context(
            "Or type it: `/cutover schedule prod 2026-03-01T14:00Z --stakeholders #launch` "
            "(or `2026-03-01T15:00 Europe/Berlin`)"
        ),
    ]
    return _modal(SCHEDULE_FORM, "Schedule a cutover", "Schedule", blocks, meta)


def initial_start(now: datetime) -> int:
    """The picker's first value: the next whole hour, WHEN_HOURS from now (UNIX seconds)."""
    later = now.astimezone(UTC) + timedelta(hours=WHEN_HOURS)
    return int(later.replace(minute=0, second=0, microsecond=0).timestamp()) + 3600


def picked_time(view: dict[str, Any], block_id: str) -> int | None:
    """A datetimepicker's answer: `selected_date_time`, UNIX seconds (None: none)."""
    values = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
    state = values.get(block_id) if isinstance(values, dict) else None
    if not isinstance(state, dict) or state.get("type") != "datetimepicker":
        return None
    got = state.get("selected_date_time")
    return got if isinstance(got, int) and not isinstance(got, bool) else None


def value(view: dict[str, Any], block_id: str) -> str | None:
    """What the person typed or picked in one input block of a submitted view."""
    values = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
    state = values.get(block_id) if isinstance(values, dict) else None
    if not isinstance(state, dict):
        return None
    kind = state.get("type")
    if kind == "plain_text_input":
        got = state.get("value")
    elif kind == "static_select":
        got = (state.get("selected_option") or {}).get("value")
    elif kind == "datepicker":
        got = state.get("selected_date")
    elif kind == "timepicker":
        got = state.get("selected_time")
    elif kind == "conversations_select":
        got = state.get("selected_conversation")
    elif kind == "channels_select":
        got = state.get("selected_channel")
    else:
        got = None
    return got.strip() or None if isinstance(got, str) else None
