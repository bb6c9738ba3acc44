"""Prometheus metrics, served at /metrics by `cutover serve` (bot/slack/server.py).

Counters and histograms are bumped where things happen (small calls in the engine, the
audit log and the Slack client). What is state, not an event (runs by status, whether this
replica leads the scheduler), is read when Prometheus scrapes: from the database, so every
replica reports the same runs, and from the scheduler handle.

One registry of our own, not prometheus_client's global one: a test process builds many
engines, and what this module registers it registers once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

GATE_WAIT = Histogram(
    "cutover_gate_wait_seconds",
    "Time from a checkpoint opening to its decision, by decision",
    ["decision"],
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, float("inf")),
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "cutover_step_duration_seconds",
    "Duration of a runbook step, by section (checks, actions, rollback…), kind and result",
    ["section", "kind", "result"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf")),
    registry=REGISTRY,
)
SLACK_API_ERRORS = Counter(
    "cutover_slack_api_errors_total",
    "Slack Web API calls that failed, by method and error (after the client's retries)",
    ["method", "error"],
    registry=REGISTRY,
)
SLACK_RATE_LIMITED = Counter(
    "cutover_slack_rate_limited_total",
    "Slack Web API answers of HTTP 429 (each one is retried after Retry-After)",
    ["method"],
    registry=REGISTRY,
)
AUDIT_APPENDS = Counter(
    "cutover_audit_appends_total",
    "Audit events written by this process, by kind (counted before the commit)",
    ["kind"],
    registry=REGISTRY,
)


def observe_step(section: str, kind: str, result: str, duration_ms: int) -> None:
    STEP_DURATION.labels(section, kind, result).observe(duration_ms / 1000)


def observe_gate_wait(decision: str, seconds: float) -> None:
    GATE_WAIT.labels(decision).observe(max(0.0, seconds))


def audit_appended(kind: str) -> None:
    AUDIT_APPENDS.labels(str(kind)).inc()


class _Live(Collector):
    """State read at scrape time through callables that `cutover serve` hands in."""

    def __init__(self) -> None:
        self.runs_by_status: Callable[[], dict[str, int]] | None = None
        self.is_leader: Callable[[], bool] | None = None
        self.socket_down_for: Callable[[], float] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            runs, leader, socket = self.runs_by_status, self.is_leader, self.socket_down_for
        if runs is not None:
            family = GaugeMetricFamily(
                "cutover_runs", "Runs in the database, by status", labels=["status"]
            )
            try:
                for status, n in sorted(runs().items()):
                    family.add_metric([status], n)
            except Exception as exc:  # noqa: BLE001 - a scrape must answer while the db is down
                log.warning("metrics: runs by status unavailable: %s", exc)
            else:
                yield family
        if leader is not None:
            yield GaugeMetricFamily(
                "cutover_scheduler_leader",
                "1 when this replica leads the scheduler (notices, reminders, monitoring)",
                value=1.0 if leader() else 0.0,
            )

        if socket is not None:
            down = socket()
            yield GaugeMetricFamily(
                "cutover_slack_socket_connected",
                "1 while the Socket Mode connection to Slack is up (Socket Mode only)",
                value=0.0 if down > 0 else 1.0,
            )
            yield GaugeMetricFamily(
                "cutover_slack_socket_down_seconds",
                "Seconds the Socket Mode connection has been down (0 while it is up)",
                value=down,
            )

    def describe(self) -> list[Any]:
        return []


LIVE = _Live()
REGISTRY.register(LIVE)


def watch(
    runs_by_status: Callable[[], dict[str, int]], is_leader: Callable[[], bool] | None
) -> None:
    """What /metrics reads at each scrape (the serving process's database and scheduler)."""
    with LIVE._lock:
        LIVE.runs_by_status, LIVE.is_leader = runs_by_status, is_leader


def watch_socket(down_for: Callable[[], float]) -> None:
    """Socket Mode: how long its connection has been down, read at each scrape."""
    with LIVE._lock:
        LIVE.socket_down_for = down_for


def render() -> bytes:
    """The Prometheus text exposition of everything above."""
    return generate_latest(REGISTRY)


def instrument_slack_client(client: Any) -> None:
    """Counts a Slack WebClient's failed calls and 429s without changing what it does: its
    api_call is wrapped (every method goes through it), and a retry handler that never
    retries sees each 429 before the client's own rate-limit handler waits it out."""
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.handler import RetryHandler

    class _Count429(RetryHandler):
        def can_retry(
            self, *, state: Any, request: Any, response: Any = None, error: Any = None
        ) -> bool:
            if response is not None and response.status_code == 429:
                SLACK_RATE_LIMITED.labels(_method(request.url)).inc()
            return False  # the handlers after it decide

    client.retry_handlers = [_Count429(), *client.retry_handlers]
    inner = client.api_call

    def api_call(api_method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return inner(api_method, *args, **kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown")) if exc.response else "unknown"
            SLACK_API_ERRORS.labels(api_method, error).inc()
            raise
        except Exception as exc:
            SLACK_API_ERRORS.labels(api_method, type(exc).__name__).inc()
            raise

    client.api_call = api_call


def _method(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]
