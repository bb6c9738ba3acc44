"""A T-24h / T-1h notice of a readiness phase with many checks keeps to the same block-text
budget as a checkpoint, says how many lines it left out and where they are (its thread), and
falls back to a short notice when Slack refuses the full one (issue 18 #11)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot.notices import ItemState, result_status
from bot.scheduler import Scheduler
from bot.slack.blocks import BLOCK_TEXT_BUDGET, Block, block_text, checklist_notice
from bot.store.db import Database
from bot.store.models import AuditEvent
from phases.runbook import ChecklistItem, Runbook
from standins.slack import BLOCK_TEXT_LIMIT, Message, block_problems, block_text_chars
from tests.schedule_helpers import START, clock_at, schedule_runbook, set_clock
from tests.servers import ManualClock
from tests.slack_harness import Bot, running_bot

H = timedelta(hours=1)
RUN_CHANNEL, LAUNCH = "C0CUTOVER", "C0LAUNCH"
CHECKS = 60


def check(i: int) -> dict[str, Any]:
    """Every third check passes; the others fail with a long line on stderr (evidence)."""
    fails = i % 3 != 0
    script = f"echo 'port 84{i:02d} refused: {'connection reset by peer; ' * 12}' >&2; exit 1"
    return {
        "id": f"c{i:02d}",
        "name": f"Readiness check {i:02d}: the service answers on its documented port",
        "kind": "command",
        "params": {"argv": ["sh", "-c", script] if fails else ["true"]},
    }


def many_checks_runbook(tmp_path: Path) -> Runbook:
    readiness = {
        "id": "readiness",
        "name": "Readiness checks",
        "estimate_minutes": 5,
        "checkpoint": "All critical readiness checks PASS",
        "checks": [check(i) for i in range(1, CHECKS + 1)],
    }
    deploy = {
        "id": "deploy",
        "name": "Deploy",
        "estimate_minutes": 10,
        "checkpoint": "deployed",
        "checks": [{"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}],
    }
    pre_cutover = {
        "t_minus_24h": {
            "title": "T-24 hours: preparation",
            "phase": "readiness",
            "items": ["Run readiness checker", "Fresh database backup <1 hour old"],
        },
        "t_minus_1h": {
            "title": "T-1 hour: final verification",
            "phase": "readiness",
            "items": [
                "Verify no users logged in (check active sessions)",
                {"id": "backup", "text": "Final database backup", "gates_start": True},
                {
                    "id": "c01",
                    "text": "Check 01 passes",
                    "gates_start": True,
                    "check": "readiness/c01",
                },
            ],
        },
    }
    return schedule_runbook(
        tmp_path, phases=[readiness, deploy], extra={"pre_cutover": pre_cutover}
    )


def top_level(bot: Bot, channel: str) -> list[Message]:
    return [m for m in bot.standin.parents() if m.channel == channel]


def tick(bot: Bot, clock: ManualClock, when: Any) -> list[str]:
    set_clock(clock, when)
    return sorted(Scheduler(bot.engine).tick(when))


def readiness_rows(db: Database) -> list[dict[str, Any]]:
    with db.session() as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.kind == "readiness.checked")).all()
    return [json.loads(r.data) for r in rows]


def shown_results(text: str) -> list[str]:
    """The readiness result lines a message shows (one per check: icon, name, evidence)."""
    return [ln.strip() for ln in text.split("\n") if "Readiness check " in ln and ": exit" in ln]


def result_lines(text: str) -> list[str]:
    """Every check's result line a message shows (readiness and preflight), not counts."""
    return [ln for ln in text.split("\n") if result_status(ln) and ": " in ln]


def assert_fits(message: Message) -> None:
    assert len(message.blocks) <= 50
    assert block_text_chars(message.blocks) <= BLOCK_TEXT_LIMIT


def assert_every_result_is_shown(bot: Bot, notice: Message, results: list[dict[str, Any]]) -> str:
    """The notice and its thread replies together show each check's result as the audit
    trail has it, once; the notice says how many results it left out (of them all,
    preflight's too), and that they are in its thread. Returns the notice's own text."""
    text = notice.all_text()
    replies = bot.standin.thread(f"{notice.channel}:{notice.ts}")
    assert replies
    for reply in replies:
        assert_fits(reply)
    shown_here = shown_results(text)
    shown_below = [ln for r in replies for ln in shown_results(r.all_text())]
    assert len(shown_here) < len(results)  # it did not all fit: the point of this test
    said = re.search(r"(\d+) of (\d+) check results not shown here: (.*)", text)
    assert said is not None, text
    preflight = re.search(r"Preflight of prod: \d+/(\d+) passed", text)  # T-24h only
    assert int(said.group(2)) == len(results) + (int(preflight.group(1)) if preflight else 0)
    assert int(said.group(1)) == int(said.group(2)) - len(result_lines(text))
    assert said.group(3).startswith("each is in the replies to this message")
    everything = "\n".join([text] + [r.all_text() for r in replies])
    for i, row in enumerate(results, 1):
        icon = "✅" if row["status"] == "pass" else "❌"
        name = f"Readiness check {i:02d}: the service answers on its documented port"
        assert f"{icon} {name}: {row['evidence']}" in everything, row
    assert len(shown_here) + len(shown_below) == len(results)  # each once
    return text


