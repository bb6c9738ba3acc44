"""The runbook's own scripts (production-readiness-check.sh, validate-secrets-full.sh,
backup-db.sh, health-check.sh) run as steps in the app folder, beside the bot's checks: their
exit code judged, their output kept and masked; one the app does not ship is said to be
missing, never a pass; health-check.sh goes via the server's IP when the domain does not
resolve to it yet (real scripts, a real loopback NostrMaxi and DNS server)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from phases.checks.base import OUTPUT, Status, StepContext
from phases.secrets import MASK, Masker, parse_env_file
from tests.nostrmaxi_lines import run_shipped, shipped
from tests.servers import LoopbackDNSServer, NostrMaxiStandin, dns_server, nostrmaxi  # noqa: F401

JWT = "j" * 70
# What a readiness checker does: reads the env file it is given and counts failures.
READINESS = f"""#!{sys.executable}
import sys
env = dict(l.strip().split("=", 1) for l in open(sys.argv[1]) if "=" in l)
print("checking", sys.argv[1])
print("JWT_SECRET=" + env["JWT_SECRET"])
bad = [k for k in ("BTCPAY_URL", "WEBHOOK_SECRET") if not env.get(k)]
for k in bad:
    print("FAIL:", k, "missing")
print(f"{{len(bad)}} failures")
sys.exit(1 if bad else 0)
"""
# What health-check.sh does: GET each endpoint of the URL it is given, 200 or fail.
HEALTH = f"""#!{sys.executable}
import sys, urllib.request
for path in ("/health", "/.well-known/nostr.json?name=test", "/api/v1/subscriptions/tiers"):
    with urllib.request.urlopen(sys.argv[1] + path, timeout=5) as r:
        print(r.status, sys.argv[1] + path)
