"""Web API failures are retried or audited, never lost; Slack is answered while checks run."""

from __future__ import annotations

from pathlib import Path

from bot import audit
from bot.store.db import Database
from bot.store.reads import open_gate_id
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook


def slow_runbook(tmp_path: Path, seconds: int = 2):  # type: ignore[no-untyped-def]
    def phase(i: int) -> dict[str, object]:
        return {
            "id": f"p{i}",
            "name": f"Slow phase {i}",
            "estimate_minutes": 1,
            "checkpoint": "slow ok",
            "checks": [
                {
                    "id": "sleep",
                    "name": f"sleep {seconds}",
                    "kind": "command",
                    "params": {"argv": ["sleep", str(seconds)]},
                    "timeout": 30,
                }
            ],
        }

    return small_runbook(tmp_path, phases=[phase(1), phase(2)])


def test_rate_limited_post_is_retried_after_retry_after(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.standin.fail_next(1, status=429, retry_after=1)
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        parent = bot.parent(run_id)
        bot.checkpoint(run_id, 1)
        posts = bot.standin.api_calls("chat.postMessage")
        assert [c.status for c in posts[:2]] == [429, 200]
        assert posts[1].at - posts[0].at >= 1.0  # it waited for Retry-After
        assert len(bot.standin.parents()) == 1 and parent.thread_ts is None
        assert "surface.failed" not in [e.kind for e in audit.events(sqlite_db, run_id)]
        assert bot.standin.problems == []


def test_persistent_server_errors_are_audited_and_the_engine_carries_on(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.standin.fail_next(1000, status=500, retry_after=None)
        _, key = bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        assert "did not take the run's message yet" in bot.reply(key)
        wait_for(lambda: open_gate_id(sqlite_db, run_id), "the first gate to open")
        failed = wait_for(
            lambda: [e for e in audit.events(sqlite_db, run_id) if e.kind == "surface.failed"],
            "a surface.failed audit row",
        )
        assert "HTTP 500" in failed[0].data
        assert bot.run(run_id).status == "waiting"
        retried = bot.standin.api_calls("chat.postMessage")
        assert len(retried) >= 3 and {c.status for c in retried} == {500}  # 1 try + 2 retries

        # Slack is back: the next change posts the parent and the checkpoint; nothing is lost.
        with bot.standin._lock:
            bot.standin._fail.clear()
        _, key = bot.command("status staging", user="U3")  # also re-posts what is missing
        assert "waiting for a decision" in bot.reply(key)
        one = bot.checkpoint(run_id, 1)
        parent = bot.parent(run_id)
        assert one.thread_ts == parent.ts
        bot.click(one, "gate_continue", user="U2")
        bot.wait_text(one, "*Approved* by <@U2>")
        assert audit.verify(sqlite_db) == []


def test_commands_and_clicks_are_answered_while_slow_checks_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, slow_runbook(tmp_path)) as bot:
        sent, _ = bot.command("start staging", user="U1")
        assert sent.status == 200 and sent.seconds < 1.0
        run_id = bot.latest_run()
        assert open_gate_id(sqlite_db, run_id) is None  # phase 1's `sleep 2` is still running

        sent, key = bot.command("status staging", user="U2")
        assert sent.status == 200 and sent.seconds < 1.0
        assert "running" in bot.reply(key)

        one = bot.checkpoint(run_id, 1)
        sent, _ = bot.click(one, "gate_continue", user="U2")
        assert sent.status == 200 and sent.seconds < 1.0
        assert len(bot.gates(run_id)) == 1  # phase 2's check is running after the answer
        bot.wait_text(one, "*Approved* by <@U2>")
        assert "sleep 2" in bot.checkpoint(run_id, 2).all_text()
