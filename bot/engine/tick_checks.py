"""Ticks that carry a value, and the checks a manual step runs once it is ticked.

A step with `value` is ticked only with a value that matches it; the value is kept in the
tick's audit row (`value`, and `given` when it was normalised: an npub kept as hex). The
step's `checks` run after the tick commits, off the caller's thread, with `{tick/ITEM/NAME}`
from the gate's ticks and the tick's time (`ticked_at`); their results join the phase run's
steps, and one that fails turns the gate's `checks_passed` false (audit `gate.rechecked`):
the checkpoint never looks greener than the check. Until they have a result, Continue is
refused (`GateFacts.checking`).

The checks run under the run's lease (as a phase does): the tick's transaction takes it when
nobody holds the run, and the holder runs the checks of every tick at the gate that has
none started, one tick after another, then lets the run go. Each tick's checks begin with a
`tick.checks_started` row naming the holder and its epoch, and their results are written
only while that epoch still holds the run (fencing). If the holder dies first, the process
that takes the run over re-runs them or marks them interrupted (bot/engine/tick_resume.py);
ticking an interrupted step again runs them (`tick.checks_resumed`, the person as actor).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

from bot.domain.actor import Actor
from bot.domain.audit_kinds import AuditKind
from bot.domain.tick_marks import Mark
from bot.engine.core import EngineClock, LeaseLost, Notify
from bot.engine.leasing import Leases
from bot.store import gates as gate_rows
from bot.store import leases, ticks
from bot.store.models import Gate, GateStatus, Run, RunStatus
from bot.store.reads import read_tick_marks
from bot.store.unit import Database, Store, Tx
from bot.surface import SYSTEM
from bot.views import interrupted
from phases import tick_values
from phases.checks.base import StepContext
from phases.runbook import ManualStep, PhaseSpec, Runbook, Value
from phases.runner import run_checks

log = logging.getLogger(__name__)


def ticked_values(tx: Tx, run_id: int, gate_id: int) -> dict[str, str]:
    """`tick/ITEM/NAME` → value, of every tick with a value at this gate (its audit rows)."""
    out: dict[str, str] = {}
    for raw in ticks.ticked_rows(tx, run_id):
        data = json.loads(raw)
        if data.get("gate") == gate_id and isinstance(data.get("value"), dict):
            for name, value in data["value"].items():
                out[tick_values.key(str(data.get("item")), name)] = str(value)
    return out


def judge(
    tx: Tx, run_id: int, gate_id: int, step: ManualStep, given: str | None
) -> tuple[dict[str, Any], str | None]:
    """(what the tick's audit row keeps of its value, None), or ({}, why it is refused)."""
    data: dict[str, Any] = {}
    typed = (given or "").strip()
    if step.value is not None:
        kept, problem = tick_values.accept(step.value, typed)
        if problem is not None or kept is None:
            return {}, f"{step.id} not ticked: {problem}"
        data["value"] = {step.value.name: kept}
        if kept != typed:
            data["given"] = typed
    elif typed:
        return {}, f"{step.id} takes no value: tick it with its id alone"
    needs = sorted({i for c in step.checks for i, _ in tick_values.refs(c.params)} - {step.id})
    if needs:
        have = ticked_values(tx, run_id, gate_id)
        missing = [i for i in needs if not any(k.startswith(f"tick/{i}/") for k in have)]
        if missing:
            return {}, (
                f"{step.id} not ticked: tick {', '.join(missing)} first "
                f"(its value is what {step.id}'s checks use)"
            )
    return data, None


def pending(tx: Tx, phase: PhaseSpec, gate: Gate) -> dict[str, list[str]]:
    """Ticked step → the ids of its checks that have no result yet in the gate's phase run."""
    if not phase.tick_checks:
        return {}  # nothing bound to a tick: no read
    ticked = gate_rows.ticked(tx, gate.id)
    done = ticks.checks_with_result(tx, gate.phase_run_id)
    out = {m.id: [c.id for c in m.checks if c.id not in done] for m in phase.manual}
    return {item: ids for item, ids in out.items() if ids and item in ticked}


def _marks(tx: Tx, gate: Gate, todo: dict[str, list[str]]) -> dict[str, Mark]:
    return read_tick_marks(tx, gate.run_id, gate.id or 0) if todo else {}


def checking(tx: Tx, phase: PhaseSpec, gate: Gate) -> list[str]:
    """The checks of ticked steps that have no result yet and were not interrupted."""
    todo = pending(tx, phase, gate)
    marks = _marks(tx, gate, todo)
    return [c for item, ids in todo.items() for c in ids if not _interrupted(marks.get(item))]


def interrupted_checks(tx: Tx, phase: PhaseSpec, gate: Gate) -> list[str]:
    """ "CHECK was interrupted by … at HH:MM UTC; tick ITEM again or Retry", from the trail."""
    todo = pending(tx, phase, gate)
    marks = _marks(tx, gate, todo)
    return [
        f"{c} was {interrupted(mark)}"
        for item, ids in todo.items()
        if (mark := marks.get(item)) is not None and mark.interrupted
        for c in ids
    ]


def tick_facts(tx: Tx, phase: PhaseSpec, gate: Gate) -> dict[str, tuple[str, ...]]:
    """`GateFacts.checking` and `.interrupted` (bot/domain/approvals.py)."""
    return {
        "checking": tuple(checking(tx, phase, gate)),
        "interrupted": tuple(interrupted_checks(tx, phase, gate)),
    }


def _interrupted(mark: Mark | None) -> bool:
    return mark is not None and mark.interrupted


class TickChecks:
    """Runs a ticked step's checks (`Interventions.tick` calls `claim_tick_checks` in its
    transaction and `after_tick` once it committed)."""

    def __init__(
        self,
        db: Database,
        store: Store,
        runbook: Runbook,
        clock: EngineClock,
        leases: Leases,
        add_step: Callable[..., None],
        notify: Notify,
        spawn: Callable[..., None],
        context: Callable[..., tuple[StepContext, dict[str, Value]]],
        advance: Callable[[int], None],
    ) -> None:
        self.db, self.store, self.runbook = db, store, runbook
        self.clock, self.now = clock, clock.when
        self.replica, self.me = leases.replica, leases.me
        self._checks, self._checked = leases.checks, leases.checked
        self._threads_lock, self._epochs = leases.lock, leases.epochs
        self._take_lease, self._ensure_heartbeat = leases.take, leases.ensure_heartbeat
        self.add_step, self.notify, self.spawn = add_step, notify, spawn
        self.context, self.advance = context, advance

    def claim_tick_checks(
        self, tx: Tx, run_id: int, gate: Gate, item_id: str, actor: Actor
    ) -> int | None:
        """In the tick's transaction (the run row locked): the lease epoch this process took
        to run the gate's tick checks, or None (nothing to run, or the holder runs it)."""
        todo = pending(tx, self.runbook.phase(gate.phase_id), gate).get(item_id)
        if not todo:
            return None
        mark = read_tick_marks(tx, run_id, gate.id or 0).get(item_id)
        if mark is not None and mark.interrupted:  # a person asks for them again
            self.mark(
                tx,
                AuditKind.TICK_CHECKS_RESUMED,
                gate,
                item_id,
                todo,
                actor=actor.id,
                cause="tick",
                owner=mark.data["owner"],
            )
        elif mark is not None and mark.started:
            return None  # its holder runs them (or whoever takes its run over)
        run = tx.get(Run, run_id)
        if run is None or run.owner is not None:
            return None  # the holder's loop finds this tick; a dead holder's: tick_resume.py
        self._take_lease(tx, run)
        return run.lease_epoch

    def after_tick(self, run_id: int, gate_id: int, epoch: int | None) -> None:
        """Called once a tick committed: tells the surface, and when this process took the
        run's lease for them (`epoch`), runs the gate's tick checks in the background."""
        self.notify.gate_changed(gate_id)
        if epoch is not None:
            self._ensure_heartbeat()
            self.spawn(self.run_tick_checks, run_id, gate_id, epoch)

    def mark(
        self,
        tx: Tx,
        kind: AuditKind,
        gate: Gate,
        item_id: str,
        checks: list[str],
        actor: str = SYSTEM.id,
        **data: Any,
    ) -> None:
        tx.audit(
            kind,
            actor=actor,
            run_id=gate.run_id,
            data={"gate": gate.id, "phase": gate.phase_id, "item": item_id, "checks": checks}
            | data,
            at=self.now(),
        )

    def _fenced(self, tx: Tx, run_id: int, epoch: int, what: str) -> Run:
        """The run row, locked, if epoch `epoch` of this process still holds it; else
        LeaseLost (another process took the run over, or a phase or rollback took it)."""
        if not leases.holds(tx, run_id, self.me, epoch):
            log.warning("run #%s: %s refused: lease epoch %s no longer held", run_id, what, epoch)
            raise LeaseLost(f"run #{run_id}: {what} refused: the lease was lost")
        run = tx.get(Run, run_id)
        assert run is not None
        return run

    def _let_go(self, run_id: int, epoch: int) -> None:
        with self._threads_lock:
            if self._epochs.get(run_id) == epoch:
                del self._epochs[run_id]

    def run_tick_checks(self, run_id: int, gate_id: int, epoch: int) -> None:
        """The lease holder's work at a gate: the checks of each tick that has none started,
        one tick after another; then it lets the run go (a Retry decided meanwhile: its
        phase starts now)."""
        try:
            while True:
                item, follow = self.db.retrying(
                    lambda: self._next_tick(run_id, gate_id, epoch),
                    f"run #{run_id}: the next tick's checks",
                )
                if item is None:
                    self._let_go(run_id, epoch)
                    if follow:
                        self.spawn(self.advance, run_id)
                    return
                self._check_tick(run_id, gate_id, item, epoch)
        except LeaseLost:
            self._let_go(run_id, epoch)  # another process holds the run now: it decides
        except Exception:  # never a run held by a live process that checks nothing
            with self.store.tx() as tx:
                leases.release(tx, run_id, self.me, epoch)
            self._let_go(run_id, epoch)
            raise

    def _next_tick(self, run_id: int, gate_id: int, epoch: int) -> tuple[str | None, bool]:
        """(the tick whose checks this holder begins now, False), or (None, whether a phase
        must start) with the run let go, all in one locked transaction: a tick committed
        before it is found here, one after it finds the run free and takes it."""
        with self.store.tx() as tx:
            run = self._fenced(tx, run_id, epoch, "checking a tick")
            gate = tx.get(Gate, gate_id)
            if gate is not None and gate.status == GateStatus.OPEN:
                todo = pending(tx, self.runbook.phase(gate.phase_id), gate)
                marks = _marks(tx, gate, todo)
                for item, checks in todo.items():
                    mark = marks.get(item)
                    if mark is None or mark.kind == AuditKind.TICK_CHECKS_RESUMED:
                        self.mark(
                            tx,
                            AuditKind.TICK_CHECKS_STARTED,
                            gate,
                            item,
                            checks,
                            replica=self.replica,
                            epoch=epoch,
                        )
                        return item, False
            run.owner, run.lease_until = None, None
            tx.add(run)
            return None, run.status == RunStatus.RUNNING

    def _check_tick(self, run_id: int, gate_id: int, item_id: str, epoch: int) -> None:
        with self.store.tx() as tx:
            gate = tx.get(Gate, gate_id)
            run = tx.get(Run, gate.run_id) if gate is not None else None
            tick = ticks.tick(tx, gate_id, item_id)
            if gate is None or run is None or run.id is None or tick is None:
                return
            values_ticked = ticked_values(tx, run.id, gate_id)
        phase_run_id = gate.phase_run_id
        step = next(m for m in self.runbook.phase(gate.phase_id).manual if m.id == item_id)
        ctx, values = self.context(run, step.checks)
        values.update(values_ticked)
        # The window is counted on the clock that stamped the tick.
        # As a phase's steps: the checks are known to this process as running under the
        # run's lease, so a lost lease (at the next renewal, or a database out of reach) or a
        # newer one this process took (a rollback, a Retry) stops the running one; a process
        # a check starts is watched by this holder's leash (killed if the lease lapses
        # meanwhile), and its writes carry the holder's fencing token.
        stop = self._checks(run_id, epoch)
        ctx = dataclasses.replace(
            ctx, ticked_at=tick.at.timestamp(), clock=self.clock, stop=stop, fencing_token=epoch
        )
        try:
            outcomes = run_checks(step.checks, values, ctx)
        finally:
            self._checked(run_id, stop)
        failed = [o.step.id for o in outcomes if o.result.status.blocks_gate]

        def record() -> None:
            with self.store.tx() as tx:
                # The lock order of every decision at a gate: the run, then its gate; the
                # results only while this holder's epoch still holds the run.
                self._fenced(tx, run_id, epoch, f"the checks of the {item_id} tick")
                locked = gate_rows.lock(tx, gate_id)
                for outcome in outcomes:
                    self.add_step(tx, run_id, phase_run_id, outcome)
                if failed and locked.status == GateStatus.OPEN and locked.checks_passed:
                    locked.checks_passed = False
                    tx.add(locked)
                    tx.audit(
                        AuditKind.GATE_RECHECKED,
                        actor=SYSTEM.id,
                        run_id=run_id,
                        data={
                            "gate": gate_id,
                            "phase": locked.phase_id,
                            "item": item_id,
                            "failed": failed,
                            "checks_passed": False,
                        },
                        at=self.now(),
                    )

        self.db.retrying(record, f"run #{run_id}: checks of the {item_id} tick")
        log.info("run #%s: checks of the %s tick: %s failed", run_id, item_id, len(failed))
        self.notify.gate_changed(gate_id)
        self.notify.run_changed(run_id)


__all__ = [
    "TickChecks",
    "checking",
    "interrupted_checks",
    "judge",
    "pending",
    "tick_facts",
    "ticked_values",
]