"""


def script(app: Path, name: str, text: str) -> None:
    path = app / "scripts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def env_file(tmp_path: Path, **extra: str) -> Path:
    path = tmp_path / ".env.prod"
    values = {"DOMAIN": "nostrmaxi.com", "JWT_SECRET": JWT, "WEBHOOK_SECRET": "w" * 40, **extra}
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def ctx_for(env: Path) -> StepContext:
    masker = Masker()
    masker.add_env(parse_env_file(str(env)), public=frozenset({"DOMAIN"}))
    return StepContext(timeout=30.0, masker=masker)


def test_each_script_is_a_step_of_the_shipped_runbook_in_the_app_folder() -> None:
    runbook = shipped()
    steps = {
        (p.id, s.id): s.params["argv"][0]
        for p in runbook.phases
        for s in [*p.actions, *p.checks]
        if s.kind in ("command", "run") and str(s.params["argv"][0]).startswith("./scripts/")
    }
    assert steps == {
        ("readiness", "backup-script"): "./scripts/backup-db.sh",
        ("readiness", "readiness-script"): "./scripts/production-readiness-check.sh",
        ("readiness", "secrets-script"): "./scripts/validate-secrets-full.sh",
        ("readiness", "staging-health-script"): "./scripts/health-check.sh",
        ("deploy-config", "readiness-script"): "./scripts/production-readiness-check.sh",
        ("smoke", "health-script"): "./scripts/health-check.sh",
    }


def test_readiness_script_with_failures_fails_phase_0_and_keeps_its_output_masked(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app"
    script(app, "production-readiness-check.sh", READINESS)
    env = env_file(tmp_path, BTCPAY_URL="")
    ctx = ctx_for(env)
    result = run_shipped("readiness", "readiness-script", ctx, app_dir=str(app), env_file=str(env))
    assert result.status is Status.FAIL
    assert result.evidence == "exit 1: 1 failures"
    kept = result.details[OUTPUT].text
    assert "FAIL: BTCPAY_URL missing" in kept
    assert f"JWT_SECRET={MASK}" in kept and JWT not in kept
    env.write_text(env.read_text().replace("BTCPAY_URL=", "BTCPAY_URL=https://pay.example"))
    ok = run_shipped("readiness", "readiness-script", ctx, app_dir=str(app), env_file=str(env))
    assert ok.status is Status.PASS and ok.evidence.startswith("exit 0 in ")


def test_a_script_the_app_does_not_ship_is_reported_missing_never_a_pass(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    env = env_file(tmp_path)
    for phase, step, name in (
        ("readiness", "secrets-script", "validate-secrets-full.sh"),
        ("readiness", "backup-script", "backup-db.sh"),
        ("deploy-config", "readiness-script", "production-readiness-check.sh"),
    ):
        result = run_shipped(phase, step, ctx_for(env), app_dir=str(app), env_file=str(env))
        assert result.status is Status.WARN, (step, result.evidence)
        assert result.evidence == f"not shipped: ./scripts/{name} not found in {app}; not run"


def test_backup_script_runs_in_the_app_folder_with_the_env_file_it_declares(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app"
    script(
        app,
        "backup-db.sh",
        '#!/bin/sh\nmkdir -p backups && echo "dump of $DOMAIN" > backups/db.sql && '
        'echo "backup written to backups/db.sql (secret $JWT_SECRET)"\n',
    )
    env = env_file(tmp_path)
    result = run_shipped(
        "readiness", "backup-script", ctx_for(env), app_dir=str(app), env_file=str(env)
    )
    assert result.status is Status.PASS, result.evidence
    assert (app / "backups" / "db.sql").read_text() == "dump of nostrmaxi.com\n"
    assert result.details[OUTPUT].text == f"backup written to backups/db.sql (secret {MASK})\n"
    assert "JWT_SECRET" not in os.environ  # the script's env was the runbook's, not the bot's


def test_health_script_tests_the_domain_when_it_resolves_to_the_server(
    tmp_path: Path,
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
    dns_server: LoopbackDNSServer,  # noqa: F811
) -> None:
    app = tmp_path / "app"
    script(app, "health-check.sh", HEALTH)
    dns_server.records["nostrmaxi.test"] = "127.0.0.1"
    result = run_shipped(
        "smoke",
        "health-script",
        StepContext(timeout=30.0),
        app_dir=str(app),
        base_url=nostrmaxi.url,
        domain="nostrmaxi.test",
        expected_ip="127.0.0.1",
        app_port="1",  # the fallback would fail: nothing listens on port 1
        dns_resolvers=[dns_server.address],
    )
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.endswith(
        f"nostrmaxi.test A → 127.0.0.1 at 1/1 resolvers: ran ./scripts/health-check.sh "
        f"{nostrmaxi.url}"
    )
    assert f"200 {nostrmaxi.url}/api/v1/subscriptions/tiers" in result.details[OUTPUT].text
    assert result.details["resolved"] is True


def test_health_script_goes_via_the_server_ip_when_the_domain_does_not_resolve_yet(
    tmp_path: Path,
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
    dns_server: LoopbackDNSServer,  # noqa: F811
) -> None:
    app = tmp_path / "app"
    script(app, "health-check.sh", HEALTH)
    port = nostrmaxi.url.rsplit(":", 1)[1]
    values = {
        "app_dir": str(app),
        "base_url": "http://nostrmaxi.test:1",  # unused: the name does not resolve
        "domain": "nostrmaxi.test",
        "expected_ip": "127.0.0.1",
        "app_port": port,
        "dns_resolvers": [dns_server.address],
    }
    result = run_shipped("smoke", "health-script", StepContext(timeout=30.0), **values)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.endswith(
        "nostrmaxi.test not resolving to 127.0.0.1 yet (127.0.0.1:"
        f"{dns_server.port}: NXDOMAIN): ran ./scripts/health-check.sh http://127.0.0.1:{port}"
    )
    assert ("GET", "/health") in nostrmaxi.requests
    # Resolving to another server (the old one) is not resolving yet either.
    dns_server.records["nostrmaxi.test"] = "127.0.0.2"
    again = run_shipped("smoke", "health-script", StepContext(timeout=30.0), **values)
    assert again.status is Status.PASS
    assert "127.0.0.2 (expected 127.0.0.1)" in again.evidence
    # The IP path fails as the script says: a FAIL, never a pass.
    nostrmaxi.health_status = "down"
    down = run_shipped("smoke", "health-script", StepContext(timeout=30.0), **values)
    assert down.status is Status.FAIL
    assert down.evidence.startswith("exit 1: urllib.error.HTTPError: HTTP Error 503")
