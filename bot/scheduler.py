"""The time-driven half of the runbook: scheduled notices, gate timeouts, monitoring
rounds and the cutover record. One process (the leader) does it; all state is rows.

`Scheduler.tick(now)` scans the database for due work and does it; it keeps no
state between calls, so a restart or a new leader carries on where the last left
off. Tests call it directly with a controllable clock.

Every message goes out through a `scheduled_event` row: claimed by a conditional
UPDATE (status and attempts as the version), posted, then marked sent with its
audit row ("notice.sent", late=true and how late when sent after its time). A
claim not confirmed within the lease (the process died between claim and post)
is claimed again and the text says it may be a repeat ("notice.reclaimed").

`start_scheduler` runs it for real: every process tries for leadership every few
seconds; the leader runs an APScheduler 3 BackgroundScheduler whose one interval
job is the tick (APScheduler 3 cannot share a job store between processes, so the
jobs live in the leader's memory and the schedule lives in the database).
Leadership on PostgreSQL is `pg_try_advisory_lock` held on a dedicated connection:
it dies with the session, and a standby takes over at its next try. On SQLite a
single process is assumed; a lock file next to the database keeps a second one
(another console on the same file) from ticking too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot import audit
from bot.checklists import Checklists, Scope
from bot.db import Database, DatabaseUnavailable
from bot.domain.audit_kinds import AuditKind
from bot.engine import monitoring
from bot.models import (
    AuditEvent,
    EventStatus,
    Gate,
    GateStatus,
    RevertVote,
    Run,
    RunStatus,
    Schedule,
    ScheduledEvent,
    ScheduleStatus,
)
from bot.notices import (
    Readiness,
    StepLine,
    gate_escalation_text,
    gate_reminder_text,
    late_note,
    readiness_verdict,
    repeat_note,
    revert_escalation_text,
    revert_reminder_text,
    t0_text,
    t1_checklist_text,
    t1_stakeholder_text,
    t24_text,
)
from bot.post_tasks import KINDS as TASK_KINDS
from bot.post_tasks import PostTasks
from bot.record import build_record, record_text, tasks_text
from bot.record_feed import ended_feed
from bot.schedules import ScheduleService
from bot.store.claims import claim
from bot.surface import SYSTEM, SchedulingSurface
from phases.runbook import RunbookError
from phases.runner import run_actions, run_checks

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.settings import Settings

log = logging.getLogger(__name__)

# pg_try_advisory_lock key of the scheduler: "cutover" in ASCII. Locks are per database.
LOCK_KEY = int.from_bytes(b"cutover", "big")
SCHEDULE_KINDS = ("t-24h", "t-1h", "t-1h-checklist", "t-0")


@dataclass(frozen=True)
class Posted:
    status: EventStatus  # SENT or SKIPPED
    channel: str | None = None
    reason: str | None = None


class Scheduler:
    """The leader's work, one tick at a time. Safe to run in several processes at once:
    every piece of work is claimed in the database first (the leader lock only keeps
    the others from doing the scanning for nothing)."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease_seconds: float = 300.0,
        grace_seconds: float = 120.0,
        max_attempts: int = 5,
        record_window: timedelta = timedelta(hours=24),
        identity: str | None = None,
    ) -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.grace = timedelta(seconds=grace_seconds)
        self.max_attempts = max_attempts
        self.record_window = record_window
        self.me = identity or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.schedules = ScheduleService(engine)
        self.tasks = PostTasks(engine)  # post-cutover tasks: listed, reminded, escalated

    @property
    def db(self) -> Database:
        return self.engine.db

    def tick(self, now: datetime | None = None) -> list[str]:
        """Does everything that is due at `now` (default: the engine's clock); says what."""
        now = now or self.engine.now()
        done: list[str] = []
        for step in (
            self._reconcile,
            self._gate_timeouts,
            self._revert_timeouts,
            self._monitoring,
            self._records,
            self.tasks.remind,
            self._deliver_due,
        ):
            try:
                done += step(now)
            except DatabaseUnavailable as exc:
                log.warning("scheduler tick stopped: %s", exc)
                break
            except Exception:
                log.exception("scheduler step %s failed", step.__name__)
        return done

    # ------------------------------------------------------------------ producers

    def _reconcile(self, now: datetime) -> list[str]:
        return self.schedules.reconcile(now)

    def _monitoring(self, now: datetime) -> list[str]:
        return monitoring.tick(self.engine, now, self.me, self.lease.total_seconds())

    def _gate_timeouts(self, now: datetime) -> list[str]:
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

    def _revert_timeouts(self, now: datetime) -> list[str]:
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

    def _records(self, now: datetime) -> list[str]:
        """A run that completed or rolled back gets its record (and the post-cutover tasks)."""
        since = now - self.record_window
        with self.db.session() as s:
            runs = [
                r
                for r in s.exec(
                    select(Run).where(
                        col(Run.status).in_([RunStatus.COMPLETED, RunStatus.ROLLED_BACK])
                    )
                )
                if r.ended_at is not None and r.ended_at >= since
            ]
            keys = set(
                s.exec(
                    select(ScheduledEvent.key).where(
                        col(ScheduledEvent.key).in_([f"record:{r.id}" for r in runs])
                    )
                )
            )
        done: list[str] = []
        for run in runs:
            if f"record:{run.id}" in keys:
                continue
            try:
                with self.db.session() as s:
                    s.add(
                        ScheduledEvent(
                            key=f"record:{run.id}", kind="record", run_id=run.id, due_at=now
                        )
                    )
                    if (
                        not run.dry_run
                        and run.status == RunStatus.COMPLETED
                        and (self.engine.runbook.post_cutover_tasks)
                    ):
                        s.add(
                            ScheduledEvent(
                                key=f"tasks:{run.id}", kind="tasks", run_id=run.id, due_at=now
                            )
                        )
                        self.tasks.open(s, run, now)
            except IntegrityError:
                continue
            done.append(f"run #{run.id}: record due")
        return done

    # ------------------------------------------------------------------ delivery

    def _deliver_due(self, now: datetime) -> list[str]:
        with self.db.session() as s:
            rows = list(
                s.exec(
                    select(ScheduledEvent)
                    .where(
                        col(ScheduledEvent.status).in_([EventStatus.PENDING, EventStatus.CLAIMED])
                    )
                    .order_by(col(ScheduledEvent.due_at), col(ScheduledEvent.id))
                )
            )
        done: list[str] = []
        for row in rows:
            if row.due_at <= now:
                done += self._deliver(row, now)
        return done

    def _deliver(self, row: ScheduledEvent, now: datetime) -> list[str]:
        """claim → post → mark sent (or released for a retry when the post failed)."""
        reclaim = row.status == EventStatus.CLAIMED
        if reclaim and row.claimed_at is not None and now - row.claimed_at < self.lease:
            return []  # being posted right now by whoever claimed it
        attempt = row.attempts + 1
        with self.db.session() as s:
            if not claim(
                s,
                ScheduledEvent,
                col(ScheduledEvent.id) == row.id,
                col(ScheduledEvent.attempts) == row.attempts,
                values={"claimed_at": now, "claimed_by": self.me, "attempts": attempt},
                move=("event", "claim"),
                source=row.status,
            ):
                return []  # another process claimed it first
            if reclaim:
                audit.append(
                    s,
                    AuditKind.NOTICE_RECLAIMED,
                    actor=SYSTEM.id,
                    run_id=row.run_id,
                    data={
                        "event": row.key,
                        "kind": row.kind,
                        "previous": row.claimed_by,
                        "claimed_at": row.claimed_at.isoformat() if row.claimed_at else None,
                    },
                    at=now,
                )
        try:
            posted = self._post(row, now, reclaim)
        except Exception as exc:
            error = self.engine.masker.untrusted(f"{type(exc).__name__}: {exc}")[:300]
            final = attempt >= self.max_attempts
            log.warning("posting %s failed (attempt %s): %s", row.key, attempt, error)
            with self.db.session() as s:
                claim(
                    s,
                    ScheduledEvent,
                    col(ScheduledEvent.id) == row.id,
                    col(ScheduledEvent.attempts) == attempt,
                    values={"error": error},
                    move=("event", "give_up" if final else "release"),
                    source=EventStatus.CLAIMED,
                )
                audit.append(
                    s,
                    AuditKind.NOTICE_FAILED,
                    actor=SYSTEM.id,
                    run_id=row.run_id,
                    data={
                        "event": row.key,
                        "kind": row.kind,
                        "attempt": attempt,
                        "error": error,
                        "final": final,
                    },
                    at=now,
                )
            return [f"{row.key}: failed ({error})"]
        late_s = int((now - row.due_at).total_seconds())
        late = posted.status == EventStatus.SENT and late_s > self.grace.total_seconds()
        with self.db.session() as s:
            if not claim(
                s,
                ScheduledEvent,
                col(ScheduledEvent.id) == row.id,
                col(ScheduledEvent.attempts) == attempt,
                values={"sent_at": now, "late_seconds": late_s if late else None},
                move=("event", "sent" if posted.status == EventStatus.SENT else "skipped"),
                source=EventStatus.CLAIMED,
            ):
                log.warning("%s: the claim expired while posting; it may be posted twice", row.key)
            data: dict[str, Any] = {
                "event": row.key,
                "kind": row.kind,
                "schedule": row.schedule_id,
                "gate": row.gate_id,
                "due_at": row.due_at.isoformat(),
                "attempt": attempt,
            }
            if posted.status == EventStatus.SENT:
                data.update(channel=posted.channel, late=late, repeat=reclaim)
                if late:
                    data["late_seconds"] = late_s
            else:
                data["reason"] = posted.reason
            audit.append(
                s,
                AuditKind.NOTICE_SENT
                if posted.status == EventStatus.SENT
                else AuditKind.NOTICE_SKIPPED,
                actor=SYSTEM.id,
                run_id=row.run_id,
                data=data,
                at=now,
            )
        what = "sent late" if late else str(posted.status)
        return [f"{row.key}: {what}"]

    def _post(self, row: ScheduledEvent, now: datetime, reclaim: bool) -> Posted:
        notes: list[str] = []
        if now - row.due_at > self.grace:
            notes.append(late_note(row.due_at, now))
        if reclaim:
            notes.append(repeat_note(row.claimed_at, row.claimed_by))
        if row.kind in SCHEDULE_KINDS:
            return self._post_schedule(row, now, notes)
        if row.kind in ("gate-reminder", "gate-escalation"):
            return self._post_gate(row, now, notes)
        if row.kind in ("revert-reminder", "revert-escalation"):
            return self._post_revert(row, now, notes)
        if row.kind in TASK_KINDS:
            return Posted(*self.tasks.post(row, now, notes))
        if row.kind in ("record", "tasks"):
            return self._post_record(row, notes)
        return Posted(EventStatus.SKIPPED, reason=f"unknown kind {row.kind!r}")

    def _post_schedule(self, row: ScheduledEvent, now: datetime, notes: list[str]) -> Posted:
        engine, runbook = self.engine, self.engine.runbook
        with self.db.session() as s:
            sched = s.get(Schedule, row.schedule_id)
        if sched is None or sched.id is None:
            return Posted(EventStatus.SKIPPED, reason="schedule gone")
        if sched.status != ScheduleStatus.SCHEDULED:
            return Posted(EventStatus.SKIPPED, reason=f"schedule is {sched.status}")
        start = sched.start_at
        if row.kind != "t-0" and now >= start:
            return Posted(EventStatus.SKIPPED, reason="the start time passed before it was sent")
        env = engine.environment(sched.environment)
        pre = runbook.pre_cutover
        channel = sched.channel
        if row.kind == "t-24h":
            readiness = (
                self._readiness(sched, pre.t_minus_24h.phase, "t-24h")
                if pre is not None and pre.t_minus_24h.phase is not None
                else None
            )
            checked = self.schedules.preflight(sched.environment, "t-24h", sched.id)
            text = t24_text(
                sched.id, sched.environment, start, now, runbook, readiness, checked.text
            )
        elif row.kind == "t-1h":
            channel = sched.stakeholders or sched.channel
            text = t1_stakeholder_text(
                sched.id,
                sched.environment,
                start,
                now,
                runbook,
                sched.channel,
                self._readiness_verdict(sched.id, start),
            )
        elif row.kind == "t-1h-checklist":
            if pre is None:
                return Posted(EventStatus.SKIPPED, reason="the runbook has no T-1h checklist")
            readiness = (
                self._readiness(sched, pre.t_minus_1h.phase, "t-1h")
                if pre.t_minus_1h.phase
                else None
            )
            states = Checklists(engine).states(Scope(sched.environment, sched.id))
            text = t1_checklist_text(
                sched.id, sched.environment, start, pre.t_minus_1h, readiness, states
            )
        else:
            text = "\n".join([*notes, t0_text(sched.id, sched.environment, start, env)])
            surface = engine.surface
            if isinstance(surface, SchedulingSurface):
                surface.start_reminder(
                    sched.id, channel, engine.masker.mask(text), sorted(env.approver_set())
                )
            else:
                surface.notice(None, text, channel)
            return Posted(EventStatus.SENT, channel)
        text = "\n".join([*notes, text])
        surface = engine.surface
        if isinstance(surface, SchedulingSurface):
            surface.scheduled_notice(sched.id, row.kind, channel, engine.masker.mask(text))
        else:
            surface.notice(None, text, channel)
        return Posted(EventStatus.SENT, channel)

    def _readiness(self, sched: Schedule, phase_id: str, notice: str) -> Readiness:
        """The T-24h / T-1h dry run of the checklist's phase: checks run, actions only
        describe. Its results are what a bot-checked item that gates Start reads; `notice`
        ("t-24h", "t-1h") is kept with them as `trigger`, so the T-1h stakeholder line can
        quote the T-24h dry run and nothing else."""
        engine, runbook = self.engine, self.engine.runbook
        phase = runbook.phase(phase_id)
        env = engine.environment(sched.environment)
        try:
            values = runbook.values_for(sched.environment)
        except RunbookError as exc:
            return Readiness(phase.name, [], error=str(exc))
        engine.register_secrets(sched.environment)
        ctx = engine.context_factory(env, True, engine.masker)
        ctx.public_env_keys = frozenset(env.public_env_keys)
        outcomes = run_actions(phase.actions, values, ctx, "actions", stop_on_failure=False)
        outcomes += run_checks(phase.checks, values, ctx)
        steps = [StepLine(o.step.name, str(o.result.status), o.result.evidence) for o in outcomes]
        audit.record(
            self.db,
            AuditKind.READINESS_CHECKED,
            actor=SYSTEM.id,
            data={
                "schedule": sched.id,
                "environment": sched.environment,
                "phase": phase.id,
                "dry_run": True,
                "trigger": notice,
                "results": [
                    {
                        "step": o.step.id,
                        "status": str(o.result.status),
                        "evidence": o.result.evidence,
                    }
                    for o in outcomes
                ],
            },
            at=engine.now(),
        )
        return Readiness(phase.name, steps)

    def _post_gate(self, row: ScheduledEvent, now: datetime, notes: list[str]) -> Posted:
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

    def _post_revert(self, row: ScheduledEvent, now: datetime, notes: list[str]) -> Posted:
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

    def _readiness_verdict(self, schedule_id: int | None, start: datetime) -> str:
        """The T-1h stakeholder notice's readiness line: the schedule's T-24h readiness dry
        run (its `readiness.checked` row with trigger "t-24h"), named with its audit row,
        time and pass/fail counts. A one-check run asked for by `/cutover tick` or the T-1h
        checklist's dry run is not the T-24h readiness and is never quoted as it."""
        with self.db.session() as s:
            rows = s.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.kind == AuditKind.READINESS_CHECKED,
                    col(AuditEvent.data).contains(f'"schedule":{schedule_id}'),
                )
                .order_by(col(AuditEvent.seq).desc())
            ).all()
        for ev in rows:
            data = json.loads(ev.data)
            if data.get("schedule") != schedule_id or not _is_t24(data, ev.at, start):
                continue
            return readiness_verdict(ev.seq, ev.at, data, self.engine.runbook)
        return (
            f"T-24h readiness: no T-24h readiness dry run is recorded for schedule #{schedule_id}"
        )

    def _post_record(self, row: ScheduledEvent, notes: list[str]) -> Posted:
        engine = self.engine
        assert row.run_id is not None
        with self.db.session() as s:
            run = s.get(Run, row.run_id)
        if run is None:
            return Posted(EventStatus.SKIPPED, reason="run gone")
        ended: str | None = None
        if row.kind == "record":
            rec = build_record(self.db, engine.runbook, row.run_id)
            text, ended = record_text(rec, engine.runbook), ended_feed(rec)
        else:
            text = tasks_text(engine.runbook, row.run_id, run.ended_at)
        engine.surface.notice(row.run_id, "\n".join([*notes, text]))
        if row.kind == "record":
            if ended is not None:  # how it ended, from the record's facts (bot.record_feed)
                engine.feed(row.run_id, ended)
            engine.feed(row.run_id, text)  # the stakeholders get the record too
        return Posted(EventStatus.SENT, run.channel)


