"""The leash: a watchdog process that kills a lease holder's running steps once its lease
may have lapsed, even when the holder itself cannot (paused with SIGSTOP, killed, wedged).

A step runs in its own session, so pausing or killing the bot does not reach it; without the
leash, a step of a paused holder would still run while the replica that took the lease over
runs the rollback (a restore twice at once). The holder tells the leash, on a pipe, the
deadline its lease is safe until (time.monotonic(), one clock for every process on the
machine) and each step process group it starts; past the deadline, with no renewal, the
leash SIGKILLs them. When the holder's end of the pipe closes (it died), the last deadline
still holds, then the leash kills what remains and exits.

    python -I -S phases/checks/leash.py   (started by `Leash`; reads its commands on stdin)
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time

POLL_SECONDS = 0.05
IDLE_EXIT_SECONDS = 10.0  # nothing watched this long: exit (restarted on demand)


class Leash:
    """The holder's side: starts the watchdog when a step starts; never raises into a step.
    It remembers the deadline and the groups watched, and tells a restarted watchdog all of
    them (one that exited while idle, or died)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._deadline: float | None = None
        self._groups: set[int] = set()

    def _ensure(self) -> bool:
        """Under the lock: the watchdog runs (started and told everything if it did not)."""
        if self._proc is not None and self._proc.poll() is None:
            return True
        # A file path with -I -S: the standard library only, so it watches within
        # milliseconds of the step's start, not after importing every step kind.
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        lines = ([f"deadline {self._deadline}"] if self._deadline is not None else []) + [
            f"watch {g}" for g in sorted(self._groups)
        ]
        return all(self._write(line) for line in lines)

    def _write(self, line: str) -> bool:
        if self._proc is None or self._proc.stdin is None:
            return False
        try:
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError):
            self._proc = None
            return False

    def _tell(self, line: str | None) -> None:
        with self._lock:
            for _ in range(2):  # once more if it had just exited
                if self._ensure() and (line is None or self._write(line)):
                    return

    def renew(self, deadline: float) -> None:
        """Steps may run until `deadline` (time.monotonic()) unless renewed again."""
        with self._lock:
            self._deadline = deadline
            watching = bool(self._groups)
        if watching:
            self._tell(f"deadline {deadline}")

    def watch(self, pgid: int) -> None:
        with self._lock:
            if self._deadline is None:
                return  # no lease: nothing to enforce
            self._groups.add(pgid)
        self._tell(f"watch {pgid}")

    def unwatch(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)
            if self._proc is not None and self._proc.poll() is None:
                self._write(f"unwatch {pgid}")

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _kill(groups: set[int]) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    groups.clear()


def main() -> int:
    deadline: float | None = None
    groups: set[int] = set()
    buf = b""
    open_ = True
    idle_since = time.monotonic()
    fd = sys.stdin.fileno()
    while open_ or groups:
        now = time.monotonic()
        if deadline is not None and now >= deadline and groups:
            _kill(groups)
        if groups:
            idle_since = now
        elif now - idle_since > IDLE_EXIT_SECONDS:
            break
        if not open_:
            time.sleep(POLL_SECONDS)
            continue
        ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            open_ = False  # the holder died: its last deadline still holds
            if deadline is None:
                break
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            what, _, arg = line.decode().partition(" ")
            if what == "deadline":
                deadline = float(arg)
            elif what == "watch":
                groups.add(int(arg))
            elif what == "unwatch":
                groups.discard(int(arg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
