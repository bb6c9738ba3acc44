"""Hostile and broken input at /slack/events, a flaky Web API, and secrets over a whole run.

What tests/test_slack_security.py and test_slack_errors.py already prove (forged and
stale signatures → 401, one 429 retried, persistent 500s audited) is not repeated here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlmodel import func, select

from bot import audit
from bot.slack import server as slack_server
from bot.slack.dispatch import AcksFirst
from bot.slack.middleware import ALREADY_RECEIVED as ALREADY
from bot.store.db import Database
from bot.store.models import AuditEvent, Gate, Run, StepOutput, Vote
from bot.store.reads import open_gate_id
from phases.secrets import install_log_masking
from standins.slack import (
    Message,
    block_actions_body,
    button_action,
    slash_body,
)
from tests.slack_harness import CHANNEL, SECRET, TEAM, TOKEN, Bot, running_bot, wait_for
from tests.small_runbook import small_runbook

FORM = "application/x-www-form-urlencoded"


# ---------------------------------------------------------------------- helpers


def signed_headers(raw: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature over the raw bytes (also bytes that are not UTF-8)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256)
    return {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


def post(bot: Bot, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(bot.url, content=raw, headers=headers, timeout=10)


def healthy(bot: Bot) -> bool:
    return httpx.get(bot.url.replace("/slack/events", "/healthz"), timeout=5).text == "ok\n"


def counts(db: Database) -> dict[str, int]:
    """How many runs, gates, votes and audit rows there are (to prove nothing changed)."""
    with db.session() as s:
        return {
            m.__name__: int(s.exec(select(func.count()).select_from(m)).one())
            for m in (Run, Gate, Vote, AuditEvent)
        }


def all_events(db: Database) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.exec(select(AuditEvent).order_by(AuditEvent.seq)))  # type: ignore[arg-type]


def payload(body: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(body)}).encode()


def click_payload(message: Message, action: dict[str, Any], key_url: str) -> dict[str, Any]:
    body = block_actions_body(message, action, user="U2", team=TEAM, response_url=key_url)
    return dict(json.loads(dict(parse_qsl(body))["payload"]))


@pytest.fixture
def no_tracebacks(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The HTTP server never dies in a request (socketserver prints those to stderr)."""
    yield
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception occurred during processing" not in err, err


# ---------------------------------------------------------------------- replay


def test_a_replayed_start_never_starts_a_second_run_even_after_an_abort(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path, act=True)) as bot:
        body = slash_body(
            "start staging",
            user="U1",
            team=TEAM,
            channel=CHANNEL,
            response_url=bot.standin.response_url("first"),
        ).encode()
        captured = signed_headers(body)  # what an eavesdropper would keep and send again
        assert post(bot, body, captured).status_code == 200
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)

        again = post(bot, body, captured)  # the same bytes, seconds later: within the window
        assert again.status_code == 200  # acknowledged at once; refused where the work starts
        wait_for(lambda: len(bot.standin.replies("first")) == 2, "the replay's answer")
        assert bot.standin.replies("first")[1]["text"] == ALREADY
        # The same command typed again (signed anew) meets the engine's one-active-run rule.
        _, key = bot.command("start staging", user="U1")
        assert "run #1 is already active for staging" in bot.reply(key)

        _, key = bot.command("abort staging --reason 'replay drill'", user="U2")
        assert "rolled back by" in bot.reply(key)
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback")
        # No run is active now: without the replay guard this would start run #2.
        assert post(bot, body, captured).status_code == 200
        wait_for(lambda: len(bot.standin.replies("first")) == 3, "the second replay's answer")
        assert bot.standin.replies("first")[2]["text"] == ALREADY
        time.sleep(0.3)
        with sqlite_db.session() as s:
            assert [r.id for r in s.exec(select(Run))] == [run_id]
        assert [e.kind for e in audit.events(sqlite_db, run_id)].count("run.started") == 1
        # the first delivery was answered once, each replay with "already received"
        assert [r["text"] == ALREADY for r in bot.standin.replies("first")] == [False, True, True]


