"""`docker_stats`: phase 9's memory < 80 % of the container limit and CPU < 70 % sustained,
as `docker stats` shows them."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepResult, pause, register
from phases.checks.docker_client import (
    DockerHostParams,
    _display_names,
    _docker,
    _engine_epoch,
    _guarded,
    _project_containers,
)

MIB = 1024 * 1024
# The engine reads a container's stats once a second: a frame it read more than this before a
# wait ended was queued on the stream during the wait.
FRAME_SLACK_S = 0.5


class StatsParams(DockerHostParams):
    project: str = Field(min_length=1)
    max_memory_percent: float = Field(default=80.0, gt=0, le=100)
    max_cpu_percent: float = Field(default=70.0, gt=0)
    # Phase 9 "CPU usage reasonable (<70% sustained)": CPU is read this many times, each a
    # `docker stats` reading (about 1 s of CPU time) `cpu_interval_seconds` apart, and judged
    # sustained: over max_cpu_percent only when the median of the window is (more than half
    # of it), so one spike is shown, not a breach. 1: a single reading, as `docker stats`.
    cpu_samples: int = Field(default=1, ge=1, le=30)
    cpu_interval_seconds: float = Field(default=1.0, ge=0, le=60)


def sustained(readings: list[float]) -> float | None:
    """The window's CPU %, as judged: its median (None without a reading)."""
    return statistics.median(readings) if readings else None


def _memory_usage(mem: dict[str, Any]) -> int | None:
    """Usage without the page cache that can be dropped, as `docker stats` reports it."""
    usage = mem.get("usage")
    if not isinstance(usage, int):
        return None
    stats = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):  # cgroup v1, cgroup v2
        inactive = stats.get(key)
        if isinstance(inactive, int) and inactive < usage:
            return usage - inactive
    return usage


