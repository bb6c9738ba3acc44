"""/metrics of `cutover serve` (a real process, Prometheus text format), scraped during a whole
run driven through Slack: the run by status, its gates' waits, its checks by kind and result,
the Slack API's 429s and errors, scheduler leadership and audit appends."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.settings import Settings
from bot.slack.server import make_http_server, make_metrics_server
from bot.store.db import Database
from standins.slack import SlackStandIn
from tests.slack_harness import Bot, wait_for
from tests.test_slack_serve import ROOT, free_port, serve_env, standin  # noqa: F401


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) → value."""
    answer = httpx.get(f"{base}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_show_the_run_its_gates_and_its_checks_while_it_runs(
    tmp_path: Path,
    standin: SlackStandIn,  # noqa: F811
) -> None:
    port, metrics_port = free_port(), free_port()
    env = {**serve_env(tmp_path, standin, port), "PYTHONPATH": str(ROOT)}
    env["CUTOVER_SCHEDULER_ELECT_SECONDS"] = "0.2"
    env["CUTOVER_METRICS_PORT"] = str(metrics_port)  # on loopback, its default address
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, "cutover serve exited"
                return False

        wait_for(up, "cutover serve to listen", timeout=30)
        slack_port, base = base, f"http://127.0.0.1:{metrics_port}"
        assert httpx.get(f"{slack_port}/metrics", timeout=5).status_code == 404
        db = Database(env["CUTOVER_DATABASE_URL"], must_exist=True)
        bot = Bot(SimpleNamespace(engine=None), standin, f"{slack_port}/slack/events", db)  # type: ignore[arg-type]
        wait_for(
            lambda: value(scrape(base), "cutover_scheduler_leader") == 1.0, "scheduler leadership"
        )
        assert scrape(base).get(("cutover_runs", ())) is None  # no run yet: no status

        standin.fail_next(1, status=429, retry_after=0)  # the run's first post is rate limited
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        during = scrape(base)
        assert value(during, "cutover_runs", status="waiting") == 1
        assert value(during, "cutover_slack_rate_limited_total", method="chat.postMessage") >= 1
        assert (
            value(
                during,
                "cutover_step_duration_seconds_count",
                section="checks",
                kind="command",
                result="pass",
            )
            == 1
        )
        appended = value(during, "cutover_audit_appends_total", kind="run.started")
        assert appended == 1

        bot.click(one, "gate_continue", user="U2")
        two = bot.checkpoint(run_id, 2)
        bot.tick(two, ["browser"], user="U3")
        bot.wait_text(two, "ticked by <@U3>")
        bot.click(bot.fresh(two), "gate_continue", user="U2")
        three = bot.checkpoint(run_id, 3)
        standin.fail_next(9, status=500)  # more 500s than the client retries: an API error
        bot.click(three, "gate_continue", user="U2")
        wait_for(lambda: bot.run(run_id).status == "completed", "the run to complete")

        after = wait_for(
            lambda: (
                s
                if value(
                    s := scrape(base),
                    "cutover_slack_api_errors_total",
                    method="chat.update",
                    error="fatal_error",
                )
                + value(
                    s,
                    "cutover_slack_api_errors_total",
                    method="chat.postMessage",
                    error="fatal_error",
                )
                >= 1
                else None
            ),
            "the failed Slack call on /metrics",
        )
        assert value(after, "cutover_runs", status="completed") == 1
        assert value(after, "cutover_runs", status="waiting") == 0
        assert value(after, "cutover_gate_wait_seconds_count", decision="approved") == 3
        assert value(after, "cutover_gate_wait_seconds_bucket", decision="approved", le="+Inf") == 3
        checks = value(
            after,
            "cutover_step_duration_seconds_count",
            section="checks",
            kind="command",
            result="pass",
        )
        assert checks == 3  # one check in each of the three phases
        assert value(after, "cutover_audit_appends_total", kind="gate.decided") == 3
        assert value(after, "cutover_audit_appends_total", kind="run.completed") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_metrics_listen_on_loopback_by_default_and_never_on_the_slack_port() -> None:
    assert Settings(_env_file=None).metrics_host == "127.0.0.1"  # type: ignore[call-arg]
    slack = make_http_server(None, "127.0.0.1", 0)
    scrape_server = make_metrics_server("127.0.0.1", 0)
    for server in (slack, scrape_server):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert httpx.get(f"{slack.url}/metrics", timeout=5).status_code == 404
        assert httpx.get(f"{slack.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{scrape_server.url}/metrics", timeout=5).status_code == 200
        assert httpx.get(f"{scrape_server.url}/healthz", timeout=5).status_code == 404
        assert scrape_server.server_address[0] == "127.0.0.1"
    finally:
        for server in (slack, scrape_server):
            server.shutdown()
            server.server_close()


def test_a_metrics_port_in_use_stops_serve_with_a_clear_error(
    tmp_path: Path,
    standin: SlackStandIn,  # noqa: F811
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = {**serve_env(tmp_path, standin, free_port()), "PYTHONPATH": str(ROOT)}
        env["CUTOVER_METRICS_PORT"] = str(busy)
        proc = subprocess.run(
            [sys.executable, "-m", "bot.cli", "serve"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert f"cannot listen for /metrics on 127.0.0.1:{busy}" in proc.stderr
    assert "CUTOVER_METRICS_PORT" in proc.stderr
