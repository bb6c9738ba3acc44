"""`cutover demo`: a newcomer's whole cutover on one machine, through the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_a_whole_cutover_at_the_console(tmp_path: Path) -> None:
    answers = (
        "/cutover start demo\nc\nc\nc\ntick login\ntick payment\n"
        "/cutover deviation 1 paid the PRO invoice from a test wallet\nc\nc\nquit\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("CUTOVER_RUNBOOK", None)
    env.pop("CUTOVER_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--as", "newcomer"],
        input=answers,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    phases = (
        "Readiness checks",
        "Deploy configuration",
        "Smoke test",
        "End-to-end critical path",
        "Enable public access",
    )
    for number, phase in enumerate(phases, 1):
        assert f"✅ {number}. {phase}" in out
    assert "❌" not in out and "⛔" not in out, out
    assert "Run #1 · demo · completed" in out
    assert "/cutover deviation RUN TEXT" in out  # the demo says how
    assert "deviation added to run #1's record: paid the PRO invoice from a test wallet" in out
    assert "HTTP Request" not in proc.stderr  # no client chatter at the prompt


def test_demo_rollback_runs_the_rollback_steps(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--as", "newcomer"],
        input="/cutover start demo\nc\nr changed my mind\nyes\nquit\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Rollback finished; every step passed." in proc.stdout
    assert "rollback Remove the deployed .env" in proc.stdout


def test_demo_keeps_its_audit_trail_in_the_working_folder(tmp_path: Path) -> None:
    """After quitting, the commands the demo printed export and verify the run's trail."""
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--as", "newcomer"],
        input="/cutover start demo\nc\nr changed my mind\nyes\nquit\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    database = tmp_path.resolve() / "cutover-demo.db"
    assert f"The bot's database (runs, audit trail) is {database}" in proc.stdout
    said = proc.stdout.rsplit("Export or verify it with:\n", 1)[1].splitlines()
    export, verify = (line.strip().split() for line in said[:2])
    assert export[:3] == ["cutover", "audit", "export"] and verify[:3] == [
        "cutover",
        "audit",
        "verify",
    ]
    exported = subprocess.run(
        [sys.executable, "-m", "bot.cli", *export[1:]], capture_output=True, text=True, timeout=60
    )
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert "run.started" in kinds and "run.rolled_back" in kinds, kinds
    verified = subprocess.run(
        [sys.executable, "-m", "bot.cli", *verify[1:]], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"audit chain OK: {len(kinds)} events verified")


def test_demo_first_checkpoint_shows_the_domain_and_the_cert_cn_but_no_secret(
    tmp_path: Path,
) -> None:
    """The demo's env file holds DOMAIN=localhost; the runbook marks it (and the payment
    provider) public, so the DNS and TLS lines name what they checked. Secrets stay hidden."""
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--as", "newcomer"],
        input="/cutover start demo\nquit\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.split("Phase 1: Readiness checks", 1)[1].split("Decision point", 1)[0]
    assert "localhost A → 127.0.0.1" in first, first
    assert "cert CN=localhost expires" in first, first
    assert "secrets OK: btcpay settings" in first, first
    assert "[redacted]" not in first, first
