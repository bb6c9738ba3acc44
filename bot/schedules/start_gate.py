"""Starting a cutover: the checklist and preflight gate, then the run, linked to its schedule."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

from bot import preflight
from bot.checklists import Checklists, Scope
from bot.domain import approvals
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import CutoverError
from bot.notices import missing_text
from bot.schedules.booking import ScheduleBook
from bot.schedules.common import PreflightResult, ScheduleError, StartResult
from bot.store import schedules
from bot.store.models import ScheduleStatus
from bot.store.unit import Tx
from bot.surface import SYSTEM, Actor, DirectorySurface
from phases.runbook import RunbookError
from phases.secrets import EnvFileError

if TYPE_CHECKING:
    from bot.engine import Engine


class StartGate:
    """Who may start now and whether the environment is ready: a real start waits for every
    pre-cutover item that gates Start and a passing preflight."""

    def __init__(self, engine: Engine, book: ScheduleBook) -> None:
        self.engine = engine
        self.book = book

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
        engine.store.record(
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

    def scope(self, target: str | int) -> Scope:
        """What `/cutover tick TARGET …` names: a schedule number, or an environment (its
        scheduled cutover due now, else its next unscheduled start)."""
        if isinstance(target, int) or target.removeprefix("#").isdigit():
            schedule_id = int(str(target).removeprefix("#"))
            with self.engine.store.tx() as tx:
                sched = schedules.get(tx, schedule_id)
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
        due = self.book.due_for(target)
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
            due = self.book.due_for(env_name)
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
        with engine.store.tx() as tx:
            sched = schedules.get(tx, schedule_id)
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
        with engine.store.tx() as tx:
            self.link(tx, schedule_id, run.id, actor.id, via="start button")
        return StartResult(
            "started",
            f"Run #{run.id} of {sched.environment} (scheduled cutover #{schedule_id}) "
            f"started by {actor.label}.",
            run.id,
        )

    def link(self, tx: Tx, schedule_id: int, run_id: int, actor: str, via: str) -> bool:
        """Marks the schedule started as run_id, once (its row locked: a second Start, or the
        reconciler on another replica, finds it started and does nothing), and drops its
        notices still pending."""
        sched = schedules.lock(tx, schedule_id)
        if sched.status != ScheduleStatus.SCHEDULED:
            return False
        sched.run_id = run_id
        tx.apply(sched, "start", actor, {"schedule": schedule_id, "run": run_id, "via": via})
        schedules.drop_pending(tx, schedule_id)
        return True
