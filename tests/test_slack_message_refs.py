"""Where the sign-off message and the T-1h checklist are lives in the database: a tick typed
as `/cutover tick` redraws the checklist message, and after a restart (a second bot on the
same database and the same Slack) a sign-off by command or a typed tick edits the message
the first bot posted instead of posting a copy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.db import Database
from bot.scheduler import Scheduler
from bot.store import message_refs
from tests.schedule_helpers import START, clock_at, set_clock
from tests.slack_harness import Bot, running_bot
from tests.slack_standin import Message, SlackStandIn, block_problems
from tests.test_signoff import runbook as signoff_runbook
from tests.test_slack_signoff import signoff_message
from tests.test_start_gate import checked, gated

H = timedelta(hours=1)


def t1h_checklist(bot: Bot, clock: Any) -> Message:
    """Schedules prod and lets the scheduler post the T-1h checklist; returns that message."""
    _, key = bot.command("schedule prod 2026-03-01T14:00Z")
    assert "as #1" in bot.reply(key)
    set_clock(clock, START - H)
    Scheduler(bot.engine).tick(START - H)
    [message] = [m for m in bot.standin.parents() if "final checklist" in m.all_text()]
    return message


def signoff_messages(bot: Bot, run_id: int) -> list[Message]:
    parent = bot.parent(run_id)
    return [
        m
        for m in bot.standin.thread(f"{parent.channel}:{parent.ts}")
        if m.text.startswith(f"Sign-off of run #{run_id}")
    ]


def test_a_typed_tick_redraws_the_checklist_message(sqlite_db: Database, tmp_path: Path) -> None:
    clock = clock_at(START - 48 * H)
    with running_bot(sqlite_db, gated(tmp_path)) as bot:
        bot.engine.clock = clock
        message = t1h_checklist(bot, clock)
        assert checked(message) == []

        _, key = bot.command("tick 1 no-users", user="U1")
        assert "[no-users] ticked by" in bot.reply(key)
        fresh = bot.wait_text(message, "Needed before Start: 1/3 done")
        assert checked(fresh) == ["no-users"]
        assert block_problems(fresh.blocks) == []

        _, key = bot.command("untick 1 no-users", user="U2")
        assert "[no-users] unticked by" in bot.reply(key)
        assert checked(bot.wait_text(message, "Needed before Start: 0/3 done")) == []
        # The notice's own lines (what T-1h is about) are kept on every redraw.
        assert bot.fresh(message).blocks[0] == message.blocks[0]
        assert [m.ts for m in bot.standin.parents() if "final checklist" in m.all_text()] == [
            message.ts
        ]  # redrawn in place, never posted again


def test_after_a_restart_a_typed_tick_redraws_the_checklist_the_first_bot_posted(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 48 * H)
    book = gated(tmp_path)
    standin = SlackStandIn("xoxb-standin-0123456789-secret-bot-token").start()
    try:
        with running_bot(sqlite_db, book, standin) as first:
            first.engine.clock = clock
            message = t1h_checklist(first, clock)
        with running_bot(sqlite_db, book, standin) as restarted:  # a new process
            restarted.engine.clock = clock
            _, key = restarted.command("tick 1 maintenance-page", user="U2")
            assert "[maintenance-page] ticked by" in restarted.reply(key)
            fresh = restarted.wait_text(message, "Needed before Start: 1/3 done")
            assert checked(fresh) == ["maintenance-page"]
            assert [m.ts for m in standin.parents() if "final checklist" in m.all_text()] == [
                message.ts
            ]
    finally:
        standin.stop()


def test_after_a_restart_a_signoff_by_command_updates_the_message_already_posted(
    sqlite_db: Database, tmp_path: Path
) -> None:
    book = signoff_runbook(tmp_path)
    standin = SlackStandIn("xoxb-standin-0123456789-secret-bot-token").start()
    try:
        with running_bot(sqlite_db, book, standin) as first:
            first.command("start prod", user="U1")
            run_id = first.latest_run()
            first.click(first.checkpoint(run_id, 1), "gate_continue", user="U2")
            message = signoff_message(first, run_id)
            first.checkpoint(run_id, 2)  # the last phase waits at its checkpoint
            key = message_refs.signoff_key(run_id)
            assert message_refs.lookup(sqlite_db, key) is not None
        with running_bot(sqlite_db, book, standin) as restarted:  # a new process
            _, reply = restarted.command(f"signoff {run_id} admin --note checked", user="U2")
            assert "signed off" in restarted.reply(reply)
            fresh = restarted.wait_text(message, "signed off by <@U2>")
            assert fresh.action_ids() == ["signoff:payment"]
            assert [m.ts for m in signoff_messages(restarted, run_id)] == [message.ts]
    finally:
        standin.stop()


def test_two_bots_posting_one_signoff_message_keep_the_first_and_delete_the_other(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = signoff_runbook(tmp_path)
    with running_bot(sqlite_db, book) as first:
        first.command("start prod", user="U1")
        run_id = first.latest_run()
        first.click(first.checkpoint(run_id, 1), "gate_continue", user="U2")
        message = signoff_message(first, run_id)
        with running_bot(sqlite_db, book, first.standin) as second:
            # The second bot looked before the first bot's ref landed: it posts a copy,
            # the database keeps the first ref, and the copy is deleted.
            lookups = iter([None])
            real = message_refs.lookup
            monkeypatch.setattr(
                message_refs, "lookup", lambda db, key: next(lookups, None) or real(db, key)
            )
            second.service.surface._post_signoff(run_id)
            assert [m.ts for m in signoff_messages(second, run_id)] == [message.ts]
