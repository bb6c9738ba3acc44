"""The T-1h checklist: its notice, its redraws, and the checkbox groups of items that gate Start."""

from __future__ import annotations

from collections.abc import Sequence

from bot.notices import START_ITEMS_HEAD, ItemState, item_line
from bot.slack.blocks.ids import CHECKLIST_TICK
from bot.slack.blocks.kit import (
    BLOCK_TEXT_BUDGET,
    CONTEXT_TEXT,
    FALLBACK_TEXT,
    MAX_BLOCKS,
    OPTION_TEXT,
    OPTION_VALUE,
    OPTIONS_PER_GROUP,
    SECTION_TEXT,
    Block,
    Mask,
    block_text,
    clip,
    clip_plain,
    context,
    escape,
    header,
    section,
    unmasked,
)
from bot.slack.blocks.notices import SCHEDULE_TITLES, Notice, scheduled_notice, short_notice


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
    mask: Mask = unmasked,
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
    mask: Mask = unmasked,
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
    mask: Mask = unmasked,
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
    mask: Mask = unmasked,
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
    schedule_id: int, states: Sequence[ItemState], mask: Mask = unmasked, iteration: str = ""
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
