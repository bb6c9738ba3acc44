"""Every exit masks every secret a real deployment has, before and after a restart.

Planted: env-file values outside any name pattern (SMTP_PASS, REDIS_URL with a password in
its userinfo, NOSTR_NSEC), a 5-character value, a value followed by `# comment`, a ${VAR}
password inside base_url, a ${VAR} database_url shown by a dry run, a double-quoted value with
an escaped quote (read as Compose reads it); echoed back by a command
raw, base64, URL-encoded and JSON-escaped, and by an HTTP target's error body. Scanned: what
the surface is told, every log record at DEBUG (tracebacks too), the audit export, status and
audit replies. A restart (a new engine on the same database) then an abort whose reason
quotes a secret and pings people: still masked, and no ping survives.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from bot import audit
from bot.app import command_service
from bot.engine import Engine
from bot.slack.blocks import slackify
from bot.store.db import Database
from bot.store.reads import gate_view, open_gate_id, run_view
from bot.surface import Actor
from bot.text import checkpoint_text, status_text
from bot.views import GateView
from commands.parser import parse
from phases.runbook import load_runbook
from phases.secrets import Masker, forms
from tests.servers import NostrMaxiStandin, Response

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")


class Shown:
    def __init__(self, ref: list[Engine]) -> None:
        self.ref, self.texts = ref, []  # type: ignore[var-annotated]

    def run_changed(self, run_id: int) -> None:
        e = self.ref[0]
        view = run_view(e.db, e.runbook, run_id)
        if view is not None:
            self.texts.append(slackify(e.masker.mask(status_text(view))))

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        self.gate_changed(gate_id, opened)  # the opening transaction's own view, if given

    def gate_changed(self, gate_id: int, opened: GateView | None = None) -> None:
        e = self.ref[0]
        view = opened or gate_view(e.db, e.runbook, gate_id)
        if view is not None:
            self.texts.append(slackify(e.masker.mask(checkpoint_text(view))))

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        self.texts.append(slackify(self.ref[0].masker.mask(text)))


def planted() -> dict[str, str]:
    return {
        "SMTP_PASS": "smtp-" + secrets.token_hex(8),
        "REDIS_PW": "r3d" + secrets.token_hex(3),
        "NOSTR_NSEC": "nsec1" + secrets.token_hex(24),
        "SHORT": "k" + secrets.token_hex(2),  # 5 characters
        "COMMENTED": "c" + secrets.token_hex(6),
        "BASE_PW": "bp" + secrets.token_hex(5) + "/&=",
        "DB_PW": "db" + secrets.token_hex(6),
        # written `QUOTED="…\"…"`: Compose gives the service the quote, not a backslash
        "QUOTED": "q" + secrets.token_hex(6) + '"x' + secrets.token_hex(3),
    }


def echo_forms(value: str) -> str:
    """A shell line printing `value` raw, base64, URL-encoded and JSON-escaped."""
    return "; ".join(f"echo '{f}'" for f in forms(value))


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    v = planted()
    monkeypatch.setenv("T9_BASE_PW", v["BASE_PW"])
    monkeypatch.setenv("T9_DATABASE_URL", f"postgresql://app:{v['DB_PW']}@db.internal/app")
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DOMAIN=example.test\n"
        f"SMTP_PASS={v['SMTP_PASS']}\n"
        f"REDIS_URL=redis://:{v['REDIS_PW']}@cache.internal:6379/0\n"
        f"NOSTR_NSEC={v['NOSTR_NSEC']}\n"
        f"PIN={v['SHORT']}\n"
        f"MAIL_KEY={v['COMMENTED']} # rotated in March\n"
        + 'QUOTED_PASS="'
        + v["QUOTED"].replace('"', '\\"')
        + '"\n',
        encoding="utf-8",
    )
    return env_file, v


def runbook(tmp_path: Path, env_file: Path, app_url: str, v: dict[str, str]) -> Path:
    leak = "; ".join(echo_forms(x) for x in v.values()) + "; exit 3"
    host = app_url.split("://", 1)[1]
    data = {
        "name": "Deployment secrets",
        "variables": ["T9_BASE_PW", "T9_DATABASE_URL"],  # the ${VAR}s it may read
        "phases": [
            {
                "id": "p1",
                "name": "Leaks",
                "estimate_minutes": 1,
                "checkpoint": "none",
                "actions": [
                    {
                        "id": "migrate",
                        "name": "migrate",
                        "kind": "run",
                        "params": {"argv": ["psql", "{database_url}", "-c", "select 1"]},
                    }
                ],
                "checks": [
                    {
                        "id": "echo",
                        "name": "echo",
                        "kind": "command",
                        "params": {"argv": ["sh", "-c", leak], "env_file": "{env_file}"},
                    },
                    {
                        "id": "body",
                        "name": "body",
                        "kind": "http",
                        "params": {"url": "{base_url}/api/v1/debug"},
                    },
                ],
            }
        ],
        "environments": {
            "prod": {
                "domain": "example.test",
                "base_url": "http://ops:${T9_BASE_PW}@" + host,
                "env_file": str(env_file),
                "database_url": "${T9_DATABASE_URL}",
                "public_env_keys": ["DOMAIN"],
                "approvers": [ALICE.id, BOB.id],
            }
        },
    }
    path = tmp_path / "rb.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_no_form_of_any_planted_secret_leaves_before_or_after_a_restart(
    db: Database,
    tmp_path: Path,
    deployment: tuple[Path, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    env_file, v = deployment
    caplog.set_level(logging.DEBUG)
    app = NostrMaxiStandin()
    body = json.dumps(
        {
            "error": "bad",
            "echo": [v["NOSTR_NSEC"], quote(v["SMTP_PASS"], safe=""), v["BASE_PW"]],
            "who": "<!subteam^S1> <@U9> T1:U3 <!channel>",
        }
    )
    app.route("GET", "/api/v1/debug", lambda req: Response(500, body))
    with app:
        path = runbook(tmp_path, env_file, app.url, v)
        ref: list[Engine] = []
        shown = Shown(ref)
        engine = Engine(db, load_runbook(path), surface=shown, background=False, masker=Masker())
        ref.append(engine)
        service = command_service(engine)
        started = service.execute(parse("start prod --dry-run"), ALICE)
        replies = [started.text]
        run_id = started.run_id
        assert run_id is not None and open_gate_id(db, run_id) is not None
        replies.append(service.execute(parse("status prod"), BOB).text)
        # a restart: a fresh engine and masker on the same database, nothing registered yet
        shown2 = Shown([])
        engine2 = Engine(db, load_runbook(path), surface=shown2, background=False, masker=Masker())
        shown2.ref.append(engine2)
        engine2.recover()
        reason = f"JWT leaked: {v['SMTP_PASS']} and {v['SHORT']}, ask T1:U3 <@U4> <!here>"
        decision = engine2.abort("prod", ALICE, reason)
        assert decision.outcome in ("cancelled", "rolled_back"), decision.message
        replies += [
            decision.message,
            command_service(engine2).execute(parse("status prod"), BOB).text,
        ]
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    exported = audit.export(db, None, "jsonl") + audit.export(db, None, "csv")
    chat = "\n".join(shown.texts + shown2.texts + [slackify(r) for r in replies])
    assert "[redacted]" in chat
    places = {"chat": chat, "logs": logged, "audit": exported}
    for key, value in v.items():
        for form in forms(value):
            for where, text in places.items():
                assert form not in text, f"{key} ({form!r}) leaked into {where}"
    # nothing the bot did not write pings anyone
    for ping in ("<!subteam^S1>", "<@U9>", "<@U3>", "<@U4>", "<!channel>", "<!here>"):
        assert ping not in chat, ping
    assert audit.verify(db) == []
