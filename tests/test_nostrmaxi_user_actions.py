"""Phase 9 "at least 1 successful user action (NIP-05 claim or login)": NostrMaxi logs no line
for either, so the shipped `monitoring/user-actions` counts the rows they write in its own
database ("Session", "Nip05"), created since monitoring began, read-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from phases.checks.base import Status, StepContext
from phases.checks.pg_rows import RowsParams
from tests.nostrmaxi_db import AppDb, app_db  # noqa: F401
from tests.nostrmaxi_lines import run_shipped

BEGAN = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def _round(db: AppDb) -> tuple[Status, str]:
    ctx = StepContext(timeout=10.0, phase_started_at=BEGAN.timestamp())
    result = run_shipped("monitoring", "user-actions", ctx, database_url=db.url)
    return result.status, result.evidence


def test_a_login_and_a_claim_since_monitoring_began_are_counted(app_db: AppDb) -> None:  # noqa: F811
    app_db.login(BEGAN - timedelta(minutes=30))  # the team's own test, before monitoring
    app_db.login(BEGAN + timedelta(minutes=3))
    app_db.claim("alice", BEGAN + timedelta(minutes=4))
    status, evidence = _round(app_db)
    assert status is Status.PASS, evidence
    assert evidence.startswith(
        "logins: 1, NIP-05 claims: 1 since the phase started (rows of Session, Nip05 in "
        "postgres 127.0.0.1:5432/nostrmaxi_app_"
    )


def test_none_since_monitoring_began_fails_the_total(app_db: AppDb) -> None:  # noqa: F811
    app_db.login(BEGAN - timedelta(minutes=1))
    status, evidence = _round(app_db)
    assert status is Status.FAIL
    assert evidence.startswith(
        "logins: 0, NIP-05 claims: 0; logins + NIP-05 claims 0 < 1 since the phase started"
    )


def test_a_table_name_that_is_no_identifier_is_refused() -> None:
    with pytest.raises(ValidationError, match="is not a table or column name"):
        RowsParams(url="postgresql://x/y", counts=[{"name": "x", "table": 'S"; DROP'}])
