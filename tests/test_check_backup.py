"""`backup`: T-24h / T-1h "Fresh backup <1 hour old", timed with a controllable clock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from phases.checks import REGISTRY
from phases.checks.base import Status, StepResult
from tests.servers import ManualClock, run_check

MIN = 60.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_771_344_000.0)  # 2026-02-17T16:00:00Z


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    folder = tmp_path / "backups"
    folder.mkdir()
    return folder


def put(folder: Path, name: str, clock: ManualClock, minutes_old: float, size: int = 2048) -> Path:
    path = folder / name
    path.write_bytes(b"\x1f\x8b" + b"\0" * max(0, size - 2) if size else b"")
    mtime = clock.now() - minutes_old * MIN
    os.utime(path, (mtime, mtime))
    return path


def check(folder: Path | str, clock: ManualClock, **params: Any) -> StepResult:
    result = run_check("backup_age", {"path": str(folder), **params}, clock=clock)
    assert len(result.evidence) <= 200
    return result


def test_kind_is_registered_read_only() -> None:
    assert REGISTRY["backup_age"].mutates is False


def test_fresh_backup_under_an_hour_old_passes(backups: Path, clock: ManualClock) -> None:
    put(backups, "db-2026-02-17.sql.gz", clock, minutes_old=12)
    result = check(backups, clock)
    assert result.status is Status.PASS
    assert (
        result.evidence == "newest backup db-2026-02-17.sql.gz is 12 min old, 2.0 KB (limit 60 min)"
    )
    assert result.details["age_minutes"] == 12.0


def test_stale_backup_75_minutes_old_fails(backups: Path, clock: ManualClock) -> None:
    put(backups, "db-2026.sql.gz", clock, minutes_old=75)
    result = check(backups, clock)
    assert result.status is Status.FAIL
    assert result.evidence == "newest backup db-2026.sql.gz is 75 min old (limit 60)"


def test_backup_becomes_stale_as_the_clock_moves(backups: Path, clock: ManualClock) -> None:
    put(backups, "db.sql.gz", clock, minutes_old=0)
    assert check(backups, clock).status is Status.PASS
    clock.advance(59 * MIN)
    assert check(backups, clock).status is Status.PASS
    clock.advance(1 * MIN)  # exactly an hour: no longer "<1 hour old"
    assert check(backups, clock).status is Status.FAIL


def test_newest_backup_is_judged_not_the_oldest(backups: Path, clock: ManualClock) -> None:
    put(backups, "db-old.sql.gz", clock, minutes_old=600)
    put(backups, "db-new.sql.gz", clock, minutes_old=5)
    put(backups, "db-mid.sql.gz", clock, minutes_old=90)
    result = check(backups, clock)
    assert result.status is Status.PASS
    assert "db-new.sql.gz is 5 min old" in result.evidence
    assert result.details["backups_found"] == 3


def test_empty_backup_folder_fails(backups: Path, clock: ManualClock) -> None:
    result = check(backups, clock)
    assert result.status is Status.FAIL
    assert result.evidence == f"no backups in {backups}"


def test_missing_backup_folder_fails(tmp_path: Path, clock: ManualClock) -> None:
    result = check(tmp_path / "backups", clock)
    assert result.status is Status.FAIL
    assert result.evidence == f"backup folder {tmp_path / 'backups'} not found"


def test_zero_byte_backup_fails(backups: Path, clock: ManualClock) -> None:
    put(backups, "db.sql.gz", clock, minutes_old=3, size=0)
    result = check(backups, clock)
    assert result.status is Status.FAIL
    assert result.evidence == "newest backup db.sql.gz is 0 bytes (min 1)"


def test_stale_and_too_small_are_both_reported(backups: Path, clock: ManualClock) -> None:
    put(backups, "db.sql.gz", clock, minutes_old=120, size=100)
    result = check(backups, clock, min_bytes=1024)
    assert result.status is Status.FAIL
    assert result.evidence == (
        "newest backup db.sql.gz is 120 min old (limit 60) and is 100 bytes (min 1024)"
    )


def test_pattern_ignores_other_files_and_folders(backups: Path, clock: ManualClock) -> None:
    put(backups, "db-old.sql.gz", clock, minutes_old=200)
    put(backups, "notes.txt", clock, minutes_old=1)
    (backups / "fresh.sql.gz.d").mkdir()
    result = check(backups, clock, pattern="*.sql.gz")
    assert result.status is Status.FAIL
    assert "db-old.sql.gz is 200 min old" in result.evidence


def test_no_file_matching_the_pattern_fails(backups: Path, clock: ManualClock) -> None:
    put(backups, "notes.txt", clock, minutes_old=1)
    result = check(backups, clock, pattern="*.dump")
    assert result.status is Status.FAIL
    assert result.evidence == f"no files matching *.dump in {backups}"


def test_custom_age_limit(backups: Path, clock: ManualClock) -> None:
    put(backups, "db.sql.gz", clock, minutes_old=75)
    assert check(backups, clock, max_age_minutes=24 * 60).status is Status.PASS


def test_folder_is_relative_to_the_workdir(backups: Path, clock: ManualClock) -> None:
    put(backups, "db.sql.gz", clock, minutes_old=1)
    params = {"path": "backups"}
    result = run_check("backup_age", params, clock=clock, workdir=str(backups.parent))
    assert result.status is Status.PASS, result.evidence


@pytest.mark.parametrize(
    "params",
    [{}, {"path": ""}, {"path": "b", "max_age_minutes": 0}, {"path": "b", "recursive": True}],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REGISTRY["backup_age"].params.model_validate(params)
