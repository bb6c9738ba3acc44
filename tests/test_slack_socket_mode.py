"""`cutover serve` in Socket Mode (SLACK_APP_TOKEN set), end to end against local stand-ins:
a whole cutover is started, ticked, approved and completed through envelopes and acks."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.slack import (
    Message,
    SlackStandIn,
    block_actions_payload,
    button_action,
    checkbox_action,
    slash_fields,
)
from tests.slack_harness import CHANNEL, TEAM, TOKEN, wait_for
from tests.socket_standin import SocketModeStandIn
from tests.test_slack_serve import ROOT, free_port, serve_env

APP_TOKEN = "xapp-1-standin-0123456789-app-level-token"


@pytest.fixture
def slack() -> Iterator[tuple[SlackStandIn, SocketModeStandIn]]:
    web = SlackStandIn(TOKEN).start()
    sock = SocketModeStandIn(web, APP_TOKEN).start()
    yield web, sock
    sock.stop()
    web.stop()


def test_a_whole_cutover_runs_over_socket_mode(
    tmp_path: Path, slack: tuple[SlackStandIn, SocketModeStandIn]
) -> None:
    web, sock = slack
    env = serve_env(tmp_path, web, free_port())
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env={**env, "SLACK_APP_TOKEN": APP_TOKEN, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(sock.connected, "the bot to open its socket", timeout=30)
        assert web.api_calls("apps.connections.open", ok=True)

        def command(text: str, user: str = "U1") -> dict:
            fields = slash_fields(
                text, user=user, team=TEAM, channel=CHANNEL, response_url=web.response_url(text)
            )
            return sock.send("slash_commands", fields, response=True)

        def click(message: Message, action: dict, user: str) -> None:
            payload = block_actions_payload(
                message, action, user=user, team=TEAM, response_url=web.response_url("click")
            )
            sock.send("interactive", payload)

        help_ack = command("help")
        assert "Usage:" in help_ack["payload"]["text"]  # answered in the ack itself
        command("start staging")
        parent = wait_for(lambda: web.parents(), "the run's message")[0]
        ref = f"{parent.channel}:{parent.ts}"

        def checkpoint(n: int) -> Message:
            def posted() -> Message | None:
                return next(
                    (m for m in web.thread(ref) if m.all_text().startswith(f"Phase {n}:")), None
                )

            return wait_for(posted, f"checkpoint {n}")

        click(checkpoint(1), button_action(checkpoint(1), "gate_continue"), "U2")
        two = checkpoint(2)
        click(two, checkbox_action(two, ["browser"]), "U3")
        wait_for(
            lambda: "ticked by <@U3>" in web.message(f"{two.channel}:{two.ts}").all_text(),
            "the tick drawn",
        )
        two = web.message(f"{two.channel}:{two.ts}")
        click(two, button_action(two, "gate_continue"), "U2")
        three = checkpoint(3)
        click(three, button_action(three, "gate_continue"), "U3")
        wait_for(
            lambda: (
                "Completed" in web.message(ref).all_text()
                or "completed" in web.message(ref).all_text()
            ),
            "the run to complete",
            timeout=20,
        )
        assert web.problems == []
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
        out = proc.stdout.read().decode() if proc.stdout else ""
    assert code == 0, out
    assert TOKEN not in out and APP_TOKEN not in out
