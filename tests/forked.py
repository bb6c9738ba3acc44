"""Driver processes of the crash tests, forked from a process that imported the bot once.

Each `tests/crash_driver.py` or `tests/tick_crash_driver.py` run was a fresh Python start:
about 1.2 s of CPU importing the bot before the driver did anything, most of the crash
tests' CPU on a suite that is CPU-bound (docs/benchmarks.md). multiprocessing's forkserver
imports the drivers (and so the bot) once per test worker, and forks each driver from that
single-threaded server. A driver is still a process of its own, with its own database
connections and threads, killed with SIGKILL where a test kills it; only its imports are
inherited. Its stdout (the drivers' JSON lines) comes back on a socket, its stderr goes to a
file for the failure message.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from typing import Any, TextIO

DRIVERS = ("tests.crash_driver", "tests.tick_crash_driver")


@cache
def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(DRIVERS))
    return ctx


def _run(
    module: str, argv: list[str], env: dict[str, str], out: socket.socket, err_path: str
) -> None:
    """In the forked driver: the caller's environment as it is now (the server's is from
    when it started; a test may have set a variable since), stdout to the socket, stderr to
    the file, then its main."""
    os.environ.clear()
    os.environ.update(env)
    os.dup2(out.fileno(), 1)
    out.close()
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(err, 2)
    os.close(err)
    sys.exit(importlib.import_module(module).main(argv))  # preloaded: no import here


class Driver:
    """One driver process: `stdout` reads its lines; `kill9`, `wait` and `stderr()`."""

    def __init__(self, module: str, argv: Sequence[str]) -> None:
        assert module in DRIVERS, module
        ours, theirs = socket.socketpair()
        fd, self._err_path = tempfile.mkstemp(prefix="cutover-driver-", suffix=".err")
        os.close(fd)
        self.process = _context().Process(
            target=_run,
            args=(module, list(argv), dict(os.environ), theirs, self._err_path),
            daemon=True,
        )
        self.process.start()
        theirs.close()  # the driver holds the only other end: its exit is our EOF
        self._sock = ours
        self.stdout: TextIO = ours.makefile("r", encoding="utf-8")

    def kill9(self) -> int | None:
        """SIGKILL, then its exit code (-9 when the signal killed it)."""
        assert self.process.pid is not None
        os.kill(self.process.pid, signal.SIGKILL)
        return self.wait(10)

    def wait(self, timeout: float) -> int | None:
        self.process.join(timeout)
        return self.process.exitcode

    def stderr(self) -> str:
        try:
            with open(self._err_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self) -> None:
        self.stdout.close()
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self._err_path)
