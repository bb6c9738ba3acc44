"""What waits for people past its timeout, as the scheduler's reminders read and mark it:
open gates (with the run each belongs to) and their reminded/escalated marks, and reverts
waiting for their approvers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlmodel import col, select

from bot.store.claims import claim
from bot.store.models import Gate, GateStatus, Run, RunStatus
from bot.store.unit import Tx

Mark = Literal["reminded_at", "escalated_at"]


def open_gates(tx: Tx) -> list[tuple[Gate, Run | None]]:
    """Every open gate, with its run (None: the run row is gone)."""
    gates = list(tx.session.exec(select(Gate).where(Gate.status == GateStatus.OPEN)))
    runs = {g.run_id: tx.get(Run, g.run_id) for g in gates}
    return [(g, runs[g.run_id]) for g in gates]


def gate(tx: Tx, gate_id: int | None) -> tuple[Gate | None, Run | None]:
    """A gate and its run (None for what is gone)."""
    found = tx.get(Gate, gate_id) if gate_id is not None else None
    return found, tx.get(Run, found.run_id) if found is not None else None


def mark_gate(tx: Tx, gate_id: int, mark: Mark, now: datetime) -> bool:
    """Claims the open gate's reminder (`reminded_at`) or escalation (`escalated_at`):
    False when it was marked already (by another replica) or the gate is no longer open."""
    return claim(
        tx,
        Gate,
        col(Gate.id) == gate_id,
        col(getattr(Gate, mark)).is_(None),
        col(Gate.status) == GateStatus.OPEN,
        values={mark: now},
    )


def pending_reverts(tx: Tx) -> list[Run]:
    """Every revert run waiting for its approvers."""
    return list(tx.session.exec(select(Run).where(Run.status == RunStatus.REVERT_PENDING)))
