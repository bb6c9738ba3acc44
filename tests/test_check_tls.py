"""`tls`: T-24h "Valid certificates with >30 days until expiry", and "HTTPS without warnings"."""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from phases.checks import REGISTRY
from phases.checks.base import Status, StepResult
from tests import servers
from tests.servers import CA, LOOPBACK, ManualClock, make_cert, make_leaf, run_check, tls_server

ca = servers.ca  # fixture: a test CA in tmp_path

HOST = "nostrmaxi.test"


def from_file(path: Path | str, **params: Any) -> StepResult:
    ctx_fields = {k: params.pop(k) for k in ("clock", "workdir") if k in params}
    result = run_check("tls", {"file": str(path), **params}, **ctx_fields)
    assert len(result.evidence) <= 200
    return result


def live(files: Any, **params: Any) -> StepResult:
    with tls_server(files) as server:
        params = {"host": LOOPBACK, "port": server.port, "server_name": HOST} | params
        result = run_check("tls", params, timeout=params.pop("timeout", 3.0))
    assert len(result.evidence) <= 200
    return result


def in_days(days: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%d")


def test_kind_is_registered_read_only() -> None:
    assert REGISTRY["tls"].mutates is False


# ------------------------------------------------------------------ from the PEM file


def test_tls_certificate_expiring_in_10_days_fails_30_day_rule(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, HOST, days=10).cert
    result = from_file(cert, min_days=30)
    assert result.status is Status.FAIL
    assert result.evidence == f"cert CN={HOST} expires {in_days(10)} (9 days left, need >30)"


def test_tls_certificate_valid_90_days_passes_30_day_rule(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, HOST, days=90).cert
    result = from_file(cert)
    assert result.status is Status.PASS
    assert result.evidence == f"cert CN={HOST} expires {in_days(90)} (89 days left, need >30)"
    assert result.details["days_left"] == 89


def test_expired_certificate_file_fails(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, HOST, days=-3).cert
    result = from_file(cert)
    assert result.status is Status.FAIL
    assert result.evidence.startswith(f"cert CN={HOST} expired {in_days(-3)} (3 days ago")


def test_expiry_is_measured_with_the_step_clock(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, HOST, days=90).cert
    sixty_one_days_later = ManualClock(time.time() + 61 * 86400)
    result = from_file(cert, clock=sixty_one_days_later)
    assert result.status is Status.FAIL
    assert "(28 days left, need >30)" in result.evidence


def test_fullchain_file_is_judged_by_its_leaf(tmp_path: Path, ca: CA) -> None:
    leaf = make_leaf(tmp_path, ca, HOST, days=10)
    fullchain = tmp_path / "fullchain.pem"
    fullchain.write_bytes(leaf.cert.read_bytes() + ca.cert.read_bytes())
    result = from_file(fullchain)
    assert result.status is Status.FAIL
    assert f"CN={HOST}" in result.evidence


def test_missing_certificate_file_fails(tmp_path: Path) -> None:
    result = from_file(tmp_path / "nginx/ssl/cert.pem")
    assert result.status is Status.FAIL
    assert result.evidence == f"cert file {tmp_path / 'nginx/ssl/cert.pem'} not found"


def test_file_without_a_certificate_fails(tmp_path: Path) -> None:
    key = make_cert(tmp_path, HOST, days=90).key
    result = from_file(key)
    assert result.status is Status.FAIL
    assert "holds no PEM certificate" in result.evidence


def test_certificate_path_is_relative_to_the_workdir(tmp_path: Path) -> None:
    ssl_dir = tmp_path / "nginx" / "ssl"
    ssl_dir.mkdir(parents=True)
    make_cert(ssl_dir, HOST, days=90).cert.rename(ssl_dir / "cert.pem")
    result = from_file("nginx/ssl/cert.pem", workdir=str(tmp_path))
    assert result.status is Status.PASS, result.evidence


# ------------------------------------------------------------------ from the live endpoint


def test_live_certificate_signed_by_trusted_ca_valid_90_days_passes(tmp_path: Path, ca: CA) -> None:
    result = live(make_leaf(tmp_path, ca, HOST, days=90), ca_file=str(ca.cert))
    assert result.status is Status.PASS, result.evidence
    assert (
        result.evidence == f"{HOST}: cert CN={HOST} expires {in_days(90)} (89 days left, need >30)"
    )
    assert result.details["verified"] is True


def test_live_certificate_expiring_in_10_days_fails_30_day_rule(tmp_path: Path, ca: CA) -> None:
    result = live(make_leaf(tmp_path, ca, HOST, days=10), ca_file=str(ca.cert))
    assert result.status is Status.FAIL
    assert result.evidence.endswith("(9 days left, need >30)")


def test_live_certificate_for_another_host_fails_verification(tmp_path: Path, ca: CA) -> None:
    result = live(make_leaf(tmp_path, ca, "old-server.test", days=90), ca_file=str(ca.cert))
    assert result.status is Status.FAIL
    assert "verification failed: Hostname mismatch" in result.evidence
    assert "(cert CN=old-server.test, expires" in result.evidence


def test_live_expired_certificate_fails_verification(tmp_path: Path, ca: CA) -> None:
    result = live(make_leaf(tmp_path, ca, HOST, days=-1), ca_file=str(ca.cert))
    assert result.status is Status.FAIL
    assert "verification failed: certificate has expired" in result.evidence


def test_live_self_signed_certificate_fails_verification(tmp_path: Path) -> None:
    result = live(make_cert(tmp_path, HOST, days=90))
    assert result.status is Status.FAIL
    assert "verification failed: self" in result.evidence  # "self-signed certificate"
    assert result.evidence.startswith("127.0.0.1:")


def test_live_self_signed_certificate_passes_with_verify_off(tmp_path: Path) -> None:
    result = live(make_cert(tmp_path, HOST, days=90), verify=False)
    assert result.status is Status.PASS, result.evidence
    assert result.details["verified"] is False


def test_live_expiring_certificate_fails_even_with_verify_off(tmp_path: Path) -> None:
    result = live(make_cert(tmp_path, HOST, days=10), verify=False)
    assert result.status is Status.FAIL


def test_nothing_listening_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
    result = run_check("tls", {"host": LOOPBACK, "port": port}, timeout=1.0)
    assert result.status is Status.ERROR
    assert result.evidence.startswith(f"{LOOPBACK}:{port}: cannot connect")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts TCP connections and never speaks: a TLS handshake hangs."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        s.listen(4)
        yield s.getsockname()[1]


def test_handshake_that_hangs_is_bounded_by_the_step_timeout(silent_port: int) -> None:
    start = time.monotonic()
    result = run_check("tls", {"host": LOOPBACK, "port": silent_port}, timeout=0.4)
    assert time.monotonic() - start < 1.5
    assert result.status is Status.ERROR
    assert "timed out after 0.4s" in result.evidence


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"file": "cert.pem", "host": "example.test"},
        {"file": "cert.pem", "min_days": -1},
        {"host": "example.test", "port": 0},
        {"host": "example.test", "verify_hostname": False},
    ],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REGISTRY["tls"].params.model_validate(params)


