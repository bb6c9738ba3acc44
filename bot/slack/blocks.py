"""Block Kit messages for a run and its checkpoints, built from the read models in `bot.views`.

Pure functions: a view in, `(fallback_text, blocks)` out. Every dynamic string is
masked (secrets never reach chat), escaped for mrkdwn and cut to Slack's limits:
at most 50 blocks, section text 3000, header 150, button text 75, option text 75,
action_id / block_id 255, button value 2000, option value 150, 10 options per
checkbox group. Identity is shown as a mention built from the user id, never a name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.notices import RESULT_INDENT, START_ITEMS_HEAD, ItemState, item_line, result_status
from bot.text import ICONS as TEXT_ICONS
from bot.text import minutes_range
from bot.views import STATUS_WORDS, GateView, RunView

Mask = Callable[[str], str]
Block = dict[str, Any]

MAX_BLOCKS = 50
SECTION_TEXT = 3000
HEADER_TEXT = 150
CONTEXT_TEXT = 2000
BUTTON_TEXT = 75
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTIONS_PER_GROUP = 10
ACTION_ID = 255
BLOCK_ID = 255
VALUE = 2000
CONFIRM_TITLE, CONFIRM_TEXT, CONFIRM_BUTTON = 100, 300, 30
FALLBACK_TEXT = 3000  # the notification / accessibility text of a message
REPLY_TEXT = 3900  # an ephemeral reply or a thread notice
EVIDENCE_CHARS = 400  # of one step's evidence, in a checkpoint
PASSED_EVIDENCE = 120  # of a passed step's evidence, in the checkpoint's thread replies
# Slack refuses a message whose block text adds up past an undocumented threshold,
# reported at ~11,300-13,300 characters (bolt-js #2509, #2867); the bot keeps 10,000.
BLOCK_TEXT_BUDGET = 10_000
RESULTS_RESERVE = 4_500  # of a checkpoint's budget, kept for the results before manual steps
INTRO_TEXT = 1_000
MANUAL_TEXT = 200
MANUAL_BLOCKS = 30  # of a checkpoint's 50 blocks, at most for the manual steps
PASSED_SUMMARY = 800
DETAIL_SECTION = 2_900
WAITING_TEXT = 1_500  # the mentions of who has not voted yet
DETAIL_MESSAGES = 6  # thread replies of results per checkpoint (then: /cutover audit)

CONTINUE, ROLLBACK, RETRY, TICK = "gate_continue", "gate_rollback", "gate_retry", "gate_tick"
COMMENT = "gate_continue_comment"  # Continue with a comment: opens a form
OVERRIDE = "gate_override"  # break-glass past failed steps: opens a form (a justification)
SHOW_OUTPUT = "step_output"  # + ":N": a Show output button (action_ids unique in a block)
OUTPUT_BUTTONS = 5  # per checkpoint: failing steps first; the rest by `/cutover logs`
QUOTE_CHARS = 600  # of a failing step's last lines, quoted under it
START = "schedule_start"  # the Start button of a scheduled cutover's T-0 reminder
CHECKLIST_TICK = "checklist_tick"  # a box of the T-1h checklist: an item that gates Start
RUN_PAGE = "run_page"  # the "Run page" link button (bot/runpage): Slack opens the URL
REVERT = "run_revert"  # the completion message's Revert… button: opens a form (a reason)
URL_CHARS = 3000  # of a button's url

ICONS = {**TEXT_ICONS, "pending": "⚪"}  # a hollow circle reads better in Slack
RUN_ICONS = {
    "running": "⏳",
    "waiting": "✋",
    "rolling_back": "⏪",
    "rolled_back": "↩️",
    "completed": "✅",
    "cancelled": "🚫",
}

_ACTOR = re.compile(r"\b([TE][A-Z0-9]+):([UW][A-Z0-9]+)\b")


def _same(text: str) -> str:
    return text


# ---------------------------------------------------------------------- text


def escape(text: str) -> str:
    """The three characters Slack's mrkdwn needs escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slackify(text: str) -> str:
    """Engine text for mrkdwn: escaped, and TEAM:USER ids shown as mentions."""
    return _ACTOR.sub(lambda m: f"<@{m.group(2)}>", escape(text))


def mention(actor_id: str | None) -> str:
    if not actor_id:
        return "?"
    m = _ACTOR.fullmatch(actor_id.strip())
    return f"<@{m.group(2)}>" if m else escape(actor_id.strip())


def mentions(actor_ids: str | Iterable[str] | None) -> str:
    """'T1:U1,T1:U2' (a quorum's decided_by) or a list of ids, as '<@U1>, <@U2>'."""
    if not actor_ids:
        return "?"
    ids = actor_ids.split(",") if isinstance(actor_ids, str) else list(actor_ids)
    return ", ".join(mention(i) for i in ids if i.strip()) or "?"


