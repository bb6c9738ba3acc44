"""Scheduled cutovers' notices (T-24h, T-1h) and the T-0 reminder with its Start button,
fitted to a message's budget with what had no room posted in its thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.notices import RESULT_INDENT, result_status
from bot.slack.blocks.ids import START
from bot.slack.blocks.kit import (
    ACTOR_ID,
    BLOCK_TEXT_BUDGET,
    CONTEXT_TEXT,
    DETAIL_MESSAGES,
    DETAIL_SECTION,
    EVIDENCE_CHARS,
    FALLBACK_TEXT,
    ICONS,
    MAX_BLOCKS,
    Block,
    Mask,
    block_text,
    button,
    channel_ref,
    clip,
    confirm_dialog,
    context,
    escape,
    group_mention,
    header,
    mention,
    section,
    sections,
    slackify,
    unmasked,
)

NOTE_PREFIXES = ("⏰", "♻️")  # bot.notices.late_note / repeat_note
SCHEDULE_TITLES = {
    "t-24h": "📅 T-24h · {label}: readiness dry run and checklist",
    "t-1h": "📣 {label} starting in 1 hour",
    "t-1h-checklist": "🕐 T-1h · {label}: final checklist",
}
_GROUP = re.compile(r"\bgroup (S[A-Z0-9]{2,})\b")


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
    mask: Mask = unmasked,
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
    kind: str, text: str, label: str, mask: Mask = unmasked
) -> tuple[str, list[Block]]:
    """`scheduled_notice`'s message alone (its replies aside)."""
    notice = scheduled_notice(kind, text, label, mask)
    return notice.fallback, notice.blocks


def short_notice(kind: str, text: str, label: str, error: str, mask: Mask = unmasked) -> Notice:
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
    mask: Mask = unmasked,
) -> tuple[str, list[Block]]:
    """The T-0 reminder: who may start it (as mentions) and a Start button; once started or
    cancelled (`done`, mrkdwn), the same message with that line instead of the button."""
    who = [mention(a) for a in approvers if ACTOR_ID.fullmatch(a)]
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
