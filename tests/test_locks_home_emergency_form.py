"""Locks and freezes on the Home tab, and an emergency start through a Slack form (issue 20,
item 3): on PostgreSQL, through signed requests against the Slack stand-in. `/cutover start
ENV --emergency` without --reason opens a form asking for the justification; each
submission is one override approver's vote, as the typed command is."""

from __future__ import annotations

import json
from pathlib import Path

from bot.store.db import Database
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_locks_freezes import all_rows, frozen_runbook


def home_text(bot: object, user: str) -> str:
    return json.dumps(bot.standin.home(user) or {}, ensure_ascii=False)  # type: ignore[attr-defined]


def test_home_shows_a_lock_who_why_and_since_and_drops_it_once_unlocked(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0CUTOVER"})
    with running_bot(pg_db, runbook) as bot:
        bot.command("lock staging --reason 'db maintenance'", user="U1")
        wait_for(lambda: all_rows(pg_db, "env.locked"), "the lock")
        bot.open_home("U2")
        wait_for(lambda: "Locks and freezes" in home_text(bot, "U2"), "the locks on Home")
        text = home_text(bot, "U2")
        assert "🔒 *staging* locked by <@U1> since " in text
        assert "db maintenance" in text and "/cutover unlock staging" in text
        bot.command("unlock staging", user="U2")
        wait_for(lambda: "Locks and freezes" not in home_text(bot, "U2"), "the lock to go")


def test_home_shows_a_freeze_in_force_with_who_declared_it_and_until(
    pg_db: Database, tmp_path: Path
) -> None:
    with running_bot(pg_db, frozen_runbook(tmp_path)) as bot:
        bot.open_home("U1")
        wait_for(lambda: "Locks and freezes" in home_text(bot, "U1"), "the freeze on Home")
        text = home_text(bot, "U1")
        assert "❄️ *staging* is in the change freeze `launch-week` declared by release " in text
        assert "marketing launch, until <!date^" in text
        assert "/cutover start staging --emergency" in text


def test_an_emergency_start_without_a_reason_opens_a_form_and_each_form_is_a_vote(
    pg_db: Database, tmp_path: Path
) -> None:
    with running_bot(pg_db, frozen_runbook(tmp_path)) as bot:
        _, key = bot.command("start staging --emergency", user="U9")  # a stranger: no form
        assert "you may not break the change freeze of staging" in bot.reply(key)
        assert bot.standin.opened("U9") == []
        bot.command("start staging --emergency", user="U1")
        form = bot.modal("U1")
        assert form.view["callback_id"] == "cutover_emergency"
        assert "Emergency start of staging" in form.text() and "launch-week" in form.text()
        empty = bot.submit(form, {"justification": " "})
        assert "Say why it must start now" in json.dumps(empty.json())
        bot.submit(form, {"justification": "payment outage fix"})
        wait_for(lambda: all_rows(pg_db, "override.vote"), "the first vote")
        assert all_rows(pg_db, "run.started") == []  # the requester alone never starts it
        bot.command("start staging --emergency", user="U2")
        bot.submit(bot.modal("U2"), {"justification": "confirmed outage"})
        run_id = bot.latest_run()
        (broke,) = all_rows(pg_db, "freeze.overridden")
        assert broke["run"] == run_id and broke["approvers"] == ["T1:U1", "T1:U2"]
        assert broke["justifications"] == ["T1:U1: payment outage fix", "T1:U2: confirmed outage"]
        refused = [r for r in all_rows(pg_db, "action.refused") if r["action"] == "start"]
        assert [r["actor"] for r in refused] == ["T1:U9"]


def test_an_emergency_form_outside_a_freeze_says_there_is_nothing_to_break(
    pg_db: Database, tmp_path: Path
) -> None:
    with running_bot(pg_db, small_runbook(tmp_path)) as bot:
        _, key = bot.command("start staging --emergency", user="U1")
        assert "No change freeze is in force for staging" in bot.reply(key)
        assert bot.standin.opened("U1") == []
