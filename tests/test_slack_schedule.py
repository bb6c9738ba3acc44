"""Scheduled cutovers and monitoring through Slack: signed slash commands over HTTP, the
scheduler's notices posted to the Web API stand-in, the reminder's Start button, and the
monitoring rounds in the run's thread. The scheduler is driven by `Scheduler.tick(now)` on a
ManualClock (nothing waits for hours)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot import audit
from bot.scheduler import Scheduler
from bot.slack.blocks import BLOCK_TEXT_BUDGET, block_text, reminder_message, scheduled_message
from bot.slack.listeners.commands import stakeholders_channel
from bot.slack.middleware import ALREADY_RECEIVED
from bot.store.db import Database
from bot.store.models import AuditEvent, Run, Schedule
from commands.parser import UsageError
from standins.slack import Message, block_actions_body, block_problems, button_action
from standins.slack import post_signed as post
from tests.schedule_helpers import (
    START,
    clock_at,
    schedule_runbook,
    set_clock,
    true_check,
    write_runbook,
)
from tests.servers import ManualClock, NostrMaxiStandin, nostrmaxi  # noqa: F401  (fixture)
from tests.slack_harness import SECRET, TOKEN, Bot, running_bot, wait_for

H, MIN = timedelta(hours=1), timedelta(minutes=1)
RUN_CHANNEL, LAUNCH = "C0CUTOVER", "C0LAUNCH"


def top_level(bot: Bot, channel: str) -> list[Message]:
    return [m for m in bot.standin.parents() if m.channel == channel]


def audit_rows(db: Database, kind: str) -> list[dict[str, Any]]:
    with db.session() as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.kind == kind)).all()
    return [json.loads(r.data) for r in rows]


def tick(bot: Bot, clock: ManualClock, when: datetime) -> list[str]:
    set_clock(clock, when)
    return Scheduler(bot.engine).tick(when)


def runs(db: Database) -> list[Run]:
    with db.session() as s:
        return list(s.exec(select(Run)))


def test_schedule_commands_notices_and_the_start_button(
    sqlite_db: Database, tmp_path: Path
) -> None:
    clock = clock_at(START - 72 * H)
    with running_bot(sqlite_db, schedule_runbook(tmp_path)) as bot:
        bot.engine.clock = clock

        # Wrong input: answered at once, privately, with the usage.
        for text, problem in [
            ("schedule prod 2026-03-01T14:00", "has no time zone"),
            ("schedule prod 2026-02-01T14:00Z", "is in the past"),
            ("schedule prod 2026-03-01T14:00Z --stakeholders #launch", "--stakeholders C0123ABCD"),
        ]:
            sent, _ = bot.command(text)
            answer = sent.json()
            assert sent.status == 200 and answer["response_type"] == "ephemeral"
            assert problem in answer["text"] and "Usage:" in answer["text"]
        _, key = bot.command("schedule prod 2026-03-01T14:00Z", user="U9")
        assert "only approvers of prod may schedule" in bot.reply(key)

        # Schedule, list, unschedule (a refusal first), schedule again.
        _, key = bot.command("schedule prod 2026-03-02T14:00Z --stakeholders <#C0LAUNCH|launch>")
        assert "scheduled for Mon 2026-03-02 14:00 UTC as #1" in bot.reply(key)
        assert bot.standin.replies(key)[0]["response_type"] == "in_channel"
        _, key = bot.command("schedule list", user="U5")
        listing = bot.reply(key)
        assert "#1 prod at Mon 2026-03-02 14:00 UTC — scheduled" in listing
        assert f"run channel {RUN_CHANNEL}, stakeholders {LAUNCH}" in listing
        _, key = bot.command("unschedule 1", user="U9")
        assert "only approvers of prod may schedule or cancel" in bot.reply(key)
        _, key = bot.command("unschedule 1", user="U2")
        assert "Scheduled cutover #1 of prod" in bot.reply(key) and "cancelled by" in bot.reply(key)
        _, key = bot.command("schedule prod 2026-03-01T14:00Z --stakeholders <#C0LAUNCH|launch>")
        assert "as #2" in bot.reply(key)
        assert bot.standin.api_calls("chat.postMessage") == []  # nothing posted yet

        # T-24h: the readiness dry run (actions only described) and the checklist.
        assert tick(bot, clock, START - 24 * H - MIN) == []
        assert tick(bot, clock, START - 24 * H) == ["schedule:2:t-24h: sent"]
        [t24] = top_level(bot, RUN_CHANNEL)
        text = t24.all_text()
        assert "T-24h · Production cutover: readiness dry run and checklist" in text
        assert "Readiness dry run (Readiness checks): ❌ 1 of 3 checks failed" in text
        assert "Database backup &lt;1 hour old" in text and "☐ Run readiness checker" in text
        assert not (tmp_path / "acted").exists()

        # T-1h: the stakeholder notice in their channel, the checklist in the run channel.
        assert sorted(tick(bot, clock, START - H)) == [
            "schedule:2:t-1h-checklist: sent",
            "schedule:2:t-1h: sent",
        ]
        [t1] = top_level(bot, LAUNCH)
        text = t1.all_text()
        assert t1.blocks[0] == {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": "📣 Production cutover starting in 1 hour",
                "emoji": True,
            },
        }
        for needle in (
            "Environment: prod",
            "Start: Sun 2026-03-01 14:00 UTC",
            "Expected duration: 15-20 min by its phases (the runbook's header says 2-4 hours)",
            f"Where it runs: <#{RUN_CHANNEL}>",
        ):
            assert needle in text
        checklist = top_level(bot, RUN_CHANNEL)[1].all_text()
        assert "T-1h · Production cutover: final checklist" in checklist
        assert "☐ Verify no users logged in (check active sessions)" in checklist
        assert tick(bot, clock, START - H + MIN) == []  # each notice once

        # T-0: a reminder mentioning the approvers, with a Start button; nothing starts.
        assert tick(bot, clock, START) == ["schedule:2:t-0: sent"]
        reminder = top_level(bot, RUN_CHANNEL)[2]
        assert reminder.action_ids() == ["schedule_start"]
        assert reminder.element("schedule_start")[1]["value"] == "2"
        assert "<@U1>, <@U2>" in reminder.all_text() and "<@U1>" in reminder.text
        assert runs(sqlite_db) == []

        # Someone who is not an approver: refused privately, audited, nothing started.
        _, key = bot.click(reminder, "schedule_start", user="U9")
        assert "only approvers of prod may start a run there; nothing was started" in bot.reply(key)
        refusals = audit_rows(sqlite_db, "action.refused")  # every refusal, audited alike
        assert [(r["action"], r.get("schedule") or r.get("environment")) for r in refusals] == [
            ("schedule", "prod"),
            ("unschedule", 1),
            ("start", "prod"),
        ]
        assert runs(sqlite_db) == [] and bot.fresh(reminder).updates == 0

        # Two approvers at once, and Slack retrying one delivery: exactly one run.
        body = block_actions_body(
            reminder,
            button_action(reminder, "schedule_start"),
            user="U2",
            team="T1",
            response_url=bot.standin.response_url("retried"),
        )
        stamp = int(datetime.now().timestamp())
        keys: list[str] = []

        def click(user: str) -> None:
            keys.append(bot.click(reminder, "schedule_start", user=user)[1])

        threads = [threading.Thread(target=click, args=(u,)) for u in ("U1", "U2")]
        threads += [
            threading.Thread(target=post, args=(bot.url, body, SECRET), kwargs={"timestamp": stamp})
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # The same signed delivery twice: one is worked on, the other answered as a replay.
        retried = wait_for(
            lambda: (
                len(bot.standin.replies("retried")) == 2
                and [str(r["text"]) for r in bot.standin.replies("retried")]
            ),
            "both deliveries answered",
        )
        assert retried.count(ALREADY_RECEIVED) == 1, retried
        answers = [bot.reply(k) for k in keys] + [t for t in retried if t != ALREADY_RECEIVED]
        started = [a for a in answers if "▶️ Run #1 of prod (scheduled cutover #2) started by" in a]
        assert len(started) == 1, answers
        already = "Scheduled cutover #2 was already started as run #1; your click changed nothing."
        assert answers.count(already) == 2, answers
        assert len(runs(sqlite_db)) == 1
        run = runs(sqlite_db)[0]
        assert run.channel == RUN_CHANNEL and not run.dry_run
        with sqlite_db.session() as s:
            sched = s.get(Schedule, 2)
            assert sched is not None and (sched.status, sched.run_id) == ("started", run.id)

        # The reminder now says who started it and when; its button is gone.
        done = bot.wait_text(reminder, "*Started* by <@")
        assert f"<@{run.requested_by.split(':')[1]}> at <!date^" in done.all_text()
        assert f"as run #{run.id}" in done.all_text() and done.action_ids() == []
        _, key = bot.click(reminder, "schedule_start", user="U1")  # a click on an old copy
        assert bot.reply(key) == already
        bot.parent(run.id)  # the run's own message in the run channel

        sent_notices = [r["event"] for r in audit_rows(sqlite_db, "notice.sent")]
        assert sorted(sent_notices) == sorted(
            f"schedule:2:{k}" for k in ("t-24h", "t-1h", "t-1h-checklist", "t-0")
        )
        assert len(top_level(bot, LAUNCH)) == 1
        assert bot.standin.problems == []
        everything = bot.standin.everything_sent()
        assert TOKEN not in everything and SECRET not in everything
        assert audit.verify(sqlite_db) == []


def test_a_bare_channel_name_is_resolved_only_where_it_is_known() -> None:
    body = {"channel_id": "C0HERE", "channel_name": "cutover"}
    assert stakeholders_channel("C0LAUNCH1", body, None) == "C0LAUNCH1"
    assert stakeholders_channel("#cutover", body, None) == "C0HERE"
    assert stakeholders_channel("#launch", body, "#launch") == "#launch"
    with pytest.raises(UsageError, match="C0123ABCD"):
        stakeholders_channel("#elsewhere", body, "#launch")


def test_scheduled_messages_stay_within_block_kit_limits() -> None:
    huge = "\n".join(
        [f"  ❌ check {i}: <{'x' * 900}> & more" for i in range(300)]
        + ["⏰ Sent late: this notice was due at … (the bot was not running then)."]
    )
    for kind in ("t-24h", "t-1h", "t-1h-checklist"):
        fallback, blocks = scheduled_message(kind, huge, "Production cutover")
        assert block_problems(blocks) == [] and len(fallback) <= 3000
        assert block_text(blocks) <= BLOCK_TEXT_BUDGET  # the same budget as a checkpoint
        assert "285 of 300 check results not shown here" in json.dumps(blocks)
        assert blocks[1]["type"] == "context"  # the late note, at the top
    _, blocks = reminder_message(
        7, "prod", "Production cutover", huge, ["T1:U1", "console:bob"], ["S0APPROVE"]
    )
    assert block_problems(blocks) == []
    assert "<@U1>, <!subteam^S0APPROVE>" in json.dumps(blocks)
    assert blocks[-1]["elements"][0]["value"] == "7"


def test_monitoring_rounds_in_the_thread_and_a_breach_flagged(
    sqlite_db: Database,
    tmp_path: Path,
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
) -> None:
    runbook = write_runbook(
        tmp_path,
        {
            "name": "Monitoring over Slack",
            "phases": [
                {
                    "id": "go-live",
                    "name": "Go live",
                    "estimate_minutes": 1,
                    "checkpoint": "live",
                    "checks": [true_check()],
                },
                {
                    "id": "monitoring",
                    "name": "Post-cutover monitoring",
                    "estimate_minutes": 10,
                    "checkpoint": "Healthy and fast for 10 minutes",
                    "monitor": {"every_minutes": 5, "for_minutes": 10},
                    "checks": [
                        {
                            "id": "health",
                            "name": "Health check, response <300 ms",
                            "kind": "http",
                            "params": {
                                "url": "{base_url}/health",
                                "expect_json": {"status": "ok"},
                                "max_ms": 300,
                            },
                        }
                    ],
                },
            ],
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": nostrmaxi.url,
                    "approvers": ["T1:U1", "T1:U2"],
                }
            },
        },
    )
    clock = clock_at(START)
    with running_bot(sqlite_db, runbook) as bot:
        bot.engine.clock = clock
        bot.command("start prod", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        parent = bot.parent(run_id)
        ref = f"{parent.channel}:{parent.ts}"

        def in_thread(needle: str) -> Message:
            return wait_for(
                lambda: next((m for m in bot.standin.thread(ref) if needle in m.text), None),
                f"{needle!r} in the run's thread",
            )

        in_thread("📈 Monitoring round 1/3 (T+0 min): passed")
        shown = bot.wait_text(parent, "📈 *2. Post-cutover monitoring*").all_text()
        assert "monitoring: each round is posted in the thread" in shown

        nostrmaxi.delay_ms = 450  # the site turns slow
        assert tick(bot, clock, START + 5 * MIN) == [f"run #{run_id}: monitoring round 2/3"]
        slow = in_thread("🚨 Monitoring round 2/3 (T+5 min): failed")
        assert "❌ Health check, response &lt;300 ms" in slow.text
        [flag] = [m for m in top_level(bot, RUN_CHANNEL) if "Monitoring breach" in m.text]
        assert f"🚨 Monitoring breach on prod, run #{run_id}, round 2/3" in flag.text

        nostrmaxi.delay_ms = 0
        tick(bot, clock, START + 10 * MIN)
        in_thread("📈 Monitoring round 3/3 (T+10 min): passed")
        gate = bot.checkpoint(run_id, 2)
        assert gate.thread_ts == parent.ts
        text = gate.all_text()
        assert "FAIL → ROLLBACK" in text and "failed in round(s) 2 of 3" in text
        assert [e.kind for e in audit.events(sqlite_db, run_id)].count("monitor.breach") == 1
        assert bot.standin.problems == []
        assert TOKEN not in bot.standin.everything_sent()