def _is_t24(data: dict[str, Any], at: str, start: datetime) -> bool:
    """A readiness row is the T-24h dry run when it says so; an older row (written before
    rows named their notice) when nobody asked for it and it ran 12 h or more before the
    start (the T-1h dry run runs an hour before, a `/cutover tick` names its item)."""
    if "trigger" in data:
        return data["trigger"] == "t-24h"
    if data.get("asked_for"):
        return False
    return datetime.fromisoformat(at) <= start - timedelta(hours=12)


# --------------------------------------------------------------------------- leadership


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """True when this process holds the lock (now or already); never blocks long."""
        ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class PgLeaderLock:
    """pg_try_advisory_lock on a dedicated connection: the lock lives as long as the
    session. Kill the connection (or the process) and a standby gets it."""

    def __init__(self, url: str, key: int = LOCK_KEY) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.key = key
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock's session (to kill it in a failover test)."""
        conn = self._conn
        return conn.info.backend_pid if conn is not None else None

    def try_acquire(self) -> bool:
        with self._lock:
            if self._conn is not None and self._alive():
                return True
            try:
                conn = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="cutover-bot scheduler",
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
            except psycopg.Error as exc:
                log.warning("scheduler leader election: cannot connect: %s", exc)
                return False
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            except psycopg.Error:
                conn.close()
                return False
            if not row or not row[0]:
                conn.close()
                return False
            self._conn = conn
            return True

    def _alive(self) -> bool:
        assert self._conn is not None
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
            return False

    def still_held(self) -> bool:
        with self._lock:
            return self._conn is not None and self._alive()

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None


