"""Where the sign-off message and the T-1h checklist are lives in the database: a tick typed
as `/cutover tick` redraws the checklist message, and after a restart (a second bot on the
same database and the same Slack) a sign-off by command or a typed tick edits the message
the first bot posted instead of posting a copy."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.notices import ItemState
from bot.scheduler import Scheduler
from bot.slack.blocks import BLOCK_TEXT_BUDGET, block_text, checklist_message
from bot.store import message_refs
from bot.store.db import Database
from phases.runbook import ChecklistItem
from standins.slack import Message, SlackStandIn, block_problems
from tests.schedule_helpers import START, clock_at, schedule_runbook, set_clock
from tests.slack_harness import TOKEN, Bot, running_bot
from tests.test_signoff import runbook as signoff_runbook
from tests.test_slack_signoff import signoff_message
from tests.test_start_gate import checked, gated, gated_pre_cutover

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
    standin = SlackStandIn(TOKEN).start()
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
    standin = SlackStandIn(TOKEN).start()
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
        first.checkpoint(run_id, 2)  # the first bot's own posts are done before the count
        assert first.service.surface.outbox.settle()
        with running_bot(sqlite_db, book, first.standin) as second:
            # The second bot looked before the first bot's ref landed: it posts a copy,
            # the database keeps the first ref, and the copy is deleted.
            lookups = iter([None])  # the first lookup misses; later ones read the database
            real = message_refs.lookup
            monkeypatch.setattr(
                message_refs,
                "lookup",
                lambda db, key: None if next(lookups, True) is None else real(db, key),
            )
            before = len(first.standin.calls)
            second.service.surface.signoffs._post_signoff(run_id)
            made = [c for c in first.standin.calls[before:] if c.status == 200]
            posted = [c for c in made if c.method == "chat.postMessage"]
            deleted = [c for c in made if c.method == "chat.delete"]
            assert len(posted) == 1 and len(deleted) == 1  # the copy was posted, then deleted
            assert deleted[0].args["ts"] == posted[0].answer["ts"] != message.ts
            assert [m.ts for m in signoff_messages(second, run_id)] == [message.ts]


# --------------------------------------------------------------------------- more than 10 boxes

ITEMS_23 = [f"item-{n:02d}" for n in range(1, 24)]


def many_items(tmp_path: Path) -> Any:
    """A T-1h checklist with 23 items an approver ticks (Slack's checkboxes take 10 each)."""
    pre = gated_pre_cutover()
    pre["t_minus_1h"]["items"] = [
        {"id": i, "text": f"Step {i} of the final verification, done by hand", "gates_start": True}
        for i in ITEMS_23
    ]
    return schedule_runbook(tmp_path, extra={"pre_cutover": pre})


def groups(message: Message) -> list[dict[str, Any]]:
    return [b for b in message.blocks if str(b.get("block_id", "")).startswith("checklist:")]


def ticked(message: Message) -> list[str]:
    return [
        o["value"].split(":", 1)[1]
        for b in groups(message)
        for o in b["elements"][0].get("initial_options", [])
    ]


def click_group(bot: Bot, message: Message, group: int, selected: list[str], user: str) -> str:
    """Leaves checked, in checkbox group `group` only, the boxes whose item is in `selected`
    (Slack sends the clicked element's selected options, nothing of the other groups)."""
    block = groups(message)[group]
    el = block["elements"][0]
    chosen = [o for o in el["options"] if o["value"].split(":", 1)[1] in selected]
    action = {
        "action_id": "checklist_tick",
        "block_id": block["block_id"],
        "type": "checkboxes",
        "selected_options": chosen,
    }
    return str(bot._send(message, action, user, "T1")[1])


def test_a_checklist_of_23_items_is_drawn_in_three_groups_and_a_click_ticks_its_group_only(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 48 * H)
    with running_bot(sqlite_db, many_items(tmp_path)) as bot:
        bot.engine.clock = clock
        message = t1h_checklist(bot, clock)
        drawn = groups(message)
        assert [len(b["elements"][0]["options"]) for b in drawn] == [10, 10, 3]
        assert len({b["block_id"] for b in drawn}) == 3
        assert block_problems(message.blocks) == []
        assert block_text(message.blocks) <= BLOCK_TEXT_BUDGET and len(message.blocks) <= 50

        # A box of the second group: only that group's items are compared; the first and
        # third groups' items (not in the click at all) are not unticked.
        bot.command("tick 1 item-02", user="U1")
        first = bot.wait_text(message, "Needed before Start: 1/23 done")
        assert click_group(bot, first, 1, ["item-12"], "U1")
        second = bot.wait_text(message, "Needed before Start: 2/23 done")
        assert ticked(second) == ["item-02", "item-12"]
        # Each redraw gives every group a new block_id.
        assert not {b["block_id"] for b in groups(second)} & {b["block_id"] for b in drawn}

        click_group(bot, second, 2, ["item-23"], "U2")
        third = bot.wait_text(message, "Needed before Start: 3/23 done")
        assert ticked(third) == ["item-02", "item-12", "item-23"]

        click_group(bot, third, 1, [], "U2")  # item-12 unchecked in its group
        assert ticked(bot.wait_text(message, "Needed before Start: 2/23 done")) == [
            "item-02",
            "item-23",
        ]
        assert block_problems(bot.fresh(message).blocks) == []


def test_a_checklist_too_long_for_one_message_says_how_to_tick_the_rest() -> None:
    states = [
        ItemState(
            ChecklistItem(id=f"item-{n:03d}", text="x" * 150, gates_start=True),
            False,
            "not ticked " + "y" * 100,
            "",
        )
        for n in range(1, 121)
    ]
    fallback, blocks = checklist_message(
        7, "\n".join(["T-1h"] + ["z" * 200] * 40), "Production cutover", states
    )
    assert block_problems(blocks) == []
    assert block_text(blocks) <= BLOCK_TEXT_BUDGET and len(blocks) <= 50
    drawn = [
        o
        for b in blocks
        if str(b.get("block_id", "")).startswith("checklist:")
        for o in b["elements"][0]["options"]
    ]
    assert 0 < len(drawn) < 120
    rest = blocks[-1]["elements"][0]["text"]
    assert f"{120 - len(drawn)} more items than fit here: `/cutover tick 7 ITEM`" in rest
    assert "/cutover checklist 7" in json.dumps(blocks)  # the notice's cut lines
