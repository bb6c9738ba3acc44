"""`cutover serve` as a process: HTTP mode, /slack/events and /healthz; the Socket Mode choice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bot.settings import Settings
from bot.slack.server import mode
from standins.slack import SlackStandIn, post_signed, slash_body
from tests.conftest import STEP_USER
from tests.slack_harness import CHANNEL, SECRET, TEAM, TOKEN, wait_for
from tests.small_runbook import small_runbook

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    s = SlackStandIn(TOKEN).start()
    yield s
    s.stop()


def serve_env(tmp_path: Path, standin: SlackStandIn, port: int) -> dict[str, str]:
    small_runbook(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CUTOVER_"))}
    env.update(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=standin.api_url,
        CUTOVER_HTTP_PORT=str(port),
        CUTOVER_HTTP_HOST="127.0.0.1",
        CUTOVER_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        CUTOVER_RUNBOOK=str(tmp_path / "small.yml"),
        CUTOVER_STEP_USER=STEP_USER,  # a root bot runs its steps as an unprivileged user
        CUTOVER_METRICS_PORT="0",  # off: concurrent test processes would share its port
    )
    return env


def test_cutover_serve_answers_signed_commands_over_http(
    tmp_path: Path, standin: SlackStandIn
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env={**serve_env(tmp_path, standin, port), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                return False

        wait_for(healthy, "cutover serve to listen", timeout=20)
        assert standin.api_calls("auth.test")  # the token was checked at start-up

        body = slash_body(
            "help", user="U1", team=TEAM, channel=CHANNEL, response_url=standin.response_url("h")
        )
        sent = post_signed(f"{base}/slack/events", body, SECRET)
        assert sent.status == 200 and "Usage:" in sent.json()["text"]
        assert post_signed(f"{base}/slack/events", body, "wrong").status == 401

        body = slash_body(
            "status", user="U1", team=TEAM, channel=CHANNEL, response_url=standin.response_url("s")
        )
        assert post_signed(f"{base}/slack/events", body, SECRET).status == 200
        replies = wait_for(lambda: standin.replies("s"), "the status reply")
        assert replies[0]["text"] == "No active cutover run."
        assert httpx.get(f"{base}/nowhere", timeout=2).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"SLACK_SIGNING_SECRET": None}, "SLACK_SIGNING_SECRET is not set"),
        ({"SLACK_BOT_TOKEN": None}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-revoked-token-4242"}, "did not accept the bot token"),
    ],
)
def test_serve_with_missing_or_wrong_settings_says_what_to_fix(
    tmp_path: Path, standin: SlackStandIn, change: dict[str, str | None], says: str
) -> None:
    env = serve_env(tmp_path, standin, free_port())
    for name, value in change.items():
        if value is None:
            del env[name]
        else:
            env[name] = value
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert says in done.stderr
    for secret in (TOKEN, SECRET, "xoxb-revoked-token-4242"):
        assert secret not in done.stderr + done.stdout


def test_socket_mode_when_an_app_token_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_APP_TOKEN", "SLACK_API_URL", "CUTOVER_HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    base = {"_env_file": None, "SLACK_BOT_TOKEN": TOKEN}
    assert mode(Settings(**base)) == "http"  # type: ignore[arg-type]
    assert mode(Settings(**base, SLACK_APP_TOKEN="xapp-1-A-1-x")) == "socket"  # type: ignore[arg-type]
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.http_port == 3000 and settings.slack_api_url == "https://slack.com/api/"


def test_manifest_asks_for_the_scopes_the_bot_uses_and_no_more() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "usergroups:read",
        "channels:read",  # conversations.members: Home shows the runs of your channels
        "groups:read",
    }
    assert "user" not in manifest["oauth_config"]["scopes"]
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/cutover" and "start" in [
        w.strip() for w in command["usage_hint"].split("|")
    ]
    # The Home tab, drawn when a person opens it (app_home_opened needs no scope).
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
