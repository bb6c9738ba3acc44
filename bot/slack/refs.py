"""Which Slack message is whose: message refs ("CHANNEL:TS").

A run's parent message and its checkpoints' refs live in the database (`Engine.set_surface_ref`:
the first one written wins, so a restarted bot or another replica edits the same
messages); once known they never change, so this process keeps them (`MessageRefs`) and
a redraw goes straight to the outbox, with no read before it. Sign-off and checklist
messages are kept in bot.store.message_refs. A message Slack lost (deleted, edit window
closed) is forgotten here and posted again.
"""

from __future__ import annotations

import threading
import time

from bot.ports import SurfaceRowsPort
from bot.store import message_refs
from bot.views import Posted


class MessageRefs:
    """The refs this process knows, and the database's sign-off and checklist refs (through
    `rows`, the surface's own rows: bot.ports.SurfaceRowsPort, given when bound)."""

    rows: SurfaceRowsPort

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._runs: dict[int, str] = {}
        self._gates: dict[int, tuple[str, int]] = {}  # gate → (its message, its run)
        self._settled: set[int] = set()  # gates Slack was last sent as decided
        self._homes: dict[str, str] = {}  # environment → its "starting…" message (claim_home)
        self._iterations: dict[int, int] = {}

    # ------------------------------------------------------------------ runs and gates

    def run(self, run_id: int) -> str | None:
        with self._guard:
            return self._runs.get(run_id)

    def learn_run(self, run_id: int, ref: str) -> str:
        with self._guard:
            self._runs[run_id] = ref
        return ref

    def forget_run(self, run_id: int, lost: str) -> None:
        with self._guard:
            if self._runs.get(run_id) == lost:
                del self._runs[run_id]

    def gate(self, gate_id: int) -> tuple[str, int] | None:
        """(the gate's message, its run), if this process has seen it (no read)."""
        with self._guard:
            return self._gates.get(gate_id)

    def learn_gate(self, gate_id: int, run_id: int, ref: str) -> str:
        with self._guard:
            self._gates[gate_id] = (ref, run_id)
        return ref

    def forget_gate(self, gate_id: int, lost: str) -> None:
        with self._guard:
            if self._gates.get(gate_id, (None,))[0] == lost:
                del self._gates[gate_id]
            self._settled.discard(gate_id)

    def settle(self, gate_id: int) -> None:
        """Slack was sent the gate as decided: nothing of it to reconcile on a resync."""
        with self._guard:
            self._settled.add(gate_id)

    def settled(self) -> set[int]:
        with self._guard:
            return set(self._settled)

    def iteration(self, gate_id: int) -> str:
        """A new suffix for each drawing of a checkpoint: Slack asks for a new block_id per
        iteration of an updated message, or clients keep their own checkbox state."""
        with self._guard:  # microseconds: new after a restart too, and always increasing
            n = max(self._iterations.get(gate_id, 0) + 1, time.time_ns() // 1000)
            self._iterations[gate_id] = n
        return f"{n:x}"

    # ------------------------------------------------------------------ "starting…" messages

    def claim_home(self, env_name: str, ref: str) -> str | None:
        """`ref` is the "starting…" message of `env_name`; returns the one it replaces."""
        with self._guard:
            old = self._homes.pop(env_name, None)
            self._homes[env_name] = ref
        return old

    def take_home(self, env_name: str) -> str | None:
        """The "starting…" message of `env_name`, no longer kept here."""
        with self._guard:
            return self._homes.pop(env_name, None)

    # ------------------------------------------------------------------ in the database

    def signoff(self, run_id: int) -> str | None:
        """The run's sign-off message, as the database has it: posted by this process or
        another, before a restart or after."""
        posted = self.rows.posted(message_refs.signoff_key(run_id))
        return posted.ref if posted else None

    def own_signoff(self, run_id: int, ref: str) -> str:
        """Keeps `ref` as the run's sign-off message unless one is kept already; the winner."""
        return self.rows.remember_post(message_refs.signoff_key(run_id), ref, run_id=run_id)

    def checklist(self, schedule_id: int) -> Posted | None:
        return self.rows.posted(message_refs.checklist_key(schedule_id))

    def remember_checklist(self, schedule_id: int, ref: str, text: str) -> None:
        """Keeps where the T-1h checklist is, and the notice text it is drawn from, so a tick
        typed as a command redraws it (from any replica, after a restart). A notice posted
        again (a reclaimed claim) becomes the one redrawn: it is the newer, complete one."""
        key = message_refs.checklist_key(schedule_id)
        if self.rows.remember_post(key, ref, body=text) != ref:
            self.rows.replace_post(key, ref, body=text)
