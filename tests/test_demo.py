"""`cutover demo`: a newcomer's whole cutover on one machine, through the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_a_whole_cutover_at_the_console(tmp_path: Path) -> None:
    answers = "/cutover start demo\nc\nc\nc\ntick login\ntick payment\nc\nc\nquit\n"
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
    assert "HTTP Request" not in proc.stderr  # no client chatter at the prompt


def test_demo_rollback_runs_the_rollback_steps(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--as", "newcomer"],
        input="/cutover start demo\nc\nr changed my mind\nquit\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Rollback finished; every step passed." in proc.stdout
    assert "rollback Remove the deployed .env" in proc.stdout
