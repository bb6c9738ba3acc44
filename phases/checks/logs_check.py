"""`logs`: what the compose project's containers logged, read through the Docker API.

Runbook Phase 5 "Watch for: 🚀 NostrMaxi running on http://localhost:3000 … No ERROR or
CRITICAL log messages", Phase 9 `logs -f backend | grep -E "ERROR|WARN|webhook|payment"`
every 5 minutes, and the success criterion "No ERROR logs in last 30 minutes".

Lines in `must_appear` (regular expressions) must show up within `wait_seconds`;
`must_not_appear` patterns must not show up at all (counted per pattern). The window is
since the phase started, or the last `since_minutes`. Reads are bounded (`tail_lines`
per container) and every excerpt is masked and clipped before it becomes evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator, model_validator

from phases.checks.base import (
    OUTPUT,
    KeptOutput,
    Status,
    StepContext,
    StepKind,
    StepParams,
    StepResult,
    clip,
    pause,
    register,
)
from phases.checks.command import TAIL_BYTES
from phases.checks.docker_client import (
    DockerHostParams,
    _budget,
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


class LineCount(StepParams):
    """Lines matching `pattern` in the window, counted and shown (Phase 9 "Webhook deliveries
    successful": deliveries and failures per round); `min`/`max` judge the count, and a
    count without bounds is only shown."""

    name: str = Field(min_length=1, max_length=60)
    pattern: str = Field(min_length=1)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @field_validator("pattern")
    @classmethod
    def pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value


class LogsParams(DockerHostParams):
    project: str = Field(min_length=1)
    services: list[str] = Field(default_factory=list)  # empty: every container of the project
    since_minutes: int | None = Field(default=None, ge=1, le=24 * 60)  # None: since phase start
    must_appear: list[str] = Field(default_factory=list)
    must_not_appear: list[str] = Field(default_factory=list)
    wait_seconds: int = Field(default=0, ge=0, le=3600)  # deadline for must_appear
    tail_lines: int = Field(default=5000, ge=10, le=100_000)
    max_excerpts: int = Field(default=3, ge=0, le=10)
    count: list[LineCount] = Field(default_factory=list, max_length=10)
    # The `count`s together must reach this (Phase 9 "at least 1 successful user action
    # (NIP-05 claim or login)": either one will do).
    min_total: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def total_needs_counts(self) -> LogsParams:
        if self.min_total is not None and not self.count:
            raise ValueError("min_total needs count: the lines it adds up")
        return self

    @field_validator("must_appear", "must_not_appear")
    @classmethod
    def patterns_compile(cls, values: list[str]) -> list[str]:
        for v in values:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"{v!r} is not a regular expression: {exc}") from None
        return values


def _since(params: LogsParams, ctx: StepContext) -> tuple[float | None, str]:
    if params.since_minutes is not None:
        return (
            ctx.clock.now() - params.since_minutes * 60,
            f"in the last {params.since_minutes} min",
        )
    if ctx.phase_started_at is not None:
        return ctx.phase_started_at, "since the phase started"
    if ctx.run_started_at is not None:
        return ctx.run_started_at, "since the run started"
    return None, "in the whole log"


def _read(client: Any, params: LogsParams, since: float | None) -> dict[str, list[str]]:
    containers = _project_containers(client, params.project, all_states=True)
    if params.services:
        containers = [c for c in containers if _service(c) in params.services]
    names = _display_names(containers)
    out: dict[str, list[str]] = {}
    for c in sorted(containers, key=lambda c: names[c.id]):
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "tail": params.tail_lines}
        if since is not None:
            kwargs["since"] = int(since)  # whole seconds: a line in the start second counts
        raw = c.logs(**kwargs)
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        out[names[c.id]] = text.splitlines()
    return out


def kept_logs(
    logs: dict[str, list[str]], tail_lines: int, mask: Callable[[str], str]
) -> KeptOutput | None:
    """What the check read, kept with its result as a command's output is: `service | line`,
    each container's last lines within an equal share of TAIL_BYTES, masked here."""
    if not any(logs.values()):
        return None
    share = TAIL_BYTES // len(logs)
    total, truncated, parts = 0, False, []
    for svc, lines in logs.items():
        rows = [f"{svc} | {line}\n" for line in lines]
        total += sum(len(r.encode()) for r in rows)
        truncated = truncated or len(lines) >= tail_lines  # the engine may hold more
        picked: list[str] = []
        room = share
        for row in reversed(rows):
            room -= len(row.encode())
            if room < 0:
                truncated = True
                break
            picked.insert(0, row)
        parts += picked
    return KeptOutput(mask("".join(parts)), truncated, total)


def run_logs(params: LogsParams, ctx: StepContext) -> StepResult:
    appear = [re.compile(p) for p in params.must_appear]
    forbid = [re.compile(p) for p in params.must_not_appear]

    def go() -> StepResult:
        since, window = _since(params, ctx)
        with _docker(ctx, params.docker_host) as client:
            start = ctx.clock.monotonic()
            budget = _budget(params.wait_seconds, ctx)
            while True:
                logs = _read(client, params, since)
                lines = [(svc, line) for svc, ls in logs.items() for line in ls]
                hits = {
                    p.pattern: [(svc, line) for svc, line in lines if p.search(line)]
                    for p in forbid
                }
                found = {
                    p.pattern: next((svc for svc, ln in lines if p.search(ln)), None)
                    for p in appear
                }
                waited = ctx.clock.monotonic() - start
                bad = {k: v for k, v in hits.items() if v}
                missing = [k for k, v in found.items() if v is None]
                remaining = budget - waited
                if bad or not missing or remaining <= 0:
                    break
                pause(ctx, min(POLL_INTERVAL, remaining))
        details: dict[str, Any] = {
            "project": params.project,
            "containers": sorted(logs),
            "lines": len(lines),
            "window": window,
            "counts": {k: len(v) for k, v in hits.items()},
            "found": found,
            OUTPUT: kept_logs(logs, params.tail_lines, ctx.masker.mask),
        }
        where = _join(params.services) if params.services else f"project {params.project}"
        if not logs:
            return StepResult(
                Status.FAIL, f"no containers of {where} to read logs from", details=details
            )
        problems: list[str] = []
        excerpts: list[str] = []
        for pattern, got in bad.items():
            services = sorted({svc for svc, _ in got})
            problems.append(f"{pattern} ×{len(got)} in {_join(services)}")
            for svc, line in got[: params.max_excerpts]:
                excerpts.append(f"{svc}: {clip(ctx.masker.mask(line), EXCERPT_LIMIT)}")
        for pattern in missing:
            problems.append(f"{pattern!r} not seen in {where} within {params.wait_seconds}s")
        tallies, tally_problems = _tally(params, lines, ctx, excerpts)
        details["tallies"] = tallies
        problems += tally_problems
        details["excerpts"] = excerpts
        shown = ", ".join(f"{k}: {v}" for k, v in tallies.items())
        if problems:
            text = "; ".join(problems) + f" ({len(lines)} lines {window})"
            if shown:
                text = f"{shown}; {text}"
            if excerpts:
                text += ": " + " | ".join(excerpts)
            return StepResult(Status.FAIL, clip(text, EVIDENCE_LIMIT), details=details)
        parts = [f"{k!r} seen in {v} after {waited:.0f}s" for k, v in found.items()]
        if forbid:
            parts.append(f"no {', '.join(p.pattern for p in forbid)}")
        if shown:
            parts.insert(0, shown)
        text = f"{'; '.join(parts) or 'logs read'} in {len(logs)} container(s), "
        text += f"{len(lines)} lines {window}"
        return StepResult(Status.PASS, clip(text, EVIDENCE_LIMIT), details=details)

    return _guarded(go)


def _tally(
    params: LogsParams, lines: list[tuple[str, str]], ctx: StepContext, excerpts: list[str]
) -> tuple[dict[str, int], list[str]]:
    """Each `count`'s matching lines in the window, and what breaks its bounds (with the
    first offending lines among the excerpts when there are too many)."""
    tallies: dict[str, int] = {}
    problems: list[str] = []
    for c in params.count:
        pattern = re.compile(c.pattern)
        got = [(svc, line) for svc, line in lines if pattern.search(line)]
        tallies[c.name] = len(got)
        if c.max is not None and len(got) > c.max:
            problems.append(f"{c.name} {len(got)} > {c.max}")
            for svc, line in got[: params.max_excerpts]:
                excerpts.append(f"{svc}: {clip(ctx.masker.mask(line), EXCERPT_LIMIT)}")
        if c.min is not None and len(got) < c.min:
            problems.append(f"{c.name} {len(got)} < {c.min}")
    total = sum(tallies.values())
    if params.min_total is not None and total < params.min_total:
        problems.append(f"{' + '.join(tallies)} {total} < {params.min_total}")
    return tallies, problems


def describe(params: LogsParams) -> str:
    return f"read the logs of {params.project}"


LOGS = register(StepKind("logs", LogsParams, run_logs, describe=describe))
