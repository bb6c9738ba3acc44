"""Phase 8 of the NostrMaxi runbook: the maintenance page turned on at T-1h is turned off
again before Phase 8 passes, and the status page is marked OPERATIONAL, by the Statuspage
API when one is configured (tested against a local server answering as that API does), by a
person otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import gate_view, open_gate_id
from bot.surface import Actor
from phases.checks.base import Status, StepContext
from phases.runbook import RunbookError, load_runbook
from phases.secrets import MASK
from tests.nostrmaxi_lines import RUNBOOK, run_shipped, shipped
from tests.statuspage_standin import StatuspageStandin

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")
PAGE, COMPONENT, KEY = "kctbh9vrtdwd", "8kbf7d35c070", "sp_api_key_9f8e7d6c5b4a39281706"


@pytest.fixture
def statuspage() -> Iterator[StatuspageStandin]:
    server = StatuspageStandin(PAGE, {COMPONENT: "NostrMaxi API"}, KEY).start()
    try:
        yield server
    finally:
        server.stop()


def mark(server: StatuspageStandin, **values: Any) -> Any:
    merged = {
        "statuspage_api": server.url,
        "statuspage_page_id": PAGE,
        "statuspage_component_id": COMPONENT,
        "statuspage_token": KEY,
        **values,
    }
    return run_shipped("public-access", "mark-operational", StepContext(timeout=10.0), **merged)


# --------------------------------------------------------------------------- the API call


def test_configured_status_page_component_is_marked_operational(
    statuspage: StatuspageStandin,
) -> None:
    result = mark(statuspage)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith(
        f"component {COMPONENT} of page {PAGE} (NostrMaxi API) is operational (updated_at "
    )
    assert statuspage.components[COMPONENT]["status"] == "operational"
    path = f"/v1/pages/{PAGE}/components/{COMPONENT}"
    assert statuspage.calls == [("PATCH", path, f"OAuth {KEY}")]


def test_a_rejected_key_fails_and_the_key_is_never_shown(statuspage: StatuspageStandin) -> None:
    wrong = "sp_api_key_wrong_0123456789abcdef"
    result = mark(statuspage, statuspage_token=wrong)
    assert result.status is Status.FAIL
    assert result.evidence == (
        f"component {COMPONENT} of page {PAGE} not updated: HTTP 401: Could not authenticate"
    )
    assert wrong not in result.evidence and MASK not in result.evidence
    assert statuspage.components[COMPONENT]["status"] == "under_maintenance"


def test_an_unknown_component_fails_with_the_api_s_words(statuspage: StatuspageStandin) -> None:
    result = mark(statuspage, statuspage_component_id="nosuchcomp")
    assert result.status is Status.FAIL
    assert result.evidence.endswith("HTTP 404: The requested resource could not be found.")


def test_no_status_page_configured_skips_the_call_and_says_so() -> None:
    result = run_shipped("public-access", "mark-operational", StepContext(timeout=5.0))
    assert result.status is Status.SKIPPED
    assert result.evidence == "no status page configured (page_id is empty); a person updates it"


# --------------------------------------------------------------------------- the tracked steps


def test_shipped_phase_8_pairs_the_maintenance_page_and_tracks_the_status_page() -> None:
    phase = shipped().phase("public-access")
    manual = {m.id: m for m in phase.manual}
    assert manual["maintenance-off"].undoes == "maintenance-page"
    assert manual["status-page"].done_by == "mark-operational"
    t1h = shipped().pre_cutover
    assert t1h is not None
    item = next(i for i in t1h.t_minus_1h.items if i.id == "maintenance-page")
    assert item.gates_start  # so every real run turned the page on


def test_a_pairing_with_an_item_that_does_not_gate_start_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(RUNBOOK.read_text(encoding="utf-8"))
    phase8 = next(p for p in data["phases"] if p["id"] == "public-access")
    phase8["manual"][0]["undoes"] = "no-such-item"
    path = tmp_path / "rb.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(RunbookError, match="undoes 'no-such-item' is not a pre-cutover item"):
        load_runbook(path)


def phase8_runbook(tmp_path: Path, api_url: str, page_id: str) -> Any:
    """Phase 8's action and tracked steps as the shipped runbook writes them, in a small
    runbook whose other steps are real commands."""
    data = yaml.safe_load(RUNBOOK.read_text(encoding="utf-8"))
    phase8 = next(p for p in data["phases"] if p["id"] == "public-access")
    phase8["checks"] = [
        {"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
    ]
    runbook = {
        "name": "Phase 8 only",
        "pre_cutover": data["pre_cutover"],
        "phases": [{**phase8, "number": 8}],
        "environments": {
            "staging": {
                "domain": "staging.test",
                "base_url": "http://127.0.0.1:9",
                "approvers": [ALICE.id, BOB.id],
                "vars": {
                    "statuspage_api": api_url,
                    "statuspage_page_id": page_id,
                    "statuspage_component_id": COMPONENT,
                    "statuspage_token": KEY,
                },
            }
        },
    }
    runbook["pre_cutover"]["t_minus_24h"]["phase"] = None
    runbook["pre_cutover"]["t_minus_1h"]["phase"] = None
    for item in runbook["pre_cutover"]["t_minus_1h"]["items"]:
        if isinstance(item, dict):
            item.pop("check", None)
    path = tmp_path / "phase8.yml"
    path.write_text(yaml.safe_dump(runbook, sort_keys=False), encoding="utf-8")
    return load_runbook(path)


def test_status_page_done_by_the_api_is_ticked_by_the_bot_and_the_page_still_waits(
    db: Database, tmp_path: Path, statuspage: StatuspageStandin
) -> None:
    engine = Engine(db, phase8_runbook(tmp_path, statuspage.url, PAGE), background=False)
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    gate_id = open_gate_id(db, run.id)
    assert gate_id is not None
    view = gate_view(db, engine.runbook, gate_id)
    assert view is not None
    ticked = {m.id: m.ticked_by for m in view.manual}
    assert ticked == {"maintenance-off": None, "status-page": "system"}
    row = next(e for e in audit.events(db, run.id) if e.kind == "manual.ticked")
    assert row.actor == "system" and '"done_by":"mark-operational"' in row.data.replace(" ", "")
    refused = engine.decide(gate_id, BOB, "continue")
    assert refused.outcome == "refused"
    assert refused.message == "tick every manual step first: maintenance-off"
    assert engine.tick(gate_id, "maintenance-off", BOB).outcome == "ticked"
    assert engine.decide(gate_id, BOB, "continue").outcome == "approved"


def test_without_a_status_page_a_person_ticks_it(db: Database, tmp_path: Path) -> None:
    engine = Engine(db, phase8_runbook(tmp_path, "http://127.0.0.1:9", ""), background=False)
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    gate_id = open_gate_id(db, run.id)
    assert gate_id is not None
    engine.tick(gate_id, "maintenance-off", BOB)
    refused = engine.decide(gate_id, BOB, "continue")
    assert refused.message == "tick every manual step first: status-page"
    view = gate_view(db, engine.runbook, gate_id)
    assert view is not None
    skipped = next(st for st in view.steps if st.step_id == "mark-operational")
    assert skipped.status == "skipped" and "no status page configured" in skipped.evidence
