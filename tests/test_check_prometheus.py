"""`prometheus`: PromQL instant queries against a real Prometheus, judged against thresholds.

The server is Debian's `prometheus`, on loopback, scraping a target whose /metrics the tests
write: an error ratio per service, a latency histogram, a zero-traffic pair (0/0 = NaN).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bot import audit
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.reads import gate_view, open_gate_id
from phases.checks import REGISTRY
from phases.checks.base import Status, StepContext, StepResult
from phases.runbook import Runbook, RunbookError, load_runbook, resolve_step
from phases.secrets import MASK
from tests.prometheus_fixtures import PrometheusServer, free_port, prometheus, started
from tests.schedule_helpers import (
    ALICE,
    BOB,
    START,
    clock_at,
    make_engine,
    set_clock,
    true_check,
    write_runbook,
)
from tests.servers import LoopbackHTTPServer, Request, Response, json_response, run_check

__all__ = ["prometheus"]  # the fixture, imported for pytest

METRICS = """\
# TYPE app_error_ratio gauge
app_error_ratio{service="api"} 0.002
app_error_ratio{service="web"} 0.004
# TYPE app_requests_total counter
app_requests_total{outcome="error"} 0
app_requests_total{outcome="all"} 0
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 50
http_request_duration_seconds_bucket{le="0.25"} 90
http_request_duration_seconds_bucket{le="0.5"} 99
http_request_duration_seconds_bucket{le="1"} 100
http_request_duration_seconds_bucket{le="+Inf"} 100
http_request_duration_seconds_sum 12
http_request_duration_seconds_count 100
"""
MIN = timedelta(minutes=1)
SHIPPED = Path(__file__).resolve().parent.parent / "runbooks" / "nostrmaxi.yml"
P95 = "histogram_quantile(0.95, sum by (le) (http_request_duration_seconds_bucket))"


@pytest.fixture(scope="module")
def scraped(prometheus: PrometheusServer) -> Iterator[PrometheusServer]:
    prometheus.show(METRICS, 'app_error_ratio{service="web"}', "0.004")
    yield prometheus


def ask(server: PrometheusServer | str, query: str, **params: Any) -> StepResult:
    url = server if isinstance(server, str) else server.url
    result = run_check("prometheus", {"url": url, "query": query, **params}, timeout=5.0)
    assert len(result.evidence) <= 200
    assert result.details["query"] == query
    return result


def test_kind_is_registered_read_only() -> None:
    assert REGISTRY["prometheus"].mutates is False


def test_error_rate_under_max_passes_with_query_and_value(scraped: PrometheusServer) -> None:
    result = ask(scraped, 'max(app_error_ratio{service="api"})', max=0.01)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence == 'max(app_error_ratio{service="api"}) = 0.002 (max 0.01)'


def test_error_rate_over_max_fails_naming_value_and_bound(scraped: PrometheusServer) -> None:
    result = ask(scraped, "max(app_error_ratio)", max=0.003)
    assert result.status is Status.FAIL
    assert result.evidence == "max(app_error_ratio) = 0.004 > max 0.003"


def test_every_series_is_judged_and_the_one_missing_is_named(scraped: PrometheusServer) -> None:
    result = ask(scraped, "app_error_ratio", max=0.003)
    assert result.status is Status.FAIL
    assert 'app_error_ratio = 0.004 > max 0.003 at {__name__="app_error_ratio"' in result.evidence
    assert 'service="web"' in result.evidence
    assert "1 of 2 series miss it" in result.evidence
    assert result.details["series"] == 2


def test_several_series_all_within_pass_showing_the_worst(scraped: PrometheusServer) -> None:
    result = ask(scraped, "app_error_ratio", max=0.01)
    assert result.status is Status.PASS
    assert result.evidence == "app_error_ratio = 0.004 (max 0.01) (2 series)"


def test_p95_latency_from_a_histogram_against_max(scraped: PrometheusServer) -> None:
    assert ask(scraped, P95, max=0.5).status is Status.PASS
    slow = ask(scraped, P95, max=0.2)
    assert slow.status is Status.FAIL
    assert " > max 0.2" in slow.evidence


def test_min_threshold_fails_below_and_passes_above(scraped: PrometheusServer) -> None:
    assert ask(scraped, "sum(http_request_duration_seconds_count)", min=10).status is Status.PASS
    low = ask(scraped, "sum(http_request_duration_seconds_count)", min=1000)
    assert low.status is Status.FAIL
    assert low.evidence == "sum(http_request_duration_seconds_count) = 100 < min 1000"


def test_query_syntax_error_is_an_error_with_prometheus_reason(scraped: PrometheusServer) -> None:
    result = ask(scraped, "sum(app_error_ratio", max=1)
    assert result.status is Status.ERROR
    assert result.evidence.startswith("sum(app_error_ratio: query error (bad_data: ")
    assert result.details["status_code"] == 400


def test_empty_result_is_an_error_never_a_pass(scraped: PrometheusServer) -> None:
    result = ask(scraped, "no_such_metric_total", max=1)
    assert result.status is Status.ERROR
    assert result.evidence == "no_such_metric_total: no data (the query returned no series)"


def test_nan_from_no_traffic_is_an_error_never_a_pass(scraped: PrometheusServer) -> None:
    query = 'sum(app_requests_total{outcome="error"}) / sum(app_requests_total{outcome="all"})'
    result = ask(scraped, query, max=0.01)
    assert result.status is Status.ERROR
    assert "= NaN" in result.evidence


def test_range_vector_is_an_error_saying_to_aggregate(scraped: PrometheusServer) -> None:
    result = ask(scraped, "app_error_ratio[1m]", max=1)
    assert result.status is Status.ERROR
    assert "range vector" in result.evidence


def test_a_rise_after_a_scrape_turns_the_same_check_to_fail(scraped: PrometheusServer) -> None:
    query = "max(bake_error_ratio)"
    try:
        scraped.show(METRICS + "bake_error_ratio 0.001\n", query, "0.001")
        assert ask(scraped, query, max=0.01).status is Status.PASS
        scraped.show(METRICS + "bake_error_ratio 0.2\n", query, "0.2")
        result = ask(scraped, query, max=0.01)
    finally:
        scraped.target.text = METRICS
    assert result.status is Status.FAIL
    assert result.evidence == f"{query} = 0.2 > max 0.01"


def test_prometheus_going_down_is_an_error_never_a_pass(tmp_path: Path) -> None:
    """Its own Prometheus, stopped between two asks (vector(0) needs no scrape)."""
    target, server = started(tmp_path, "", scraped=False)
    try:
        assert ask(server, "vector(0)", max=0.01).status is Status.PASS
        server.stop()
        result = ask(server, "vector(0)", max=0.01)
    finally:
        server.stop()
        target.stop()
    assert result.status is Status.ERROR
    assert result.evidence == (f"vector(0): Prometheus at {server.url} unreachable (ConnectError)")


def test_nothing_listening_is_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = ask(url, "up", min=1)
    assert result.status is Status.ERROR
    assert "unreachable" in result.evidence


def test_bearer_token_is_sent_and_never_shown() -> None:
    """A Prometheus behind an auth proxy: the token goes in the header; an answer that echoes
    it back (a proxy's 401 body) is shown masked."""
    token = "prom-token-0123456789abcdef"  # noqa: S105  (a test value)
    seen: list[str] = []

    def query(req: Request) -> Response:
        seen.append(req.headers.get("authorization", ""))
        return json_response(
            {"status": "error", "errorType": "unauthorized", "error": f"bad token {token}"}, 401
        )

    with LoopbackHTTPServer({("GET", "/api/v1/query"): query}) as proxy:
        result = ask(proxy.url, "up", min=1, bearer_token=token)
    assert seen == [f"Bearer {token}"]
    assert result.status is Status.ERROR
    assert token not in result.evidence
    assert MASK in result.evidence


def test_params_need_a_threshold_and_a_sane_range() -> None:
    kind = REGISTRY["prometheus"]
    with pytest.raises(ValidationError, match="give max, min or both"):
        kind.params.model_validate({"url": "http://p:9090", "query": "up"})
    with pytest.raises(ValidationError, match="min 2 is above max 1"):
        kind.params.model_validate({"url": "http://p:9090", "query": "up", "min": 2, "max": 1})
    with pytest.raises(ValidationError, match="finite"):
        kind.params.model_validate({"url": "http://p:9090", "query": "up", "max": float("nan")})


RUNBOOK = """\
name: metrics
variables: [PROM_TOKEN]
phases:
  - id: bake
    name: Bake
    estimate_minutes: 1
    checks:
      - id: errors
        name: error rate
        kind: prometheus
        params:
          url: "{{prometheus_url}}"
          query: 'sum(rate(http_requests_total{{{{status=~"5.."}}}}[5m]))'
          max: 0.01
          bearer_token: {token}
    checkpoint: baked
environments:
  prod:
    domain: example.org
    base_url: https://example.org
    approvers: ["console:ana"]
    vars:
      prometheus_url: http://127.0.0.1:9090
      prom_token: "${{PROM_TOKEN}}"
      plain: not-from-the-environment
"""


def test_runbook_takes_a_token_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "rb.yml"
    path.write_text(RUNBOOK.format(token="'{prom_token}'"))
    assert load_runbook(path).phases[0].checks[0].kind == "prometheus"


@pytest.mark.parametrize("token", ["secret-token-written-here", "'{plain}'"])
def test_runbook_refuses_a_token_written_into_it(tmp_path: Path, token: str) -> None:
    path = tmp_path / "rb.yml"
    path.write_text(RUNBOOK.format(token=token))
    with pytest.raises(RunbookError, match="bearer_token must be a \\{placeholder\\}"):
        load_runbook(path)


def test_monitoring_rounds_judge_the_error_rate_and_flag_a_breach(
    pg_db: Database, tmp_path: Path, scraped: PrometheusServer
) -> None:
    """Phase 9 with a `prometheus` check: a round passes while the error rate is low, the
    round after it rose is a breach, and the gate after the window cannot Continue."""
    query = "max(round_error_ratio)"
    runbook = write_runbook(
        tmp_path,
        {
            "name": "Bake by metrics",
            "phases": [
                {
                    "id": "monitoring",
                    "name": "Post-cutover monitoring",
                    "estimate_minutes": 10,
                    "checkpoint": "error rate under 1% for 10 minutes",
                    "monitor": {"every_minutes": 5, "for_minutes": 10},
                    "checks": [
                        {
                            "id": "error-rate",
                            "name": "Error rate under 1%",
                            "kind": "prometheus",
                            "params": {"url": "{prometheus_url}", "query": query, "max": 0.01},
                        }
                    ],
                }
            ],
            "rollback": [true_check("undo", "undo") | {"kind": "run"}],
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": "http://prod.test",
                    "channel": "#cutover",
                    "approvers": ["T1:U1", "T1:U2"],
                    "vars": {"prometheus_url": scraped.url},
                }
            },
        },
    )
    try:
        scraped.show(METRICS + "round_error_ratio 0.001\n", query, "0.001")
        clock = clock_at(START)
        engine, surface = make_engine(pg_db, runbook, clock)
        run = engine.start_run("prod", ALICE)
        assert run.id is not None
        scheduler = Scheduler(engine)
        scraped.show(METRICS + "round_error_ratio 0.05\n", query, "0.05")
        set_clock(clock, START + 5 * MIN)
        assert scheduler.tick() == [f"run #{run.id}: monitoring round 2/3"]
        [notice] = surface.notices("🚨 Monitoring round 2/3 (T+5 min): failed")
        assert f"{query} = 0.05 > max 0.01" in notice.args[1]
        breach = [
            json.loads(e.data) for e in audit.events(pg_db, run.id) if e.kind == "monitor.breach"
        ]
        assert [(b["round"], [f["step"] for f in b["failures"]]) for b in breach] == [
            (2, ["error-rate"])
        ]
        scraped.target.text = METRICS  # the series is gone: round 3 has no data, an ERROR
        scraped.wait_until(lambda: scraped.query(query) == [], "round_error_ratio gone")
        set_clock(clock, START + 10 * MIN)
        assert scheduler.tick()[-1] == f"run #{run.id}: monitoring finished (FAIL); gate open"
    finally:
        scraped.target.text = METRICS
    gate_id = open_gate_id(pg_db, run.id)
    assert gate_id is not None
    gate = gate_view(pg_db, engine.runbook, gate_id)
    assert gate is not None and not gate.checks_passed
    assert engine.decide(gate_id, BOB, "continue").outcome == "refused"
    rounds = [json.loads(e.data) for e in audit.events(pg_db, run.id) if e.kind == "monitor.round"]
    assert len(rounds) == 3


