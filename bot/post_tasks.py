"""Post-cutover tasks (issue 24): when a run completes, its tasks are listed with their owners
(`post_tasks.opened`, written with the record's scheduled event); the owner or an approver
marks each done, once (`post_task.done`); open tasks are reminded to their owners every
`post_cutover_reminder_hours` until the run's end + 24 h, and then still-open ones are
escalated in the run's channel and to the stakeholders. The bot never marks a task done and
never drops one: an overdue task stays open, and can be marked done late.

Reminders and escalations are scheduled events (`bot.scheduler`): the leader produces each
round once (the event's unique key is the claim, its audit row commits with it), so a restart
or a second replica neither loses nor doubles one; a round missed while no replica ran is
folded into the next due one. Time is the engine's clock.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.post_task_rules import may_mark_done, qualified_owner
from bot.engine.core import Decision
from bot.notices import when
from bot.post_task_view import (
    PostTaskSurface,
    TasksView,
    open_list,
    owner_text,
    tasks_text,
)
from bot.store import audit_rows, post_task_rows, runs
from bot.store.models import EventStatus, Run, ScheduledEvent
from bot.store.reads import tasks_view
from bot.store.unit import Duplicate, Tx
from bot.surface import SYSTEM, Actor
from phases.post_tasks import WINDOW_HOURS
from phases.runbook import RunbookError

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

KINDS = ("tasks", "task-reminder", "task-escalation")  # scheduled_event kinds
WINDOW = timedelta(hours=WINDOW_HOURS)
SCAN = timedelta(days=8)  # how far back a run's list is looked at for rounds still due

Outcome = tuple[EventStatus, str | None, str | None]  # (sent | skipped, channel, reason)


class PostTasks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = engine.db

    # ------------------------------------------------------------------ listing

    def open(self, tx: Tx, run: Run, now: datetime) -> bool:
        """Lists the runbook's tasks for a completed run, in the caller's transaction `tx`
        (the one that schedules its record and its "tasks" message). False: nothing to list."""
        tasks = self.engine.runbook.post_cutover_tasks
        if not tasks or run.ended_at is None or run.dry_run:
            return False
        env = self.engine.environment(run.environment)
        every = round(self.engine.runbook.post_cutover_reminder_hours * 60)
        tx.flush()  # the caller's event key taken first: the audit row only with the claim
        tx.audit(
            AuditKind.POST_TASKS_OPENED,
            actor=SYSTEM.id,
            run_id=run.id,
            data={
                "tasks": [
                    {"id": t.id, "text": t.text, "owner": qualified_owner(t.owner, env)}
                    for t in tasks
                ],
                "due_at": (run.ended_at + WINDOW).isoformat(),
                "remind_every_minutes": every,
            },
            at=now,
        )
        return True

    # ------------------------------------------------------------------ marking done

    def done(self, run_id: int, task_id: str, actor: Actor) -> Decision:
        """The owner or an approver marks a task done (audited); a second click, or Slack's
        retry of the first, finds it done and records nothing."""
        view = tasks_view(self.db, run_id)
        if view is None:
            raise NotFound(
                f"run #{run_id} has no post-cutover tasks (it lists them once completed)"
            )
        task = view.task(task_id)
        if task is None:
            known = ", ".join(t.id for t in view.tasks)
            raise InvalidInput(
                f"run #{run_id} has no post-cutover task {task_id!r}; its tasks: {known}"
            )
        refusal, role = may_mark_done(
            view.environment,
            self.engine.environment(view.environment),
            actor,
            task.owner,
            task.text,
        )
        if refusal:
            self.engine.refuse(actor, "post_task", refusal, run_id=run_id, item=task_id)
            return Decision("refused", refusal, None, run_id)
        with self.engine.store.tx() as tx:
            # Locked: two clicks (or a click and Slack's retry of it) read the trail in turn.
            runs.lock(tx, run_id)
            for row in audit_rows.events(tx, run_id, kind=AuditKind.POST_TASK_DONE):
                if json.loads(row.data).get("task") == task_id:
                    at = datetime.fromisoformat(row.at).strftime("%Y-%m-%d %H:%M UTC")
                    return Decision(
                        "already_decided",
                        f"{task.text!r} was marked done by {row.actor} at {at}; it counts once",
                        None,
                        run_id,
                    )
            tx.audit(
                AuditKind.POST_TASK_DONE,
                actor=actor.id,
                run_id=run_id,
                data={"task": task_id, "owner": task.owner, "as": role},
                at=self.engine.now(),
            )
        if isinstance(self.engine.surface, PostTaskSurface):
            self.engine.tell("post_tasks_changed", run_id)
        return Decision("ticked", f"{task.text}: done", None, run_id)

    # ------------------------------------------------------------------ the scheduler's part

    def remind(self, now: datetime) -> list[str]:
        """Produces the reminder round or the escalation now due for each run with open
        tasks: one scheduled event each (its key is the claim) with its audit row."""
        with self.engine.store.tx() as tx:
            listed = post_task_rows.listed_since(tx, now - SCAN)
            keys = post_task_rows.round_keys(tx, listed, KINDS[1:])
        done: list[str] = []
        for run_id in listed:
            if run_id is None or f"tasks:{run_id}:escalation" in keys:
                continue
            view = tasks_view(self.db, run_id)
            if view is None or not view.open:
                continue
            made = self._produce(view, now, keys)
            if made:
                done.append(f"run #{run_id}: {made}")
        return done

    def _produce(self, view: TasksView, now: datetime, keys: set[str]) -> str | None:
        open_ids = [t.id for t in view.open]
        if now >= view.due_at:
            key, kind = f"tasks:{view.run_id}:escalation", "task-escalation"
            audit_kind = AuditKind.POST_TASKS_ESCALATED
            data: dict[str, object] = {"tasks": open_ids, "due_at": view.due_at.isoformat()}
        else:
            if view.remind_every_minutes <= 0:
                return None
            every = timedelta(minutes=view.remind_every_minutes)
            n = int((now - (view.due_at - WINDOW)) / every)
            if n < 1:
                return None
            key, kind = f"tasks:{view.run_id}:reminder:{n}", "task-reminder"
            audit_kind = AuditKind.POST_TASKS_REMINDED
            owners = sorted({t.owner or "" for t in view.open})
            data = {"round": n, "tasks": open_ids, "owners": [o or None for o in owners]}
        if key in keys:
            return None
        try:
            with self.engine.store.tx() as tx:
                # The key taken first (flushed): the audit row only with the claim.
                post_task_rows.claim_round(tx, key, kind, view.run_id, now)
                tx.audit(audit_kind, actor=SYSTEM.id, run_id=view.run_id, data=data, at=now)
        except Duplicate:
            return None  # another replica produced it
        return kind

    def post(self, row: ScheduledEvent, now: datetime, notes: list[str]) -> Outcome:
        """Delivers a "tasks" (the checklist), "task-reminder" or "task-escalation" event;
        raises when the chat did not take it (the scheduler retries)."""
        engine = self.engine
        assert row.run_id is not None
        with engine.store.tx() as tx:
            run = runs.get(tx, row.run_id)
        view = tasks_view(self.db, row.run_id)
        if run is None or view is None:
            return EventStatus.SKIPPED, None, "no post-cutover tasks listed"
        if row.kind == "tasks":
            surface = engine.surface
            if isinstance(surface, PostTaskSurface):
                surface.post_tasks_changed(row.run_id)
            else:
                surface.notice(row.run_id, "\n".join([*notes, tasks_text(view)]))
            return EventStatus.SENT, run.channel, None
        if row.kind == "task-reminder":
            if not view.open:
                return EventStatus.SKIPPED, None, "every task was marked done meanwhile"
            text = (
                f"⏰ Reminder: post-cutover tasks of run #{view.run_id} still open, due by "
                f"{when(view.due_at)}:\n{open_list(view.open)}\n"
                f"Owners ({', '.join(sorted({owner_text(t.owner) for t in view.open}))}): mark "
                f"each done with its Done button or `/cutover tick {view.run_id} TASK`."
            )
            engine.surface.notice(row.run_id, "\n".join([*notes, text]))
            return EventStatus.SENT, run.channel, None
        overdue = [t for t in view.open if t.overdue]
        if not overdue:
            return EventStatus.SKIPPED, None, "every task was marked done meanwhile"
        text = (
            f"🚨 Overdue: post-cutover tasks of run #{view.run_id} ({view.environment}) still "
            f"open 24 h after the cutover ended ({when(view.due_at)}):\n{open_list(overdue)}\n"
            "They stay open until their owner or an approver marks them done "
            f"(`/cutover tick {view.run_id} TASK`); the bot never does."
        )
        body = "\n".join([*notes, text])
        if run.channel:
            engine.surface.notice(None, body, run.channel)
        else:
            engine.surface.notice(row.run_id, body)
        engine.feed(row.run_id, text)
        return EventStatus.SENT, run.channel, None


def environment_of(engine: Engine, run_id: int) -> str | None:
    """The environment of a run with post-cutover tasks (for a surface's group lookup)."""
    view = tasks_view(engine.db, run_id)
    try:
        return (
            view.environment if view is not None and engine.environment(view.environment) else None
        )
    except RunbookError:
        return None


def command_tick(
    engine: Engine, target: str, item: str, actor: Actor, *, untick: bool = False
) -> Decision | None:
    """`/cutover tick RUN TASK`: run RUN's post-cutover task TASK marked done. None when
    TARGET ITEM is not that (a schedule's or an environment's pre-cutover item: the runbook
    keeps the two kinds of ids apart)."""
    if not target.isdigit():
        return None
    ids = {t.id for t in engine.runbook.post_cutover_tasks}
    view = tasks_view(engine.db, int(target)) if item not in ids else None
    if item not in ids and (view is None or view.task(item) is None):
        return None
    if untick:
        raise InvalidInput(
            f"a post-cutover task marked done stays done ({item!r} of run #{target}): the "
            "audit trail says who marked it and when; nothing was changed"
        )
    return PostTasks(engine).done(int(target), item, actor)
