"""A click delivered twice, and fifty clicks at once, decide a gate once (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlmodel import select

from bot import audit
from bot.store.db import Database
from bot.store.models import Gate, Vote
from standins.slack import Sent
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook

# Slack's 3 s acknowledgement, measured in wall time: run alone, after the parallel part.
pytestmark = pytest.mark.serial


def decided(db: Database, run_id: int) -> list[str]:
    return [e.kind for e in audit.events(db, run_id) if e.kind == "gate.decided"]


def test_same_click_delivered_twice_decides_once(db: Database, tmp_path: Path) -> None:
    with running_bot(db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        first, _ = bot.click(one, "gate_continue", user="U2")
        again, key = bot.click(one, "gate_continue", user="U2", retry_num=1)  # Slack's retry
        assert first.status == again.status == 200
        assert "already approved by <@U2>" in bot.reply(key)
        bot.checkpoint(run_id, 2)
        assert len(decided(db, run_id)) == 1
        with db.session() as s:
            assert len(s.exec(select(Vote)).all()) == 1
        assert bot.standin.problems == []


def test_fifty_clicks_at_once_decide_the_gate_exactly_once(db: Database, tmp_path: Path) -> None:
    with running_bot(db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        barrier = threading.Barrier(50)
        answers: list[Sent] = []
        keys: list[str] = []
        lock = threading.Lock()

        def click(i: int) -> None:
            barrier.wait()
            sent, key = bot.click(one, "gate_continue", user=["U1", "U2", "U3"][i % 3])
            with lock:
                answers.append(sent)
                keys.append(key)

        threads = [threading.Thread(target=click, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [a.status for a in answers] == [200] * 50
        assert max(a.seconds for a in answers) < 3.0  # every click acknowledged within Slack's 3 s

        # The 49 losers are told who decided; the winner's message update is its answer.
        def answered() -> list[str]:
            return [str(b.get("text")) for k, b in bot.standin.responses if k in keys]

        wait_for(lambda: len(answered()) >= 49, "49 answers")
        bot.checkpoint(run_id, 2)
        texts = answered()
        assert len(texts) == 49
        assert all("already approved by" in t for t in texts)

        bot.checkpoint(run_id, 2)
        assert len(decided(db, run_id)) == 1
        with db.session() as s:
            assert len(s.exec(select(Vote).where(Vote.gate_id == 1)).all()) == 1
            assert len(s.exec(select(Gate).where(Gate.run_id == run_id)).all()) == 2
        assert [e.kind for e in audit.events(db, run_id)].count("phase.started") == 2
        assert audit.verify(db) == []
        assert len(bot.standin.parents()) == 1  # concurrent updates never post a second parent
        assert bot.standin.problems == []