def test_a_replayed_click_decides_once_and_is_not_worked_on_again(
    db: Database, tmp_path: Path
) -> None:
    with running_bot(db, small_runbook(tmp_path, quorum=2)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        body = block_actions_body(
            one,
            button_action(one, "gate_continue"),
            user="U2",
            team=TEAM,
            response_url=bot.standin.response_url("vote"),
        ).encode()
        captured = signed_headers(body)
        assert post(bot, body, captured).status_code == 200
        assert "Your approval is recorded: 1/2" in bot.reply("vote")
        before = counts(db)
        for _ in range(3):  # the same signed click again: answered, never worked on
            again = post(bot, body, captured)
            assert again.status_code == 200 and again.text == ""
        wait_for(lambda: len(bot.standin.replies("vote")) == 4, "an answer to each replay")
        time.sleep(0.3)
        assert counts(db) == before
        texts = [r["text"] for r in bot.standin.replies("vote")]
        assert texts[1:] == [ALREADY] * 3
        # U2 clicking again (a new delivery) is told so; U3's approval decides the gate.
        _, key = bot.click(one, "gate_continue", user="U2")
        assert "you already approved this gate" in bot.reply(key)
        bot.click(one, "gate_continue", user="U3")
        bot.checkpoint(run_id, 2)
        assert [e.kind for e in audit.events(db, run_id)].count("gate.decided") == 1
        with db.session() as s:
            assert sorted(v.actor for v in s.exec(select(Vote))) == ["T1:U2", "T1:U3"]


# ---------------------------------------------------------------------- oversized and malformed


def test_oversized_chunked_and_stalled_bodies_are_refused_and_the_server_keeps_serving(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_tracebacks: None
) -> None:
    monkeypatch.setattr(slack_server._Handler, "timeout", 1)  # a stalled client is dropped fast
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        big = b"command=%2Fcutover&text=status&pad=" + b"A" * (2 * 1024 * 1024)
        start = time.monotonic()
        resp = post(bot, big, signed_headers(big))
        assert resp.status_code == 413 and time.monotonic() - start < 2.0  # refused unread

        def chunks() -> Iterator[bytes]:
            yield b"command=%2Fcutover&text=status"
            yield b"&pad=" + b"B" * 65536

        resp = httpx.post(bot.url, content=chunks(), headers={"Content-Type": FORM}, timeout=10)
        assert resp.status_code == 411

        host, port = bot.url.split("//")[1].split("/")[0].split(":")
        for length in (b"-5", b"12abc"):
            with socket.create_connection((host, int(port)), timeout=10) as raw:
                raw.sendall(
                    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n" % length
                )
                assert raw.recv(100).startswith(b"HTTP/1.1 400 ")

        # Promises 100 bytes, sends 3, then stalls: the connection is dropped, not the server.
        with socket.create_connection((host, int(port)), timeout=10) as stalled:
            stalled.sendall(
                b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
            )
            assert healthy(bot)  # served meanwhile, on another thread
            start = time.monotonic()
            assert stalled.recv(100) == b""  # closed by the server after its timeout
            assert time.monotonic() - start < 5.0

        assert healthy(bot)
        assert counts(sqlite_db) == {"Run": 0, "Gate": 0, "Vote": 0, "AuditEvent": 0}
        _, key = bot.command("status")
        assert bot.reply(key) == "No active cutover run."


def test_malformed_bodies_get_4xx_or_an_ephemeral_error_and_change_nothing(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture, no_tracebacks: None
) -> None:
    caplog.set_level(logging.WARNING)
    with running_bot(db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        gate_id = bot.gates(run_id)[0].id
        keys = (f"bad{i}" for i in itertools.count())
        before = counts(db)

        def good(key: str) -> dict[str, Any]:
            return click_payload(
                one, button_action(one, "gate_continue"), bot.standin.response_url(key)
            )

        def with_action(key: str, **change: Any) -> bytes:
            body = good(key)
            body["actions"] = [{**body["actions"][0], **change}]
            return payload(body)

        refused: dict[str, bytes] = {
            "payload is not JSON": urlencode({"payload": '{"type": "block_actions",'}).encode(),
            "payload is a JSON list": payload([1, 2]),  # type: ignore[arg-type]
            "payload is JSON null": urlencode({"payload": "null"}).encode(),
            "JSON body that is not JSON": b"{oops",
            "actions missing": payload({k: v for k, v in good("x").items() if k != "actions"}),
            "actions is a string": payload({**good("x"), "actions": "gate_continue"}),
            "actions is empty": payload({**good("x"), "actions": []}),
            "an action is a string": payload({**good("x"), "actions": ["gate_continue"]}),
            "action_id is a number": with_action("x", action_id=7),
            "unknown action_id": with_action("x", action_id="gate_approve_everything"),
            "slash text is not a string": json.dumps(
                {"command": "/cutover", "text": ["start", "staging"], "team_id": TEAM}
            ).encode(),
            "not UTF-8": b"command=%2Fcutover&text=start+staging&user_id=U1\xff\xfe",
            "empty body": b"",
        }
        for what, raw in refused.items():
            headers = signed_headers(raw)
            if raw.startswith((b"{", b"[")):
                headers["Content-Type"] = "application/json"
            resp = post(bot, raw, headers)
            assert 400 <= resp.status_code < 500, (what, resp.status_code, resp.text)
            assert "Traceback" not in resp.text

        # Signed and well-formed enough to be acknowledged; each gets a private answer.
        answered = {
            "gate id is not a number": with_action(k1 := next(keys), value="one:1"),
            "gate that does not exist": with_action(k2 := next(keys), value="999999999999:1"),
            "value is a number": with_action(k3 := next(keys), value=12),
            "stale attempt": with_action(k4 := next(keys), value=f"{gate_id}:7"),
            "tick with a bad block_id": with_action(
                k5 := next(keys), action_id="gate_tick", block_id=["tick"], selected_options="x"
            ),
        }
        for what, raw in answered.items():
            resp = post(bot, raw, signed_headers(raw))
            assert resp.status_code == 200, (what, resp.status_code, resp.text)
        for key in (k1, k2, k3, k4, k5):
            assert "out of date; nothing was changed" in bot.reply(key), key

        time.sleep(0.3)
        assert counts(db) == before
        assert bot.gates(run_id)[0].status == "open"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert healthy(bot)
        # The genuine click still decides the gate.
        bot.click(one, "gate_continue", user="U2")
        bot.wait_text(one, "*Approved* by <@U2>")
        bot.checkpoint(run_id, 2)  # quiet again: audit.verify reads rows and head apart
        assert audit.verify(db) == []


# ---------------------------------------------------------------------- shell metacharacters


def test_shell_metacharacters_and_leading_dashes_are_refused_or_kept_as_data(
    sqlite_db: Database, tmp_path: Path
) -> None:
    markers = [tmp_path / f"pwned{i}" for i in range(6)]
    with running_bot(sqlite_db, small_runbook(tmp_path, act=True)) as bot:
        for text in (
            "start 'staging; rm -rf /'",
            f"start $(touch {markers[0]})",
            f"start staging`touch {markers[1]}`",
            "start --dry-run --help",
            "start -- staging",
            "start --dry-run=$(id) staging",
            f'abort staging --reason "$(id)"; touch {markers[2]}"',  # unbalanced quote
            f"status staging|touch {markers[3]}",
            f"audit 1;touch {markers[4]}",
        ):
            sent, _ = bot.command(text, user="U1")
            answer = sent.json()
            assert answer["response_type"] == "ephemeral", text
            assert "Usage:" in answer["text"], (text, answer["text"])
        with sqlite_db.session() as s:
            assert s.exec(select(Run)).all() == []

        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.checkpoint(run_id, 1)
        reason = f"$(id); touch {markers[5]} `whoami` <!channel> && rm -rf / --no-preserve-root"
        _, key = bot.command(f"abort staging --reason {json.dumps(reason)}", user="U2")
        assert "rolled back by" in bot.reply(key)
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback")
        # stored as data, its mention markup neutralised (a person's text never pings)
        kept = reason.replace("<!channel>", "‹!channel>")
        assert bot.run(run_id).rollback_reason == f"aborted: {kept}"
        aborted = [e for e in audit.events(sqlite_db, run_id) if e.kind == "gate.decided"]
        assert json.loads(aborted[0].data)["reason"] == f"aborted: {kept}"
        parent = bot.wait_text(bot.parent(run_id), "Rollback:")
        assert "‹!channel&gt;" in parent.all_text()  # shown as text, never a mention
        assert "<!channel>" not in bot.standin.everything_sent()
        assert (tmp_path / "rolled-back").exists()  # the runbook's own rollback step ran
    assert not [m for m in markers if m.exists()]


# ---------------------------------------------------------------------- a flaky Web API


def flaky(bot: Bot, every: int) -> None:
    """Every `every`-th Web API call (after auth.test) answers 500, the next such one 429."""
    original = bot.standin.api
    n = itertools.count()
    kinds = itertools.cycle([(500, None), (429, 0)])

    def api(method: str, args: dict[str, Any], auth: str | None) -> tuple[int, dict, dict]:
        if next(n) % every == 0:
            status, retry_after = next(kinds)
            bot.standin.fail_next(1, status=status, retry_after=retry_after)
        return original(method, args, auth)

    bot.standin.api = api  # type: ignore[method-assign]


def test_500s_and_429s_throughout_a_whole_run_are_retried_and_nothing_is_lost(
    sqlite_db: Database, tmp_path: Path
) -> None:
    with running_bot(sqlite_db, small_runbook(tmp_path)) as bot:
        flaky(bot, every=3)
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        bot.click(bot.checkpoint(run_id, 1), "gate_continue", user="U2")
        two = bot.checkpoint(run_id, 2)
        bot.tick(two, ["browser"], user="U3")
        bot.wait_text(two, "ticked by <@U3>")
        bot.click(two, "gate_continue", user="U2")
        bot.click(bot.checkpoint(run_id, 3), "gate_continue", user="U3")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")
        # The last redraws ran (they retry 429s and 500s, each on its own back-off).
        assert bot.service.surface.outbox.settle(30)
        parent = bot.wait_text(bot.parent(run_id), "completed")

        # Each failure was followed by a successful call of the same method on the same
        # message (an edit is redrawn from the latest state when it is retried, and a post
        # with a new checkbox block_id, so their arguments may differ; the place may not).
        def same_place(c: Any, d: Any) -> bool:
            keys = ("channel", "ts", "thread_ts", "user", "usergroup")
            return all(c.args.get(k) == d.args.get(k) for k in keys)

        def not_yet_retried() -> list[Any]:
            calls = bot.standin.api_calls()
            return [
                c
                for c in calls
                if c.status != 200
                and not any(
                    d.method == c.method and d.status == 200 and d.at >= c.at and same_place(c, d)
                    for d in calls
                )
            ]

        # A retry still on its back-off when the edits settled (a post's own retries) lands
        # within the wait; one never retried fails it.
        wait_for(lambda: not not_yet_retried(), "every failed call retried with success", 30)
        failed = [c for c in bot.standin.api_calls() if c.status != 200]
        assert {c.status for c in failed} == {500, 429} and len(failed) >= 6
        kinds = [e.kind for e in audit.events(sqlite_db, run_id)]
        assert "surface.failed" not in kinds
        assert len(bot.standin.parents()) == 1

        def checkpoints() -> list[Any]:
            thread = bot.standin.thread(f"{parent.channel}:{parent.ts}")
            return [m for m in thread if m.blocks]

        assert len(checkpoints()) == 3  # each checkpoint posted once
        wait_for(  # and each shows the final state
            lambda: all("*Approved* by" in m.all_text() for m in checkpoints()),
            "every checkpoint drawn as approved",
            30,
        )
        assert len(checkpoints()) == 3
        assert bot.standin.problems == []


def test_a_persistently_rate_limited_failing_gate_fails_closed_and_is_reposted(
    sqlite_db: Database, tmp_path: Path
) -> None:
    failing = [
        {
            "id": "bad",
            "name": "Failing phase",
            "estimate_minutes": 1,
            "checkpoint": "never ok",
            "checks": [
                {"id": "no", "name": "false", "kind": "command", "params": {"argv": ["false"]}}
            ],
        }
    ]
    with running_bot(sqlite_db, small_runbook(tmp_path, phases=failing)) as bot:
        original = bot.standin.api
        down = True

        def api(method: str, args: dict[str, Any], auth: str | None) -> tuple[int, dict, dict]:
            if down:
                bot.standin.fail_next(1, status=429, retry_after=0)
            return original(method, args, auth)

        bot.standin.api = api  # type: ignore[method-assign]
        _, key = bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        assert "did not take the run's message yet" in bot.reply(key, timeout=20)
        gate_id = wait_for(lambda: open_gate_id(sqlite_db, run_id), "the gate to open")
        wait_for(  # the engine audits a failed checkpoint post without a run id
            lambda: [
                e
                for e in all_events(sqlite_db)
                if e.kind == "surface.failed" and '"checkpoint"' in e.data
            ],
            "the failed checkpoint post in the audit trail",
            timeout=20,
        )
        posts = bot.standin.api_calls("chat.postMessage")
        assert {c.status for c in posts} == {429} and len(posts) >= 4  # each: 1 try + 3 retries

        # Someone clicks Continue on a copy of the gate's buttons: still refused (fail closed).
        copy = Message(
            CHANNEL,
            "1.000001",
            "",
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "gate_continue",
                            "text": {"type": "plain_text", "text": "Continue"},
                            "value": f"{gate_id}:1",
                        }
                    ],
                }
            ],
            None,
        )
        _, key = bot.click(copy, "gate_continue", user="U2")
        assert "Continue is refused" in bot.reply(key)
        assert bot.gates(run_id)[0].status == "open" and bot.run(run_id).status == "waiting"

        down = False  # Slack is back: /cutover status posts what is missing
        _, key = bot.command("status staging", user="U3")
        assert "waiting for a decision" in bot.reply(key)
        gate = bot.checkpoint(run_id, 1)
        assert gate.action_ids() == ["gate_retry", "gate_rollback"]  # no Continue
        assert "FAIL" in gate.all_text()
        assert len(bot.standin.parents()) == 1
        kinds = [e.kind for e in audit.events(sqlite_db, run_id)]
        assert kinds.count("action.refused") == 1 and "surface.failed" in kinds
        assert audit.verify(sqlite_db) == []


