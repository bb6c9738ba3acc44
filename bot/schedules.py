"""Scheduled cutovers: create, list, cancel and start them. Every surface uses this.

A schedule gets four `scheduled_event` rows when it is created (T-24h readiness,
T-1h stakeholder notice, T-1h checklist, T-0 start reminder); `bot.scheduler`
posts each when due, once. A run is only ever started by an approver (the
reminder's Start button or `/cutover start ENV`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import audit, preflight
from bot.checklists import Checklists, Scope
from bot.domain import approvals, states
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import CutoverError
from bot.engine import EngineError
from bot.models import EventStatus, Run, RunStatus, Schedule, ScheduledEvent, ScheduleStatus
from bot.notices import channel_name, hhmm, missing_text, when
from bot.store.claims import claim
from bot.surface import SYSTEM, Actor, DirectorySurface
from phases.runbook import RunbookError
from phases.secrets import EnvFileError

if TYPE_CHECKING:
    from bot.engine import Engine

# (kind, how long before the start time it is due)
EVENTS: list[tuple[str, timedelta]] = [
    ("t-24h", timedelta(hours=24)),
    ("t-1h", timedelta(hours=1)),
    ("t-1h-checklist", timedelta(hours=1)),
    ("t-0", timedelta(0)),
]
# A run started this long before the scheduled time (or later) is that schedule's run.
EARLY_START = timedelta(hours=1)
# A schedule whose time passed this long ago without a run no longer blocks a new one.
STALE_AFTER = timedelta(hours=12)


class ScheduleError(EngineError):
    """A schedule request refused; the message says why and what to type instead."""


@dataclass(frozen=True)
class PreflightResult:
    items: list[preflight.Item]
    text: str  # masked report, checkpoint-like: one line per item with its evidence
    elapsed_ms: int

    @property
    def failed(self) -> list[preflight.Item]:
        return [i for i in self.items if i.status == "fail"]


@dataclass(frozen=True)
class StartResult:
    outcome: Literal["started", "refused", "already_started", "unknown"]
    message: str
    run_id: int | None = None


def event_key(schedule_id: int, kind: str) -> str:
    return f"schedule:{schedule_id}:{kind}"


def _blocking(s: Session, env_name: str, now: datetime) -> Schedule | None:
    """A scheduled cutover of the environment whose time has not been stale for long: one
    at a time (a schedule whose Start was never clicked stops blocking after STALE_AFTER)."""
    for other in s.exec(
        select(Schedule).where(
            Schedule.environment == env_name, Schedule.status == ScheduleStatus.SCHEDULED
        )
    ):
        if other.start_at > now - STALE_AFTER:
            return other
    return None


def already_scheduled(other: Schedule) -> str:
    return (
        f"{other.environment} already has cutover #{other.id} scheduled for "
        f"{when(other.start_at)}; /cutover unschedule {other.id} first"
    )


class ScheduleService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ create / cancel

    def create(
        self,
        env_name: str,
        start_at: datetime,
        actor: Actor,
        *,
        stakeholders: str | None = None,
        channel: str | None = None,
    ) -> Schedule:
        engine = self.engine
        env = engine.environment(env_name)  # unknown environment: RunbookError names the known
        refusal = approvals.may_schedule(env_name, env, actor)
        if refusal:
            engine.refuse(actor, "schedule", refusal, environment=env_name)
            raise ScheduleError(refusal)
        if start_at.tzinfo is None or start_at.utcoffset() is None:
            raise ScheduleError(
                "the start time needs a time zone, e.g. 2026-03-01T14:00Z or 2026-03-01T15:00+01:00"
            )
        start = start_at.astimezone(UTC)
        now = engine.now()
        if start <= now:
            raise ScheduleError(
                f"{when(start)} is in the past (now {when(now)}); pick a later time"
            )
        frozen = engine.frozen(env_name, start)
        if frozen is not None:
            said = f"{frozen.text(env_name)}; pick a time after it. Nothing was scheduled"
            engine.refuse(actor, "schedule", said, environment=env_name, freeze=frozen.freeze.id)
            raise ScheduleError(said)
        run_channel = channel or env.channel
        with engine.db.session() as s:
            other = _blocking(s, env_name, now)
            if other is not None:
                raise ScheduleError(already_scheduled(other))
            sched = Schedule(
                environment=env_name,
                start_at=start,
                stakeholders=stakeholders,
                channel=run_channel,
                created_by=actor.id,
                created_at=now,
            )
            s.add(sched)
            try:
                s.flush()
            except IntegrityError:
                raise ScheduleError(
                    f"a cutover of {env_name} is already scheduled for {when(start)}"
                ) from None
            assert sched.id is not None
            for kind, before in EVENTS:
                s.add(
                    ScheduledEvent(
                        key=event_key(sched.id, kind),
                        kind=kind,
                        schedule_id=sched.id,
                        due_at=max(start - before, now),  # already past: due at once, not late
                    )
                )
            audit.append(
                s,
                AuditKind.SCHEDULE_CREATED,
                actor=actor.id,
                data={
                    "schedule": sched.id,
                    "environment": env_name,
                    "start_at": start.isoformat(),
                    "stakeholders": stakeholders,
                    "channel": run_channel,
                },
                at=now,
            )
        return sched

    # ------------------------------------------------------------------ preflight

    def preflight(
        self,
        env_name: str,
        stage: str,
        schedule_id: int | None = None,
        quorum: str | None = None,
    ) -> PreflightResult:
        """`bot.preflight` for one environment, timed, masked and audited (preflight.checked
        with the stage: schedule, t-24h or start). `quorum`: the start's own verdict on quorum
        (counted with the approver groups' members, which preflight cannot list offline)
        replaces preflight's offline one."""
        engine = self.engine
        with contextlib.suppress(CutoverError, RunbookError, EnvFileError):
            engine.register_secrets(env_name)  # anything read from the env file is masked
        began = time.monotonic()
        try:
            items = preflight.preflight(engine.runbook, env_name)
        except RunbookError as exc:
            items = [preflight.Item("environment", "fail", str(exc))]
        if quorum is not None:
            items = [
                preflight.Item("quorum", "pass", quorum) if i.what == "quorum" else i for i in items
            ]
        if isinstance(engine.surface, DirectorySurface):
            items += [
                preflight.Item("approver groups", "fail", problem)
                for problem in engine.surface.directory_problems(env_name)
            ]
        elapsed_ms = int((time.monotonic() - began) * 1000)
        masked = [preflight.Item(i.what, i.status, engine.masker.mask(i.evidence)) for i in items]
        head, _, rest = engine.masker.mask(preflight.report(masked, env_name)).partition("\n")
        text = f"{head} (in {elapsed_ms} ms)\n{rest}".rstrip("\n")
        audit.record(
            engine.db,
            AuditKind.PREFLIGHT_CHECKED,
            actor=SYSTEM.id,
            data={
                "environment": env_name,
                "schedule": schedule_id,
                "stage": stage,
                "passed": not any(i.status == "fail" for i in masked),
                "elapsed_ms": elapsed_ms,
                "items": [
                    {"what": i.what, "status": i.status, "evidence": i.evidence} for i in masked
                ],
            },
            at=engine.now(),
        )
        return PreflightResult(masked, text, elapsed_ms)

    # ------------------------------------------------------------------ the start gate

    def scope(self, target: str | int) -> Scope:
        """What `/cutover tick TARGET …` names: a schedule number, or an environment (its
        scheduled cutover due now, else its next unscheduled start)."""
        if isinstance(target, int) or target.removeprefix("#").isdigit():
            schedule_id = int(str(target).removeprefix("#"))
            with self.engine.db.session() as s:
                sched = s.get(Schedule, schedule_id)
            if sched is None:
                raise ScheduleError(
                    f"no scheduled cutover #{schedule_id}; see /cutover schedule list"
                )
            if sched.status != ScheduleStatus.SCHEDULED:
                raise ScheduleError(
                    f"scheduled cutover #{schedule_id} is {sched.status}; its checklist is closed"
                )
            return Scope(sched.environment, schedule_id)
        self.engine.environment(target)  # unknown: RunbookError names the known ones
        due = self.due_for(target)
        return Scope(target, due.id if due is not None else None)

    def gate(
        self,
        env_name: str,
        actor: Actor,
        schedule_id: int | None,
        group_members: Collection[str] | None = None,
    ) -> str | None:
        """Why a real start must wait, or None: every pre-cutover item that gates Start done,
        then preflight passing. Checked before any run exists; the environment is not held.
        A refusal is audited (action.refused). Who may start is left to the engine, which
        refuses (and audits) before anything here is said to someone who may not."""
        engine = self.engine
        env = engine.environment(env_name)
        if approvals.start_refusal(env_name, env, actor, group_members):
            return None
        scope = Scope(env_name, schedule_id)
        missing = Checklists(engine).missing(scope, starter=actor)
        if missing:
            reason = engine.masker.mask(missing_text(missing))
            engine.refuse(
                actor,
                "start",
                reason,
                environment=env_name,
                schedule=schedule_id,
                missing=[m.id for m in missing],
            )
            return reason
        result = self.preflight(
            env_name,
            "start",
            schedule_id,
            quorum="reachable for this start"
            + (" (approver groups counted now)" if group_members is not None else ""),
        )
        if result.failed:
            reason = (
                f"Start refused: preflight found {len(result.failed)} problem"
                f"{'s' if len(result.failed) != 1 else ''} that would stop this cutover "
                f"before it finishes. Fix them and start again; nothing was started.\n"
                + result.text
            )
            engine.refuse(
                actor,
                "start",
                reason,
                environment=env_name,
                schedule=schedule_id,
                preflight=[i.what for i in result.failed],
            )
            return reason
        return None

    def start_env(
        self,
        env_name: str,
        actor: Actor,
        *,
        channel: str | None = None,
        dry_run: bool = False,
        group_members: Collection[str] | None = None,
        emergency: str | None = None,
        ref: str | None = None,
    ) -> StartResult:
        """`/cutover start ENV`: the scheduled cutover due now if there is one, else an
        unscheduled run, behind the same gate (its items ticked for ENV's next start). A dry
        run changes nothing, so it is not gated: it is how a team rehearses."""
        engine = self.engine
        engine.environment(env_name)  # an unknown environment is named before anything
        if not dry_run:
            due = self.due_for(env_name)
            if due is not None and due.id is not None:
                return self.start(due.id, actor, group_members, ref=ref)
            refusal = self.gate(env_name, actor, None, group_members)
            if refusal:
                return StartResult("refused", refusal)
        run = engine.start_run(
            env_name,
            actor,
            channel=channel,
            dry_run=dry_run,
            group_members=group_members,
            emergency=emergency,
            ref=ref,
        )
        return StartResult(
            "started",
            f"Run #{run.id} of {env_name}{' (dry run)' if dry_run else ''} "
            f"started by {actor.label}.",
            run.id,
        )

    def cancel(self, schedule_id: int, actor: Actor) -> str:
        engine = self.engine
        with engine.db.session() as s:
            found = s.get(Schedule, schedule_id)
        if found is None:
            raise ScheduleError(f"no scheduled cutover #{schedule_id}; see /cutover schedule list")
        refusal = approvals.may_schedule(
            found.environment, engine.environment(found.environment), actor
        )
        if refusal:  # audited in its own transaction: the refusal row must commit
            engine.refuse(actor, "unschedule", refusal, schedule=schedule_id)
            raise ScheduleError(refusal)
        with engine.db.session() as s:
            sched = s.exec(
                select(Schedule).where(Schedule.id == schedule_id).with_for_update()
            ).one()
            if sched.status != ScheduleStatus.SCHEDULED:
                extra = f" as run #{sched.run_id}" if sched.run_id else ""
                raise ScheduleError(f"scheduled cutover #{schedule_id} is {sched.status}{extra}")
            states.transition(sched, "cancel")
            sched.cancelled_by = actor.id
            s.add(sched)
            self._drop_pending(s, schedule_id)
            audit.append(
                s,
                AuditKind.SCHEDULE_CANCELLED,
                actor=actor.id,
                data={"schedule": schedule_id, "environment": sched.environment},
                at=engine.now(),
            )
        return (
            f"Scheduled cutover #{schedule_id} of {sched.environment} at {when(sched.start_at)} "
            f"cancelled by {actor.label}; no more notices will be sent for it."
        )

    @staticmethod
    def _drop_pending(s: Session, schedule_id: int) -> None:
        s.execute(  # every pending notice of the schedule, not one row: no claim
            update(ScheduledEvent)
            .where(
                col(ScheduledEvent.schedule_id) == schedule_id,
                col(ScheduledEvent.status) == EventStatus.PENDING,
            )
            .values(status=states.find("event", "cancel", EventStatus.PENDING).dest)
        )

    # ------------------------------------------------------------------ list

    def listing(self, include_past: bool = False) -> list[tuple[Schedule, list[ScheduledEvent]]]:
        now = self.engine.now()
        with self.engine.db.session() as s:
            rows = list(s.exec(select(Schedule).order_by(col(Schedule.start_at))))
            events = list(
                s.exec(
                    select(ScheduledEvent).where(
                        col(ScheduledEvent.schedule_id).in_([r.id for r in rows])
                    )
                )
            )
        out = []
        for r in rows:
            recent = r.start_at > now - timedelta(days=2)
            if include_past or r.status == ScheduleStatus.SCHEDULED or recent:
                out.append((r, [e for e in events if e.schedule_id == r.id]))
        return out

    def list_text(self) -> str:
        rows = self.listing()
        if not rows:
            return "No scheduled cutover. Schedule one: /cutover schedule ENV 2026-03-01T14:00Z"
        lines = ["Scheduled cutovers:"]
        order = {kind: i for i, (kind, _) in enumerate(EVENTS)}
        for sched, events in rows:
            state = str(sched.status) + (f" (run #{sched.run_id})" if sched.run_id else "")
            lines.append(
                f"#{sched.id} {sched.environment} at {when(sched.start_at)} — {state}; run channel "
                f"{channel_name(sched.channel)}, stakeholders "
                f"{channel_name(sched.stakeholders or sched.channel)}; by {sched.created_by}"
            )
            parts = []
            for e in sorted(events, key=lambda e: order.get(e.kind, 99)):
                if e.status == EventStatus.SENT and e.sent_at is not None:
                    parts.append(f"{e.kind} sent {hhmm(e.sent_at)}")
                elif e.status in (EventStatus.PENDING, EventStatus.CLAIMED):
                    parts.append(f"{e.kind} due {hhmm(e.due_at)}")
                else:
                    parts.append(f"{e.kind} {e.status}")
            lines.append("   " + " · ".join(parts))
        return "\n".join(lines)

    # ------------------------------------------------------------------ start

    def blocking(self, env_name: str) -> Schedule | None:
        """The environment's scheduled cutover that a new one would clash with, if any."""
        with self.engine.db.session() as s:
            return _blocking(s, env_name, self.engine.now())

    def due_for(self, env_name: str) -> Schedule | None:
        """The environment's scheduled cutover that a run started now would be."""
        now = self.engine.now()
        with self.engine.db.session() as s:
            for sched in s.exec(
                select(Schedule)
                .where(
                    Schedule.environment == env_name, Schedule.status == ScheduleStatus.SCHEDULED
                )
                .order_by(col(Schedule.start_at))
            ):
                start = sched.start_at
                if start - EARLY_START <= now < start + STALE_AFTER:
                    return sched
        return None

    def start(
        self,
        schedule_id: int,
        actor: Actor,
        group_members: Collection[str] | None = None,
        *,
        ref: str | None = None,
    ) -> StartResult:
        """The Start button of the T-0 reminder: an approver starts the scheduled run (the
        engine checks who may, and audits a refusal)."""
        engine = self.engine
        with engine.db.session() as s:
            sched = s.get(Schedule, schedule_id)
        if sched is None:
            return StartResult("unknown", f"no scheduled cutover #{schedule_id}")
        if sched.status != ScheduleStatus.SCHEDULED:
            extra = f" as run #{sched.run_id}" if sched.run_id else ""
            return StartResult(
                "already_started" if sched.run_id else "refused",
                f"scheduled cutover #{schedule_id} is {sched.status}{extra}",
                sched.run_id,
            )
        try:
            refusal = self.gate(sched.environment, actor, schedule_id, group_members)
            if refusal:
                return StartResult("refused", refusal)
            run = engine.start_run(
                sched.environment,
                actor,
                channel=sched.channel,
                group_members=group_members,
                ref=ref,
            )
        except CutoverError as exc:
            return StartResult("refused", str(exc))
        assert run.id is not None
        with engine.db.session() as s:
            self.link(s, schedule_id, run.id, actor.id, via="start button")
        return StartResult(
            "started",
            f"Run #{run.id} of {sched.environment} (scheduled cutover #{schedule_id}) "
            f"started by {actor.label}.",
            run.id,
        )

    def link(self, s: Session, schedule_id: int, run_id: int, actor: str, via: str) -> bool:
        """Marks the schedule started as run_id (once) and drops its notices still pending."""
        if not claim(
            s,
            Schedule,
            col(Schedule.id) == schedule_id,
            values={"run_id": run_id},
            move=("schedule", "start"),
        ):
            return False
        self._drop_pending(s, schedule_id)
        audit.append(
            s,
            AuditKind.SCHEDULE_STARTED,
            actor=actor,
            run_id=run_id,
            data={"schedule": schedule_id, "run": run_id, "via": via},
            at=self.engine.now(),
        )
        return True

    # ------------------------------------------------------------------ reconcile (scheduler)

    def reconcile(self, now: datetime | None = None) -> list[str]:
        """Links runs started by hand to their schedule; marks schedules of ended runs done."""
        now = now or self.engine.now()
        done: list[str] = []
        with self.engine.db.session() as s:
            waiting = list(
                s.exec(select(Schedule).where(Schedule.status == ScheduleStatus.SCHEDULED))
            )
            started = list(
                s.exec(select(Schedule).where(Schedule.status == ScheduleStatus.STARTED))
            )
        for sched in waiting:
            assert sched.id is not None
            since = max(sched.start_at - EARLY_START, sched.created_at)
            if since > now:
                continue
            with self.engine.db.session() as s:
                runs = s.exec(
                    select(Run).where(Run.environment == sched.environment).order_by(col(Run.id))
                ).all()
                until = sched.start_at + STALE_AFTER
                match = next(
                    (r for r in runs if not r.dry_run and since <= r.started_at < until),
                    None,
                )
                if (
                    match is not None
                    and match.id is not None
                    and self.link(s, sched.id, match.id, SYSTEM.id, via="/cutover start")
                ):
                    done.append(f"schedule #{sched.id}: run #{match.id} started by hand")
        for sched in started:
            with self.engine.db.session() as s:
                run = s.get(Run, sched.run_id) if sched.run_id else None
                if run is None or run.status not in (RunStatus.COMPLETED, RunStatus.ROLLED_BACK):
                    continue
                if claim(
                    s, Schedule, col(Schedule.id) == sched.id, values={}, move=("schedule", "done")
                ):
                    audit.append(
                        s,
                        AuditKind.SCHEDULE_DONE,
                        actor=SYSTEM.id,
                        run_id=run.id,
                        data={"schedule": sched.id, "run": run.id, "outcome": run.status},
                        at=now,
                    )
                    done.append(f"schedule #{sched.id}: done ({run.status})")
        return done
