"""Phase 7's ticks that carry a value and the checks bound to them, with the shipped e2e
phase: the NIP-05 claim is ticked with the claiming account's pubkey and the bot then looks
the name up on a real loopback HTTPS server and compares; the payment's tick starts a watch
of the backend container's real logs for the webhook line within 30 s, and a PRO check of
the account's subscription. A failure turns the checkpoint red, and the record says what
the audit trail says (tests/trail_checker.py)."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import audit
from bot.engine import Engine, tick_checks
from bot.record import build_record, record_text
from bot.standin import NostrMaxiStandin, json_response, make_ca, make_leaf, nostrmaxi_standin
from bot.store.db import Database
from bot.store.reads import gate_view, open_gate_id
from bot.text import checkpoint_text
from phases.runbook import Runbook, load_runbook
from phases.runner import run_checks
from tests.docker_fixtures import Compose
from tests.schedule_helpers import ALICE, BOB, make_engine
from tests.servers import ManualClock
from tests.trail_checker import check_record, exported_rows

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = yaml.safe_load((ROOT / "runbooks" / "nostrmaxi.yml").read_text(encoding="utf-8"))
# NIP-19's example key, as an npub and as hex
NPUB = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"
HEX = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
OTHER = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
WEBHOOK = "LOG [PaymentsService] BTCPay webhook received: invoice inv_9 settled"


def e2e_runbook(
    tmp_path: Path, base_url: str, project: str = "none", *, payment_checks: bool = True
) -> Runbook:
    """The shipped Phase 7 as it is (its manual steps, their values and checks), alone."""
    e2e = copy.deepcopy(next(p for p in SHIPPED["phases"] if p["id"] == "e2e"))
    if not payment_checks:  # the claim's tests: the payment is ticked by a person only
        payment = next(m for m in e2e["manual"] if m["id"] == "payment")
        payment.pop("checks")
        payment.pop("on_restart", None)
    data: dict[str, Any] = {
        "name": "NostrMaxi production cutover",
        "version": "1.0",
        "phases": [e2e],
        "rollback": [{"id": "undo", "name": "undo", "kind": "run", "params": {"argv": ["true"]}}],
        "environments": {
            "prod": {
                "domain": "localhost",
                "base_url": base_url,
                "compose_project": project,
                "channel": "#cutover",
                "approvers": ["T1:U1", "T1:U2"],
            }
        },
    }
    path = tmp_path / "e2e.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_runbook(path)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """NostrMaxi over HTTPS with a certificate from a throwaway CA the checks trust."""
    ca = make_ca(tmp_path)
    leaf = make_leaf(tmp_path, ca, "localhost", 90, sans=["localhost", "127.0.0.1"])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
    server = nostrmaxi_standin(tls=leaf)
    try:
        yield server
    finally:
        server.stop()


def start(engine: Engine) -> tuple[int, int]:
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    gate = open_gate_id(engine.db, run.id)
    assert gate is not None, "the e2e checkpoint did not open"
    return run.id, gate


def ticks(db: Database, run_id: int) -> list[dict[str, Any]]:
    return [
        {**json.loads(e.data), "actor": e.actor}
        for e in audit.events(db, run_id)
        if e.kind == "manual.ticked"
    ]


def step(engine: Engine, gate: int, step_id: str) -> Any:
    view = gate_view(engine.db, engine.runbook, gate)
    assert view is not None
    return next(s for s in view.steps if s.step_id == step_id)


def claim_engine(tmp_path: Path, app: NostrMaxiStandin, db: Database) -> Engine:
    runbook = e2e_runbook(tmp_path, app.url, payment_checks=False)
    engine, _ = make_engine(db, runbook, ManualClock())
    return engine


def test_the_claim_tick_needs_a_valid_pubkey_and_its_lookup_then_passes_on_that_key(
    db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    app.names["cutover-test"] = HEX
    engine = claim_engine(tmp_path, app, db)
    run_id, gate = start(engine)
    waiting = step(engine, gate, "nip05-pubkey")
    assert (waiting.status, waiting.evidence) == ("pending", "runs once nip05-claim is ticked")
    view = gate_view(db, engine.runbook, gate)
    assert view is not None
    assert (  # never "PASS → Continue" while a check bound to a tick has not run
        "Decision point: checks PASS so far → tick login, nip05-claim, payment, admin; "
        "the bot then checks nip05-pubkey"
    ) in checkpoint_text(view)

    missing = engine.tick(gate, "nip05-claim", BOB)
    assert missing.outcome == "refused"
    assert missing.message == (
        "nip05-claim not ticked: this step needs its pubkey: Pubkey of the account that "
        "claimed cutover-test (npub1… or 64 hex)"
    )
    wrong = engine.tick(gate, "nip05-claim", BOB, "cutover-test")
    assert wrong.outcome == "refused" and "64-hex public key or an npub1" in wrong.message
    assert ticks(db, run_id) == []

    assert engine.tick(gate, "nip05-claim", BOB, NPUB).outcome == "ticked"
    [tick] = ticks(db, run_id)
    assert tick["value"] == {"pubkey": HEX} and tick["given"] == NPUB
    looked = step(engine, gate, "nip05-pubkey")
    assert looked.status == "pass", looked.evidence
    assert f"cutover-test → {HEX}, the pubkey given with the tick" in looked.evidence

    for item in ("login", "payment", "admin"):
        assert engine.tick(gate, item, BOB).outcome == "ticked"
    assert engine.decide(gate, BOB, "continue").outcome == "approved"
    text = record_text(build_record(db, engine.runbook, run_id), engine.runbook)
    assert "e2e/nip05-claim (attempt 1): ticked by T1:U2 at " in text
    assert f"UTC, pubkey {HEX}" in text
    check_record(text, exported_rows(db, run_id), engine.runbook)


def test_a_ticks_checks_run_on_the_holders_leash_with_its_fencing_token(
    db: Database, tmp_path: Path, app: NostrMaxiStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check bound to a tick is a runbook step like a phase's: a process it starts is
    killed when this replica's lease lapses (the leash), and it writes with the holder's
    fencing token, never with none."""
    app.names["cutover-test"] = HEX
    engine = claim_engine(tmp_path, app, db)
    _, gate = start(engine)
    seen: list[Any] = []

    def recording(steps: Any, values: Any, ctx: Any) -> Any:
        seen.append(ctx)
        return run_checks(steps, values, ctx)

    monkeypatch.setattr(tick_checks, "run_checks", recording)
    assert engine.tick(gate, "nip05-claim", BOB, NPUB).outcome == "ticked"
    [ctx] = seen
    assert ctx.stop is not None and ctx.stop.leash is engine.leash
    assert ctx.fencing_token is not None
    assert step(engine, gate, "nip05-pubkey").status == "pass"


