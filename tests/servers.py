"""Real loopback servers for tests: HTTP(S), a NostrMaxi stand-in, DNS, TLS certs, Postgres.

Every server binds 127.0.0.1 on a free port, runs in daemon threads, and is a
context manager (`with nostrmaxi_standin() as app: ...`). The factories
(`nostrmaxi_standin`, `tls_server`) return started servers;
`start()` is idempotent, so `with` works on a started one too.

Fixtures (import them into a test module: `from tests.servers import nostrmaxi`):
`nostrmaxi`, `http_server`, `dns_server`, `ca`, `manual_clock`, `pg_database`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.standin import (  # noqa: F401  (re-exported for the tests)
    CA,
    DEFAULT_TIERS,
    SWAGGER_HTML,
    CertFiles,
    LoopbackDNSServer,
    LoopbackHTTPServer,
    NostrMaxiStandin,
    Request,
    Response,
    Route,
    html_response,
    json_response,
    make_ca,
    make_cert,
    make_leaf,
    nostrmaxi_standin,
    server_context,
    tls_server,
)
from phases.checks import REGISTRY
from phases.checks.base import StepContext, StepResult, timed
from tests.db_fixtures import PG_URL, postgres_reachable, throwaway_pg_database
from tests.require import unavailable

LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- clock


class ManualClock:
    """A `Clock` the test moves: now() is wall time (epoch s), monotonic() follows it."""

    def __init__(self, now: float | None = None) -> None:
        self._now = time.time() if now is None else now
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def set(self, now: float) -> None:
        self._now = now


# --------------------------------------------------------------------------- Postgres


def pg_reachable() -> str | None:
    """None when the server answers, else why not."""
    return None if postgres_reachable() else f"PostgreSQL unreachable at {PG_URL}"


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh database on the test server, as a libpq URL (what the target's tools use)."""
    with throwaway_pg_database() as url:
        yield url.replace("postgresql+psycopg://", "postgresql://", 1)


# --------------------------------------------------------------------------- running a kind


def run_check(
    kind: str, params: dict[str, Any], ctx: StepContext | None = None, **ctx_fields: Any
) -> StepResult:
    """Validates params like the engine does and runs the kind (exceptions become ERROR)."""
    step_kind = REGISTRY[kind]
    validated = step_kind.params.model_validate(params)
    context = ctx if ctx is not None else StepContext(**ctx_fields)
    return timed(lambda: step_kind.run(validated, context), context.clock)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def http_server() -> Iterator[LoopbackHTTPServer]:
    server = LoopbackHTTPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nostrmaxi() -> Iterator[NostrMaxiStandin]:
    app = nostrmaxi_standin()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def dns_server() -> Iterator[LoopbackDNSServer]:
    server = LoopbackDNSServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return make_ca(tmp_path)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """URL of a throwaway database on the local server; skips when there is no server."""
    why = pg_reachable()
    if why is not None:
        unavailable(f"{why} (set CUTOVER_TEST_PG_URL)")
    with throwaway_database() as url:
        yield url


__all__ = [
    "CA",
    "CertFiles",
    "LOOPBACK",
    "LoopbackDNSServer",
    "LoopbackHTTPServer",
    "ManualClock",
    "NostrMaxiStandin",
    "PG_URL",
    "Request",
    "Response",
    "ca",
    "dns_server",
    "html_response",
    "http_server",
    "json_response",
    "make_ca",
    "make_cert",
    "make_leaf",
    "manual_clock",
    "nostrmaxi",
    "nostrmaxi_standin",
    "pg_database",
    "pg_reachable",
    "run_check",
    "server_context",
    "throwaway_database",
    "tls_server",
]
