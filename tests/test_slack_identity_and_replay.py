"""Who a Slack request is from, and a signed request worked on once: across restarts,
across replicas, and for Enterprise Grid's org-wide users."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlmodel import select

from bot.slack.middleware import ALREADY_RECEIVED
from bot.slack.payloads import actor_from_body
from bot.store.db import Database
from bot.store.models import AuditEvent, Run
from standins.slack import SlackStandIn, input_values, slash_body, view_submission_payload
from tests.slack_harness import CHANNEL, TEAM, running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.test_slack_hardening import signed_headers

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "slack"  # from shared/reference
ALREADY = ALREADY_RECEIVED


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def runs(db: Database) -> list[int | None]:
    with db.session() as s:
        return [r.id for r in s.exec(select(Run))]


# ------------------------------------------------------------------ identity


def test_a_grid_slash_command_is_the_users_enterprise_identity() -> None:
    form = dict(parse_qsl(fixture_text("slash_command.enterprise.form")))
    actor = actor_from_body(form)
    assert actor is not None and actor.id == "E111:W111" and actor.team == "T111"


def test_a_grid_click_is_the_same_person_as_their_command() -> None:
    click = json.loads(fixture_text("block_actions.button.enterprise.json"))
    form = dict(parse_qsl(fixture_text("slash_command.enterprise.form")))
    by_click, by_command = actor_from_body(click), actor_from_body(form)
    assert by_click is not None and by_command is not None
    assert by_click.id == by_command.id == "E111:W111"


def test_a_plain_workspace_user_stays_team_plus_user() -> None:
    form = {"team_id": "T1", "user_id": "U1", "user_name": "alice"}
    actor = actor_from_body(form)
    assert actor is not None and actor.id == "T1:U1"


def test_a_grid_user_typing_in_another_workspace_cannot_approve_their_own_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(
        tmp_path,
        approvers=[],
        quorum=1,
        allow_self_approval=False,
        env={"approver_groups": ["S0OPS"]},
    )
    standin = SlackStandIn("xoxb-standin-0123456789-secret-bot-token").start()
    standin.usergroups["S0OPS"] = ["W0ALICE", "W0BOB"]
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            body = (
                slash_body(
                    "start staging",
                    user="W0ALICE",
                    team="T0SECOND",
                    channel=CHANNEL,
                    response_url=standin.response_url("start"),
                )
                + "&enterprise_id=E0ORG"
            )
            raw = body.encode()
            assert httpx.post(bot.url, content=raw, headers=signed_headers(raw)).status_code == 200
            run_id = bot.latest_run()
            assert bot.run(run_id).requested_by == "E0ORG:W0ALICE"
            checkpoint = bot.checkpoint(run_id, 1)
            _, key = bot.click(
                checkpoint, "gate_continue", user="W0ALICE", team="T0HOME", enterprise="E0ORG"
            )
            assert "you started this run" in bot.reply(key)
            assert bot.gates(run_id)[0].status == "open"
    finally:
        standin.stop()


def test_start_is_refused_in_slack_when_the_groups_cannot_reach_quorum(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(
        tmp_path,
        approvers=[],
        quorum=2,
        allow_self_approval=False,
        env={"approver_groups": ["S0OPS"], "slack_team": TEAM},
    )
    standin = SlackStandIn("xoxb-standin-0123456789-secret-bot-token").start()
    standin.usergroups["S0OPS"] = ["U1", "U2"]
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            _, key = bot.command("start staging", user="U1")
            assert "needs 2 approvals but only 1 other approvers" in bot.reply(key)
            assert runs(sqlite_db) == []
    finally:
        standin.stop()


# ------------------------------------------------------------------ replays


def replayed_start(url: str, raw: bytes, headers: dict[str, str]) -> None:
    resp = httpx.post(url, content=raw, headers=headers, timeout=10)
    assert resp.status_code == 200  # acknowledged at once; a replay is refused after the ack


def answers(standin: SlackStandIn, key: str, n: int) -> list[str]:
    got = wait_for(lambda: len(standin.replies(key)) >= n and standin.replies(key), f"{n} answers")
    return [str(r["text"]) for r in got]


def test_a_replayed_start_after_a_restart_starts_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path)
    standin = SlackStandIn("xoxb-standin-0123456789-secret-bot-token").start()
    try:
        with running_bot(sqlite_db, runbook, standin) as bot:
            raw = slash_body(
                "start staging",
                user="U1",
                team=TEAM,
                channel=CHANNEL,
                response_url=standin.response_url("first"),
            ).encode()
            captured = signed_headers(raw)
            replayed_start(bot.url, raw, captured)
            run_id = bot.latest_run()
            bot.checkpoint(run_id, 1)
            _, key = bot.command("abort staging --reason 'drill'", user="U2")
            assert "cancelled" in bot.reply(key)
        with running_bot(sqlite_db, runbook, standin) as restarted:  # a new process
            replayed_start(restarted.url, raw, captured)
            assert answers(standin, "first", 2)[1] == ALREADY
            time.sleep(0.3)
            assert runs(sqlite_db) == [run_id]
    finally:
        standin.stop()


@pytest.mark.postgres
def test_a_replay_sent_to_a_second_replica_is_refused_there(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path)
    with running_bot(pg_db, runbook) as a, running_bot(pg_db, runbook, a.standin) as b:
        raw = slash_body(
            "start staging",
            user="U1",
            team=TEAM,
            channel=CHANNEL,
            response_url=a.standin.response_url("first"),
        ).encode()
        captured = signed_headers(raw)
        replayed_start(a.url, raw, captured)
        run_id = a.latest_run()
        a.checkpoint(run_id, 1)
        _, key = a.command("abort staging --reason 'drill'", user="U2")
        wait_for(lambda: a.run(run_id).active_env is None, "the run to end")
        replayed_start(b.url, raw, captured)
        assert answers(a.standin, "first", 2)[1] == ALREADY
        time.sleep(0.3)
        assert runs(pg_db) == [run_id]


def test_a_replayed_form_submission_writes_one_audit_row_in_the_senders_name(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A captured view_submission sent again five times: the rollback is decided once, and
    no replay writes a row (a refusal "the gate was decided before…") in the victim's name."""
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        bot.click(one, "gate_rollback", user="U2")
        form = bot.modal("U2")
        payload = view_submission_payload(
            form, input_values(form, {"reason": "relay answers 502"}), user="U2", team=TEAM
        )
        raw = urlencode({"payload": json.dumps(payload)}).encode()
        captured = signed_headers(raw)
        first = httpx.post(bot.url, content=raw, headers=captured, timeout=10)
        assert first.status_code == 200 and first.text == ""  # the form closes
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback")
        for _ in range(5):
            again = httpx.post(bot.url, content=raw, headers=captured, timeout=10)
            assert again.status_code == 200
            assert ALREADY in again.json()["errors"]["reason"]
        time.sleep(0.3)
        with sqlite_db.session() as s:
            by_victim = list(s.exec(select(AuditEvent.kind).where(AuditEvent.actor == "T1:U2")))
        assert by_victim == ["gate.decided"]