def test_a_lookup_answering_another_pubkey_fails_the_checkpoint_with_both_keys(
    db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    app.names["cutover-test"] = OTHER
    engine = claim_engine(tmp_path, app, db)
    run_id, gate = start(engine)
    assert engine.tick(gate, "nip05-claim", BOB, HEX).outcome == "ticked"

    failed = step(engine, gate, "nip05-pubkey")
    assert failed.status == "fail"
    assert f"cutover-test → {OTHER}, not the ticked pubkey" in failed.evidence
    assert f"expected cutover-test → {HEX}" in failed.evidence
    view = gate_view(db, engine.runbook, gate)
    assert view is not None and not view.checks_passed
    assert "Decision point: FAIL → ROLLBACK" in checkpoint_text(view)
    [rechecked] = [
        json.loads(e.data) for e in audit.events(db, run_id) if e.kind == "gate.rechecked"
    ]
    assert rechecked == {
        "gate": gate,
        "phase": "e2e",
        "item": "nip05-claim",
        "failed": ["nip05-pubkey"],
        "checks_passed": False,
    }
    for item in ("login", "payment", "admin"):
        engine.tick(gate, item, BOB)
    refused = engine.decide(gate, BOB, "continue")
    assert refused.outcome == "refused" and refused.message.startswith("checks did not pass")
    assert engine.decide(gate, BOB, "rollback", "NIP-05 answers another key").changed
    text = record_text(build_record(db, engine.runbook, run_id), engine.runbook)
    assert "e2e/nip05-pubkey FAIL" in text
    check_record(text, exported_rows(db, run_id), engine.runbook)


def test_a_claimed_name_missing_from_the_lookup_fails(
    db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    engine = claim_engine(tmp_path, app, db)
    _run_id, gate = start(engine)
    engine.tick(gate, "nip05-claim", BOB, HEX)
    failed = step(engine, gate, "nip05-pubkey")
    assert failed.status == "fail"
    assert "cutover-test is not in names (names: none)" in failed.evidence
    assert HEX in failed.evidence


def test_continue_waits_while_a_check_bound_to_a_tick_is_running_and_a_second_tick_adds_none(
    db: Database, tmp_path: Path, app: NostrMaxiStandin
) -> None:
    app.names["cutover-test"] = HEX
    engine = claim_engine(tmp_path, app, db)
    _run_id, gate = start(engine)
    held: list[Any] = []
    engine.spawn = lambda fn, *args: held.append((fn, args))  # type: ignore[method-assign]
    for item in ("login", "payment", "admin"):
        engine.tick(gate, item, BOB)
    assert engine.tick(gate, "nip05-claim", BOB, HEX).outcome == "ticked"
    assert len(held) == 1  # the lookup is queued with the run's lease: it has not run
    running = step(engine, gate, "nip05-pubkey")
    assert (running.status, running.evidence) == ("pending", "running: nip05-claim was ticked")
    refused = engine.decide(gate, BOB, "continue")
    assert refused.outcome == "refused"
    assert refused.message.startswith("the bot is still checking nip05-pubkey after its tick")

    # Ticked again meanwhile: the holder's queued work runs it, never a second copy (a
    # process that died holding it: tests/test_tick_checks_restart.py).
    assert engine.tick(gate, "nip05-claim", BOB, HEX).outcome == "ticked"
    assert len(held) == 1
    fn, args = held.pop()
    fn(*args)
    assert step(engine, gate, "nip05-pubkey").status == "pass"
    assert engine.decide(gate, BOB, "continue").outcome == "approved"


# ----------------------------------------------------------------------- the payment


def backend_lines(compose: Compose, *lines: str) -> float:
    """Starts a backend container printing `lines`; the Docker timestamp of its last line."""
    echoes = "; ".join(f"echo '{line}'" for line in lines)
    compose.write({"backend": {"command": ["sh", "-c", f"{echoes}; sleep 3600"]}})
    compose("up", "-d")
    [container] = compose.client.containers.list(
        filters={"label": f"com.docker.compose.project={compose.project}"}
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the container's own output, as Docker keeps it
        logs = container.logs(timestamps=True).decode().splitlines()
        if len(logs) >= len(lines):
            stamp = logs[-1].split(" ", 1)[0]
            return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()
        time.sleep(0.05)
    raise AssertionError("the backend printed nothing")


def payment_engine(
    db: Database, tmp_path: Path, app: NostrMaxiStandin, compose: Compose, tier: str = "PRO"
) -> tuple[Engine, ManualClock]:
    app.names["cutover-test"] = HEX
    app.route("GET", f"/api/v1/subscription/list/{HEX}", json_response({"tier": tier}))
    clock = ManualClock()
    engine, _ = make_engine(db, e2e_runbook(tmp_path, app.url, compose.project), clock)
    return engine, clock


pay = pytest.mark.docker


@pay
def test_the_payment_tick_needs_the_claim_first(
    pg_db: Database, tmp_path: Path, app: NostrMaxiStandin, compose: Compose
) -> None:
    db = pg_db
    engine, _clock = payment_engine(db, tmp_path, app, compose)
    run_id, gate = start(engine)
    refused = engine.tick(gate, "payment", BOB)
    assert refused.outcome == "refused"
    assert refused.message == (
        "payment not ticked: tick nip05-claim first (its value is what payment's checks use)"
    )
    assert ticks(db, run_id) == []


@pay
def test_a_webhook_line_10s_after_the_payment_tick_and_a_pro_tier_pass(
    pg_db: Database, tmp_path: Path, app: NostrMaxiStandin, compose: Compose
) -> None:
    db = pg_db
    said_at = backend_lines(compose, "LOG GET /health 200", WEBHOOK)
    engine, clock = payment_engine(db, tmp_path, app, compose)
    run_id, gate = start(engine)
    engine.tick(gate, "nip05-claim", BOB, NPUB)
    clock.set(said_at - 10)  # the person ticks as they pay; the webhook comes 10 s later
    assert engine.tick(gate, "payment", BOB).outcome == "ticked"

    webhook = step(engine, gate, "payment-webhook")
    assert webhook.status == "pass", webhook.evidence
    assert "BTCPay webhook received: invoice inv_9 settled (10s after the tick" in webhook.evidence
    pro = step(engine, gate, "pro-upgrade")
    assert pro.status == "pass", pro.evidence
    assert f"/api/v1/subscription/list/{HEX} → 200" in pro.evidence
    for item in ("login", "admin"):
        engine.tick(gate, item, BOB)
    assert engine.decide(gate, BOB, "continue").outcome == "approved"
    text = record_text(build_record(db, engine.runbook, run_id), engine.runbook)
    check_record(text, exported_rows(db, run_id), engine.runbook)


@pay
def test_a_webhook_line_45s_after_the_tick_and_a_free_tier_fail(
    pg_db: Database, tmp_path: Path, app: NostrMaxiStandin, compose: Compose
) -> None:
    db = pg_db
    said_at = backend_lines(compose, WEBHOOK)
    engine, clock = payment_engine(db, tmp_path, app, compose, tier="FREE")
    run_id, gate = start(engine)
    engine.tick(gate, "nip05-claim", BOB, HEX)
    clock.set(said_at - 45)
    engine.tick(gate, "payment", BOB)
    webhook = step(engine, gate, "payment-webhook")
    assert webhook.status == "fail"
    assert "came 45s after the tick, not within 30s of the tick at" in webhook.evidence
    pro = step(engine, gate, "pro-upgrade")
    assert pro.status == "fail" and "tier" in pro.evidence and "FREE" in pro.evidence
    view = gate_view(db, engine.runbook, gate)
    assert view is not None and not view.checks_passed
    [rechecked] = [
        json.loads(e.data) for e in audit.events(db, run_id) if e.kind == "gate.rechecked"
    ]
    assert rechecked["failed"] == ["payment-webhook", "pro-upgrade"]


@pay
def test_no_webhook_line_after_the_tick_fails_saying_what_was_read(
    pg_db: Database, tmp_path: Path, app: NostrMaxiStandin, compose: Compose
) -> None:
    db = pg_db
    said_at = backend_lines(compose, "LOG GET /health 200")
    engine, clock = payment_engine(db, tmp_path, app, compose)
    _run_id, gate = start(engine)
    engine.tick(gate, "nip05-claim", BOB, HEX)
    clock.set(said_at - 5)
    started = time.monotonic()
    engine.tick(gate, "payment", BOB)
    assert time.monotonic() - started < 20  # the 30 s went by on the test's clock
    webhook = step(engine, gate, "payment-webhook")
    assert webhook.status == "fail"
    at = datetime.fromtimestamp(said_at - 5, UTC).strftime("%H:%M:%S")
    assert f"in backend within 30s of the tick at {at} UTC (1 lines read)" in webhook.evidence
