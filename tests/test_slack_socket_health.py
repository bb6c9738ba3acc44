"""/healthz tells the truth in Socket Mode: it answers 503 once the connection to Slack has
been down longer than CUTOVER_SOCKET_DOWN_SECONDS, and 200 again after reconnecting."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.slack.socket_health import SocketHealth
from standins.slack import SlackStandIn
from tests.slack_harness import TOKEN, wait_for
from tests.socket_standin import SocketModeStandIn
from tests.test_slack_serve import ROOT, free_port, serve_env

APP_TOKEN = "xapp-1-standin-0123456789-app-level-token"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_short_gap_is_healthy_and_a_long_one_is_not() -> None:
    up = [True]
    clock = FakeClock()
    health = SocketHealth(lambda: up[0], bound=60, clock=clock)
    health.sample()
    assert health.problem() is None and health.down_for() == 0
    up[0] = False
    health.sample()
    clock.t += 59
    health.sample()
    assert health.problem() is None  # Slack recycles connections: a gap is normal
    clock.t += 2
    problem = health.problem()
    assert problem is not None and "disconnected for 61 s" in problem
    up[0] = True
    health.sample()
    assert health.problem() is None and health.down_for() == 0


def test_a_client_that_cannot_say_counts_as_disconnected() -> None:
    def broken() -> bool:
        raise RuntimeError("closed")

    clock = FakeClock()
    health = SocketHealth(broken, bound=1, clock=clock)
    health.sample()
    clock.t += 2
    assert health.problem() is not None


@pytest.fixture
def web() -> Iterator[SlackStandIn]:
    standin = SlackStandIn(TOKEN).start()
    yield standin
    standin.stop()


def test_healthz_and_the_gauge_follow_a_socket_that_drops_and_comes_back(
    tmp_path: Path, web: SlackStandIn
) -> None:
    sock = SocketModeStandIn(web, APP_TOKEN).start()
    port, metrics_port = free_port(), free_port()
    env = {
        **serve_env(tmp_path, web, port),
        "SLACK_APP_TOKEN": APP_TOKEN,
        "PYTHONPATH": str(ROOT),
        "CUTOVER_SOCKET_DOWN_SECONDS": "1",
        "CUTOVER_METRICS_PORT": str(metrics_port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    health = f"http://127.0.0.1:{port}/healthz"
    scrape = f"http://127.0.0.1:{metrics_port}/metrics"

    def status() -> int | None:
        try:
            return httpx.get(health, timeout=2).status_code
        except httpx.HTTPError:
            return None

    try:
        wait_for(sock.connected, "the bot to open its socket", timeout=30)
        wait_for(lambda: status() == 200, "healthy while connected", timeout=30)
        assert "cutover_slack_socket_connected 1.0" in httpx.get(scrape).text

        sock.drop()  # Slack's side is gone; the client keeps trying a dead address
        wait_for(lambda: status() == 503, "503 once down longer than the bound", timeout=20)
        body = httpx.get(health).text
        assert "Socket Mode disconnected" in body
        assert "cutover_slack_socket_connected 0.0" in httpx.get(scrape).text

        again = SocketModeStandIn(web, APP_TOKEN).start()  # apps.connections.open: a live URL
        try:
            wait_for(again.connected, "the bot to reconnect", timeout=30)
            wait_for(lambda: status() == 200, "healthy again after reconnecting", timeout=20)
            assert "cutover_slack_socket_connected 1.0" in httpx.get(scrape).text
        finally:
            again.stop()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
