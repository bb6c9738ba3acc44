"""Open gates and pending reverts past their timeout: a reminder, then an escalation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain.audit_kinds import AuditKind
from bot.domain.states import EventStatus, GateStatus, RunStatus
from bot.notices import (
    gate_escalation_text,
    gate_reminder_text,
    revert_escalation_text,
    revert_reminder_text,
)
from bot.scheduler.delivery import Posted
from bot.store import reverts, runs, scheduled_events, timeouts
from bot.store.unit import Duplicate
from bot.surface import SYSTEM
from phases.runbook import RunbookError

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.store.scheduled_events import ScheduledEvent
    from bot.store.unit import Store


class Reminders:
    """Produces a gate's (or a pending revert's) reminder and escalation events when their
    time comes, and posts them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def store(self) -> Store:
        return self.engine.store

    def gate_timeouts(self, now: datetime) -> list[str]:
        done: list[str] = []
        with self.store.tx() as tx:
            gates = timeouts.open_gates(tx)
        for gate, run in gates:
            if run is None or gate.id is None:
                continue
            try:
                env = self.engine.environment(run.environment)
            except RunbookError:
                continue
            timeout = timedelta(minutes=env.gate_timeout_minutes)
            opened = gate.opened_at
            marks: tuple[tuple[timeouts.Mark, str, int, AuditKind], ...] = (
                ("reminded_at", "gate-reminder", 1, AuditKind.GATE_REMINDED),
                ("escalated_at", "gate-escalation", 2, AuditKind.GATE_ESCALATED),
            )
            for mark, kind, times, audit_kind in marks:
                if getattr(gate, mark) is not None or now < opened + times * timeout:
                    continue
                try:
                    with self.store.tx() as tx:
                        if not timeouts.mark_gate(tx, gate.id, mark, now):
                            continue
                        scheduled_events.add(
                            tx,
                            f"gate:{gate.id}:{kind.removeprefix('gate-')}",
                            kind,
                            now,
                            run_id=run.id,
                            gate_id=gate.id,
                        )
                        tx.audit(
                            audit_kind,
                            actor=SYSTEM.id,
                            run_id=run.id,
                            data={
                                "gate": gate.id,
                                "phase": gate.phase_id,
                                "waited_minutes": int((now - opened).total_seconds() // 60),
                                "timeout_minutes": env.gate_timeout_minutes,
                            },
                            at=now,
                        )
                except Duplicate:
                    continue
                done.append(f"gate #{gate.id}: {kind}")
        return done

    def revert_timeouts(self, now: datetime) -> list[str]:
        """A revert waiting for its approvers is reminded after the environment's gate
        timeout and escalated after twice it, as a gate is; it never approves itself (fails
        closed: it waits until an approver decides or someone aborts it). The event's unique
        key is the claim: one reminder and one escalation per revert, whatever the replicas."""
        with self.store.tx() as tx:
            pending = timeouts.pending_reverts(tx)
            keys = scheduled_events.keys_of_runs(tx, [r.id for r in pending])
            votes: dict[int | None, int] = {
                r.id: len(reverts.votes(tx, r.id)) for r in pending if r.id is not None
            }
        done: list[str] = []
        for run in pending:
            try:
                env = self.engine.environment(run.environment)
            except RunbookError:
                continue
            timeout = timedelta(minutes=env.gate_timeout_minutes)
            for kind, times, audit_kind in (
                ("revert-reminder", 1, AuditKind.REVERT_REMINDED),
                ("revert-escalation", 2, AuditKind.REVERT_ESCALATED),
            ):
                key = f"revert:{run.id}:{kind.removeprefix('revert-')}"
                if key in keys or now < run.started_at + times * timeout:
                    continue
                try:
                    with self.store.tx() as tx:
                        # The key taken first: the audit row only with the claim.
                        scheduled_events.add(tx, key, kind, now, run_id=run.id)
                        tx.audit(
                            audit_kind,
                            actor=SYSTEM.id,
                            run_id=run.id,
                            data={
                                "reverts": run.reverts_run_id,
                                "votes": votes.get(run.id, 0),
                                "quorum": env.quorum,
                                "waited_minutes": int((now - run.started_at).total_seconds() // 60),
                                "timeout_minutes": env.gate_timeout_minutes,
                            },
                            at=now,
                        )
                except Duplicate:
                    continue
                done.append(f"run #{run.id}: {kind}")
        return done

    def post_gate(self, row: ScheduledEvent, now: datetime, notes: list[str]) -> Posted:
        engine = self.engine
        with self.store.tx() as tx:
            gate, run = timeouts.gate(tx, row.gate_id)
        if gate is None or run is None or run.id is None:
            return Posted(EventStatus.SKIPPED, reason="gate gone")
        if gate.status != GateStatus.OPEN:
            return Posted(EventStatus.SKIPPED, reason=f"gate {gate.status} meanwhile")
        env = engine.environment(run.environment)
        try:
            phase_name = engine.runbook.phase(gate.phase_id).name
        except KeyError:
            phase_name = gate.phase_id
        waited = (now - gate.opened_at).total_seconds()
        if row.kind == "gate-reminder":
            text = gate_reminder_text(run.id, phase_name, waited, env.gate_timeout_minutes, env)
            engine.surface.notice(run.id, "\n".join([*notes, text]))
            return Posted(EventStatus.SENT, run.channel)
        text = gate_escalation_text(
            run.id, run.environment, phase_name, waited, env.gate_timeout_minutes, env
        )
        # An escalation goes to the channel itself, not only the run's thread.
        if run.channel:
            engine.surface.notice(None, "\n".join([*notes, text]), run.channel)
        else:
            engine.surface.notice(run.id, "\n".join([*notes, text]))
        return Posted(EventStatus.SENT, run.channel)

    def post_revert(self, row: ScheduledEvent, now: datetime, notes: list[str]) -> Posted:
        """A pending revert's reminder (in the revert run's thread) or escalation (the channel
        itself); skipped once an approver or an abort decided it."""
        engine = self.engine
        with self.store.tx() as tx:
            run = runs.get(tx, row.run_id) if row.run_id is not None else None
            votes = len(reverts.votes(tx, row.run_id)) if row.run_id is not None else 0
        if run is None or run.id is None or run.reverts_run_id is None:
            return Posted(EventStatus.SKIPPED, reason="revert gone")
        if run.status != RunStatus.REVERT_PENDING:
            return Posted(EventStatus.SKIPPED, reason=f"revert {run.status} meanwhile")
        env = engine.environment(run.environment)
        waited = (now - run.started_at).total_seconds()
        args = (run.id, run.reverts_run_id, waited, votes, env, run.environment)
        if row.kind == "revert-reminder":
            engine.surface.notice(run.id, "\n".join([*notes, revert_reminder_text(*args)]))
        elif run.channel:
            text = "\n".join([*notes, revert_escalation_text(*args)])
            engine.surface.notice(None, text, run.channel)
        else:
            engine.surface.notice(run.id, "\n".join([*notes, revert_escalation_text(*args)]))
        return Posted(EventStatus.SENT, run.channel)
