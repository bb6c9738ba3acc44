"""Phase 9's conditional manual steps (`ask_unless`): "at least 1 successful user action" and
"test payment webhook manually if no organic payments yet" are asked of a person only when
the monitoring rounds did not see one; seen, the bot ticks the step itself, audited with the
round's evidence. The shipped runbook's own checks and steps, on real container logs."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import audit
from bot.engine import Engine
from bot.record import build_record, record_text
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.reads import gate_view, open_gate_id
from phases.runbook import Runbook, RunbookError, load_runbook
from tests.docker_fixtures import Compose
from tests.nostrmaxi_db import AppDb, app_db  # noqa: F401
from tests.schedule_helpers import ALICE, BOB, START, clock_at, make_engine, set_clock, true_check
from tests.servers import ManualClock
from tests.trail_checker import check_record, exported_rows

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = yaml.safe_load((ROOT / "runbooks" / "nostrmaxi.yml").read_text(encoding="utf-8"))
# NostrMaxi's own line for a confirmed payment (src/payments/payments.service.ts).
PAID = (
    "[Nest] 1  - 02/17/2026, 4:20:00 PM     LOG [PaymentsService] Payment clx7q2m0a0007 "
    "processed: PRO tier until Thu Mar 19 2026 16:20:00 GMT+0000 (Coordinated Universal Time)"
)
MIN = timedelta(minutes=1)


def conditional_runbook(tmp_path: Path, project: str, database_url: str) -> Runbook:
    """The shipped monitoring phase with its two counting checks and its manual steps, one
    round every 5 minutes for 5 minutes (two rounds), and the shipped criteria that bind
    them; a first phase to approve into it."""
    shipped = next(p for p in SHIPPED["phases"] if p["id"] == "monitoring")
    checks = [c for c in shipped["checks"] if c["id"] in ("user-actions", "payments")]
    monitoring = {
        **shipped,
        "monitor": {"every_minutes": 5, "for_minutes": 5},
        "checks": checks,
    }
    first = {
        "id": "public-access",
        "name": "Enable public access",
        "estimate_minutes": 5,
        "checkpoint": "reachable",
        "checks": [true_check()],
    }
    data: dict[str, Any] = {
        "name": "NostrMaxi production cutover",
        "version": "1.0",
        "phases": [first, monitoring],
        "rollback": [{"id": "undo", "name": "undo", "kind": "run", "params": {"argv": ["true"]}}],
        "success_criteria": [c for c in SHIPPED["success_criteria"] if c["id"] == "payment"],
        "notes_fields": ["Sign-Off", {"name": "Payment Test Completed", "criterion": "payment"}],
        "environments": {
            "prod": {
                "domain": "prod.test",
                "base_url": "http://127.0.0.1:9",
                "compose_project": project,
                "database_url": database_url,
                "channel": "#cutover",
                "approvers": ["T1:U1", "T1:U2"],
            }
        },
    }
    path = tmp_path / "conditional.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_runbook(path)


def backend(*lines: str) -> dict[str, object]:
    echoes = "; ".join(f"echo '{line}'" for line in lines)
    return {"command": ["sh", "-c", f"{echoes}; sleep 3600"]}


def window(engine: Engine, clock: ManualClock) -> tuple[int, int]:
    """Starts a run, approves into monitoring and runs both rounds: the checkpoint opens."""
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    assert engine.decide(open_gate_id(engine.db, run.id) or 0, BOB, "continue").outcome == (
        "approved"
    )
    set_clock(clock, START + 5 * MIN)
    Scheduler(engine).tick()
    gate = open_gate_id(engine.db, run.id)
    assert gate is not None, "the monitoring checkpoint did not open"
    return run.id, gate


def ticks(db: Database, run_id: int) -> list[dict[str, Any]]:
    return [
        {**json.loads(e.data), "actor": e.actor}
        for e in audit.events(db, run_id)
        if e.kind == "manual.ticked"
    ]


def test_an_organic_payment_ticks_the_webhook_test_and_a_missing_user_action_is_asked(
    db: Database,
    tmp_path: Path,
    compose: Compose,
    app_db: AppDb,  # noqa: F811
) -> None:
    compose.write({"backend": backend("LOG GET /health 200", PAID)})
    compose("up", "-d")
    time.sleep(1.5)
    clock = clock_at(START)
    engine, _ = make_engine(db, conditional_runbook(tmp_path, compose.project, app_db.url), clock)
    run_id, gate = window(engine, clock)

    [tick] = ticks(db, run_id)  # the payment test is needless: the rounds saw a payment
    assert tick["item"] == "payment-webhook" and tick["actor"] == "system"
    assert tick["ask_unless"] == "payments" and tick["round"] == 2
    assert tick["evidence"].startswith("payments: 1 in 1 container(s)")
    view = gate_view(db, engine.runbook, gate)
    assert view is not None and view.checks_passed  # no user action yet is a warning
    users = next(s for s in view.steps if s.step_id == "user-actions")
    assert users.status == "warn" and "logins + NIP-05 claims 0 < 1" in users.evidence
    refused = engine.decide(gate, BOB, "continue")
    assert refused.outcome == "refused" and refused.message.endswith(": user-action")
    assert engine.tick(gate, "user-action", BOB).outcome == "ticked"  # tried by hand
    assert engine.decide(gate, BOB, "continue").outcome == "approved"

    rec = build_record(db, engine.runbook, run_id)
    assert rec.note("Payment Test Completed") == (
        "YES — manual step monitoring/payment-webhook ticked by system at 14:05 UTC"
    )
    text = record_text(rec, engine.runbook)
    check_record(text, exported_rows(db, run_id), engine.runbook)


def test_no_payment_seen_asks_a_person_for_the_webhook_test(
    db: Database,
    tmp_path: Path,
    compose: Compose,
    app_db: AppDb,  # noqa: F811
) -> None:
    compose.write({"backend": backend("LOG GET /health 200")})
    compose("up", "-d")
    time.sleep(1.5)
    app_db.login(START - 30 * MIN)  # the team's own test login, before monitoring began
    app_db.login(START + 2 * MIN)  # a user's, during it: NostrMaxi writes a Session row
    clock = clock_at(START)
    engine, _ = make_engine(db, conditional_runbook(tmp_path, compose.project, app_db.url), clock)
    run_id, gate = window(engine, clock)
    [tick] = ticks(db, run_id)  # the login seen makes user-action needless
    assert (tick["item"], tick["ask_unless"]) == ("user-action", "user-actions")
    assert tick["evidence"].startswith(
        "logins: 1, NIP-05 claims: 0 since the phase started (rows of Session, Nip05 in "
    )
    refused = engine.decide(gate, BOB, "continue")
    assert refused.outcome == "refused" and refused.message.endswith(": payment-webhook")
    assert engine.tick(gate, "payment-webhook", BOB).outcome == "ticked"
    assert engine.decide(gate, BOB, "continue").outcome == "approved"
    rec = build_record(db, engine.runbook, run_id)
    assert rec.note("Payment Test Completed") == (
        "YES — manual step monitoring/payment-webhook ticked by T1:U2 at 14:05 UTC"
    )


def test_ask_unless_must_name_a_check_of_the_same_phase(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "runbooks" / "nostrmaxi.yml").read_text(encoding="utf-8"))
    monitoring = next(p for p in data["phases"] if p["id"] == "monitoring")
    monitoring["manual"][1]["ask_unless"] = "payment-seen"
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(RunbookError, match="ask_unless 'payment-seen' is not a check of this"):
        load_runbook(path)
