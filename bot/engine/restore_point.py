"""The restore point of a run: the one verified backup a restore puts back, fixed once.

What a restore protects is the database as it was before the cutover began changing it,
and only phases with `on_fail: restore_and_rollback` are declared to change it. So the
restore point is **the newest verified backup the run took before the first state-changing
action of a restore-protected phase could begin**. It is fixed at that moment, in the
transaction that records the step result just before that action (the pre-migration backup's
own result in the NostrMaxi runbook), or the one that starts the phase when that action comes
first, as a `restore_point.set` audit row (path, SHA-256, when and by which phase, step and
attempt the backup was taken, which action it protects). It never moves afterwards: a Retry
re-takes the backup over a half-migrated database, a later phase may take another, and each is
kept and recorded as a step result, but none is ever promoted. When no verified backup exists
at that moment, `restore_point.missing` says so, and a restore refuses to guess.

"State-changing" is every action whose kind changes state (`mutates`) except a backup, which
only reads the database. Dry runs change nothing and fix nothing.

Where the backup came from is read from the audit trail itself, as an auditor would: a step
result belongs to the phase attempt whose `phase.started` row precedes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.audit_kinds import AuditKind
from bot.store import restore_points
from bot.store.models import PhaseRun, Run
from bot.store.restore_points import POINT_KINDS
from bot.store.unit import Database, Store, Tx
from bot.surface import SYSTEM
from phases.checks import REGISTRY
from phases.runbook import Runbook, StepSpec

__all__ = ["POINT_KINDS", "RestorePoint", "fix_after_step", "fix_at_phase_start", "read"]


@dataclass(frozen=True)
class RestorePoint:
    """The audit row that fixed a run's restore point, read back."""

    kind: str  # restore_point.set | restore_point.missing
    data: dict[str, Any]

    @property
    def found(self) -> bool:
        return self.kind == AuditKind.RESTORE_POINT_SET

    @property
    def path(self) -> str:
        return str(self.data.get("path", ""))

    @property
    def sha256(self) -> str:
        return str(self.data.get("sha256", ""))


def state_changing(step: StepSpec) -> bool:
    """An action that changes what a restore must undo (a backup only reads the database)."""
    kind = REGISTRY.get(step.kind)
    return kind is not None and kind.mutates and step.kind != "backup"


def protected(runbook: Runbook, phase_index: int) -> bool:
    return runbook.phases[phase_index].on_fail == "restore_and_rollback"


def fix_after_step(
    tx: Tx, runbook: Runbook, run_id: int, phase_run_id: int, step: StepSpec, at: datetime
) -> None:
    """After an action's result (in its transaction): fixes the restore point if the next
    action of this restore-protected phase is the first one to change state."""
    if not any(p.on_fail == "restore_and_rollback" for p in runbook.phases):
        return
    pr = tx.get(PhaseRun, phase_run_id)
    if pr is None or not protected(runbook, pr.phase_index):
        return
    actions = runbook.phases[pr.phase_index].actions
    ids = [a.id for a in actions]
    if step.id not in ids or ids.index(step.id) + 1 >= len(ids):
        return
    following = actions[ids.index(step.id) + 1]
    if state_changing(following):
        fix(tx, runbook, run_id, pr, following, at)


def fix_at_phase_start(
    tx: Tx | Any, runbook: Runbook, run_id: int, pr: PhaseRun, at: datetime
) -> None:
    """When a restore-protected phase starts with a state-changing action (in the
    transaction that starts it): fixes the restore point before that action runs."""
    if not protected(runbook, pr.phase_index):
        return
    actions = runbook.phases[pr.phase_index].actions
    if actions and state_changing(actions[0]):
        fix(Tx.of(tx, lambda: at), runbook, run_id, pr, actions[0], at)


def fix(
    tx: Tx, runbook: Runbook, run_id: int, pr: PhaseRun, before: StepSpec, at: datetime
) -> None:
    """Records the run's restore point unless it is fixed already (it never moves)."""
    run = tx.get(Run, run_id)
    if run is None or run.dry_run:
        return
    if restore_points.point_row(tx, run_id) is not None:
        return
    protects = {
        "phase": pr.phase_id,
        "phase_number": runbook.phase_number(pr.phase_index),
        "attempt": pr.attempt,
        "step": before.id,
        "step_name": before.name,
    }
    backup = _newest_backup(tx, run_id)
    if backup is None:
        tx.audit(
            AuditKind.RESTORE_POINT_MISSING,
            actor=SYSTEM.id,
            run_id=run_id,
            data={"protects": protects},
            at=at,
        )
        return
    taken_by = backup["taken_by"]
    if isinstance(taken_by.get("phase_index"), int):
        taken_by["phase_number"] = runbook.phase_number(taken_by["phase_index"])
    tx.audit(
        AuditKind.RESTORE_POINT_SET,
        actor=SYSTEM.id,
        run_id=run_id,
        data={**backup, "protects": protects},
        at=at,
    )


def _newest_backup(tx: Tx, run_id: int) -> dict[str, Any] | None:
    """The run's newest passed backup so far, with the phase attempt and step that took it."""
    found = backups_in(restore_points.backup_rows(tx, run_id))
    return found[-1] if found else None


def backups_in(rows: Any) -> list[dict[str, Any]]:
    """The passed backups among audit rows in order (phase.started and step.result), each
    with the phase attempt and step that took it."""
    phase: dict[str, Any] = {}
    found: list[dict[str, Any]] = []
    for ev in rows:
        data = json.loads(ev.data)
        if ev.kind == AuditKind.PHASE_STARTED:
            phase = data
            continue
        artifact = data.get("artifact")
        if (
            data.get("section") == "actions"
            and data.get("status") == "pass"
            and isinstance(artifact, dict)
            and artifact.get("type") == "backup"
        ):
            found.append(
                {
                    "path": artifact.get("path"),
                    "sha256": artifact.get("sha256"),
                    "bytes": artifact.get("bytes"),
                    "database": artifact.get("database"),
                    "taken_at": ev.at,
                    "taken_by": {
                        "phase": phase.get("phase"),
                        "phase_index": phase.get("index"),
                        "attempt": phase.get("attempt"),
                        "step": data.get("step"),
                    },
                    "backup_row": ev.seq,
                }
            )
    return found


def read(db: Database, run_id: int) -> RestorePoint | None:
    """The run's restore point row (set or missing), or None while it is not fixed."""
    with Store(db).tx() as tx:
        ev = restore_points.point_row(tx, run_id)
    return None if ev is None else RestorePoint(ev.kind, json.loads(ev.data))


def later_backups(db: Database, run_id: int, point: RestorePoint) -> list[dict[str, Any]]:
    """The verified backups the run took after its restore point's: kept, never used."""
    after = int(point.data.get("backup_row") or 0)
    with Store(db).tx() as tx:
        found = backups_in(restore_points.backup_rows(tx, run_id))
    return [b for b in found if b["backup_row"] > after]
