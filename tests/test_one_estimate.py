"""One estimated duration everywhere: the T-1h notice, the start line, `/cutover status` and
the run's Slack message all print the sum of the phases' estimates (Runbook.estimate); a
runbook header that says otherwise is quoted beside it as the header's words, never as a
second estimate."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.notices import t1_stakeholder_text
from bot.slack.blocks import run_message
from bot.store.db import Database
from bot.store.reads import run_view
from bot.text import status_text
from phases.runbook import load_runbook
from tests.schedule_helpers import ALICE, START, clock_at, make_engine, true_check, write_runbook

REPO = Path(__file__).resolve().parent.parent
STAKEHOLDERS = "C0STAKEHOLDERS"


def runbook(tmp_path: Path, header: str | None) -> Any:
    phase = {"checkpoint": "ok", "checks": [true_check()]}
    return write_runbook(
        tmp_path,
        {
            "name": "Estimate",
            **({"estimated_duration": header} if header else {}),
            "phases": [
                {"id": "a", "name": "A", "estimate_minutes": 5} | phase,
                {"id": "b", "name": "B", "estimate_minutes": "10-15"} | phase,
            ],
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": "http://127.0.0.1:9",
                    "channel": "C0RUN",
                    "stakeholders": STAKEHOLDERS,
                    "approvers": ["T1:U1", "T1:U2"],
                }
            },
        },
    )


def printed_estimates(db: Database, tmp_path: Path, header: str | None) -> list[str]:
    """Every estimate the bot prints for one run, as printed."""
    rb = runbook(tmp_path, header)
    engine, surface = make_engine(db, rb, clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    [start_line] = [c.args[1] for c in surface.of("notice") if c.args[2:] == (STAKEHOLDERS,)][:1]
    view = run_view(db, rb, run.id)
    assert view is not None
    notice = t1_stakeholder_text(1, "prod", START, START, rb, "C0RUN")
    _, blocks = run_message(view, now=START)
    text = json.dumps(blocks, ensure_ascii=False)
    found = [
        re.search(r"expected (.+)\.$", start_line),
        re.search(r"Expected duration: (.+)", notice),
        re.search(r"of an estimated (\d+(?:-\d+)? min)", status_text(view, START)),
        re.search(r"an estimated (\d+(?:-\d+)? min)", text),
    ]
    assert all(found), (start_line, notice, status_text(view, START), text)
    return [m.group(1) for m in found if m]


def test_header_that_disagrees_is_quoted_beside_the_phase_sum_everywhere(
    pg_db: Database, tmp_path: Path
) -> None:
    start, notice, status, message = printed_estimates(pg_db, tmp_path, "2-4 hours")
    assert start == notice == "15-20 min by its phases (the runbook's header says 2-4 hours)"
    assert status == message == "15-20 min"


def test_header_that_agrees_gives_the_one_estimate_alone(pg_db: Database, tmp_path: Path) -> None:
    assert printed_estimates(pg_db, tmp_path, "15-20 min") == ["15-20 min"] * 4


def test_no_header_gives_the_phase_sum(pg_db: Database, tmp_path: Path) -> None:
    assert printed_estimates(pg_db, tmp_path, None) == ["15-20 min"] * 4


def test_the_shipped_runbook_sums_its_phases_against_the_reference_header() -> None:
    rb = load_runbook(REPO / "runbooks" / "nostrmaxi.yml")
    est = rb.estimate()
    assert (est.min, est.max) == (
        sum(p.estimate_minutes.min for p in rb.phases),
        sum(p.estimate_minutes.max for p in rb.phases),
    )
    assert rb.estimate_text() == "105-115 min by its phases (the runbook's header says 2-4 hours)"
