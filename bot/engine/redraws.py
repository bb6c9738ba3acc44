"""Redraws of chat messages, off the thread that changed the state, latest state only.

A redraw ("the run changed", "the gate changed") reads the state from the database when it
runs, so two redraws of one message waiting at once are one: the later one shows both
changes. Running them on a few threads of their own keeps a phase (or a click) from waiting
for chat calls, and a rate-limited redraw from holding up another run's: one message is
never redrawn by two threads at once, and a redraw asked for while one runs runs again after.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger(__name__)

Key = tuple[str, int]


class Redraws:
    def __init__(self, call: Callable[[str, int], None], workers: int = 2) -> None:
        self._call = call
        self._pending: OrderedDict[Key, None] = OrderedDict()
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"cutover-redraw-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, what: str, ident: int) -> None:
        key = (what, ident)
        with self._cond:
            if key in self._running:
                self._again.add(key)  # runs once more when the current one is done
            elif key not in self._pending:
                self._pending[key] = None
                self._cond.notify()

    def _next(self) -> Key | None:
        with self._cond:
            while True:
                for key in self._pending:
                    if key not in self._running:
                        del self._pending[key]
                        self._running.add(key)
                        return key
                if self._closed and not self._pending:
                    return None
                self._cond.wait()

    def _work(self) -> None:
        while True:
            key = self._next()
            if key is None:
                return
            try:
                self._call(*key)
            except Exception:
                log.exception("redraw %s #%s failed", *key)
            with self._cond:
                self._running.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self._pending[key] = None
                self._cond.notify_all()

    def idle(self, timeout: float = 10.0) -> bool:
        """Waits until nothing is pending or running; True if it got there in time."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._running, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Finishes what is pending, then stops the threads."""
        self.idle(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
