"""`cutover demo`: a newcomer's whole cutover on one machine, through the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Start waits for the T-1h maintenance page (a pre-cutover item that gates Start).
START = "/cutover tick demo maintenance-page\n/cutover start demo\n"


# The T-1h maintenance page gates Start; Phase 8 turns it off again and the bot marks the
# status page OPERATIONAL; Phase 9 watches four rounds on the demo's clock: a payment
# webhook and a forged one (counted in round 2), a user's NIP-05 claim, a missed round
# (`wait 11`: the golden rule's ❌), a deviation, a Retry of the window, then completion.
WHOLE_CUTOVER = [
    "/cutover start demo",
    "/cutover tick demo maintenance-page",
    "/cutover start demo",
    "c",
    "c",
    "c",
    "tick login",
    "tick payment",
    "c",
    "c",
    "tick maintenance-off",
    "c",
    "webhook",
    "webhook forged",
    "claim demo-user",
    "wait 5",
    "wait 11",
    "/cutover deviation 1 paid the PRO invoice from a test wallet",
    "t",
    "wait 5",
    "wait 5",
    "wait 5",
    "tick payment-webhook",
    "c",
    "quit",
]


def demo(tmp_path: Path, answers: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("CUTOVER_RUNBOOK", None)
    env.pop("CUTOVER_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--as", "newcomer"],
        input=answers,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )


def trail(tmp_path: Path) -> list[dict[str, Any]]:
    """The demo's audit trail, exported as its exit message says."""
    url = f"sqlite:///{tmp_path.resolve() / 'cutover-demo.db'}"
    exported = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", "export", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [json.loads(line) for line in exported.stdout.splitlines()]


def ticks(events: list[dict[str, Any]], item: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "manual.ticked" and e["data"]["item"] == item]


def test_demo_runs_a_whole_cutover_at_the_console(tmp_path: Path) -> None:
    proc = demo(tmp_path, "\n".join(WHOLE_CUTOVER) + "\n")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    phases = (
        "Readiness checks",
        "Deploy configuration",
        "Smoke test",
        "End-to-end critical path",
        "Enable public access",
        "Post-cutover monitoring",
    )
    for number, phase in enumerate(phases, 1):
        assert f"✅ {number}. {phase}" in out
    assert "Run #1 · demo · completed" in out
    assert "/cutover deviation RUN TEXT" in out  # the demo says how
    assert "HTTP Request" not in proc.stderr  # no client chatter at the prompt


def test_demo_shows_phase_8_and_9_as_its_audit_trail_has_them(tmp_path: Path) -> None:
    """Each Phase 8 and 9 item the demo shows, compared with the row of the trail it is."""
    proc = demo(tmp_path, "\n".join(WHOLE_CUTOVER) + "\n")
    assert proc.returncode == 0, proc.stderr
    out, events = proc.stdout, trail(tmp_path)

    # T-1h: the maintenance page gates Start; ticked, Start goes.
    assert "Start refused: 1 pre-cutover item needed before Start is not done" in out
    [page] = [e for e in events if e["kind"] == "checklist.ticked"]
    assert page["data"]["item"] == "maintenance-page" and page["actor"] == "console:newcomer"
    assert f"✅ {page['data']['text']} [maintenance-page] ticked by newcomer" in out

    # Phase 8: Continue waits for the page to be off again (its T-1h counterpart) ...
    refused = [e for e in events if e["kind"] == "action.refused"]
    assert any("maintenance-off" in json.dumps(e["data"]) for e in refused), refused
    assert "decision> tick every manual step first: maintenance-off" in out
    [off] = ticks(events, "maintenance-off")
    assert off["actor"] == "console:newcomer" and "decision> maintenance-off ticked" in out
    # ... and the status page is marked OPERATIONAL by the bot, through the API.
    [status] = ticks(events, "status-page")
    assert status["actor"] == "system" and status["data"]["done_by"] == "mark-operational"
    assert " (NostrMaxi API) is operational (updated_at " in status["data"]["evidence"]
    assert f"✅ Status page component marked operational: {status['data']['evidence']}" in out
    assert "[x] (by the bot) status-page: Status page: service marked OPERATIONAL" in out

    # Phase 9: each round's webhook deliveries, as the round's row has them.
    rounds = [e["data"] for e in events if e["kind"] == "monitor.round"]
    assert [r["round"] for r in rounds] == [1, 2, 4, 1, 2, 3, 4]
    for r in rounds:
        [hooks] = [s for s in r["steps"] if s["step"] == "webhooks"]
        assert f"Webhook deliveries successful (last 5 min): {hooks['evidence']}" in out
    second = next(s for s in rounds[1]["steps"] if s["step"] == "webhooks")
    assert second["status"] == "fail"
    assert second["evidence"].startswith(
        "payments processed: 1, webhook failures: 1; webhook failures 1 > 0"
    )
    assert "🚨 Monitoring round 2/4 (T+5 min): failed" in out
    # A user action seen: the NIP-05 claim, in the app's API, from round 2 on.
    users = [next(s for s in r["steps"] if s["step"] == "user-actions") for r in rounds]
    assert [u["status"] for u in users] == ["warn", "pass", "pass", "pass", "pass", "pass", "pass"]
    assert (
        f"✅ A user's NIP-05 claim (demo-user) seen in the NIP-05 API: {users[1]['evidence']}"
        in out
    )

    # The golden rule: a missed round is a ❌ that takes a decision (here: Retry the window).
    [missed] = [e for e in events if e["kind"] == "monitor.missed"]
    assert missed["data"]["rounds"] == [3]
    assert "⚠️ Monitoring rounds 3 of 4 were missed while the bot was not running" in out
    assert "❌ Health check passing: round(s) 3 of 4 missed (the bot was not running)" in out
    assert "Decision point: FAIL → ROLLBACK" in out
    assert "Phase 6 retried by newcomer." in out

    # The conditional payment test: asked only if no payment was seen since monitoring
    # began. The first window saw one, so the bot ticked it with that round's evidence; the
    # retried window saw none (the payment came before it), so the person was asked.
    paid = ticks(events, "payment-webhook")
    assert [t["actor"] for t in paid] == ["system", "console:newcomer"]
    assert paid[0]["data"]["ask_unless"] == "payments" and paid[0]["data"]["round"] == 4
    assert paid[0]["data"]["evidence"].startswith("payments: 1 in 1 container(s)")
    assert f"✅ Organic payments since monitoring began: {paid[0]['data']['evidence']}" in out
    assert "[x] (by the bot) payment-webhook: Payment webhook tested by hand" in out
    assert "[ ] payment-webhook: Payment webhook tested by hand" in out
    assert "decision> payment-webhook ticked" in out
    assert (
        "Payment Test Completed: YES — manual step monitoring/payment-webhook ticked by "
        "console:newcomer"
    ) in out

    # The deviation a person added, in the record as the trail has it.
    [dev] = [e for e in events if e["kind"] == "record.deviation"]
    assert dev["data"]["text"] == "paid the PRO invoice from a test wallet"
    assert f"deviation added to run #1's record: {dev['data']['text']}" in out
    assert f"- {dev['data']['text']} (added by console:newcomer at " in out


def test_demo_rollback_runs_the_rollback_steps(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--as", "newcomer"],
        input=START + "c\nr changed my mind\nyes\nquit\n",
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
        input=START + "c\nr changed my mind\nyes\nquit\n",
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
        input=START + "quit\n",
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
