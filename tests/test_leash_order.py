"""The leash's watchdog knows a holder's deadline before the holder's step starts.

Told only after the step's start (and started then, a process start away), a holder paused
in between left its step unwatched: under a saturated CPU it ran to its end beside the
rollback of the replica that took over (tests/test_lease_fencing.py failed 3 of 5 times
with ten busy loops on two CPUs; 5 of 5 passed once the watchdog came first)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from phases.checks import command_process, leash
from phases.checks.base import StopRequest


def test_the_watchdog_knows_the_deadline_before_a_step_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    holder = leash.Leash()
    holder.renew(time.monotonic() + 30)
    stop = StopRequest()
    stop.leash = holder
    events: list[str] = []
    write, popen = leash._WATCHDOG._write, subprocess.Popen

    def told(line: str) -> bool:
        events.append(line.split(" ")[0])
        return write(line)

    def started(argv: Any, **kw: Any) -> Any:
        if argv[-1:] == ["true"]:  # the step (through its launcher), not the watchdog
            running = leash._WATCHDOG.proc is not None and leash._WATCHDOG.proc.poll() is None
            events.append("step started" + ("" if running else " (no watchdog)"))
        return popen(argv, **kw)

    monkeypatch.setattr(leash._WATCHDOG, "_write", told)
    monkeypatch.setattr(command_process.subprocess, "Popen", started)
    out = command_process.default_runner(["true"], timeout=10, cwd=None, env=None, stop=stop)
    assert out.returncode == 0
    assert "step started" in events, events  # "(no watchdog)": it was started after the step
    assert events[events.index("step started") - 1] == "deadline"  # told before the start
    assert events[events.index("step started") + 1 :][:2] == ["deadline", "watch"]
