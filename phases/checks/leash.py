"""The leash: a watchdog process that kills a lease holder's running steps once its lease
may have lapsed, even when the holder itself cannot (paused with SIGSTOP, killed, wedged).

A step runs in its own session, so pausing or killing the bot does not reach it; without the
leash, a step of a paused holder would still run while the replica that took the lease over
runs the rollback (a restore twice at once). The holder tells the leash, on a pipe, the
deadline its lease is safe until (time.monotonic(), one clock for every process on the
machine) and each step process group it starts; past the deadline, with no renewal, the
leash SIGKILLs them. When the holder's end of the pipe closes (it died), the last deadline
still holds, then the leash kills what remains and exits. One watchdog process serves every
engine of a bot process (each its own key), and exits when it has watched nothing for a while.

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
import uuid
import weakref

POLL_SECONDS = 0.05
IDLE_EXIT_SECONDS = 10.0  # nothing watched this long: exit (restarted on demand)


class _Watchdog:
    """The one watchdog process of this bot process, shared by its engines' leashes (each
    with its own key, deadline and groups); restarted on demand and told everything again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.leashes: weakref.WeakValueDictionary[str, Leash] = weakref.WeakValueDictionary()

    def _ensure(self) -> bool:
        """Under the lock: the process runs (started, and told every leash's state)."""
        if self.proc is not None and self.proc.poll() is None:
            return True
        # A file path with -I -S: the standard library only, so it watches within
        # milliseconds of the step's start, not after importing every step kind.
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        lines: list[str] = []
        for key, leash in list(self.leashes.items()):
            if leash.deadline is not None:
                lines.append(f"deadline {key} {leash.deadline}")
            lines += [f"watch {key} {g}" for g in sorted(leash.groups)]
        return all(self._write(line) for line in lines)

    def _write(self, line: str) -> bool:
        if self.proc is None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError):
            self.proc = None
            return False

    def tell(self, *lines: str, start: bool = True) -> bool:
        """True once the lines are in the watchdog's pipe: it reads them even if this
        process is paused or killed the moment after."""
        with self.lock:
            if not start and (self.proc is None or self.proc.poll() is not None):
                return False
            for _ in range(2):  # once more if it had just exited (it then hears everything)
                try:
                    if self._ensure() and all(self._write(line) for line in lines):
                        return True
                except OSError:  # the watchdog could not be started
                    self.proc = None
            return False


_WATCHDOG = _Watchdog()


class Leash:
    """One lease holder's side (an engine): its deadline and the step process groups it
    started, told to the shared watchdog; never raises into a step."""

    def __init__(self) -> None:
        self.key = uuid.uuid4().hex[:12]
        self.deadline: float | None = None
        self.groups: set[int] = set()
        _WATCHDOG.leashes[self.key] = self

    def renew(self, deadline: float) -> None:
        """Steps may run until `deadline` (time.monotonic()) unless renewed again."""
        self.deadline = deadline
        if self.groups:
            _WATCHDOG.tell(f"deadline {self.key} {deadline}")

    def ready(self) -> None:
        """Before a step starts: the watchdog runs and knows the deadline, so that `watch`,
        right after the step's start, is one line on a pipe. (Started by `watch` itself, the
        watchdog was a process start away: a holder paused in between left its step
        unwatched, and it ran to its end beside the rollback of the replica that took over;
        seen under a saturated CPU in tests/test_lease_fencing.py.)"""
        if self.deadline is not None:
            _WATCHDOG.tell(f"deadline {self.key} {self.deadline}")

    def watch(self, pgid: int) -> str | None:
        """Tells the watchdog of a step's process group, which waits to begin until this
        returns None (`command_process.default_runner`); else why it must not begin at all:
        the lease may have lapsed already, or the watchdog could not be told."""
        if self.deadline is None:
            return None  # no lease: nothing to enforce
        self.groups.add(pgid)
        if time.monotonic() >= self.deadline:
            return "this replica's lease may have lapsed (it was not renewed in time)"
        # The deadline first: renewals while nothing ran were not sent.
        told = _WATCHDOG.tell(f"deadline {self.key} {self.deadline}", f"watch {self.key} {pgid}")
        if not told:
            return "the lease's watchdog could not be told of it (it would run unwatched)"
        return None

    def unwatch(self, pgid: int) -> None:
        self.groups.discard(pgid)
        _WATCHDOG.tell(f"unwatch {self.key} {pgid}", start=False)

    def close(self) -> None:
        """Nothing of this holder runs any more."""
        self.deadline = None
        self.groups.clear()


def _kill(groups: set[int]) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    groups.clear()


def main() -> int:
    deadlines: dict[str, float] = {}
    groups: dict[str, set[int]] = {}
    buf = b""
    open_ = True
    idle_since = time.monotonic()
    fd = sys.stdin.fileno()
    while open_ or any(groups.values()):
        now = time.monotonic()
        for key, watched in groups.items():
            if watched and key in deadlines and now >= deadlines[key]:
                _kill(watched)
        if any(groups.values()):
            idle_since = now
        elif now - idle_since > IDLE_EXIT_SECONDS or not open_:
            break
        if not open_:  # the bot died: its last deadlines still hold
            for key, watched in groups.items():
                if key not in deadlines:
                    watched.clear()
            time.sleep(POLL_SECONDS)
            continue
        ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            open_ = False
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            what, key, arg = (line.decode().split(" ") + ["", ""])[:3]
            if what == "deadline":
                deadlines[key] = float(arg)
            elif what == "watch":
                groups.setdefault(key, set()).add(int(arg))
            elif what == "unwatch":
                groups.get(key, set()).discard(int(arg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