class GrowingCounters:
    """express-prom-bundle's request histogram, 200 more requests (1 of them a 500) and
    their latencies at each scrape, so rate() over the last minutes has something to say."""

    def __init__(self) -> None:
        self.scrapes = 0

    def __call__(self) -> str:
        self.scrapes += 1
        n = self.scrapes
        name = "http_request_duration_seconds"
        lines = [f"# TYPE {name} histogram"]
        for code, count in (("200", 199 * n), ("500", n)):
            for le, share in (("0.1", 0.5), ("0.25", 0.8), ("0.5", 0.97), ("+Inf", 1.0)):
                lines.append(f'{name}_bucket{{status_code="{code}",le="{le}"}} {count * share:g}')
            lines.append(f'{name}_count{{status_code="{code}"}} {count}')
            lines.append(f'{name}_sum{{status_code="{code}"}} {count * 0.12:g}')
        return METRICS + "\n".join(lines) + "\n"


def shipped_prometheus_checks(prometheus_url: str) -> list[tuple[Any, Any]]:
    """The shipped runbook's commented-out Prometheus checks, uncommented as its comment
    says to, resolved for prod: (kind, params) of each."""
    text = SHIPPED.read_text(encoding="utf-8")
    begin, end = text.index("# BEGIN prometheus checks\n"), text.index("# END prometheus checks")
    block = text[begin:end].splitlines()[1:-1]
    uncommented = "\n".join(line.replace("# ", "", 1) for line in block) + "\n"
    text = text[:begin] + uncommented.lstrip() + text[end:]
    text = text.replace("\nvars:\n", f"\nvars:\n  prometheus_url: {prometheus_url}\n", 1)
    runbook = Runbook.model_validate(yaml.safe_load(text))
    phase = runbook.phase("monitoring")
    values = runbook.values_for("prod", expand=False)
    return [resolve_step(step, values) for step in phase.checks if step.kind == "prometheus"]


