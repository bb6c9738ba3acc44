"""Disk space on the host (phase 9: "Monitor disk space: df -h")."""

from __future__ import annotations

import shutil

from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register


class DiskParams(StepParams):
    path: str = "/"
    max_used_percent: float = Field(default=90.0, gt=0, le=100)


def check_disk(p: DiskParams, ctx: StepContext) -> StepResult:
    try:
        usage = shutil.disk_usage(p.path)
    except OSError as exc:
        return StepResult(Status.ERROR, f"cannot read disk usage of {p.path}: {exc.strerror}")
    used = 100.0 * usage.used / usage.total if usage.total else 0.0
    free_gib = usage.free / 2**30
    evidence = f"{p.path} {used:.0f}% used, {free_gib:.1f} GiB free (max {p.max_used_percent:g}%)"
    status = Status.PASS if used <= p.max_used_percent else Status.FAIL
    return StepResult(
        status, evidence, details={"used_percent": round(used, 1), "free_bytes": usage.free}
    )


register(StepKind(name="disk", params=DiskParams, run=check_disk))
