"""Known secrets seeded in the target's env file never reach a chat message, a log line or
the audit trail: not as they are, not in base64.

Whole phases run against real servers and real commands that misbehave on
purpose: a command that prints every secret (plain and base64) to stdout and
stderr and fails, an action that does the same and passes, an HTTP endpoint
whose error body echoes a secret, a secrets check that finds a weak one, a
rollback whose step leaks, a chat surface that fails with a secret in its error.
Everything a surface is told is rendered as it would be shown; every log record
of every logger is captured at DEBUG, with the masking the CLI installs.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot import audit
from bot.app import command_service
from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import gate_view, open_gate_id, run_view
from bot.surface import Actor
from bot.text import checkpoint_text, status_text
from bot.views import GateView
from commands.parser import parse
from phases.runbook import load_runbook
from phases.secrets import GLOBAL_MASKER, MaskingFilter, install_log_masking
from tests.servers import NostrMaxiStandin, Request, Response

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")


def seeded_secrets() -> dict[str, str]:
    return {
        "JWT_SECRET": secrets.token_urlsafe(64),
        "WEBHOOK_SECRET": "wh-" + secrets.token_hex(8),  # too short: the secrets check fails
        "BTCPAY_API_KEY": secrets.token_hex(20),
        "DB_PASSWORD": secrets.token_urlsafe(18),
        "DATABASE_URL": f"postgresql://app:{secrets.token_urlsafe(12)}@db.internal/app",
    }


def forms(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
    ]


def fragments(value: str, size: int = 12) -> list[str]:
    """Overlapping pieces of a secret: any 2*size characters of it contain one."""
    return [value[i : i + size] for i in range(0, max(1, len(value) - size + 1), size // 2)]


class RecordingSurface:
    """A chat surface that renders everything it is told, as it would show it."""

    def __init__(self, engine_ref: list[Engine], fail_with: str) -> None:
        self.engine_ref = engine_ref
        self.shown: list[str] = []
        self.fail_with = fail_with

    @property
    def engine(self) -> Engine:
        return self.engine_ref[0]

    def run_changed(self, run_id: int) -> None:
        view = run_view(self.engine.db, self.engine.runbook, run_id)
        if view is not None:
            self.shown.append(self.engine.masker.mask(status_text(view)))

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        self.gate_changed(gate_id, opened)  # the opening transaction's own view, if given

    def gate_changed(self, gate_id: int, opened: GateView | None = None) -> None:
        view = opened or gate_view(self.engine.db, self.engine.runbook, gate_id)
        if view is not None:
            self.shown.append(self.engine.masker.mask(checkpoint_text(view)))

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        self.shown.append(self.engine.masker.mask(text))
        if "Rolling back" in text:  # the chat API fails, and its error quotes a secret
            raise RuntimeError(f"chat_postMessage failed: invalid_auth for {self.fail_with}")


LEAK = (
    'echo "jwt=$JWT_SECRET"; printf %s "$JWT_SECRET" | base64 -w0; echo; '
    'printf %s "$BTCPAY_API_KEY" | base64 -w0 | tr "+/" "-_"; echo; '
    'echo "db=$DATABASE_URL pw=$DB_PASSWORD" >&2; echo "webhook $WEBHOOK_SECRET" >&2'
)


@pytest.fixture
def leaky(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], NostrMaxiStandin]]:
    values = seeded_secrets()
    env_file = tmp_path / ".env.prod"
    env_file.write_text(
        "DOMAIN=example.test\nPAYMENTS_PROVIDER=btcpay\nBTCPAY_URL=https://pay.example.test\n"
        "BTCPAY_STORE_ID=store1\nADMIN_PUBKEYS="
        + "ab" * 32
        + "\n"
        + "".join(f"{k}={v}\n" for k, v in values.items()),
        encoding="utf-8",
    )
    jwt = values["JWT_SECRET"]
    app = NostrMaxiStandin()

    def echo_error(req: Request) -> Response:
        b64 = base64.b64encode(jwt.encode()).decode()
        return Response(500, f'{{"error":"bad token {jwt}","debug":"{b64}"}}')

    app.route("GET", "/api/v1/debug", echo_error)
    with app:
        yield env_file, values, app


def leaky_runbook(tmp_path: Path, env_file: Path, app: NostrMaxiStandin) -> Path:
    def cmd(step_id: str, kind: str, extra: str) -> dict[str, object]:
        return {
            "id": step_id,
            "name": step_id,
            "kind": kind,
            "params": {"argv": ["sh", "-c", LEAK + extra], "env_file": "{env_file}"},
        }

    data = {
        "name": "Leaky runbook",
        "phases": [
            {
                "id": "leaky",
                "name": "Leaky phase",
                "estimate_minutes": 1,
                "checkpoint": "none",
                "actions": [cmd("leak-and-pass", "run", "; exit 0")],
                "checks": [
                    cmd("leak-and-fail", "command", "; exit 3"),
                    {
                        "id": "secrets",
                        "name": "secrets",
                        "kind": "secrets",
                        "params": {"env_file": "{env_file}"},
                    },
                    {
                        "id": "echo-500",
                        "name": "error body echoes a secret",
                        "kind": "http",
                        "params": {"url": "{base_url}/api/v1/debug"},
                    },
                ],
            }
        ],
        "rollback": [cmd("rollback-leaks", "run", "; exit 1")],
        "environments": {
            "prod": {
                "domain": "example.test",
                "base_url": app.url,
                "env_file": str(env_file),
                "approvers": [ALICE.id, BOB.id],
            },
        },
    }
    path = tmp_path / "leaky.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_no_secret_form_reaches_chat_logs_or_audit(
    db: Database,
    tmp_path: Path,
    leaky: tuple[Path, dict[str, str], NostrMaxiStandin],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    env_file, values, app = leaky
    caplog.set_level(logging.DEBUG)  # every logger, every level
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    install_log_masking()  # what `cutover` does at start: a filter on every root handler
    ref: list[Engine] = []
    surface = RecordingSurface(ref, fail_with=values["DB_PASSWORD"])
    engine = Engine(
        db, load_runbook(leaky_runbook(tmp_path, env_file, app)), surface=surface, background=False
    )
    ref.append(engine)
    service = command_service(engine)

    reply = service.execute(parse("start prod"), ALICE)
    assert reply.run_id is not None, reply.text
    run_id = reply.run_id
    gate_id = open_gate_id(db, run_id)
    assert gate_id is not None
    view = gate_view(db, engine.runbook, gate_id)
    assert view is not None
    status = {s.step_id: s.status for s in view.steps}
    assert status == {
        "leak-and-pass": "pass",
        "leak-and-fail": "fail",
        "secrets": "fail",
        "echo-500": "fail",
    }, [(s.step_id, s.evidence) for s in view.steps]
    evidence = {s.step_id: s.evidence for s in view.steps}
    assert "[redacted]" in evidence["leak-and-fail"]  # the leak was there, and masked
    assert "[redacted]" in evidence["echo-500"]
    assert "WEBHOOK_SECRET" in evidence["secrets"]  # names the weak key, not its value

    assert engine.decide(gate_id, BOB, "continue").outcome == "refused"
    assert engine.decide(gate_id, BOB, "rollback", reason="leaky").outcome == "rolled_back"
    replies = [
        reply.text,
        service.execute(parse("status prod"), BOB).text,
        service.execute(parse(f"audit {run_id}"), BOB).text,
    ]
    try:  # a log line with a traceback whose exception quotes a secret
        raise RuntimeError(f"connect failed: {values['DATABASE_URL']}")
    except RuntimeError:
        logging.getLogger("bot.engine").exception("background task failed")
    logging.getLogger("somewhere.else").debug("token %s", values["JWT_SECRET"])

    shown = surface.shown + replies
    assert any("Rolling back" in text for text in shown)
    assert any("rollback-leaks" in text for text in shown)
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    out, err = capfd.readouterr()
    exported = audit.export(db, None, "jsonl") + audit.export(db, None, "csv")
    assert "surface.failed" in exported  # the failed chat call is audited, masked
    assert "connect failed" in logged and "Traceback" in logged
    places = {
        "chat": "\n".join(shown),
        "logs": logged,
        "stdout": out,
        "stderr": err,
        "audit": exported,
    }
    for key, value in values.items():
        for form in forms(value):
            for where, text in places.items():
                assert form not in text, f"{key} ({form[:6]}…) leaked into {where}"
        # nor a piece of one: a clip that cut a secret in two would leave it unrecognised
        random_part = value.rsplit(":", 1)[-1].split("@")[0] if key == "DATABASE_URL" else value
        for piece in fragments(random_part):
            for where, text in places.items():
                assert piece not in text, f"part of {key} leaked into {where}"
    assert audit.verify(db) == []


def test_masking_filter_masks_tracebacks_and_stack_info() -> None:
    secret = secrets.token_urlsafe(24)
    GLOBAL_MASKER.add(secret)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", (secret,), None)
    try:
        raise ValueError(f"boom {secret}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    record.stack_info = f"Stack (most recent call last): {secret}"
    MaskingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert secret not in text and "boom [redacted]" in text and "failed: [redacted]" in text
