"""The run's parent message: its phases, who started it, the run page and Revert… buttons."""

from __future__ import annotations

from datetime import datetime

from bot.slack.blocks.ids import REVERT
from bot.slack.blocks.kit import (
    BLOCK_TEXT_BUDGET,
    FALLBACK_TEXT,
    ICONS,
    MAX_BLOCKS,
    RUN_ICONS,
    WAITING_TEXT,
    Block,
    Mask,
    block_text,
    button,
    clip,
    context,
    escape,
    header,
    mention,
    mentions,
    page_buttons,
    section,
    sections,
    slackify,
    unmasked,
    when,
)
from bot.text import minutes_range
from bot.views import STATUS_WORDS, PhaseLine, RunView

_AFTER_PHASES = 1_500  # block text kept for the rollback line and the buttons after the list
_AT = ("waiting", "running", "monitoring", "interrupted")  # the phase the run is at


def _at(phases: list[PhaseLine]) -> int | None:
    return next((i for i, p in enumerate(phases) if p.status in _AT), None)


def _fit_phases(run_id: int, phases: list[PhaseLine], lines: list[str], room: int) -> list[str]:
    """The phase list within `room` characters: when it is longer, the earliest phases are
    folded into one line that counts them by outcome, then (if still too long) the last
    ones; the phase the run is at is never folded."""

    def fitted(first: int, last: int) -> list[str]:  # lines[first:last] kept as they are
        kept = lines[first:last]
        if first:
            where = f"; each one's decision: `/cutover audit {run_id}`"
            kept = [_fold_line(phases[:first], where), *kept]
        if last < len(lines):
            kept = [*kept, _fold_line(phases[last:], "")]
        return kept

    def size(kept: list[str]) -> int:
        return sum(len(line) + 1 for line in kept)

    if size(lines) <= room:
        return lines
    at = _at(phases)
    first, last = 0, len(lines)
    while first < (at if at is not None else len(lines) - 1) and size(fitted(first, last)) > room:
        first += 1
    while last > (at + 1 if at is not None else first + 1) and size(fitted(first, last)) > room:
        last -= 1
    return fitted(first, last)


def _fold_line(folded: list[PhaseLine], then: str) -> str:
    counts: dict[str, int] = {}
    for p in folded:
        counts[p.status] = counts.get(p.status, 0) + 1
    told = " · ".join(
        f"{ICONS.get(status, '•')} {n} {escape(status)}" for status, n in counts.items()
    )
    span = f"{escape(folded[0].number)}–{escape(folded[-1].number)}"
    return f"*Phases {span}* (folded to fit Slack's message size): {told}{then}"


def run_message(
    view: RunView,
    now: datetime | None = None,
    mask: Mask = unmasked,
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
    if view.reverts is None:
        # Within Slack's cumulative text limit (msg_blocks_too_long refuses the whole edit,
        # and the channel would go on showing an older state), less what may follow.
        room = BLOCK_TEXT_BUDGET - block_text(blocks) - _AFTER_PHASES
        lines = _fit_phases(view.id, view.phases, lines, room)
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
    at = _at(view.phases)
    current = view.phases[at] if at is not None else None
    where = f" · phase {current.number} {current.name}" if current else ""
    text = f"Cutover run #{view.id} of {view.environment}{dry}: {state}{where}"
    return clip(slackify(mask(text)), FALLBACK_TEXT), blocks[:MAX_BLOCKS]
