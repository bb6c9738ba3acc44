"""A real Prometheus server on loopback, scraping a target whose /metrics the test writes.

`scripts/test.sh` apt-installs Debian's `prometheus` when it is missing; without the binary
these tests skip locally and fail in CI (tests/require.py). The server scrapes every second
and the helpers wait for a scrape by asking Prometheus's own API, never by sleeping blindly.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.standin import LoopbackHTTPServer, Request, Response
from tests.require import unavailable

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 30.0
JOB = "target"


class MetricsTarget(LoopbackHTTPServer):
    """An HTTP target whose /metrics body is whatever the test set: `text`, or what
    `text()` returns at each scrape (counters that grow, for rate())."""

    def __init__(self, text: str | Callable[[], str] = "") -> None:
        super().__init__({("GET", "/metrics"): self._metrics})
        self.text = text

    def _metrics(self, _req: Request) -> Response:
        body = self.text if isinstance(self.text, str) else self.text()
        return Response(200, body, {"Content-Type": "text/plain; version=0.0.4"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """`prometheus` started with a temp config and storage dir on a free loopback port."""

    def __init__(self, workdir: Path, target: MetricsTarget) -> None:
        self.workdir = workdir
        self.target = target
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, *, scraped: bool = True) -> PrometheusServer:
        """Starts it and waits until it answers; with `scraped`, until it has scraped the
        target once (~5 s: its service discovery hands over targets every 5 s)."""
        binary = shutil.which("prometheus")
        if binary is None:
            unavailable("no prometheus binary (apt-get install prometheus; scripts/test.sh does)")
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: {JOB}\n    scrape_interval: 1s\n"
            f"    static_configs:\n      - targets: ['{LOOPBACK}:{self.target.port}']\n"
        )
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if scraped:
            self.wait_until(lambda: self.query(f'up{{job="{JOB}"}}') == ["1"], "a first scrape")
        else:
            self.wait_until(lambda: self.query("vector(1)") == ["1"], "an answer")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def query(self, promql: str) -> list[str] | None:
        """The sample values of an instant query, or None while Prometheus cannot answer."""
        try:
            body: Any = httpx.get(
                f"{self.url}/api/v1/query", params={"query": promql}, timeout=2
            ).json()
        except (httpx.HTTPError, ValueError):
            return None
        if body.get("status") != "success":
            return None
        return [str(r["value"][1]) for r in body["data"]["result"]]

    def wait_until(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.workdir / "prometheus.log").read_text(errors="replace")
                raise AssertionError(f"prometheus exited ({self.process.returncode}): {log}")
            if ready():
                return
            time.sleep(0.1)
        raise AssertionError(f"Prometheus did not show {what} within {START_TIMEOUT_S:g}s")

    def show(self, target_text: str, promql: str, value: str) -> None:
        """Sets the target's metrics and waits until Prometheus has scraped them."""
        self.target.text = target_text
        self.wait_until(lambda: self.query(promql) == [value], f"{promql} = {value}")


def started(
    tmp: Path, text: str, *, scraped: bool = True
) -> tuple[MetricsTarget, PrometheusServer]:
    target = MetricsTarget(text).start()
    try:
        return target, PrometheusServer(tmp, target).start(scraped=scraped)
    except BaseException:
        target.stop()
        raise


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One Prometheus for a test module, scraping a target that starts with no samples."""
    target, server = started(tmp_path_factory.mktemp("prometheus"), "")
    try:
        yield server
    finally:
        server.stop()
        target.stop()
