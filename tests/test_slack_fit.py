"""A checkpoint always fits what Slack takes, and a gate stays decidable when Slack refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot import audit
from bot.store.db import Database
from standins.slack import BLOCK_TEXT_LIMIT, block_text_chars
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook


def big_phase(checks: int = 400, manual: int = 25) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(checks):
        if i % 40 == 0:  # a warning with long evidence: non-critical, so the gate may pass
            steps.append(
                {
                    "id": f"w{i}",
                    "name": f"replica lag probe {i} " + "l" * 60,
                    "kind": "command",
                    "critical": False,
                    "params": {"argv": ["sh", "-c", f"echo lag {i} {'x' * 300}; exit 1"]},
                }
            )
        else:
            steps.append(
                {
                    "id": f"c{i}",
                    "name": f"endpoint {i} answers " + "n" * 60,
                    "kind": "command",
                    "params": {"argv": ["true"]},
                }
            )
    return {
        "id": "big",
        "name": "Verify everything",
        "estimate_minutes": 5,
        "checkpoint": "all endpoints answer",
        "checks": steps,
        "manual": [
            {"id": f"m{i}", "text": f"Confirm item {i} " + "z" * 120} for i in range(manual)
        ],
    }


def test_a_phase_of_400_checks_and_25_manual_steps_is_posted_and_decided_through_slack(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path, phases=[big_phase()])) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        assert block_text_chars(one.blocks) <= BLOCK_TEXT_LIMIT and len(one.blocks) <= 50
        text = one.all_text()
        assert "390 passed:" in text and "replica lag probe 0" in text
        parent = bot.parent(run_id)
        replies = wait_for(
            lambda: [
                m for m in bot.standin.thread(f"{parent.channel}:{parent.ts}") if m.ts > one.ts
            ],
            "the results as thread replies",
        )
        assert "replica lag probe 0" in replies[0].all_text()
        for group in range(3):  # ticked group by group, as a person does
            one = bot.fresh(one)
            items = [f"m{i}" for i in range(group * 10, min(25, group * 10 + 10))]
            block = [b for b in one.blocks if b.get("block_id", "").startswith("tick:")][group]
            bot.tick_block(one, block["block_id"], items, user="U2")
            bot.wait_text(one, f"{(group + 1) * 10 if group < 2 else 25}/25 ticked")
        bot.click(bot.fresh(one), "gate_continue", user="U2")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
        final = bot.wait_text(one, "*Approved* by <@U2>")
        assert block_text_chars(final.blocks) <= BLOCK_TEXT_LIMIT
        assert bot.standin.problems == []


def test_a_refused_checkpoint_is_posted_minimal_audited_and_still_decided(
    sqlite_db: Database, tmp_path: Path
) -> None:
    slow = {
        "id": "slow",
        "name": "Slow phase",
        "estimate_minutes": 1,
        "checkpoint": "ok",
        "checks": [
            {"id": "s", "name": "sleep", "kind": "command", "params": {"argv": ["sleep", "1"]}}
        ],
    }
    with running_bot(sqlite_db, small_runbook(tmp_path, phases=[slow])) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.parent(run_id)  # posted; the checkpoint's post is refused next
        bot.standin.fail_next(1, status=200, method="chat.postMessage", error="msg_blocks_too_long")
        one = bot.checkpoint(run_id, 1)
        assert "could not be posted" in one.all_text() and "gate_continue" in one.action_ids()
        failed = [e for e in audit.events(sqlite_db, run_id) if e.kind == "surface.failed"]
        assert failed and "msg_blocks_too_long" in failed[0].data
        _, key = bot.command("status staging", user="U3")
        assert "waiting for a decision" in bot.reply(key)
        bot.click(one, "gate_continue", user="U2")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")


def test_a_checkpoint_posted_twice_after_a_5xx_loses_the_stray_copys_buttons_on_contact(
    sqlite_db: Database, tmp_path: Path
) -> None:
    slow = {
        "id": "slow",
        "name": "Slow phase",
        "estimate_minutes": 1,
        "checkpoint": "ok",
        "checks": [
            {"id": "s", "name": "sleep", "kind": "command", "params": {"argv": ["sleep", "1"]}}
        ],
    }
    with running_bot(sqlite_db, small_runbook(tmp_path, phases=[slow])) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        parent = bot.parent(run_id)
        bot.standin.take_then_fail_next_post()
        live = bot.checkpoint(run_id, 1)
        copies = [m for m in bot.standin.thread(f"{parent.channel}:{parent.ts}") if m.blocks]
        stray = next(m for m in copies if m.ts != live.ts)
        bot.click(stray, "gate_continue", user="U2")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
        assert bot.engine.redraws_idle(15)  # the engine has handed every redraw over
        assert bot.service.surface.outbox.settle(timeout=15)
        assert bot.fresh(stray).action_ids() == [] and "out of date" in bot.fresh(stray).all_text()
        # the decided checkpoint's last redraw may still be on its way to the outbox
        wait_for(lambda: bot.fresh(live).action_ids() == [], "the decided checkpoint redrawn")