# ---------------------------------------------------------------------- secrets


def test_seeded_secrets_never_reach_a_slack_call_or_a_log_line(
    sqlite_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    values = {
        "JWT_SECRET": secrets.token_urlsafe(64),
        "WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "BTCPAY_API_KEY": secrets.token_hex(20),
        "DB_PASSWORD": "Tr0ub4dor-" + secrets.token_hex(8),
    }
    env_file = tmp_path / ".env.staging"
    env_file.write_text(
        "PAYMENTS_PROVIDER=btcpay\nBTCPAY_URL=https://btcpay.example\n"
        f"BTCPAY_STORE_ID={secrets.token_urlsafe(32)}\n"
        "ADMIN_PUBKEYS=3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d\n"
        + "".join(f"{k}={v}\n" for k, v in values.items()),
        encoding="utf-8",
    )
    forms = set()
    for v in [*values.values(), TOKEN, SECRET]:
        raw = v.encode()
        forms |= {
            v,
            base64.b64encode(raw).decode(),
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode(),
        }
    leak = (
        'echo "jwt=$JWT_SECRET hook=$WEBHOOK_SECRET"; '
        'printf %s "$JWT_SECRET" | base64 -w0; echo; '
        'printf %s "$WEBHOOK_SECRET" | base64 -w0 >&2; echo >&2; '
        'printf %s "$DB_PASSWORD" | base64 -w0 | tr -d =; echo; env; exit 3'
    )
    phases = [
        {
            "id": "secrets",
            "name": "Secrets provisioned",
            "estimate_minutes": 1,
            "checkpoint": "secrets ok",
            "actions": [
                {
                    "id": "show",
                    "name": "prints the key",
                    "kind": "run",
                    "params": {
                        "argv": ["sh", "-c", 'echo "key=$BTCPAY_API_KEY"; env >&2'],
                        "env_file": str(env_file),
                    },
                }
            ],
            "checks": [
                {
                    "id": "provisioned",
                    "name": "secrets",
                    "kind": "secrets",
                    "params": {"env_file": str(env_file)},
                },
                {
                    "id": "leaky",
                    "name": "a command that prints secrets",
                    "kind": "command",
                    "params": {"argv": ["sh", "-c", leak], "env_file": str(env_file)},
                },
            ],
        }
    ]
    runbook = small_runbook(tmp_path, phases=phases, env={"env_file": str(env_file)})
    caplog.set_level(logging.DEBUG)  # every logger, slack_sdk's request bodies included
    install_log_masking()
    with running_bot(sqlite_db, runbook) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        gate = bot.checkpoint(run_id, 1)
        text = gate.all_text()
        assert "exit 3: [redacted]" in text and "FAIL → ROLLBACK" in text  # output, masked
        # Both commands printed: each keeps its output, shown by a Show output button.
        assert gate.action_ids() == [
            "step_output:0",
            "step_output:1",
            "gate_retry",
            "gate_rollback",
        ]
        for n, shown in enumerate(("step_output:0", "step_output:1")):
            bot.click(gate, shown, user="U9")
            assert "Step output" in json.dumps(bot.modal("U9", after=n).view)
        _, key = bot.command(f"logs {run_id} secrets/leaky", user="U9")
        assert "jwt=[redacted] hook=[redacted]" in bot.reply(key)
        _, key = bot.click(gate, "gate_retry", user="U2")
        again = bot.checkpoint(run_id, 2)
        _, key = bot.command("status staging", user="U2")
        bot.reply(key)
        _, key = bot.command(f"audit {run_id}", user="U2")
        assert "Audit trail of run" in bot.reply(key)
        _, key = bot.command(
            f"abort staging --reason 'rotated {values['JWT_SECRET']} after the drill'", user="U3"
        )
        assert "rolled back by" in bot.reply(key)
        bot.wait_text(again, "*Rolled back* by <@U3>")
        wait_for(lambda: bot.run(run_id).status == "rolled_back", "the rollback")
        bot.wait_text(bot.parent(run_id), "Rollback:")
        sent = bot.standin.everything_sent()
        assert len(bot.standin.api_calls()) > 8 and len(bot.standin.responses) >= 4
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "chat.postMessage" in logged  # slack_sdk's DEBUG lines (request bodies) were captured
    # Not one whole form, nor any 20-character piece of one (a clipped secret leaks too).
    pieces = {f[i : i + 20] for f in forms for i in range(len(f) - 19)}
    leak_re = re.compile("|".join(re.escape(p) for p in sorted(pieces)))
    assert leak_re.search(sent) is None, "a secret reached Slack"
    # What the checks recorded, too (the abort reason a person typed is kept verbatim there).
    trail = "\n".join(e.data for e in all_events(sqlite_db) if e.kind == "step.result")
    assert leak_re.search(trail) is None, "a check's evidence in the audit trail has a secret"
    with sqlite_db.session() as s:
        kept = "\n".join(o.text for o in s.exec(select(StepOutput)))
    assert "key=[redacted]" in kept  # the output is kept, masked
    assert leak_re.search(kept) is None, "a step's kept output has a secret"
    found = leak_re.search(logged)
    assert found is None, (
        f"a secret reached a log line: …{logged[found.start() - 80 : found.end()]}"
    )


# ---------------------------------------------------------------------- acks first


def test_work_after_an_ack_waits_while_answers_are_in_flight_but_not_forever() -> None:
    gate = AcksFirst(quiet=0.05, max_wait=0.6)
    started: list[float] = []

    def work() -> None:
        gate.wait()
        started.append(time.monotonic())

    with gate:  # a request is being answered
        t = threading.Thread(target=work)
        t.start()
        time.sleep(0.2)
        assert started == []  # the work has not taken the CPU from the answer
        answered = time.monotonic()
    t.join(2)
    assert started and started[0] - answered < 0.04  # it came alone: nothing to make way for

    started.clear()
    with gate:  # a burst: a second request begins right after the first
        t = threading.Thread(target=work)
        t.start()
        with gate:
            time.sleep(0.1)
            assert started == []
        answered = time.monotonic()
    t.join(2)
    assert started and started[0] - answered >= 0.04  # it waited the quiet period after it

    with gate:  # under steady load the work still runs, after max_wait
        begin = time.monotonic()
        gate.wait()
        assert 0.55 <= time.monotonic() - begin < 1.5