def test_shipped_runbook_error_rate_and_p95_checks_work_when_uncommented(
    scraped: PrometheusServer,
) -> None:
    assert "- id: error-rate" not in [
        line.strip() for line in SHIPPED.read_text(encoding="utf-8").splitlines()
    ], "the shipped checks stay commented: NostrMaxi's stack has no Prometheus"
    checks = shipped_prometheus_checks(scraped.url)
    assert [type(params).__name__ for _, params in checks] == ["PrometheusParams"] * 2
    scraped.target.text = GrowingCounters()
    try:
        for _, params in checks:
            scraped.wait_until(
                lambda q=params.query: (scraped.query(q) or ["NaN"])[0] not in ("NaN",),
                f"{params.query} to have a value",
            )
        results = [kind.run(params, StepContext(timeout=5.0)) for kind, params in checks]
    finally:
        scraped.target.text = METRICS
    error_rate, p95 = results
    assert error_rate.status is Status.PASS, error_rate.evidence
    assert error_rate.evidence.endswith(" = 0.005 (max 0.01)")
    assert p95.status is Status.PASS, p95.evidence
    assert p95.evidence.startswith("histogram_quantile(0.95, ")
    assert 0.25 < float(p95.evidence.split(" = ")[1].split()[0]) <= 0.5
