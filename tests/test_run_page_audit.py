"""The run page's audit check names the row that fails: a signature missing or wrong, a row
edited, a row deleted from the chain (issue 21). On SQLite, where rows can be tampered with
directly; on PostgreSQL the table refuses it (tests/test_audit_signing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from bot import audit
from bot.runpage import page, render
from bot.store.db import Database
from phases.runbook import Runbook
from tests.small_runbook import small_runbook
from tests.test_audit_signing import finished_run


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "audit.key", tmp_path / "audit.pub"
    audit.keygen(private, public)
    return private, public


@pytest.fixture
def signed_run(sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path]) -> int:
    sqlite_db.audit_signer = audit.Signer.from_file(keys[0])
    return finished_run(sqlite_db, tmp_path)


def html_of(db: Database, runbook: Runbook, run_id: int, public: Path) -> str:
    built = page.build(db, runbook, run_id, audit.load_public_keys([public]))
    return render.render(built)


def verdict(html: str) -> str:
    """The page's verification line and the list of problems under it, as plain text."""
    start = html.index('id="verification">') + len('id="verification">')
    return html[start : html.index("</p>", start)]


def run_rows(db: Database, run_id: int) -> list[int]:
    with db.engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT seq FROM audit_event WHERE run_id = :r ORDER BY seq"), {"r": run_id}
            ).scalars()
        )


def tamper(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_an_untouched_signed_run_is_verified_with_its_key(
    sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path], signed_run: int
) -> None:
    html = html_of(sqlite_db, small_runbook(tmp_path), signed_run, keys[1])
    rows = run_rows(sqlite_db, signed_run)
    key_id = audit.Signer.from_file(keys[0]).key_id
    assert verdict(html) == (
        f"audit chain OK: {len(rows)} rows (#{rows[0]}–#{rows[-1]}), signed by key {key_id}"
    )
    assert 'class="verify ok"' in html


def test_a_row_whose_signature_is_missing_is_named(
    sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path], signed_run: int
) -> None:
    victim = run_rows(sqlite_db, signed_run)[3]
    tamper(sqlite_db, "DELETE FROM audit_signature WHERE seq = :s", s=victim)
    html = html_of(sqlite_db, small_runbook(tmp_path), signed_run, keys[1])
    assert verdict(html) == (
        "audit chain BROKEN: 1 problem(s); first: "
        f"row {victim}: unsigned (appended without the signing key)"
    )
    assert 'class="verify bad"' in html


def test_a_row_whose_signature_is_wrong_is_named(
    sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path], signed_run: int
) -> None:
    rows = run_rows(sqlite_db, signed_run)
    victim, other = rows[2], rows[5]
    # Another row's genuine signature: made with the key, but not of this row's hash.
    tamper(
        sqlite_db,
        "UPDATE audit_signature SET signature = "
        "(SELECT signature FROM audit_signature WHERE seq = :o) WHERE seq = :s",
        s=victim,
        o=other,
    )
    html = html_of(sqlite_db, small_runbook(tmp_path), signed_run, keys[1])
    assert verdict(html) == (
        "audit chain BROKEN: 1 problem(s); first: "
        f"row {victim}: bad signature (forged or re-hashed row)"
    )


def test_an_edited_row_and_a_deleted_row_break_the_chain_at_the_rows_named(
    sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path], signed_run: int
) -> None:
    rows = run_rows(sqlite_db, signed_run)
    edited, deleted = rows[1], rows[4]
    tamper(
        sqlite_db,
        "UPDATE audit_event SET actor = 'T1:U9' WHERE seq = :s",  # not who it was
        s=edited,
    )
    tamper(sqlite_db, "DELETE FROM audit_signature WHERE seq = :s", s=deleted)
    tamper(sqlite_db, "DELETE FROM audit_event WHERE seq = :s", s=deleted)
    html = html_of(sqlite_db, small_runbook(tmp_path), signed_run, keys[1])
    assert verdict(html).startswith("audit chain BROKEN: 2 problem(s); first: ")
    problems = html.split('<ul class="bad small">')[1].split("</ul>")[0]
    assert problems.count("<li>") == 2
    assert f"<li>row {edited}: content does not match its hash (edited; " in problems
    assert (
        f"<li>row {deleted + 1}: does not link to row {deleted} (a row was deleted, inserted "
        "or reordered)</li>"
    ) in problems
