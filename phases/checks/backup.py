"""`backup_age`: the newest database backup is fresh and not empty.

Runbook T-24h / T-1h "Database backup … Required: Fresh backup <1 hour old".
Age is measured with the step clock, so a test can move time.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register

EVIDENCE_LIMIT = 200


class BackupParams(StepParams):
    path: str = Field(min_length=1)  # the backups folder
    pattern: str = Field(default="*", min_length=1)
    max_age_minutes: int = Field(default=60, ge=1)
    min_bytes: int = Field(default=1, ge=0)

    @field_validator("pattern")
    @classmethod
    def relative_pattern(cls, value: str) -> str:
        if value.startswith("/") or ".." in Path(value).parts:
            raise ValueError("pattern is a glob inside path, like *.sql.gz")
        return value


def _clip(text: str) -> str:
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def run_backup(params: BackupParams, ctx: StepContext) -> StepResult:
    folder = Path(params.path)
    if ctx.workdir and not folder.is_absolute():
        folder = Path(ctx.workdir) / folder
    if not folder.is_dir():
        return StepResult(Status.FAIL, _clip(f"backup folder {params.path} not found"))
    candidates: list[tuple[float, int, Path]] = []
    for entry in folder.glob(params.pattern):
        try:
            st = entry.stat()
        except OSError:
            continue
        if entry.is_file():
            candidates.append((st.st_mtime, st.st_size, entry))
    if not candidates:
        what = "no backups" if params.pattern == "*" else f"no files matching {params.pattern}"
        return StepResult(Status.FAIL, _clip(f"{what} in {params.path}"))
    mtime, size, newest = max(candidates, key=lambda c: c[0])
    age_s = max(0.0, ctx.clock.now() - mtime)
    age_min = int(age_s // 60)
    name = os.path.relpath(newest, folder)
    details = {
        "file": name,
        "age_minutes": round(age_s / 60, 1),
        "bytes": size,
        "backups_found": len(candidates),
    }
    problems: list[str] = []
    if age_s >= params.max_age_minutes * 60:
        problems.append(f"is {age_min} min old (limit {params.max_age_minutes})")
    if size < params.min_bytes:
        problems.append(f"is {size} bytes (min {params.min_bytes})")
    if problems:
        return StepResult(
            Status.FAIL, _clip(f"newest backup {name} " + " and ".join(problems)), details=details
        )
    evidence = (
        f"newest backup {name} is {age_min} min old, {human_bytes(size)} "
        f"(limit {params.max_age_minutes} min)"
    )
    return StepResult(Status.PASS, _clip(evidence), details=details)


KIND = register(StepKind(name="backup_age", params=BackupParams, run=run_backup, mutates=False))
