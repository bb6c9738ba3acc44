"""A phase's checkpoint: results, manual steps to tick, the decision buttons, its thread
replies of results, and the minimal drawing that keeps a gate decidable.
"""

from __future__ import annotations

from typing import Any

from bot.slack.blocks.ids import (
    COMMENT,
    CONTINUE,
    OVERRIDE,
    RETRY,
    ROLLBACK,
    SHOW_OUTPUT,
    TICK,
    gate_value,
)
from bot.slack.blocks.kit import (
    BLOCK_TEXT_BUDGET,
    DETAIL_MESSAGES,
    DETAIL_SECTION,
    EVIDENCE_CHARS,
    FALLBACK_TEXT,
    ICONS,
    INTRO_TEXT,
    MANUAL_BLOCKS,
    MANUAL_TEXT,
    MAX_BLOCKS,
    OPTION_TEXT,
    OPTION_VALUE,
    OPTIONS_PER_GROUP,
    PASSED_EVIDENCE,
    PASSED_SUMMARY,
    RESULTS_RESERVE,
    WAITING_TEXT,
    Block,
    Mask,
    block_text,
    button,
    clip,
    clip_plain,
    context,
    escape,
    header,
    mention,
    mentions,
    one_line,
    section,
    sections,
    slackify,
    unmasked,
    when,
)
from bot.views import GateView

OUTPUT_BUTTONS = 5  # per checkpoint: failing steps first; the rest by `/cutover logs`
QUOTE_CHARS = 600  # of a failing step's last lines, quoted under it


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


def output_buttons(view: GateView, mask: Mask = unmasked) -> list[Block]:
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
    view: GateView, mask: Mask = unmasked, iteration: str = "", waiting: str = ""
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


def gate_details(view: GateView, mask: Mask = unmasked) -> list[tuple[str, list[Block]]]:
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


def minimal_gate_message(view: GateView, mask: Mask = unmasked) -> tuple[str, list[Block]]:
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


def tick_blocks(view: GateView, mask: Mask = unmasked, iteration: str = "") -> list[Block]:
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
