"""The App Home tab: active runs (phase, who the gate waits for), upcoming scheduled cutovers,
the last ten cutovers with their outcome. Drawn from the database each time a person opens
it (`app_home_opened` → views.publish).

Within a Home view's limits: at most 100 blocks (docs.slack.dev/reference/block-kit/blocks),
each section under 3,000 characters, and the whole under the block-text budget the
checkpoints keep (blocks.BLOCK_TEXT_BUDGET), so a long history never makes Slack refuse it.
Every string is masked by the surface before it leaves (SlackSurface.publish_home).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.schedules import ScheduleService
from bot.slack.blocks import (
    BLOCK_TEXT_BUDGET,
    RUN_ICONS,
    Block,
    channel_ref,
    clip,
    context,
    escape,
    header,
    mention,
    section,
    when,
)
from bot.views import STATUS_WORDS, active_runs, gate_view, open_gate_id, recent_runs, run_view

if TYPE_CHECKING:
    from bot.engine import Engine

HOME_BLOCKS = 100
RECENT = 10  # the last ten cutovers
SHOWN = 20  # active runs and upcoming schedules shown at most (then: /cutover status)
LINE = 600  # characters of one run's line

WaitingFor = Callable[[str, list[str]], str]  # (environment, votes) → mentions


def _run_line(engine: Engine, run_id: int, waiting_for: WaitingFor, now: datetime) -> str | None:
    view = run_view(engine.db, engine.runbook, run_id)
    if view is None:
        return None
    mask = engine.masker.mask
    dry = " (dry run)" if view.dry_run else ""
    icon = RUN_ICONS.get(view.status, "•")
    where = f" in {channel_ref(view.channel)}" if view.channel else ""
    head = f"{icon} *Run #{view.id} · {escape(mask(view.environment))}*{dry}{where}"
    if view.ended_at is not None:  # a finished cutover: its outcome
        state = STATUS_WORDS.get(view.status, view.status)  # type: ignore[call-overload]
        line = f"{head} — *{escape(state.split(' (')[0])}* {when(view.ended_at)}"
        line += f", started by {mention(view.requested_by)}"
        if view.rollback_reason:
            line += f"\n> {escape(mask(view.rollback_reason))}"
        return clip(line, LINE)
    gate_id = open_gate_id(engine.db, run_id)
    gate = gate_view(engine.db, engine.runbook, gate_id) if gate_id else None
    total = len(view.phases)
    index = min(view.phase_index, total - 1) if total else 0
    phase = view.phases[index] if total else None
    at = f"phase {phase.number}/{total} {escape(mask(phase.name))}" if phase else "?"
    if gate is not None:
        who = waiting_for(gate.environment, gate.votes) or "an approver"
        votes = f" ({len(gate.votes)}/{gate.quorum} approved)" if gate.quorum > 1 else ""
        state = f"✋ waiting at {at} for {who}{votes}"
    else:
        state = f"{STATUS_WORDS.get(view.status, view.status)} · {at}"  # type: ignore[call-overload]
    elapsed = view.elapsed_minutes(now)
    return clip(f"{head}\n{state} · {elapsed:.0f} min elapsed", LINE)


def home_view(engine: Engine, waiting_for: WaitingFor, now: datetime) -> dict[str, Any]:
    """The Home tab as a `home` view for views.publish."""
    blocks: list[Block] = [header("Cutovers")]
    budget = BLOCK_TEXT_BUDGET - 500

    def add(lines: list[str], empty: str) -> None:
        nonlocal budget
        if not lines:
            blocks.append(context(empty))
            return
        for line in lines:
            if len(blocks) >= HOME_BLOCKS - 2 or len(line) > budget:
                blocks.append(context("More in `/cutover status` and `/cutover schedule list`."))
                return
            blocks.append(section(line))
            budget -= len(line)

    active = active_runs(engine.db)
    blocks.append(header("Active runs"))
    add(
        [
            line
            for r in active[:SHOWN]
            if (line := _run_line(engine, r, waiting_for, now)) is not None
        ],
        "No cutover is running. Start one with `/cutover start ENV`.",
    )
    blocks.append({"type": "divider"})
    blocks.append(header("Upcoming"))
    upcoming = [
        sched for sched, _ in ScheduleService(engine).listing() if sched.status == "scheduled"
    ]
    add(
        [
            clip(
                f"📅 *#{s.id} · {escape(engine.masker.mask(s.environment))}* at "
                f"{when(s.start_at)} in {channel_ref(s.channel)}, scheduled by "
                f"{mention(s.created_by)}",
                LINE,
            )
            for s in upcoming[:SHOWN]
        ],
        "Nothing scheduled. `/cutover schedule` opens a form.",
    )
    blocks.append({"type": "divider"})
    blocks.append(header(f"Last {RECENT} cutovers"))
    add(
        [
            line
            for r in recent_runs(engine.db, RECENT)
            if (line := _run_line(engine, r, waiting_for, now)) is not None
        ],
        "No cutover has finished yet.",
    )
    blocks = blocks[: HOME_BLOCKS - 1]
    blocks.append(context(f"Updated {when(now)} · `/cutover help` for every command"))
    return {"type": "home", "callback_id": "cutover_home", "blocks": blocks}