# ------------------------------------------- names as the libraries read them (issue 25 #3)

UNICODE_HOST, UNICODE_ALABEL = "bücher.example", "xn--bcher-kva.example"


@pytest.mark.parametrize("given", [UNICODE_HOST, UNICODE_ALABEL])
def test_certificate_for_a_unicode_domain_passes_written_either_way(
    tmp_path: Path, given: str
) -> None:
    cert = make_cert(tmp_path, UNICODE_ALABEL, days=90).cert
    result = from_file(cert, names=[given])
    assert result.status is Status.PASS, result.evidence
    shown = given if given == UNICODE_ALABEL else f"{UNICODE_HOST} ({UNICODE_ALABEL})"
    assert result.evidence.endswith(f"need >30), valid for {shown}")


def test_unicode_name_is_encoded_as_idna_2008_not_2003(tmp_path: Path) -> None:
    # IDNA 2003 (Python's "idna" codec) maps ß to ss; browsers and the idna package keep it.
    cert = make_cert(tmp_path, "xn--strae-oqa.example", days=90).cert
    assert from_file(cert, names=["straße.example"]).status is Status.PASS
    other = from_file(
        make_cert(tmp_path, "strasse.example", days=90).cert, names=["straße.example"]
    )
    assert other.status is Status.FAIL
    assert "is not valid for straße.example (xn--strae-oqa.example)" in other.evidence
    assert other.details["failed"] == "name"


