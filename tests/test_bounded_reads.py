"""Nothing huge gets in: an endless HTTP body and a command printing 400 MB leave the bot's
memory where it was, and a step's timeout ends every process it started.

RSS is read from /proc/self/status around each step (generous bounds, real figures)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from phases.checks.base import Status, StepContext
from phases.checks.http_check import BODY_CAP
from phases.runbook import StepSpec
from phases.runner import run_step

RSS_SLACK_KB = 50 * 1024


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class _Endless(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    chunk = b"x" * 65536
    delay = 0.0
    limit = 600 * 1024 * 1024  # a bound for the test machine's sake, far past any cap

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()  # no length: the body runs until the connection closes
        self.close_connection = True
        sent = 0
        try:
            while sent < self.limit:
                self.wfile.write(self.chunk)
                sent += len(self.chunk)
                if self.delay:
                    time.sleep(self.delay)
        except OSError:
            return

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Drip(_Endless):
    chunk = b"y"
    delay = 0.05


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endless() -> Iterator[str]:
    yield from serve(_Endless)


@pytest.fixture
def drip() -> Iterator[str]:
    yield from serve(_Drip)


def step(kind: str, params: dict[str, object], timeout: float) -> StepSpec:
    return StepSpec.model_validate(
        {"id": "s", "name": "s", "kind": kind, "params": params, "timeout": timeout}
    )


def run_watching_rss(spec: StepSpec, settle: float) -> tuple[object, int, float]:
    """Runs the step through the runner; returns its result, the RSS peak above the level
    before it (sampled during the step and `settle` seconds after), and its duration."""
    before = rss_kb()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kb())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.monotonic()
    result = run_step(spec, {}, StepContext(timeout=spec.timeout))
    took = time.monotonic() - start
    time.sleep(settle)
    done.set()
    sampler.join()
    return result, max(peak, rss_kb()) - before, took


def test_an_endless_http_body_is_read_to_the_cap_and_no_further(endless: str) -> None:
    result, grew_kb, took = run_watching_rss(step("http", {"url": endless + "/"}, 5.0), 3.0)
    assert grew_kb < RSS_SLACK_KB, f"RSS grew {grew_kb} KB"
    assert took < 5.0 + 1.5
    assert result.status is Status.PASS  # type: ignore[attr-defined]
    assert "truncated" in result.evidence  # type: ignore[attr-defined]
    assert result.details["body_truncated_at"] == BODY_CAP  # type: ignore[attr-defined]


def test_a_body_that_never_ends_slowly_ends_the_step_at_its_timeout(drip: str) -> None:
    result, grew_kb, took = run_watching_rss(step("http", {"url": drip + "/"}, 1.5), 0.5)
    assert result.status is Status.ERROR  # type: ignore[attr-defined]
    assert "timed out after 1.5s" in result.evidence  # type: ignore[attr-defined]
    assert took < 1.5 + 1.5
    assert grew_kb < RSS_SLACK_KB


def test_a_command_printing_400_mb_keeps_only_a_tail() -> None:
    printer = "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 419430400; echo; echo end"
    argv = ["sh", "-c", printer]
    result, grew_kb, took = run_watching_rss(step("command", {"argv": argv}, 60.0), 0.5)
    assert result.status is Status.PASS, result.evidence  # type: ignore[attr-defined]
    assert grew_kb < RSS_SLACK_KB, f"RSS grew {grew_kb} KB"
    assert result.details["output_truncated"] is True  # type: ignore[attr-defined]
    assert result.details["output_tail"].splitlines()[-1] == "end"  # type: ignore[attr-defined]


def test_expect_output_is_found_anywhere_in_a_long_stdout() -> None:
    argv = ["sh", "-c", "echo needle-at-start; yes filler | head -c 20000000"]
    spec = step("command", {"argv": argv, "expect_output": "needle-at-start"}, 30.0)
    result = run_step(spec, {}, StepContext(timeout=30.0))
    assert result.status is Status.PASS, result.evidence


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_setsid_grandchild_is_gone_after_the_step_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "detached.pid"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & sleep 60"
    result = run_step(
        step("command", {"argv": ["sh", "-c", script]}, 1.0), {}, StepContext(timeout=1.0)
    )
    assert result.status is Status.ERROR
    assert "timed out" in result.evidence
    deadline = time.monotonic() + 5
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    assert os.getsid(pid) if _alive(pid) else True  # it did leave the step's session
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the setsid grandchild outlived the step"


def test_a_detached_grandchild_holding_the_pipes_does_not_hold_the_step() -> None:
    script = "setsid sh -c 'sleep 30' & echo done"
    start = time.monotonic()
    result = run_step(
        step("command", {"argv": ["sh", "-c", script]}, 20.0), {}, StepContext(timeout=20.0)
    )
    assert result.status is Status.PASS
    assert time.monotonic() - start < 5.0
