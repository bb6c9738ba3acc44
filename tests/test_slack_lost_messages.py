"""A message the bot can no longer edit (deleted by an admin, edit window closed) is posted
again, and never holds up the other edits of its channel."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bot import audit
from bot.slack.outbox import Gone, Outbox
from bot.store.db import Database
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook

QUICK = 5.0  # seconds: what "at once" means on a loaded 2-core CI machine (no 62 s stall)


def test_a_deleted_run_message_is_posted_again_and_the_next_checkpoint_is_not_delayed(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        old = bot.parent(run_id)
        bot.standin.admin_delete(f"{old.channel}:{old.ts}")

        clicked = time.monotonic()
        bot.click(one, "gate_continue", user="U2")
        bot.checkpoint(run_id, 2)
        assert time.monotonic() - clicked < QUICK

        # The run's message is posted again (a new top-level message), drawn with the run's
        # state, and its reference kept: later checkpoints live in its thread.
        new = wait_for(
            lambda: (p := bot.parent(run_id)).ts != old.ts and "Cutover run" in p.all_text() and p,
            "the run's message posted again",
            QUICK,
        )
        assert not new.deleted and new.thread_ts is None
        two = bot.checkpoint(run_id, 2)
        bot.tick(two, ["browser"], user="U3")
        two = bot.wait_text(two, "ticked by <@U3>")
        before = bot.fresh(new).updates
        clicked = time.monotonic()
        bot.click(two, "gate_continue", user="U2")
        three = bot.checkpoint(run_id, 3)
        assert three.thread_ts == new.ts
        # Later changes of the run are drawn on the message posted again.
        wait_for(lambda: bot.fresh(new).updates > before, "the new message redrawn", QUICK)
        assert time.monotonic() - clicked < QUICK
        # One failed edit of the lost message, audited; no retries of it.
        lost = [
            c
            for c in bot.standin.api_calls("chat.update")
            if c.args.get("ts") == old.ts and not c.answer.get("ok")
        ]
        assert [c.answer["error"] for c in lost] == ["message_not_found"]
        failed = [e for e in audit.events(sqlite_db, run_id) if e.kind == "surface.failed"]
        assert any("message_not_found" in e.data for e in failed)


def test_a_checkpoint_past_the_edit_window_is_posted_again_with_its_buttons(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path, quorum=2)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        assert bot.service.surface.outbox.settle()  # the failure is for the click's redraw
        bot.standin.fail_next(1, status=200, method="chat.update", error="edit_window_closed")
        bot.click(one, "gate_continue", user="U2")  # one vote of two: the gate stays open
        again = wait_for(
            lambda: (c := bot.checkpoint(run_id, 1)).ts != one.ts and c,
            "the checkpoint posted again",
            QUICK,
        )
        assert "gate_continue" in str(again.blocks)  # still decidable from the new copy
        bot.click(again, "gate_continue", user="U3")
        wait_for(lambda: bot.gates(run_id)[0].status == "approved", "the approval", QUICK)


def test_a_message_backing_off_does_not_hold_up_the_channels_other_edits() -> None:
    sent: list[tuple[str, float]] = []
    failures: list[str] = []
    tries = {"A": 0}

    def update(channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        if ts == "A" and tries["A"] < 3:
            tries["A"] += 1
            raise RuntimeError("HTTP 500")
        sent.append((ts, time.monotonic()))

    outbox = Outbox(update, lambda call, err, run: failures.append(err), backoff=1.0, gather=0)
    try:
        started = time.monotonic()
        outbox.edit("C1", "A", lambda: ("a", []))
        wait_for(lambda: tries["A"] == 1, "A's first try")
        outbox.edit("C1", "B", lambda: ("b", []))
        wait_for(lambda: any(ts == "B" for ts, _ in sent), "B sent")
        b_at = next(at for ts, at in sent if ts == "B")
        assert b_at - started < 0.9  # before A's first back-off (1 s) ran out
        assert outbox.settle(timeout=30)
        assert [ts for ts, _ in sent] == ["B", "A"] and failures == []
    finally:
        outbox.close()


def test_a_gone_message_is_reposted_once_and_never_retried() -> None:
    calls: list[str] = []
    reposts = threading.Event()

    def update(channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        calls.append(ts)
        raise Gone("chat.update", "message_not_found", 200)

    outbox = Outbox(update, lambda call, err, run: None, gather=0)
    try:
        outbox.edit("C1", "A", lambda: ("a", []), on_gone=reposts.set)
        assert reposts.wait(5)
        assert outbox.settle(timeout=5)
        assert calls == ["A"]
    finally:
        outbox.close()
