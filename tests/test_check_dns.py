"""`dns`: T-24h "DNS must resolve to production server IP", phase 8 propagation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.nameserver
import dns.query
import dns.rcode
import dns.resolver
import pytest
from pydantic import ValidationError

from phases.checks import REGISTRY
from phases.checks.base import Status, StepContext, StepResult
from tests.servers import LOOPBACK, LoopbackDNSServer, run_check

NAME = "nostrmaxi.test"
PROD_IP = "127.0.0.5"
OLD_IP = "10.0.0.9"


@pytest.fixture
def zone() -> Iterator[LoopbackDNSServer]:
    with LoopbackDNSServer({NAME: PROD_IP, "v6.nostrmaxi.test": ["127.0.0.6", "fd00::5"]}) as s:
        yield s


def dig(server: LoopbackDNSServer, **params: Any) -> StepResult:
    params = {"name": NAME, "expected_ip": PROD_IP, "resolvers": [server.address]} | params
    result = run_check("dns", params, timeout=params.pop("timeout", 2.0))
    assert len(result.evidence) <= 200
    return result


def test_kind_is_registered_read_only() -> None:
    assert REGISTRY["dns"].mutates is False


def test_domain_resolves_to_production_ip_passes(zone: LoopbackDNSServer) -> None:
    result = dig(zone)
    assert result.status is Status.PASS
    assert result.evidence == f"{NAME} A → {PROD_IP} at 1/1 resolvers"
    assert zone.queries == [("udp", NAME, "A")]


def test_aaaa_record_resolves_to_expected_ipv6(zone: LoopbackDNSServer) -> None:
    result = dig(zone, name="v6.nostrmaxi.test", record="AAAA", expected_ip="fd00:0::5")
    assert result.status is Status.PASS, result.evidence
    assert "AAAA → fd00::5" in result.evidence


def test_domain_still_pointing_at_old_server_fails(zone: LoopbackDNSServer) -> None:
    zone.records[NAME] = OLD_IP
    result = dig(zone)
    assert result.status is Status.FAIL
    assert result.evidence == (
        f"{NAME} A → {PROD_IP} at 0/1 resolvers; {zone.address}: {OLD_IP} (expected {PROD_IP})"
    )


def test_old_and_new_ip_round_robin_fails(zone: LoopbackDNSServer) -> None:
    zone.records[NAME] = [PROD_IP, OLD_IP]
    result = dig(zone)
    assert result.status is Status.FAIL
    assert f"{OLD_IP}, {PROD_IP} (expected {PROD_IP} only)" in result.evidence


def test_nxdomain_fails(zone: LoopbackDNSServer) -> None:
    result = dig(zone, name="missing.nostrmaxi.test")
    assert result.status is Status.FAIL
    assert result.evidence.endswith(f"{zone.address}: NXDOMAIN")


def test_name_without_a_record_fails(zone: LoopbackDNSServer) -> None:
    zone.records[NAME] = "fd00::1"
    result = dig(zone)
    assert result.status is Status.FAIL
    assert result.evidence.endswith("no A record")


def test_servfail_fails(zone: LoopbackDNSServer) -> None:
    zone.servfail.add(NAME)
    result = dig(zone)
    assert result.status is Status.FAIL
    assert result.evidence.endswith(f"{zone.address}: SERVFAIL")


def test_resolver_that_never_answers_is_a_timeout_error_within_the_step_timeout(
    zone: LoopbackDNSServer,
) -> None:
    zone.drop.add(NAME)
    start = time.monotonic()
    result = dig(zone, timeout=0.5)
    assert time.monotonic() - start < 1.5
    assert result.status is Status.ERROR
    assert result.evidence.endswith(f"{zone.address}: timeout")


def test_partial_propagation_across_two_resolver_ports_fails(zone: LoopbackDNSServer) -> None:
    with LoopbackDNSServer({NAME: OLD_IP}) as lagging:
        result = dig(zone, resolvers=[zone.address, lagging.address])
    assert result.status is Status.FAIL
    assert result.evidence == (
        f"{NAME} A → {PROD_IP} at 1/2 resolvers; {lagging.address}: {OLD_IP} (expected {PROD_IP})"
    )
    assert result.details["answers"][zone.address] == [PROD_IP]


def test_port_param_applies_to_resolvers_without_a_port(zone: LoopbackDNSServer) -> None:
    result = dig(zone, resolvers=[LOOPBACK], port=zone.port)
    assert result.status is Status.PASS, result.evidence


class PublicResolvers:
    """The resolver_factory seam: 8.8.8.8 / 1.1.1.1 / 9.9.9.9 answered by local servers."""

    def __init__(self, servers: dict[str, LoopbackDNSServer]) -> None:
        self.servers = servers
        self.asked: list[list[str] | None] = []

    def __call__(self, resolvers: list[str] | None) -> dns.resolver.Resolver:
        self.asked.append(resolvers)
        assert resolvers is not None and len(resolvers) == 1
        server = self.servers[resolvers[0]]
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(LOOPBACK, server.port)]
        return resolver


@pytest.fixture
def public() -> Iterator[dict[str, LoopbackDNSServer]]:
    servers = {ip: LoopbackDNSServer({NAME: PROD_IP}) for ip in ("8.8.8.8", "1.1.1.1", "9.9.9.9")}
    for s in servers.values():
        s.start()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.stop()


def propagation(servers: dict[str, LoopbackDNSServer], timeout: float = 2.0) -> StepResult:
    factory = PublicResolvers(servers)
    ctx = StepContext(resolver_factory=factory, timeout=timeout)
    params = {"name": NAME, "expected_ip": PROD_IP, "resolvers": ["8.8.8.8", "1.1.1.1", "9.9.9.9"]}
    result = run_check("dns", params, ctx)
    assert sorted(a[0] for a in factory.asked if a) == ["1.1.1.1", "8.8.8.8", "9.9.9.9"]
    return result


def test_dns_propagated_to_google_cloudflare_and_quad9_passes(
    public: dict[str, LoopbackDNSServer],
) -> None:
    result = propagation(public)
    assert result.status is Status.PASS
    assert result.evidence == f"{NAME} A → {PROD_IP} at 3/3 resolvers"


def test_partial_propagation_names_each_lagging_resolver(
    public: dict[str, LoopbackDNSServer],
) -> None:
    public["1.1.1.1"].records[NAME] = OLD_IP
    public["9.9.9.9"].drop.add(NAME)
    start = time.monotonic()
    result = propagation(public, timeout=0.5)
    assert time.monotonic() - start < 1.5  # resolvers are asked at once, not one after another
    assert result.status is Status.FAIL
    assert result.evidence == (
        f"{NAME} A → {PROD_IP} at 1/3 resolvers; "
        f"1.1.1.1: {OLD_IP} (expected {PROD_IP}); 9.9.9.9: timeout"
    )


def test_every_resolver_timing_out_is_an_error_not_a_wrong_answer(
    public: dict[str, LoopbackDNSServer],
) -> None:
    for server in public.values():
        server.drop.add("*")
    result = propagation(public, timeout=0.3)
    assert result.status is Status.ERROR
    assert "at 0/3 resolvers" in result.evidence


def test_test_dns_server_also_answers_over_tcp(zone: LoopbackDNSServer) -> None:
    query = dns.message.make_query(NAME, "A")
    response = dns.query.tcp(query, LOOPBACK, port=zone.port, timeout=2)
    assert response.rcode() == dns.rcode.NOERROR
    assert [rr.to_text() for rr in response.answer[0]] == [PROD_IP]
    zone.servfail.add(NAME)
    assert dns.query.tcp(query, LOOPBACK, port=zone.port, timeout=2).rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize(
    "params",
    [
        {"name": NAME, "expected_ip": "not-an-ip"},
        {"name": NAME, "expected_ip": "fd00::5"},  # an IPv6 address for an A record
        {"name": NAME, "expected_ip": PROD_IP, "record": "MX"},
        {"name": NAME, "expected_ip": PROD_IP, "resolvers": ["dns.google"]},
        {"name": NAME, "expected_ip": PROD_IP, "resolvers": ["1.1.1.1:dns"]},
        {"name": NAME, "expected_ip": PROD_IP, "nameserver": "1.1.1.1"},
    ],
)
def test_bad_params_are_rejected_before_running(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REGISTRY["dns"].params.model_validate(params)


def test_empty_resolver_list_means_the_system_resolver() -> None:
    params = REGISTRY["dns"].params.model_validate(
        {"name": NAME, "expected_ip": PROD_IP, "resolvers": []}
    )
    assert params.resolvers is None  # type: ignore[attr-defined]


def test_resolver_entries_accept_ipv6_with_port() -> None:
    from phases.checks.dns_check import split_resolver

    assert split_resolver("[::1]:5353", 53) == ("::1", 5353)
    assert split_resolver("::1", 53) == ("::1", 53)
    assert split_resolver("127.0.0.1:5353", 53) == ("127.0.0.1", 5353)