def _cpu_percent(cur: dict[str, Any], pre: dict[str, Any]) -> float | None:
    """The `docker stats` CPU %: share of host CPU time, times the number of CPUs."""
    try:
        cpu_delta = cur["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cur["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cur.get("online_cpus") or len(cur["cpu_usage"].get("percpu_usage") or []) or 1
    if system_delta <= 0 or cpu_delta < 0:
        return 0.0
    return cpu_delta / system_delta * online * 100.0


def _has_sample(cpu: Any) -> bool:
    return bool(isinstance(cpu, dict) and cpu.get("system_cpu_usage") and cpu.get("cpu_usage"))


def _window(
    container: Any, ctx: StepContext, params: StatsParams
) -> tuple[dict[str, Any], list[float]]:
    """The last stats of a container and its CPU readings over the window, all from one
    `docker stats` stream: the engine reads a container's stats once a second and sends each
    reading with the one before it, so a frame holds the CPU time of the second it closes.
    The first reading is the first frame that has a previous one; each next one, after a wait
    of `cpu_interval_seconds` on the step's pace clock, is the first frame the engine read
    after that wait (frames queued on the stream while it lasted are passed over)."""
    pace = ctx.pace or ctx.clock
    readings: list[float] = []
    stats: dict[str, Any] = {}
    frames = container.stats(stream=True, decode=True)
    try:
        last: float | None = None  # the engine's time of the last reading
        for i in range(params.cpu_samples):
            not_before = last
            if i and last is not None:
                began = ctx.clock.monotonic()
                pause(ctx, params.cpu_interval_seconds, pace)
                not_before = last + (ctx.clock.monotonic() - began) - FRAME_SLACK_S
            frame = _next_frame(frames, last, not_before)
            if frame is None:  # the stream ended: the container stopped
                break
            stats = frame
            last = _engine_epoch(frame.get("read"))
            pct = _cpu_percent(frame.get("cpu_stats") or {}, frame.get("precpu_stats") or {})
            if pct is not None:
                readings.append(pct)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # ends the stream
    return stats, readings


def _next_frame(
    frames: Iterator[dict[str, Any]], after: float | None, not_before: float | None
) -> dict[str, Any] | None:
    """The next frame with a previous reading, read by the engine later than `after` and not
    before `not_before` (engine times); None once the stream ends."""
    for frame in frames:
        if not _has_sample(frame.get("precpu_stats")):
            continue  # the stream's first frame: nothing to measure the second against
        read = _engine_epoch(frame.get("read"))
        if read is not None and (
            (after is not None and read <= after) or (not_before is not None and read < not_before)
        ):
            continue
        return dict(frame)
    return None


def _fmt_mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB" if n < 10 * MIB else f"{n / MIB:.0f} MiB"


def run_stats(params: StatsParams, ctx: StepContext) -> StepResult:
    def go() -> StepResult:
        with _docker(ctx, params.docker_host) as client:
            containers = _project_containers(client, params.project, all_states=False)
            if not containers:
                return StepResult(Status.FAIL, f"no running containers of {params.project}")
            names = _display_names(containers)
            containers.sort(key=lambda c: names[c.id])
            with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
                windows = list(pool.map(lambda c: _window(c, ctx, params), containers))

        figures: dict[str, dict[str, Any]] = {}
        breaches: list[str] = []
        many = params.cpu_samples > 1
        for c, (stats, readings) in zip(containers, windows, strict=True):
            name = names[c.id]
            mem = stats.get("memory_stats") or {}
            usage = _memory_usage(mem)
            configured = int((c.attrs.get("HostConfig") or {}).get("Memory") or 0)
            limit = int(mem.get("limit") or configured) if configured else None
            mem_pct = usage / limit * 100.0 if usage is not None and limit else None
            cpu_pct = sustained(readings)
            figures[name] = {
                "memory_bytes": usage,
                "memory_limit_bytes": limit,
                "memory_percent": round(mem_pct, 1) if mem_pct is not None else None,
                "cpu_percent": round(cpu_pct, 1) if cpu_pct is not None else None,
                **({"cpu_readings": [round(r, 1) for r in readings]} if many else {}),
            }
            if mem_pct is not None and limit and mem_pct > params.max_memory_percent:
                breaches.append(
                    f"{name} memory {mem_pct:.0f}% of {_fmt_mib(limit)} limit "
                    f"(max {params.max_memory_percent:g}%)"
                )
            if cpu_pct is not None and cpu_pct > params.max_cpu_percent:
                over = sum(r > params.max_cpu_percent for r in readings)
                breaches.append(
                    f"{name} cpu {cpu_pct:.0f}% sustained ({over}/{len(readings)} readings over "
                    f"{params.max_cpu_percent:g}%, median)"
                    if many
                    else f"{name} cpu {cpu_pct:.0f}% (max {params.max_cpu_percent:g}%)"
                )
        details: dict[str, Any] = {"project": params.project, "containers": figures}
        if breaches:
            return StepResult(Status.FAIL, "; ".join(breaches), details=details)
        parts = []
        for name, f in figures.items():
            mem_text = (
                f"{f['memory_percent']:.0f}% mem"
                if f["memory_percent"] is not None
                else (
                    f"{_fmt_mib(f['memory_bytes'])} (no limit)"
                    if f["memory_bytes"] is not None
                    else "mem ?"
                )
            )
            cpu_text = f"{f['cpu_percent']:.0f}% cpu" if f["cpu_percent"] is not None else "cpu ?"
            parts.append(f"{name} {mem_text}, {cpu_text}")
        window = (
            f" (cpu: median of {params.cpu_samples} readings {params.cpu_interval_seconds:g} s "
            "apart)"
            if many
            else ""
        )
        return StepResult(
            Status.PASS,
            f"{len(figures)} containers within limits{window}: {'; '.join(parts)}",
            details=details,
        )

    return _guarded(go)


DOCKER_STATS = register(
    StepKind(
        "docker_stats",
        StatsParams,
        run_stats,
        describe=lambda p: (
            f"check memory < {p.max_memory_percent:g}% and cpu < "
            f"{p.max_cpu_percent:g}% for {p.project}"
        ),
    )
)
