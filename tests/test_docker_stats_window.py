"""docker_stats' CPU window, read from one `docker stats` stream: which frames become the
readings. The engine's stream is played from a script here (a frame a second, as Docker
sends them, each with the one before it), so the choice of frames is seen exactly; the same
window against the real engine is in tests/test_nostrmaxi_health_vantage_cpu.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from phases.checks.base import Status, StepContext
from phases.checks.docker_stats import StatsParams, run_stats
from standins.fast_clock import FastClock
from tests.servers import ManualClock

T0 = datetime(2026, 2, 17, 16, 0, tzinfo=UTC).timestamp()
SECOND = 1_000_000_000  # the host's CPU time of one second (system_cpu_usage, ns)
BOOT = 86_400  # the host's CPU seconds before the stream began


def stamp(t: float) -> str:
    """An engine time as Docker writes it (nanoseconds, Z)."""
    whole = datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{round((t - int(t)) * 1e9):09d}Z"


def frame(k: int, used: list[int]) -> dict[str, Any]:
    """The frame the engine reads at T0 + k s; the container used k % of a CPU in the second
    before it, so a reading's value names its frame. Frame 0 is a stream's first: no
    previous reading (Docker sends its zero value)."""
    cpu = {
        "cpu_usage": {"total_usage": used[k]},
        "system_cpu_usage": (BOOT + k) * SECOND,
        "online_cpus": 1,
    }
    pre = (
        {"cpu_usage": {"total_usage": used[k - 1]}, "system_cpu_usage": (BOOT + k - 1) * SECOND}
        if k
        else {"cpu_usage": {"total_usage": 0}}
    )
    return {
        "read": stamp(T0 + k + 0.004 * k),  # a tick drifts by a few ms, as the engine's do
        "preread": stamp(T0 + k - 1) if k else "0001-01-01T00:00:00Z",
        "cpu_stats": cpu,
        "precpu_stats": pre,
        "memory_stats": {"usage": 10 * 2**20, "limit": 100 * 2**20},
    }


class Container:
    """One running container of the project whose `docker stats` stream is `frames` frames
    long (then the engine closes it, as for a container that stopped)."""

    id = "c0ffee"
    name = "p-backend-1"
    labels = {"com.docker.compose.project": "p", "com.docker.compose.service": "backend"}
    attrs: dict[str, Any] = {"HostConfig": {"Memory": 100 * 2**20}}

    def __init__(self, frames: int) -> None:
        used = [0]
        for k in range(1, frames):
            used.append(used[-1] + k * SECOND // 100)  # k % of the second before frame k
        self.frames = [frame(k, used) for k in range(frames)]
        self.streams: list[dict[str, Any]] = []  # how each stats call asked
        self.closed = False

    def stats(self, **kw: Any) -> Iterator[dict[str, Any]]:
        self.streams.append(kw)
        try:
            yield from self.frames
        finally:
            self.closed = True


class Client:
    def __init__(self, container: Container) -> None:
        self.containers = self
        self.container = container

    def list(self, **_kw: Any) -> list[Container]:
        return [self.container]


def window(container: Container, ctx: StepContext, samples: int = 5) -> Any:
    params = StatsParams(project="p", cpu_samples=samples, cpu_interval_seconds=2)
    ctx.docker_factory = lambda: Client(container)
    return run_stats(params, ctx)


def test_readings_come_from_one_stream_the_interval_apart_and_the_stream_is_closed() -> None:
    # The step's clock says each wait lasted its 2 s (the production case, where the wait is
    # real): the frames queued meanwhile are passed over; each reading is 2 s after the last.
    container = Container(frames=15)
    result = window(container, StepContext(timeout=60.0, clock=ManualClock(T0)))
    assert result.status is Status.PASS, result.evidence
    assert result.details["containers"]["backend"]["cpu_readings"] == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert result.details["containers"]["backend"]["cpu_percent"] == 5.0  # their median
    assert container.streams == [{"stream": True, "decode": True}]
    assert container.closed
    assert result.evidence.startswith(
        "1 containers within limits (cpu: median of 5 readings 2 s apart): backend 10% mem, 5% cpu"
    )


def test_a_fast_forwarded_pace_takes_the_next_frames_back_to_back() -> None:
    # The waits pass on the pace clock alone; the step's clock saw no time go by, so the
    # readings are the stream's next frames, each still a second the engine measured.
    container = Container(frames=15)
    ctx = StepContext(timeout=60.0, clock=ManualClock(T0), pace=FastClock())
    result = window(container, ctx)
    assert result.details["containers"]["backend"]["cpu_readings"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert ctx.pace is not None and ctx.pace.skipped == 8.0  # type: ignore[attr-defined]


def test_a_stream_that_ends_early_leaves_the_readings_it_gave() -> None:
    container = Container(frames=5)  # frames 1..4 have a previous one
    result = window(container, StepContext(timeout=60.0, clock=ManualClock(T0)))
    assert result.details["containers"]["backend"]["cpu_readings"] == [1.0, 3.0]
    assert result.details["containers"]["backend"]["cpu_percent"] == 2.0
    assert container.closed
