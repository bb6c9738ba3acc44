"""A scheduled cutover's notices: T-24h readiness, T-1h stakeholders and checklist, T-0."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.checklists import Checklists, Scope
from bot.domain.audit_kinds import AuditKind
from bot.domain.states import EventStatus, ScheduleStatus
from bot.notices import (
    Readiness,
    StepLine,
    readiness_verdict,
    t0_text,
    t1_checklist_text,
    t1_stakeholder_text,
    t24_text,
)
from bot.scheduler.delivery import Posted
from bot.store import audit_rows, scheduled_events
from bot.surface import SYSTEM, SchedulingSurface
from phases.runbook import RunbookError
from phases.runner import run_actions, run_checks

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.schedules import ScheduleService
    from bot.store.scheduled_events import Schedule, ScheduledEvent
    from bot.store.unit import Store

SCHEDULE_KINDS = ("t-24h", "t-1h", "t-1h-checklist", "t-0")


class ScheduleNotices:
    """Posts a schedule's notice events (the rows `bot.schedules` made when it was created)."""

    def __init__(self, engine: Engine, schedules: ScheduleService) -> None:
        self.engine = engine
        self.schedules = schedules

    @property
    def store(self) -> Store:
        return self.engine.store

    def post(self, row: ScheduledEvent, now: datetime, notes: list[str]) -> Posted:
        engine, runbook = self.engine, self.engine.runbook
        with self.store.tx() as tx:
            sched = scheduled_events.schedule(tx, row.schedule_id)
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
        self.store.record(
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

    def _readiness_verdict(self, schedule_id: int | None, start: datetime) -> str:
        """The T-1h stakeholder notice's readiness line: the schedule's T-24h readiness dry
        run (its `readiness.checked` row with trigger "t-24h"), named with its audit row,
        time and pass/fail counts. A one-check run asked for by `/cutover tick` or the T-1h
        checklist's dry run is not the T-24h readiness and is never quoted as it."""
        with self.store.tx() as tx:
            rows = audit_rows.events(
                tx,
                None,
                kind=AuditKind.READINESS_CHECKED,
                containing=f'"schedule":{schedule_id}',
            )
        for ev in reversed(rows):  # the newest first
            data = json.loads(ev.data)
            if data.get("schedule") != schedule_id or not _is_t24(data, ev.at, start):
                continue
            return readiness_verdict(ev.seq, ev.at, data, self.engine.runbook)
        return (
            f"T-24h readiness: no T-24h readiness dry run is recorded for schedule #{schedule_id}"
        )


def _is_t24(data: dict[str, Any], at: str, start: datetime) -> bool:
    """A readiness row is the T-24h dry run when it says so; an older row (written before
    rows named their notice) when nobody asked for it and it ran 12 h or more before the
    start (the T-1h dry run runs an hour before, a `/cutover tick` names its item)."""
    if "trigger" in data:
        return data["trigger"] == "t-24h"
    if data.get("asked_for"):
        return False
    return datetime.fromisoformat(at) <= start - timedelta(hours=12)