def test_a_t24h_notice_of_sixty_readiness_checks_is_posted_within_the_budget(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 72 * H)
    with running_bot(sqlite_db, many_checks_runbook(tmp_path)) as bot:
        bot.engine.clock = clock
        _, key = bot.command("schedule prod 2026-03-01T14:00Z --stakeholders <#C0LAUNCH|launch>")
        assert "as #1" in bot.reply(key)

        assert tick(bot, clock, START - 24 * H) == ["schedule:1:t-24h: sent"]
        assert bot.standin.problems == []
        [notice] = top_level(bot, RUN_CHANNEL)
        assert_fits(notice)
        [row] = readiness_rows(sqlite_db)
        assert len(row["results"]) == CHECKS
        text = assert_every_result_is_shown(bot, notice, row["results"])
        # The failing checks come first; the checklist after them is still drawn.
        failed = sum(r["status"] == "fail" for r in row["results"])
        assert f"❌ {failed} of {CHECKS} checks failed" in text
        assert all(ln.startswith("❌") for ln in shown_results(text))
        assert "☐ Run readiness checker" in text
        assert "Preflight of prod: " in text


def test_the_t1h_checklist_and_notice_of_sixty_readiness_checks_are_posted_within_the_budget(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 72 * H)
    with running_bot(sqlite_db, many_checks_runbook(tmp_path)) as bot:
        bot.engine.clock = clock
        _, key = bot.command("schedule prod 2026-03-01T14:00Z --stakeholders <#C0LAUNCH|launch>")
        assert "as #1" in bot.reply(key)
        assert tick(bot, clock, START - 24 * H) == ["schedule:1:t-24h: sent"]
        assert tick(bot, clock, START - H) == [
            "schedule:1:t-1h-checklist: sent",
            "schedule:1:t-1h: sent",
        ]
        assert bot.standin.problems == []
        [stakeholders] = top_level(bot, LAUNCH)
        assert_fits(stakeholders)
        t1 = stakeholders.all_text()
        assert f"{CHECKS // 3} of {CHECKS} passed, {CHECKS - CHECKS // 3} failed" in t1

        checklist = top_level(bot, RUN_CHANNEL)[1]
        assert_fits(checklist)
        t24_row, t1_row = readiness_rows(sqlite_db)
        assert t1_row["trigger"] == "t-1h"
        text = assert_every_result_is_shown(bot, checklist, t1_row["results"])
        # The boxes of the items that gate Start are drawn whatever the results took.
        assert "checklist_tick" in checklist.action_ids()
        assert "Needed before Start: 0/2 done" in text
        assert "☐ Verify no users logged in (check active sessions)" in text
        assert "where each item needed before Start stands: `/cutover checklist 1`" in text


def test_a_notice_slack_refuses_whole_is_posted_short_with_its_lines_in_the_thread(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Slack's cumulative limit is undocumented: when it refuses a notice the budget let
    through, a short notice says so and every line goes to its thread, as with a
    checkpoint; the refusal is in the audit trail."""
    clock = clock_at(START - 72 * H)
    with running_bot(sqlite_db, many_checks_runbook(tmp_path)) as bot:
        bot.engine.clock = clock
        _, key = bot.command("schedule prod 2026-03-01T14:00Z --stakeholders <#C0LAUNCH|launch>")
        assert "as #1" in bot.reply(key)
        bot.standin.fail_next(1, 200, None, method="chat.postMessage", error="msg_blocks_too_long")

        assert tick(bot, clock, START - 24 * H) == ["schedule:1:t-24h: sent"]
        [notice] = top_level(bot, RUN_CHANNEL)
        text = notice.all_text()
        assert "The full notice could not be posted (msg_blocks_too_long)" in text
        assert "check results and every other line of it are in the replies to this message" in text
        replies = bot.standin.thread(f"{notice.channel}:{notice.ts}")
        below = [ln for r in replies for ln in shown_results(r.all_text())]
        assert len(below) == CHECKS
        everything = "\n".join(r.all_text() for r in replies)
        assert "☐ Run readiness checker" in everything
        with sqlite_db.session() as s:
            failed = s.exec(select(AuditEvent).where(AuditEvent.kind == "surface.failed")).all()
        assert any("msg_blocks_too_long" in r.data for r in failed)


def test_a_tick_never_changes_which_lines_of_the_t1h_checklist_notice_are_shown() -> None:
    """The room kept for the boxes depends on the items alone: the notice's lines drawn at
    every redraw are those the thread replies were posted beside."""
    items = [ChecklistItem(id=f"item-{n}", text="x" * 150, gates_start=True) for n in range(12)]
    items.append(ChecklistItem(id="c01", text="Check 01", gates_start=True, check="ready/c01"))
    lines = ["🕐 T-1h: Production cutover — schedule #3.", "Readiness dry run (R): ❌ 60 of 60"]
    lines += [f"  ❌ Readiness check {i:02d}: exit 1: {'y' * 190}" for i in range(60)]
    text = "\n".join(lines)

    def drawn(done: bool) -> tuple[list[Block], list[Block]]:
        detail = f"ticked by T1:U1 at 13:05 UTC, note: {'n' * 300}" if done else "not ticked"
        states = [ItemState(item, done, detail, "" if done else "tick it") for item in items]
        notice = checklist_notice(3, text, "Production cutover", states)
        assert block_problems(notice.blocks) == []
        assert block_text(notice.blocks) <= BLOCK_TEXT_BUDGET and len(notice.blocks) <= 50
        own = [b for b in notice.blocks if not str(b.get("block_id", "")).startswith("checklist")]
        return own, [b for _, blocks in notice.replies for b in blocks]

    assert drawn(False) == drawn(True)