def when(dt: datetime | None) -> str:
    """A Slack date token: shown in the reader's time zone, with a UTC fallback."""
    if dt is None:
        return "?"
    fallback = dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(dt.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def clip(text: str, limit: int) -> str:
    """Cuts mrkdwn to `limit` characters without leaving half an &entity; or <token>."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    cut = re.sub(r"&[#A-Za-z0-9]*$", "", cut)
    lt = cut.rfind("<")
    if lt != -1 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return cut + "…"


def clip_plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def one_line(text: str) -> str:
    return " ".join(text.split())


def fit_lines(lines: list[str], limit: int = REPLY_TEXT) -> str:
    """Joins lines within `limit`, keeping the first and the latest ones."""
    text = "\n".join(lines)
    if len(text) <= limit or len(lines) < 3:
        return clip(text, limit)
    head, tail = lines[0], lines[-1]
    kept: list[str] = []
    budget = limit - len(head) - len(tail) - 60
    for line in reversed(lines[1:-1]):
        if len(line) + 1 > budget:
            break
        kept.insert(0, line)
        budget -= len(line) + 1
    dropped = len(lines) - 2 - len(kept)
    return clip("\n".join([head, f"… {dropped} earlier lines not shown", *kept, tail]), limit)


# ---------------------------------------------------------------------- blocks


def header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip_plain(text, HEADER_TEXT), "emoji": True},
    }


def section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}}
    if block_id:
        block["block_id"] = block_id[:BLOCK_ID]
    return block


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, CONTEXT_TEXT)}]}


def sections(lines: list[str], limit: int = SECTION_TEXT) -> list[Block]:
    """Packs lines into as few section blocks as their text limit allows."""
    out: list[Block] = []
    current = ""
    for raw in lines:
        line = clip(raw, limit)
        if current and len(current) + 1 + len(line) > limit:
            out.append(section(current))
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        out.append(section(current))
    return out


def button(
    text: str, action_id: str, value: str, style: str | None = None, confirm: Block | None = None
) -> Block:
    b: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip_plain(text, BUTTON_TEXT), "emoji": True},
        "action_id": action_id[:ACTION_ID],
        "value": value[:VALUE],
    }
    if style:
        b["style"] = style
    if confirm:
        b["confirm"] = confirm
    return b


def page_buttons(links: Sequence[tuple[str, str]]) -> Block:
    """Link buttons to run pages ((label, url) each; at most 5, one actions block): Slack
    opens the URL in the browser (and still sends a click, which the app acknowledges)."""
    return {
        "type": "actions",
        "block_id": "run_page",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": clip_plain(label, BUTTON_TEXT)},
                "action_id": f"{RUN_PAGE}:{i}",
                "url": url[:URL_CHARS],
            }
            for i, (label, url) in enumerate(links[:5])
        ],
    }


def confirm_dialog(title: str, text: str, yes: str, no: str = "Cancel") -> Block:
    return {
        "title": {"type": "plain_text", "text": clip_plain(title, CONFIRM_TITLE)},
        "text": {"type": "mrkdwn", "text": clip(text, CONFIRM_TEXT)},
        "confirm": {"type": "plain_text", "text": clip_plain(yes, CONFIRM_BUTTON)},
        "deny": {"type": "plain_text", "text": clip_plain(no, CONFIRM_BUTTON)},
        "style": "danger",
    }


def gate_value(view: GateView) -> str:
    return f"{view.id}:{view.attempt}"


def parse_gate_value(value: str | None) -> tuple[int, int] | None:
    """'12:1' → (gate 12, attempt 1); anything else → None.

    Ids have at most 9 digits: a larger number would overflow PostgreSQL's integer column
    in the lookup (a DataError) instead of reading as "no such gate".
    """
    m = re.fullmatch(r"(\d{1,9}):(\d{1,6})", value if isinstance(value, str) else "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_tick_value(value: str | None) -> tuple[int, int, str] | None:
    m = re.fullmatch(
        r"(\d{1,9}):(\d{1,6}):([a-z0-9][a-z0-9_-]{0,39})", value if isinstance(value, str) else ""
    )
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else None


def parse_tick_block(block_id: str | None) -> tuple[int, int, int] | None:
    """'tick:12:1:0' or 'tick:12:1:0:1f' (a drawing's iteration) → (gate 12, attempt 1, group 0)."""
    m = re.fullmatch(
        r"tick:(\d{1,9}):(\d{1,6}):(\d{1,3})(?::[0-9a-f]{1,16})?",
        block_id if isinstance(block_id, str) else "",
    )
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


# ---------------------------------------------------------------------- run (parent message)


def run_message(
    view: RunView,
    now: datetime | None = None,
    mask: Mask = _same,
    waiting: str = "",
    page_url: str | None = None,
    revert: bool = False,
) -> tuple[str, list[Block]]:
    """The run's parent message: state, elapsed against the estimate, the phase list;
    `waiting` (mrkdwn mentions) names who the open gate waits for; `page_url`, the run page's
    signed link: a "Run page" button once the run has ended (its completion or rollback);
    `revert`: a completed run still within its revert window gets a Revert… button."""
    state = STATUS_WORDS.get(view.status, view.status)  # type: ignore[call-overload]
    dry = " (dry run)" if view.dry_run else ""
    elapsed = view.elapsed_minutes(now)
    blocks: list[Block] = [header(f"Cutover run #{view.id} · {mask(view.environment)}{dry}")]
    blocks.append(
        section(
            f"{RUN_ICONS.get(view.status, '•')} *{escape(state)}* · elapsed {elapsed:.0f} min"
            + (
                f" of an estimated {minutes_range(view.estimate_min, view.estimate_max)}\n"
                if view.reverts is None
                else "\n"
            )
            + f"Started by {mention(view.requested_by)} at {when(view.started_at)} · runbook "
            f"_{escape(mask(view.runbook))}_"
        )
    )
    lines = []
    for p in view.phases if view.reverts is None else []:
        took = f", took {p.minutes:.0f} min" if p.minutes is not None else ""
        attempt = f" (attempt {p.attempt})" if p.attempt > 1 else ""
        extra = {
            "waiting": f" — waiting for {clip(waiting, WAITING_TEXT)} (see the thread)"
            if waiting
            else " — waiting for a decision (see the thread)",
            "running": " — running",
            "interrupted": " — interrupted",
            "monitoring": " — monitoring: each round is posted in the thread",
        }.get(p.status, "")
        if p.status == "passed" and p.decided_by:
            extra = f" — approved by {mentions(p.decided_by)} at {when(p.decided_at)}"
        elif p.status == "overridden" and p.decided_by:
            extra = (
                f" — 🟥 *failed checks overridden* by {mentions(p.decided_by)} at "
                f"{when(p.decided_at)}"
            )
        elif p.status == "failed" and p.decided_by:
            extra = f" — rolled back by {mention(p.decided_by)} at {when(p.decided_at)}"
        lines.append(
            f"{ICONS.get(p.status, '•')} *{p.number}. {escape(mask(p.name))}* "
            f"[{escape(p.estimate)}{took}]{attempt}{extra}"
        )
    if view.reverts is not None:  # what a revert runs: its steps, not the phases
        lines = [
            f"{ICONS.get(st.status, '•')} *{escape(mask(st.section))}/{escape(mask(st.id))}* "
            f"{escape(mask(st.name))}: "
            + escape(mask(st.evidence or ("not run yet" if st.status == "pending" else st.status)))
            for st in view.revert_steps
        ] or ["(the runbook has no restore or rollback steps)"]
        lines.insert(0, f"⏪ *Revert of run #{view.reverts}*: its restore and rollback steps")
    blocks += sections(lines)[: MAX_BLOCKS - 3]
    if view.rollback_reason:
        blocks.append(
            context(
                f"Rollback: {slackify(mask(view.rollback_reason))} "
                f"(by {mention(view.rolled_back_by)})"
            )
        )
    if revert and view.status == "completed" and not view.dry_run:
        blocks = blocks[: MAX_BLOCKS - 2] + [
            {
                "type": "actions",
                "block_id": f"revert:{view.id}",
                "elements": [button("Revert…", REVERT, str(view.id), style="danger")],
            }
        ]
    if page_url and view.ended_at is not None:
        blocks = blocks[: MAX_BLOCKS - 1] + [page_buttons([("Run page", page_url)])]
    current = next(
        (p for p in view.phases if p.status in ("waiting", "running", "monitoring")), None
    )
    where = f" · phase {current.number} {current.name}" if current else ""
    text = f"Cutover run #{view.id} of {view.environment}{dry}: {state}{where}"
    return clip(slackify(mask(text)), FALLBACK_TEXT), blocks[:MAX_BLOCKS]


# ---------------------------------------------------------------------- checkpoint (thread)


def decided_line(view: GateView) -> str:
    if view.status == "overridden":
        return (
            f"🟥 *Overridden (break-glass): continued past failed {', '.join(view.failed)}* "
            f"by {mentions(view.decided_by)} at {when(view.decided_at)}"
        )
    verb, icon = {
        "approved": ("Approved", "✅"),
        "rolled_back": ("Rolled back", "❌"),
        "retried": ("Sent to retry", "🔁"),
        "cancelled": ("Cancelled", "🚫"),
    }.get(view.status, (view.status, "•"))
    return f"{icon} *{verb}* by {mentions(view.decided_by)} at {when(view.decided_at)}"


def stale_text(view: GateView) -> str:
    """The answer to a click on a message whose gate is no longer open."""
    verb = {
        "approved": "approved",
        "rolled_back": "rolled back",
        "retried": "sent to retry",
        "cancelled": "cancelled",
        "overridden": "overridden past its failed checks",
    }.get(view.status, view.status)
    return (
        f"Phase {view.phase_number} ({escape(view.phase_name)}) of run #{view.run_id} was "
        f"already {verb} by {mentions(view.decided_by)} at {when(view.decided_at)}; "
        "your click changed nothing."
    )


def approvals_line(view: GateView) -> str:
    if view.votes:
        return f"*Approvals:* {len(view.votes)}/{view.quorum} approved by {mentions(view.votes)}"
    return f"*Approvals:* 0/{view.quorum} — needs {view.quorum} approvers"


def override_lines(view: GateView, mask: Mask) -> list[str]:
    """The break-glass votes so far, in red: who and why (each line masked and escaped)."""
    if not view.overrides:
        return []
    head = (
        f"🟥 *Override requested:* {len(view.overrides)}/{view.override_quorum} to continue "
        f"past failed {', '.join(view.failed)}"
    )
    return [head] + [
        f"🟥 {mention(who)}: _{clip(escape(mask(why)), 400)}_" for who, why in view.overrides
    ]


def block_text(blocks: Any) -> int:
    """Characters of every `text` string in a block tree: what Slack's undocumented cumulative
    limit (`msg_blocks_too_long`) is reported to count (bolt-js #2509, #2867)."""
    if isinstance(blocks, dict):
        return sum(
            len(v) if k == "text" and isinstance(v, str) else block_text(v)
            for k, v in blocks.items()
        )
    if isinstance(blocks, list):
        return sum(block_text(v) for v in blocks)
    return 0


def _verdict(view: GateView) -> str:
    waiting = [st.step_id for st in view.steps if st.status == "pending"]
    stopped = [f"{st.step_id} {st.evidence}" for st in view.steps if st.status == "interrupted"]
    if view.checks_passed and stopped:  # a tick's checks whose process died (audit row)
        return "; ".join(["PASS so far", *stopped])
    if view.checks_passed and waiting:  # checks bound to a tick: not passed yet
        return f"PASS so far; waiting for {', '.join(waiting)} (run after its tick)"
    if view.checks_passed:
        return "PASS → Continue"
    fail = "RESTORE & ROLLBACK" if view.on_fail == "restore_and_rollback" else "ROLLBACK"
    glass = (
        f", or 🟥 Override… with a justification ({view.override_quorum} override approvers)"
        if view.overridable and view.status == "open"
        else ""
    )
    return f"FAIL → {fail} (or Retry the phase once the cause is fixed{glass})"


def _title(view: GateView, mask: Mask) -> str:
    title = f"Phase {view.phase_number}: {mask(view.phase_name)}"
    if view.attempt > 1:
        title += f" · attempt {view.attempt}"
    if view.dry_run:
        title += " · DRY RUN"
    return title


def _fallback(view: GateView, mask: Mask) -> str:
    verb = {
        "approved": "approved",
        "rolled_back": "rolled back",
        "retried": "sent to retry",
        "cancelled": "cancelled",
        "overridden": "overridden past failed checks",
    }
    state = (
        "waiting for a decision"
        if view.status == "open"
        else f"{verb.get(view.status, view.status)} by {mentions(view.decided_by)}"
    )
    text = (
        f"Run #{view.run_id} · phase {view.phase_number} {escape(mask(view.phase_name))}: {state}"
    )
    return clip(text, FALLBACK_TEXT)


def _step_line(st: Any, mask: Mask, evidence_chars: int) -> str:
    evidence = clip_plain(one_line(mask(st.evidence)), evidence_chars)
    line = (
        f"{ICONS.get(st.status, '•')} *{escape(mask(st.name))}* — {escape(evidence)} "
        f"_({st.duration_ms} ms)_"
    )
    quote = getattr(st, "quote", "")
    return f"{line}\n{quote_block(quote, mask)}" if quote else line


def quote_block(text: str, mask: Mask, limit: int = QUOTE_CHARS) -> str:
    """Output lines as a code block within `limit` characters, the last ones kept: masked,
    escaped (no mention or link forms), and no ``` of their own to end the block early."""
    lines = [escape(mask(ln)).replace("```", "ˋˋˋ") for ln in text.splitlines()]
    kept: list[str] = []
    room = limit - 8
    for line in reversed(lines):
        line = clip(line, min(room, 200))
        if room - len(line) - 1 < 0 or not line:
            break
        kept.insert(0, line)
        room -= len(line) + 1
    return "```" + "\n".join(kept or ["…"]) + "```"


def output_buttons(view: GateView, mask: Mask = _same) -> list[Block]:
    """A Show output button per step whose output was kept (failing steps first, then the
    actions, then the checks), at most OUTPUT_BUTTONS; a line names the command for more."""
    rank = {"fail": 0, "error": 0, "warn": 1}
    steps = sorted(
        (st for st in view.steps if st.output_id is not None),
        key=lambda st: (rank.get(st.status, 2), st.section != "actions"),
    )
    if not steps:
        return []
    shown = steps[:OUTPUT_BUTTONS]
    buttons = [
        button(f"Show output: {mask(st.name)}", f"{SHOW_OUTPUT}:{i}", str(st.output_id))
        for i, st in enumerate(shown)
    ]
    out: list[Block] = [
        {"type": "actions", "block_id": f"output:{view.id}:{view.attempt}", "elements": buttons}
    ]
    if len(steps) > len(shown):
        out.append(
            context(
                f"Output of {len(steps) - len(shown)} more steps: "
                f"`/cutover logs {view.run_id} {escape(view.phase_id)}/STEP`"
            )
        )
    return out


def parse_output_value(value: str | None) -> int | None:
    """A Show output button's value: the step_run id whose output to show."""
    m = re.fullmatch(r"\d{1,9}", value if isinstance(value, str) else "")
    return int(m.group(0)) if m else None


def _ordered_steps(view: GateView) -> tuple[list[Any], list[Any]]:
    """(steps needing attention — failed, warned, skipped — in runbook order, passed steps)."""
    attention = [st for st in view.steps if st.status != "pass"]
    passed = [st for st in view.steps if st.status == "pass"]
    return attention, passed


def _passed_summary(passed: list[Any], mask: Mask) -> str:
    names = ", ".join(escape(mask(st.name)) for st in passed)
    return clip(f"{ICONS.get('pass', '✅')} *{len(passed)} passed:* {names}", PASSED_SUMMARY)


def _manual_blocks(view: GateView, mask: Mask, budget: int, iteration: str) -> list[Block]:
    """The manual steps within `budget` characters: their checkboxes (open gate) and who
    ticked what; compact lines first, then only the count, when many don't fit."""
    if not view.manual:
        return []
    ticks = tick_blocks(view, mask, iteration) if view.status == "open" else []
    head = "*Manual steps* (tick each one before Continue):"
    full = [
        f"{'☑️' if m.ticked_by else '⬜'} *{escape(m.id)}* — "
        f"{clip(escape(mask(m.text)), MANUAL_TEXT)}"
        f"{f' — ticked by {mention(m.ticked_by)}' if m.ticked_by else ''}"
        for m in view.manual
    ]
    done = sum(1 for m in view.manual if m.ticked_by)
    compact = [
        f"{done}/{len(view.manual)} ticked"
        + (
            ": "
            + ", ".join(
                f"{escape(m.id)} by {mention(m.ticked_by)}" for m in view.manual if m.ticked_by
            )
            if done
            else ""
        )
    ]
    for lines in (full, compact):
        out = sections([head, *lines]) + ticks
        if block_text(out) <= budget and len(out) <= MANUAL_BLOCKS:
            return out
    # Even the checkboxes overflow: keep the groups that fit, point at the rest.
    out = [section(f"{head} {clip(compact[0], 500)}")]
    for block in ticks:
        if block_text(out) + block_text(block) + 200 > budget or len(out) >= MANUAL_BLOCKS - 1:
            out.append(context("More manual steps than one message holds: `/cutover status`"))
            break
        out.append(block)
    return out


def _full_lines(view: GateView, mask: Mask) -> list[str]:
    lines: list[str] = []
    for section_name in ("actions", "checks"):
        steps = [st for st in view.steps if st.section == section_name]
        if steps:
            lines.append(f"*{section_name.capitalize()}*")
            lines += [_step_line(st, mask, EVIDENCE_CHARS) for st in steps]
    return lines or ["_No automated steps in this phase._"]


def _full_results(
    view: GateView, mask: Mask, room_blocks: int, room_text: int
) -> list[Block] | None:
    """Every step with its evidence, in runbook order, if that fits; else None."""
    body = sections(_full_lines(view, mask))
    return body if len(body) <= room_blocks and block_text(body) <= room_text else None


def gate_message(
    view: GateView, mask: Mask = _same, iteration: str = "", waiting: str = ""
) -> tuple[str, list[Block]]:
    """`waiting`: mrkdwn mentions of the approvers (users, groups) who have not voted yet,
    shown while the gate is open; posting it notifies them."""
    text, blocks, _ = _checkpoint(view, mask, iteration, waiting)
    return text, blocks


def _checkpoint(
    view: GateView, mask: Mask, iteration: str = "", waiting: str = ""
) -> tuple[str, list[Block], bool]:
    """A phase's checkpoint within BLOCK_TEXT_BUDGET characters and 50 blocks, whatever the
    phase holds: the steps needing attention first, passed checks summarised in one line,
    then the manual steps and the decision (never cut). What did not fit is in
    `gate_details` (thread replies) and the audit trail."""
    is_open = view.status == "open"
    intro = (
        f"*Checkpoint:* {escape(mask(view.checkpoint))}\n"
        f"Run #{view.run_id} · {escape(mask(view.environment))}"
    )
    if view.note:
        intro += f"\n⚠️ {slackify(mask(view.note))}"
    head: list[Block] = [header(_title(view, mask)), section(clip(intro, INTRO_TEXT))]
    decision: list[Block] = []
    if is_open:
        if view.quorum > 1:
            decision.append(section(approvals_line(view)))
        if waiting:
            decision.append(context(clip(f"👋 Waiting for {waiting}", WAITING_TEXT)))
        decision += sections(override_lines(view, mask))
        decision.append(decision_buttons(view))
    else:
        decision.append(section(decided_line(view)))
        if view.status == "overridden":
            decision += sections(override_lines(view, mask)[1:])
    verdict = [*output_buttons(view, mask), section(f"*Decision point:* {_verdict(view)}")]
    fixed = block_text(head + verdict + decision)
    manual = _manual_blocks(
        view, mask, max(0, BLOCK_TEXT_BUDGET - fixed - RESULTS_RESERVE), iteration
    )
    tail = verdict + manual + decision

    room_blocks = MAX_BLOCKS - len(head) - len(tail) - 1
    room_text = BLOCK_TEXT_BUDGET - block_text(head + tail) - 200
    full = _full_results(view, mask, room_blocks, room_text)
    if full is not None:
        return _fallback(view, mask), head + full + tail, False
    attention, passed = _ordered_steps(view)
    summary = [section(_passed_summary(passed, mask))] if passed else []
    room_blocks -= len(summary)
    room_text -= block_text(summary) + 150  # and the context line pointing at the rest
    kept: list[str] = []
    body: list[Block] = []
    for st in attention:  # line by line, as many as the room left holds
        candidate = sections([*kept, _step_line(st, mask, EVIDENCE_CHARS)])
        if len(candidate) > room_blocks or block_text(candidate) > room_text:
            break
        kept.append(_step_line(st, mask, EVIDENCE_CHARS))
        body = candidate
    missing = len(attention) - len(kept)
    more = f"{missing} more results to look at, and" if missing else "More:"
    body += summary
    body.append(
        context(
            f"{more} each step's evidence in the replies below · `/cutover audit {view.run_id}`"
        )
    )
    blocks = (head + body + tail)[:MAX_BLOCKS]
    return _fallback(view, mask), blocks, True


def gate_details(view: GateView, mask: Mask = _same) -> list[tuple[str, list[Block]]]:
    """The checkpoint's step-by-step results as thread replies (attention first), each within
    the same budget; at most DETAIL_MESSAGES, the audit trail has the rest."""
    if not _checkpoint(view, mask, "", "")[2]:
        return []  # the checkpoint itself shows every step
    attention, passed = _ordered_steps(view)
    lines = [_step_line(st, mask, EVIDENCE_CHARS) for st in attention]
    lines += [_step_line(st, mask, PASSED_EVIDENCE) for st in passed]
    messages: list[tuple[str, list[Block]]] = []
    current: list[Block] = []
    title = f"Phase {view.phase_number} results"
    for block in sections(lines, DETAIL_SECTION):
        if len(current) >= MAX_BLOCKS - 2 or block_text(current) + block_text(block) > (
            BLOCK_TEXT_BUDGET - 300
        ):
            messages.append((title, current))
            current = []
        current.append(block)
    if current:
        messages.append((title, current))
    if len(messages) > DETAIL_MESSAGES:
        messages = messages[:DETAIL_MESSAGES]
        messages[-1][1].append(
            context(f"More results than the thread holds: `/cutover audit {view.run_id}`")
        )
    n = len(messages)
    return [
        (clip(f"Run #{view.run_id} · {t} ({i}/{n})", FALLBACK_TEXT), b)
        for i, (t, b) in enumerate(messages, 1)
    ]


def minimal_gate_message(view: GateView, mask: Mask = _same) -> tuple[str, list[Block]]:
    """What is posted when Slack refused the full checkpoint: the gate stays decidable."""
    blocks: list[Block] = [
        header(_title(view, mask)),
        section(
            f"*Decision point:* {_verdict(view)}\nThe full checkpoint could not be posted; "
            f"the results are in `/cutover audit {view.run_id}`."
        ),
    ]
    blocks.append(decision_buttons(view) if view.status == "open" else section(decided_line(view)))
    return _fallback(view, mask), blocks


def tick_blocks(view: GateView, mask: Mask = _same, iteration: str = "") -> list[Block]:
    """Checkbox groups (10 options each) for the manual steps; ticked ones start checked.
    `iteration` makes each drawing's block_id new (`tick:GATE:ATTEMPT:GROUP:ITERATION`)."""
    out: list[Block] = []
    for n in range(0, len(view.manual), OPTIONS_PER_GROUP):
        chunk = view.manual[n : n + OPTIONS_PER_GROUP]
        options = [
            {
                "text": {
                    "type": "plain_text",
                    "text": clip_plain(f"{m.id}: {mask(m.text)}", OPTION_TEXT),
                },
                "value": f"{view.id}:{view.attempt}:{m.id}"[:OPTION_VALUE],
            }
            for m in chunk
        ]
        element: Block = {"type": "checkboxes", "action_id": TICK, "options": options}
        initial = [o for o, m in zip(options, chunk, strict=True) if m.ticked_by]
        if initial:
            element["initial_options"] = initial
        out.append(
            {
                "type": "actions",
                "block_id": f"tick:{view.id}:{view.attempt}:{n // OPTIONS_PER_GROUP}"
                + (f":{iteration}" if iteration else ""),
                "elements": [element],
            }
        )
    return out


def decision_buttons(view: GateView) -> Block:
    """Continue stays one click; "Continue with comment…" and "Rollback…" open a form (the
    rollback's reason is required, and submitting it is the confirmation)."""
    value = gate_value(view)
    first = (
        [
            button("Continue", CONTINUE, value, style="primary"),
            button("Continue with comment…", COMMENT, value),
        ]
        if view.checks_passed
        else [button("Retry phase", RETRY, value)]
        + ([button("Override…", OVERRIDE, value, style="danger")] if view.overridable else [])
    )
    return {
        "type": "actions",
        "block_id": f"gate:{view.id}:{view.attempt}",
        "elements": [*first, button("Rollback…", ROLLBACK, value, style="danger")],
    }


# ---------------------------------------------------------------------- scheduled cutovers

NOTE_PREFIXES = ("⏰", "♻️")  # bot.notices.late_note / repeat_note
SCHEDULE_TITLES = {
    "t-24h": "📅 T-24h · {label}: readiness dry run and checklist",
    "t-1h": "📣 {label} starting in 1 hour",
    "t-1h-checklist": "🕐 T-1h · {label}: final checklist",
}
_GROUP = re.compile(r"\bgroup (S[A-Z0-9]{2,})\b")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


def group_mention(group_id: str) -> str:
    return f"<!subteam^{group_id}>" if re.fullmatch(r"S[A-Z0-9]+", group_id) else escape(group_id)


def channel_ref(channel: str | None) -> str:
    """A channel id as a link (Slack draws its name); a name as written."""
    if channel and _CHANNEL_ID.fullmatch(channel):
        return f"<#{channel}>"
    return escape(channel or "?")


def _notice_line(line: str) -> str:
    """One line of a scheduled notice as mrkdwn: mentions, user groups, the run channel."""
    head, sep, rest = line.partition("Where it runs: ")
    if sep and not head.strip():
        return f"Where it runs: {channel_ref(rest.strip())}"
    return _GROUP.sub(lambda m: group_mention(m.group(1)), slackify(line))


@dataclass(frozen=True)
class Notice:
    """A scheduled notice as it is posted: the message, and the thread replies that hold
    the lines the message had no room for (posted under it, in order)."""

    fallback: str
    blocks: list[Block]
    replies: list[tuple[str, list[Block]]]


NOTICE_RESULT = EVIDENCE_CHARS + 200  # of one check's result line, in a shortened notice
IN_THREAD = "in the replies to this message"
AUDIT_EXPORT = "every check's result is in the audit trail (`cutover audit export`)"


def _notice_head(kind: str, text: str, label: str, mask: Mask) -> tuple[str, list[str], list[str]]:
    """(title, late/repeat notes, the other non-empty lines) of a notice's text."""
    lines = mask(text).split("\n")
    notes = [line for line in lines if line.startswith(NOTE_PREFIXES)]
    body = [line for line in lines if not line.startswith(NOTE_PREFIXES) and line.strip()]
    if kind == "t-1h" and body and body[0].startswith("📣"):
        title, body = body[0], body[1:]  # "📣 Production cutover starting in 1 hour"
    else:
        title = SCHEDULE_TITLES.get(kind, "📅 {label}").format(label=label)
    return title, notes, body


def _fit_notice(
    lines: list[str], room_blocks: int, room_text: int
) -> tuple[list[Block], list[int]]:
    """The notice's lines as sections within `room_blocks` blocks and `room_text` characters:
    all of them when they fit. Otherwise as a checkpoint is shortened: every line that is no
    check's result, then the results needing attention in order while room is left, each
    run of passed results counted in one line. Returns the blocks and the indexes of the
    lines left out."""
    md = [_notice_line(line) for line in lines]
    full = sections(md)
    if len(full) <= room_blocks and block_text(full) <= room_text:
        return full, []
    status = [result_status(line) for line in lines]

    def draw(chosen: set[int]) -> list[Block]:
        out: list[str] = []
        passed, shown = 0, False  # of the current run of results: passed ones left out

        def count() -> None:
            nonlocal passed, shown
            if passed:
                more = " more" if shown else ""
                out.append(f"{RESULT_INDENT}{ICONS['pass']} {passed}{more} passed")
            passed, shown = 0, False

        for i, line in enumerate(md):
            if status[i] is None:
                count()  # the end of a run of results
            elif status[i] == "pass" and i not in chosen:
                passed += 1
            elif status[i] == "pass":
                shown = True
            if i in chosen:
                out.append(line if status[i] is None else clip(line, NOTICE_RESULT))
        count()
        return sections(out)

    room_blocks, room_text = room_blocks - 1, room_text - 400  # and the line saying what's left
    chosen: set[int] = set()
    others = [i for i, st in enumerate(status) if st is None]
    attention = [i for i, st in enumerate(status) if st not in (None, "pass")]
    passed = [i for i, st in enumerate(status) if st == "pass"]
    for i in others + attention + passed:
        candidate = draw(chosen | {i})
        if len(candidate) <= room_blocks and block_text(candidate) <= room_text:
            chosen.add(i)
        elif status[i] is not None:
            break  # results in order, attention first: the first that does not fit ends them
    left = [i for i in range(len(md)) if i not in chosen]
    return draw(chosen), left


def _notice_replies(title: str, lines: list[str]) -> tuple[list[tuple[str, list[Block]]], bool]:
    """Lines of a notice as thread replies, each within the checkpoint's budget, at most
    DETAIL_MESSAGES of them; the bool says whether they hold every line."""
    messages: list[list[Block]] = []
    current: list[Block] = []
    for block in sections(lines, DETAIL_SECTION):
        if current and (
            len(current) >= MAX_BLOCKS - 2
            or block_text(current) + block_text(block) > BLOCK_TEXT_BUDGET - 300
        ):
            messages.append(current)
            current = []
        current.append(block)
    if current:
        messages.append(current)
    complete = len(messages) <= DETAIL_MESSAGES
    if not complete:
        messages = messages[:DETAIL_MESSAGES]
        messages[-1].append(context(f"More lines than the thread holds: {AUDIT_EXPORT}"))
    n = len(messages)
    about = escape(title)
    return [
        (clip(f"{about} · lines not shown above ({i}/{n})", FALLBACK_TEXT), blocks)
        for i, blocks in enumerate(messages, 1)
    ], complete


def _left_out_lines(body: list[str], left: list[int]) -> list[str]:
    """The lines left out of a notice, as mrkdwn in their order; a run of results whose
    heading was shown gets it again ("… (continued)"), so a reply says what they are."""
    out: list[str] = []
    heading: int | None = None  # the line above a result that is none
    headings: list[int | None] = []
    for i, line in enumerate(body):
        if result_status(line) is None:
            heading = i
        headings.append(heading)
    current: int | None = None
    for i in left:
        h = headings[i]
        if result_status(body[i]) is not None and h is not None and h != current and h not in left:
            out.append(f"{_notice_line(body[h])} (continued)")
        current = h
        out.append(_notice_line(body[i]))
    return out


def _left_out_line(results: int, of: int, others: int, complete: bool) -> str:
    parts = [f"{results} of {of} check results"] if results else []
    if others:
        parts.append(f"{others} other line{'s' if others != 1 else ''} of this notice")
    where = (
        f"each is {IN_THREAD}"
        if complete
        else f"the replies to this message hold the first of them; {AUDIT_EXPORT}"
    )
    return f"{' and '.join(parts)} not shown here: {where}"


def scheduled_notice(
    kind: str,
    text: str,
    label: str,
    mask: Mask = _same,
    *,
    reserve: tuple[int, int] = (0, 0),
    pointer: str = "",
) -> Notice:
    """A T-24h / T-1h notice: a header naming what it is, a late or repeat note as context,
    then the notice's lines (dry-run results, checklist, stakeholder facts), within the same
    budget as a checkpoint (BLOCK_TEXT_BUDGET, 50 blocks) less `reserve` (blocks, text) kept
    for what is drawn after it. What does not fit goes to thread replies, and a line says
    how many and where (`pointer`: mrkdwn added to it)."""
    title, notes, body = _notice_head(kind, text, label, mask)
    head: list[Block] = [header(title)]
    head += [context(slackify(note)) for note in notes]
    fallback = clip(slackify("\n".join([title, *notes, *body])), FALLBACK_TEXT)
    if not body:
        return Notice(fallback, [*head, section("_(no details)_")], [])
    room_blocks = MAX_BLOCKS - len(head) - reserve[0]
    room_text = BLOCK_TEXT_BUDGET - block_text(head) - reserve[1]
    blocks, left = _fit_notice(body, room_blocks, room_text)
    if not left:
        return Notice(fallback, head + blocks, [])
    replies, complete = _notice_replies(title, _left_out_lines(body, left))
    results = [result_status(line) is not None for line in body]
    results_left = sum(results[i] for i in left)
    line = _left_out_line(results_left, sum(results), len(left) - results_left, complete)
    blocks.append(context(clip(line + pointer, CONTEXT_TEXT)))
    return Notice(fallback, head + blocks, replies)


def scheduled_message(
    kind: str, text: str, label: str, mask: Mask = _same
) -> tuple[str, list[Block]]:
    """`scheduled_notice`'s message alone (its replies aside)."""
    notice = scheduled_notice(kind, text, label, mask)
    return notice.fallback, notice.blocks


def short_notice(kind: str, text: str, label: str, error: str, mask: Mask = _same) -> Notice:
    """What is posted when Slack refused the whole notice (its cumulative limit is
    undocumented): its title, that it was refused and why, and every line in the thread."""
    title, notes, body = _notice_head(kind, text, label, mask)
    replies, complete = _notice_replies(title, [_notice_line(line) for line in body])
    results = sum(result_status(line) is not None for line in body)
    what = f"all {results} check results and every other line" if results else "every line"
    where = (
        IN_THREAD if complete else f"{IN_THREAD} as far as the thread holds them; {AUDIT_EXPORT}"
    )
    blocks: list[Block] = [header(title)]
    blocks += [context(slackify(note)) for note in notes]
    blocks.append(
        section(
            f"⚠️ The full notice could not be posted ({escape(error)}): {what} of it are {where}."
        )
    )
    return Notice(clip(slackify("\n".join([title, *notes])), FALLBACK_TEXT), blocks, replies)


def reminder_message(
    schedule_id: int,
    env_name: str,
    label: str,
    text: str,
    approvers: Iterable[str],
    groups: Iterable[str] = (),
    done: str | None = None,
    mask: Mask = _same,
) -> tuple[str, list[Block]]:
    """The T-0 reminder: who may start it (as mentions) and a Start button; once started or
    cancelled (`done`, mrkdwn), the same message with that line instead of the button."""
    who = [mention(a) for a in approvers if _ACTOR.fullmatch(a)]
    who += [group_mention(g) for g in groups]
    title = f"🚦 Time to start: {label}"
    blocks: list[Block] = [header(title)]
    lines = [_notice_line(line) for line in mask(text).split("\n") if line.strip()]
    blocks += sections(lines)[: MAX_BLOCKS - 3]
    if done is not None:
        blocks.append(section(done))
    else:
        if who:
            blocks.append(context("Approvers: " + ", ".join(who)))
        dialog = confirm_dialog(
            f"Start the cutover of {mask(env_name)} now?",
            f"Run of {escape(mask(env_name))} starts now: each phase runs, then waits at its "
            "checkpoint for an approver. The channel sees who started it.",
            "Start",
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"schedule:{schedule_id}",
                "elements": [
                    button("Start the cutover", START, str(schedule_id), "primary", dialog)
                ],
            }
        )
    fallback = f"{escape(mask(title))} (scheduled cutover #{schedule_id})"
    if done is None and who:
        fallback += " — " + ", ".join(who) + ": press Start"
    return clip(fallback, FALLBACK_TEXT), blocks


def _notice_lines(text: str) -> str:
    """A T-1h checklist notice's own lines: those before the item states, which are drawn as
    blocks of their own (`checklist_blocks`)."""
    lines = text.split("\n")
    cut = next((i for i, ln in enumerate(lines) if ln.startswith(START_ITEMS_HEAD)), len(lines))
    return "\n".join(lines[:cut])


def checklist_notice(
    schedule_id: int,
    text: str,
    label: str,
    states: Sequence[ItemState],
    mask: Mask = _same,
    iteration: str = "",
) -> Notice:
    """The T-1h checklist: the notice's lines, then `checklist_blocks`, within 50 blocks and
    the text budget. The room kept for the boxes depends on the items alone, never on who
    ticked what, so every redraw shows the same lines of the notice (the rest in its thread)."""
    pointer = f" · where each item needed before Start stands: `/cutover checklist {schedule_id}`"
    notice = scheduled_notice(
        "t-1h-checklist",
        _notice_lines(text),
        label,
        mask,
        reserve=checklist_room(states),
        pointer=pointer,
    )
    extra = checklist_blocks(schedule_id, states, mask, iteration=iteration)
    return Notice(notice.fallback, notice.blocks + extra, notice.replies)


def checklist_message(
    schedule_id: int,
    text: str,
    label: str,
    states: Sequence[ItemState],
    mask: Mask = _same,
    iteration: str = "",
) -> tuple[str, list[Block]]:
    """`checklist_notice`'s message alone (its replies aside): what a redraw sends."""
    notice = checklist_notice(schedule_id, text, label, states, mask, iteration)
    return notice.fallback, notice.blocks


def short_checklist_notice(
    schedule_id: int,
    text: str,
    label: str,
    states: Sequence[ItemState],
    error: str,
    mask: Mask = _same,
    iteration: str = "",
) -> Notice:
    """`short_notice` of the T-1h checklist: the boxes are still drawn (they are ticked)."""
    notice = short_notice("t-1h-checklist", _notice_lines(text), label, error, mask)
    extra = checklist_blocks(schedule_id, states, mask, iteration=iteration)
    return Notice(notice.fallback, notice.blocks + extra, notice.replies)


def checklist_redraw_short(
    schedule_id: int,
    label: str,
    states: Sequence[ItemState],
    mask: Mask = _same,
    iteration: str = "",
) -> tuple[str, list[Block]]:
    """A redraw of the T-1h checklist Slack refused whole: the boxes alone, and a line
    saying so (the notice's lines were posted before and are in its thread as they fit)."""
    title = SCHEDULE_TITLES["t-1h-checklist"].format(label=label)
    blocks: list[Block] = [
        header(title),
        context(
            "The rest of this notice could not be drawn again; where each item needed before "
            f"Start stands: `/cutover checklist {schedule_id}`"
        ),
    ]
    blocks += checklist_blocks(schedule_id, states, mask, iteration=iteration)
    return clip(escape(title), FALLBACK_TEXT), blocks


def checklist_room(states: Sequence[ItemState]) -> tuple[int, int]:
    """The most blocks and text characters `checklist_blocks` can take for these items,
    ticked or not, whatever a check found (a ticked box's option is counted twice: it is
    also an initial option)."""
    if not states:
        return 0, 0
    people = sum(1 for st in states if not st.item.check)
    checked = len(states) - people
    groups = -(-people // OPTIONS_PER_GROUP)
    head = SECTION_TEXT if checked else 100
    boxes = people * 4 * OPTION_TEXT  # text and description, and both again once ticked
    spill = head + boxes > CHECKLIST_TEXT or groups > MAX_BLOCKS - 13
    text = min(head + boxes, CHECKLIST_TEXT) + (min(CONTEXT_TEXT, 80 + 45 * people) if spill else 0)
    return 1 + min(groups, MAX_BLOCKS - 13) + int(spill), text


# Of a checklist message's text budget, what the boxes may take (the notice keeps the rest).
CHECKLIST_TEXT = BLOCK_TEXT_BUDGET - 3_000


def checklist_blocks(
    schedule_id: int, states: Sequence[ItemState], mask: Mask = _same, iteration: str = ""
) -> list[Block]:
    """The items that gate Start: a line per item the bot checks (its latest result), then the
    boxes of the items an approver ticks, ten per checkbox group (Slack's limit per element;
    ticked ones start checked; unchecking undoes the tick). Every block_id starts with
    `checklist` so a redraw replaces exactly these; a group's block_id names its group
    (`checklist:SCHEDULE:gN`), and `iteration` makes each drawing's block_id new, so Slack
    shows the boxes as the database has them. Groups that would pass the text budget are
    left out, with a line saying how to tick those items by command."""
    if not states:
        return []
    done = sum(1 for st in states if st.done)
    out: list[Block] = []
    lines = [f"*Needed before Start: {done}/{len(states)} done*"]
    lines += [escape(mask(item_line(st))) for st in states if st.item.check]
    out.append(section(clip("\n".join(lines), SECTION_TEXT), f"checklist-head:{schedule_id}"))
    people = [st for st in states if not st.item.check]
    drawn = 0
    for n in range(0, len(people), OPTIONS_PER_GROUP):
        chunk = people[n : n + OPTIONS_PER_GROUP]
        options = [
            {
                "text": {
                    "type": "plain_text",
                    "text": clip_plain(f"{st.id}: {mask(st.item.text)}", OPTION_TEXT),
                },
                "description": {
                    "type": "plain_text",
                    "text": clip_plain(mask(st.detail), OPTION_TEXT),
                },
                "value": f"{schedule_id}:{st.id}"[:OPTION_VALUE],
            }
            for st in chunk
        ]
        element: Block = {"type": "checkboxes", "action_id": CHECKLIST_TICK, "options": options}
        initial = [o for o, st in zip(options, chunk, strict=True) if st.done]
        if initial:
            element["initial_options"] = initial
        group: Block = {
            "type": "actions",
            "block_id": f"checklist:{schedule_id}:g{n // OPTIONS_PER_GROUP}"
            + (f":{iteration}" if iteration else ""),
            "elements": [element],
        }
        if len(out) >= MAX_BLOCKS - 12 or block_text(out + [group]) > CHECKLIST_TEXT:
            break
        out.append(group)
        drawn += len(chunk)
    if drawn < len(people):
        left = ", ".join(st.id for st in people[drawn:] if not st.done) or "none left to tick"
        out.append(
            context(
                clip(
                    f"{len(people) - drawn} more items than fit here: "
                    f"`/cutover tick {schedule_id} ITEM` ({escape(mask(left))})",
                    CONTEXT_TEXT,
                )
            )
        )
    return out


def parse_checklist_block(block_id: str | None) -> tuple[int, int] | None:
    """'checklist:3:g1:1f' → (schedule 3, group 1); 'checklist:3' or 'checklist:3:1f' (a
    message drawn before there were groups: one group) → (3, 0)."""
    m = re.fullmatch(
        r"checklist:(\d{1,9})(?::g(\d{1,2}))?(?::[0-9a-f]{1,16})?",
        block_id if isinstance(block_id, str) else "",
    )
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def parse_number_and_id(value: str | None) -> tuple[int, str] | None:
    """A checklist box's or a Sign off button's value: '12:admin' → (12, "admin") (a
    schedule or run number, an item or criterion id); anything else → None."""
    m = re.fullmatch(
        r"(\d{1,9}):([a-z0-9][a-z0-9_-]{0,39})", value if isinstance(value, str) else ""
    )
    return (int(m.group(1)), m.group(2)) if m else None


def parse_schedule_value(value: str | None) -> int | None:
    """The Start button's value: the schedule id (at most 9 digits, like the gate ids)."""
    m = re.fullmatch(r"\d{1,9}", value if isinstance(value, str) else "")
    return int(m.group(0)) if m else None


def mask_blocks(value: Any, mask: Mask) -> Any:
    """Masks every string of a block tree; a masked string never grows past its old length."""
    if isinstance(value, str):
        masked = mask(value)
        return masked if len(masked) <= len(value) else masked[: len(value)]
    if isinstance(value, list):
        return [mask_blocks(v, mask) for v in value]
    if isinstance(value, dict):
        return {k: mask_blocks(v, mask) for k, v in value.items()}
    return value