class FileLeaderLock:
    """SQLite: one process per database file is assumed; flock keeps a second one out."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._held = path is None  # an in-memory database has one process by definition

    def try_acquire(self) -> bool:
        if self._held:
            return True
        import fcntl

        assert self.path is not None
        f = self.path.open("a", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._file, self._held = f, True
        return True

    def still_held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None
            self._held = False


def leader_lock_for(db: Database) -> LeaderLock:
    if not db.is_sqlite:
        return PgLeaderLock(db.url)
    database = make_url(db.url).database
    if not database or database == ":memory:":
        return FileLeaderLock(None)
    return FileLeaderLock(Path(database).with_name(Path(database).name + ".scheduler-lock"))


# --------------------------------------------------------------------------- running it


class SchedulerHandle:
    """One process's part: try for leadership every `elect_seconds`; while leader, tick
    every `tick_seconds` in an APScheduler BackgroundScheduler."""

    def __init__(
        self,
        scheduler: Scheduler,
        lock: LeaderLock,
        *,
        tick_seconds: float = 30.0,
        elect_seconds: float = 10.0,
    ) -> None:
        self.scheduler = scheduler
        self.lock = lock
        self.tick_seconds = tick_seconds
        self.elect_seconds = elect_seconds
        self.first_tick_delay = min(tick_seconds, 5.0)
        self._aps: BackgroundScheduler | None = None
        self._guard = threading.RLock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._aps is not None

    def start(self) -> SchedulerHandle:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._elect_loop, name="cutover-scheduler-elect", daemon=True
            )
            self._thread.start()
        return self

    def _elect_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.elect()
            except Exception:
                log.exception("scheduler leader election failed")
            self._wake.wait(self.elect_seconds)
            self._wake.clear()

    def elect(self) -> bool:
        """Takes leadership if free; starts or stops the tick job to match. True if leader."""
        with self._guard:
            if self._stopping.is_set():
                return False
            held = self.lock.try_acquire()
            if held and self._aps is None:
                aps = BackgroundScheduler(timezone=UTC)
                aps.add_job(
                    self._tick_job,
                    IntervalTrigger(seconds=self.tick_seconds, timezone=UTC),
                    id="cutover-tick",
                    # The first tick a moment after: recover() runs first at startup.
                    next_run_time=datetime.now(UTC) + timedelta(seconds=self.first_tick_delay),
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=None,
                )
                aps.start()
                self._aps = aps
                log.info("scheduler: %s is the leader", self.scheduler.me)
                with contextlib.suppress(Exception):
                    audit.record(
                        self.scheduler.db,
                        AuditKind.SCHEDULER_LEADER,
                        actor=SYSTEM.id,
                        data={"process": self.scheduler.me},
                        at=self.scheduler.engine.now(),
                    )
            elif not held and self._aps is not None:
                log.warning("scheduler: %s lost the leadership", self.scheduler.me)
                self._demote()
            return held

    def _demote(self) -> None:
        aps, self._aps = self._aps, None
        if aps is not None:
            with contextlib.suppress(Exception):
                aps.shutdown(wait=False)

    def _tick_job(self) -> None:
        if not self.lock.still_held():  # the lock's session died: someone else may lead now
            self._wake.set()
            return
        self.scheduler.tick()

    def run_once(self, now: datetime | None = None) -> list[str]:
        """elect, then tick if leader (without the background job): for tests and tools."""
        if not self.lock.try_acquire():
            return []
        return self.scheduler.tick(now)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._guard:
            aps, self._aps = self._aps, None
        if aps is not None:
            with contextlib.suppress(Exception):
                aps.shutdown(wait=True)
        self.lock.release()


def start_scheduler(
    engine: Engine, db: Database | None = None, settings: Settings | None = None
) -> SchedulerHandle:
    """Starts this process's scheduler (leader election + the tick); `.stop()` ends it.

    `cutover serve` and `cutover console` call this after `engine.recover()`.
    With settings.scheduler_enabled false the handle is returned unstarted.
    """
    from bot.settings import Settings

    settings = settings or Settings()
    db = db or engine.db
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per tick otherwise
    scheduler = Scheduler(
        engine,
        lease_seconds=settings.notice_lease_seconds,
        grace_seconds=settings.notice_grace_seconds,
    )
    handle = SchedulerHandle(
        scheduler,
        leader_lock_for(db),
        tick_seconds=settings.scheduler_tick_seconds,
        elect_seconds=settings.scheduler_elect_seconds,
    )
    return handle.start() if settings.scheduler_enabled else handle
