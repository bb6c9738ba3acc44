"""Forged or replayed requests get 401 and change nothing; identity is team + user id."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot import audit
from bot.store.db import Database
from bot.store.models import AuditEvent, Run, Vote
from standins.slack import block_actions_body, button_action, post_signed, slash_body
from tests.slack_harness import CHANNEL, SECRET, TEAM, running_bot, wait_for
from tests.small_runbook import small_runbook


def test_forged_signature_and_stale_timestamp_get_401_and_change_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        before = len(bot.standin.api_calls())  # auth.test at start-up
        body = slash_body(
            "start staging",
            user="U1",
            team=TEAM,
            channel=CHANNEL,
            response_url=bot.standin.response_url("x"),
        )
        forged = post_signed(bot.url, body, "not-the-signing-secret")
        assert forged.status == 401
        tampered = post_signed(bot.url, body, SECRET, signature="v0=" + "0" * 64)
        assert tampered.status == 401
        old = post_signed(bot.url, body, SECRET, timestamp=int(time.time()) - 6 * 60)
        assert old.status == 401
        future = post_signed(bot.url, body, SECRET, timestamp=int(time.time()) + 6 * 60)
        assert future.status == 401
        unsigned = post_signed(bot.url, body, SECRET, signature="")
        assert unsigned.status == 401

        time.sleep(0.3)  # anything wrongly accepted would be at work by now
        with sqlite_db.session() as s:
            assert s.exec(select(Run)).all() == []
            assert s.exec(select(AuditEvent)).all() == []
        assert len(bot.standin.api_calls()) == before
        assert bot.standin.responses == []

        # The genuine request, signed now, is accepted.
        assert post_signed(bot.url, body, SECRET).status == 200
        assert bot.latest_run() == 1


def test_forged_click_on_an_open_gate_changes_nothing(sqlite_db: Database, tmp_path: Path) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        assert bot.service.surface.outbox.settle()  # the start's own redraws are all sent
        calls = len(bot.standin.api_calls())
        events = len(audit.events(sqlite_db, run_id))
        body = block_actions_body(
            one,
            button_action(one, "gate_continue"),
            user="U2",
            team=TEAM,
            response_url=bot.standin.response_url("forged"),
        )
        assert post_signed(bot.url, body, "guessed-secret").status == 401
        old = post_signed(bot.url, body, SECRET, timestamp=int(time.time()) - 301)
        assert old.status == 401
        time.sleep(0.3)
        assert bot.gates(run_id)[0].status == "open"
        assert len(audit.events(sqlite_db, run_id)) == events
        assert len(bot.standin.api_calls()) == calls
        with sqlite_db.session() as s:
            assert s.exec(select(Vote)).all() == []


def test_an_approver_s_name_from_another_user_or_team_is_not_an_approval(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        # U9 calls itself "u2" (an approver's name); T2:U2 is U2's id in another team.
        for user, team in (("U9", TEAM), ("U2", "T2")):
            body = block_actions_body(
                one,
                button_action(one, "gate_continue"),
                user=user,
                team=team,
                user_name="u2",
                response_url=bot.standin.response_url(f"{team}{user}"),
            )
            assert post_signed(bot.url, body, SECRET).status == 200
            assert "not an approver" in bot.reply(f"{team}{user}")
        assert bot.gates(run_id)[0].status == "open"
        refused = [e for e in audit.events(sqlite_db, run_id) if e.kind == "action.refused"]
        assert [e.actor for e in refused] == ["T1:U9", "T2:U2"]


def test_a_post_without_a_timestamp_header_gets_401_and_no_traceback(
    sqlite_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        body = slash_body(
            "status",
            user="U1",
            team=TEAM,
            channel=CHANNEL,
            response_url=bot.standin.response_url("x"),
        )
        for timestamp in (None, "", "not-a-number", "1e309"):
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Signature": "v0=" + "0" * 64,
            }
            if timestamp is not None:
                headers["X-Slack-Request-Timestamp"] = timestamp
            assert httpx.post(bot.url, content=body, headers=headers).status_code == 401
        assert not [r for r in caplog.records if r.exc_info], "a handler died with a traceback"
        assert post_signed(bot.url, body, SECRET).status == 200  # still serving


def test_text_slack_escaped_is_decoded_once_before_the_audit_trail(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Slack sends `db < 5% & rising` as `db &lt; 5% &amp; rising`; the trail keeps what was
    typed, and a typed `&lt;@U2&gt;` becomes no mention."""
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        bot.command("abort staging --reason db &lt; 5% &amp; rising &lt;@U2&gt;", user="U2")
        wait_for(lambda: bot.run(run_id).status in ("rolled_back", "cancelled"), "the abort")
        reasons = [
            json.loads(e.data).get("reason", "")
            for e in audit.events(sqlite_db, run_id)
            if e.kind in ("run.aborted", "gate.decided", "run.cancelled")
        ]
        assert any(r.startswith("db < 5% & rising") for r in reasons), reasons
        assert not any("&amp;" in r or "&lt;" in r or "<@U2>" in r for r in reasons)