def test_ipv6_address_matches_in_any_spelling(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, HOST, days=90, sans=[HOST, "::1"]).cert
    result = from_file(cert, names=["0:0:0:0:0:0:0:1"])
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.endswith("valid for 0:0:0:0:0:0:0:1 (::1)")


def test_certificate_for_another_ip_address_is_a_name_mismatch(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, HOST, days=90, sans=[HOST, "::1"]).cert
    result = from_file(cert, names=["::2"])
    assert result.status is Status.FAIL
    assert result.evidence == f"cert CN={HOST} is not valid for ::2 (its names: {HOST}, ::1)"
    assert result.details["failed"] == "name"


@pytest.mark.parametrize("name", ["*.example.com", "bad name.example", ""])
def test_a_name_that_is_no_host_is_refused_with_what_it_is(name: str) -> None:
    with pytest.raises(ValidationError, match="neither an IP address nor a valid host name"):
        REGISTRY["tls"].params.model_validate({"file": "cert.pem", "names": [name]})


# ------------------------------------------------ the chain in the file (issue 25 #3)


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, Path]:
    """root.crt (the CA), leaf.pem (signed by an intermediate), fullchain.pem (leaf + it)."""
    root = servers.make_ca(tmp_path, "Cutover Test Root")
    intermediate = servers.make_ca(tmp_path, "Cutover Test Intermediate", issuer=root)
    leaf = make_leaf(tmp_path, intermediate, HOST, days=90)
    files = {
        "root.crt": root.cert.read_bytes(),
        "leaf.pem": leaf.cert.read_bytes(),
        "fullchain.pem": leaf.cert.read_bytes() + intermediate.cert.read_bytes(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {"key": leaf.key, **{name: tmp_path / name for name in files}}


def test_fullchain_file_is_verified_to_the_ca_file(tmp_path: Path, chain: dict[str, Path]) -> None:
    result = from_file("fullchain.pem", ca_file="root.crt", names=[HOST], workdir=str(tmp_path))
    assert result.status is Status.PASS, result.evidence
    assert result.evidence == (
        f"cert CN={HOST} expires {in_days(90)} (89 days left, need >30), valid for {HOST}, "
        "chain verified to CN=Cutover Test Root"
    )
    assert result.details["verified"] is True


def test_file_without_its_intermediate_is_an_untrusted_chain(
    tmp_path: Path, chain: dict[str, Path]
) -> None:
    result = from_file("leaf.pem", ca_file="root.crt", workdir=str(tmp_path))
    assert result.status is Status.FAIL
    assert result.evidence == (
        f"cert CN={HOST}: untrusted chain: issuer CN=Cutover Test Intermediate of CN={HOST} "
        "is in neither leaf.pem nor ca_file root.crt"
    )
    assert (result.details["failed"], result.details["verified"]) == ("chain", False)


def test_self_signed_file_is_an_untrusted_chain_against_the_ca_file(tmp_path: Path, ca: CA) -> None:
    cert = make_cert(tmp_path, HOST, days=90).cert
    result = from_file(cert, ca_file=str(ca.cert))
    assert result.status is Status.FAIL
    assert result.evidence.startswith(f"cert CN={HOST}: untrusted chain: CN={HOST} is self-signed")


def test_verify_checks_the_file_against_the_system_trust_store(
    tmp_path: Path, chain: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    untrusted = from_file("fullchain.pem", verify=True, workdir=str(tmp_path))
    assert untrusted.status is Status.FAIL
    assert "untrusted chain: issuer CN=Cutover Test Root of CN=Cutover Test Intermediate" in (
        untrusted.evidence
    )
    assert "nor the system trust store" in untrusted.evidence
    monkeypatch.setenv("SSL_CERT_FILE", str(chain["root.crt"]))  # as OpenSSL reads it
    trusted = from_file("fullchain.pem", verify=True, workdir=str(tmp_path))
    assert trusted.status is Status.PASS, trusted.evidence
    assert trusted.evidence.endswith("chain verified to CN=Cutover Test Root")


def test_file_with_a_broken_chain_and_too_few_days_says_expiry_first(
    tmp_path: Path, ca: CA
) -> None:
    cert = make_cert(tmp_path, HOST, days=-2).cert
    result = from_file(cert, ca_file=str(ca.cert))
    assert result.status is Status.FAIL
    assert result.details["failed"] == "expiry"
    assert "untrusted chain" not in result.evidence


# ------------------------------------- the same, against a real TLS server (issue 25 #3)


def test_live_unicode_domain_passes_written_in_unicode(tmp_path: Path, ca: CA) -> None:
    leaf = make_leaf(tmp_path, ca, UNICODE_ALABEL, days=90)
    params = {"server_name": UNICODE_HOST, "names": [UNICODE_HOST], "ca_file": str(ca.cert)}
    result = live(leaf, **params)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith(f"{UNICODE_HOST}: cert CN={UNICODE_ALABEL} expires")
    assert result.evidence.endswith(f"valid for {UNICODE_HOST} ({UNICODE_ALABEL})")


def test_live_idna_2008_name_is_verified_as_browsers_encode_it(tmp_path: Path, ca: CA) -> None:
    leaf = make_leaf(tmp_path, ca, "xn--strae-oqa.example", days=90)
    result = live(leaf, server_name="straße.example", ca_file=str(ca.cert))
    assert result.status is Status.PASS, result.evidence


def test_live_ipv6_endpoint_matches_its_san_in_another_spelling(tmp_path: Path, ca: CA) -> None:
    leaf = make_leaf(tmp_path, ca, HOST, days=90, sans=[HOST, "::1"])
    with tls_server(leaf, host="::1") as server:
        params = {
            "host": "0:0:0:0:0:0:0:1",
            "port": server.port,
            "names": ["0:0:0:0:0:0:0:1"],
            "ca_file": str(ca.cert),
        }
        result = run_check("tls", params, timeout=3.0)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith("0:0:0:0:0:0:0:1: cert CN=")
    assert result.evidence.endswith("valid for 0:0:0:0:0:0:0:1 (::1)")


def test_live_server_missing_the_intermediate_is_an_untrusted_chain(
    chain: dict[str, Path],
) -> None:
    result = live((chain["leaf.pem"], chain["key"]), ca_file=str(chain["root.crt"]))
    assert result.status is Status.FAIL
    assert ": untrusted chain: verification failed: unable to get local issuer certificate" in (
        result.evidence
    )
    assert result.details["failed"] == "chain"


def test_live_server_sending_the_intermediate_passes(chain: dict[str, Path]) -> None:
    result = live((chain["fullchain.pem"], chain["key"]), ca_file=str(chain["root.crt"]))
    assert result.status is Status.PASS, result.evidence


def test_live_failures_say_which_check_failed(tmp_path: Path, ca: CA) -> None:
    other = live(make_leaf(tmp_path, ca, "old-server.test", days=90), ca_file=str(ca.cert))
    expired = live(make_leaf(tmp_path, ca, HOST, days=-1), ca_file=str(ca.cert))
    assert ": name mismatch: verification failed: Hostname mismatch" in other.evidence
    assert ": certificate expired: verification failed: certificate has expired" in (
        expired.evidence
    )
    assert (other.details["failed"], expired.details["failed"]) == ("name", "expiry")


def test_shipped_runbook_checks_the_chain_of_the_certificate_file_it_reads() -> None:
    shipped = Path(__file__).resolve().parent.parent / "runbooks" / "nostrmaxi.yml"
    data = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    file_steps = [
        step["params"]
        for phase in data["phases"]
        for step in phase.get("checks", [])
        if step["kind"] == "tls" and "file" in step["params"]
    ]
    assert file_steps
    for params in file_steps:
        rendered = {**params, "file": "cert.pem", "names": ["nostrmaxi.com"]}
        assert REGISTRY["tls"].params.model_validate(rendered).checks_chain, params
