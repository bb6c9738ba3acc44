"""Open gates and pending reverts past their timeout: a reminder, then an escalation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.models import (
    EventStatus,
    Gate,
    GateStatus,
    RevertVote,
    Run,
    RunStatus,
    ScheduledEvent,
)
from bot.notices import (
    gate_escalation_text,
    gate_reminder_text,
    revert_escalation_text,
    revert_reminder_text,
)
from bot.scheduler.delivery import Posted
from bot.store.claims import claim
from bot.surface import SYSTEM
from phases.runbook import RunbookError

if TYPE_CHECKING:
    from bot.db import Database
    from bot.engine import Engine


class Reminders:
    """Produces a gate's (or a pending revert's) reminder and escalation events when their
    time comes, and posts them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def db(self) -> Database:
        return self.engine.db

    def gate_timeouts(self, now: datetime) -> list[str]:
        done: list[str] = []
        with self.db.session() as s:
            gates = list(s.exec(select(Gate).where(Gate.status == GateStatus.OPEN)))
            runs = {g.run_id: s.get(Run, g.run_id) for g in gates}
        for gate in gates:
            run = runs.get(gate.run_id)
            if run is None or gate.id is None:
                continue
            try:
                env = self.engine.environment(run.environment)
            except RunbookError:
                continue
            timeout = timedelta(minutes=env.gate_timeout_minutes)
            opened = gate.opened_at
            for column, kind, times, audit_kind in (
                ("reminded_at", "gate-reminder", 1, AuditKind.GATE_REMINDED),
                ("escalated_at", "gate-escalation", 2, AuditKind.GATE_ESCALATED),
            ):
                if getattr(gate, column) is not None or now < opened + times * timeout:
                    continue
                try:
                    with self.db.session() as s:
                        if not claim(
                            s,
                            Gate,
                            col(Gate.id) == gate.id,
                            col(getattr(Gate, column)).is_(None),
                            col(Gate.status) == GateStatus.OPEN,
                            values={column: now},
                        ):
                            continue
                        s.add(
                            ScheduledEvent(
                                key=f"gate:{gate.id}:{kind.removeprefix('gate-')}",
                                kind=kind,
                                run_id=run.id,
                                gate_id=gate.id,
                                due_at=now,
                            )
                        )
                        audit.append(
                            s,
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
                except IntegrityError:
                    continue
                done.append(f"gate #{gate.id}: {kind}")
        return done

    def revert_timeouts(self, now: datetime) -> list[str]:
        """A revert waiting for its approvers is reminded after the environment's gate
        timeout and escalated after twice it, as a gate is; it never approves itself (fails
        closed: it waits until an approver decides or someone aborts it). The event's unique
        key is the claim: one reminder and one escalation per revert, whatever the replicas."""
        with self.db.session() as s:
            runs = list(s.exec(select(Run).where(Run.status == RunStatus.REVERT_PENDING)))
            keys = set(
                s.exec(
                    select(ScheduledEvent.key).where(
                        col(ScheduledEvent.run_id).in_([r.id for r in runs])
                    )
                )
            )
            votes = {
                r.id: len(list(s.exec(select(RevertVote).where(RevertVote.run_id == r.id))))
                for r in runs
            }
        done: list[str] = []
        for run in runs:
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
                    with self.db.session() as s:
                        s.add(ScheduledEvent(key=key, kind=kind, run_id=run.id, due_at=now))
                        s.flush()  # the key taken first: the audit row only with the claim
                        audit.append(
                            s,
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
                except IntegrityError:
                    continue
                done.append(f"run #{run.id}: {kind}")
        return done

    def post_gate(self, row: ScheduledEvent, now: datetime, notes: list[str]) -> Posted:
        engine = self.engine
        with self.db.session() as s:
            gate = s.get(Gate, row.gate_id)
            run = s.get(Run, gate.run_id) if gate else None
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
        with self.db.session() as s:
            run = s.get(Run, row.run_id)
            votes = len(list(s.exec(select(RevertVote).where(RevertVote.run_id == row.run_id))))
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
