"""`log_line_after_tick`: a line matching `pattern` in the containers' logs within
`within_seconds` after a manual step was ticked.

Runbook Phase 7 Test 3 "Pay invoice … Wait for webhook (max 30s) … `logs backend | grep
webhook`": a check of the payment's manual step, so it runs once that step is ticked. It
reads the logs with Docker's own timestamps from the tick on, polling until a matching line
is seen or the window has passed on the step's clock; a line later than the window, or none,
is a FAIL saying when the tick was and what was read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from phases.checks.base import Status, StepContext, StepKind, StepResult, clip, pause, register
from phases.checks.docker_client import (
    DockerHostParams,
    _display_names,
    _docker,
    _guarded,
    _join,
    _project_containers,
    _service,
)

EVIDENCE_LIMIT = 300
EXCERPT_LIMIT = 160
POLL_INTERVAL = 1.0


class TickLogParams(DockerHostParams):
    project: str = Field(min_length=1)
    services: list[str] = Field(default_factory=list)  # empty: every container of the project
    pattern: str = Field(min_length=1)
    within_seconds: int = Field(default=30, ge=1, le=600)
    tail_lines: int = Field(default=5000, ge=10, le=100_000)

    @field_validator("pattern")
    @classmethod
    def pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value


def stamp(line: str) -> tuple[float | None, str]:
    """(epoch seconds, the line) of a line Docker wrote with `timestamps=True`."""
    head, _, rest = line.partition(" ")
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", head)
    if m is None:
        return None, line
    at = datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC).timestamp()
    return at + float(f"0.{m.group(2) or 0}"), rest


def _read(client: Any, params: TickLogParams, since: float) -> list[tuple[str, float, str]]:
    containers = _project_containers(client, params.project, all_states=True)
    if params.services:
        containers = [c for c in containers if _service(c) in params.services]
    names = _display_names(containers)
    out: list[tuple[str, float, str]] = []
    for c in containers:
        raw = c.logs(
            stdout=True, stderr=True, timestamps=True, since=int(since), tail=params.tail_lines
        )
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        for line in text.splitlines():
            at, said = stamp(line)
            if at is not None:
                out.append((names[c.id], at, said))
    return sorted(out, key=lambda x: x[1])


def _hm(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S UTC")


def run_tick_log(params: TickLogParams, ctx: StepContext) -> StepResult:
    pattern = re.compile(params.pattern)
    where = _join(params.services) if params.services else f"project {params.project}"

    def go() -> StepResult:
        if ctx.ticked_at is None:
            return StepResult(Status.ERROR, "not run after a tick: no tick time to count from")
        tick = ctx.ticked_at
        end = tick + params.within_seconds
        with _docker(ctx, params.docker_host) as client:
            while True:
                last = ctx.clock.now() >= end  # this read is the last one
                lines = _read(client, params, tick)
                hits = [x for x in lines if x[1] >= int(tick) and pattern.search(x[2])]
                if hits or last:
                    break
                pause(ctx, max(0.0, min(POLL_INTERVAL, end - ctx.clock.now())))
        details: dict[str, Any] = {
            "ticked_at": tick,
            "within_s": params.within_seconds,
            "lines": len(lines),
            "containers": sorted({svc for svc, _, _ in lines}),
        }
        window = f"within {params.within_seconds}s of the tick at {_hm(tick)}"
        if not hits:
            text = (
                f"no line matching {params.pattern!r} in {where} {window} ({len(lines)} lines read)"
            )
            return StepResult(Status.FAIL, clip(text, EVIDENCE_LIMIT), details=details)
        svc, at, said = hits[0]
        after = max(0.0, at - tick)
        details["seen_after_s"] = round(after, 1)
        excerpt = clip(ctx.masker.mask(said), EXCERPT_LIMIT)
        if at > end:
            text = (
                f"{svc}: first line matching {params.pattern!r} came {after:.0f}s after the "
                f"tick, not {window}: {excerpt}"
            )
            return StepResult(Status.FAIL, clip(text, EVIDENCE_LIMIT), details=details)
        text = (
            f"{svc}: {excerpt} ({after:.0f}s after the tick at {_hm(tick)}, "
            f"limit {params.within_seconds}s)"
        )
        return StepResult(Status.PASS, clip(text, EVIDENCE_LIMIT), details=details)

    return _guarded(go)


def describe(params: TickLogParams) -> str:
    return f"look for {params.pattern!r} in the logs of {params.project} after the tick"


TICK_LOG = register(StepKind("log_line_after_tick", TickLogParams, run_tick_log, describe=describe))
