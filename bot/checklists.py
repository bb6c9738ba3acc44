"""Pre-cutover items that gate Start: who ticked what, what the bot checked, what is missing.

A tick is an audit row (`checklist.ticked`, undone by `checklist.unticked`), so it is durable,
shared by every replica and in the trail with who and when; the latest row for an item wins.
Ticks belong to a scope: one scheduled cutover (`schedule:ID`), or an environment's next
unscheduled start (`env:NAME`), whose ticks count for STALE_AFTER and only until a real run
of the environment starts (a later start needs them again).

An item bound to a check (`check: phase/step`) is done when that check's latest result in a
readiness dry run of the environment (`readiness.checked`: T-24h, T-1h, or `check_now`)
passed within the item's `fresh_minutes`. Nobody can tick it: asking to tick it runs the
check now instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.domain import approvals
from bot.domain.audit_kinds import AuditKind
from bot.engine import EngineError
from bot.notices import ItemState, hhmm
from bot.store import checklist_rows
from bot.surface import SYSTEM, Actor, ChecklistSurface
from phases.runbook import ChecklistItem, EnvironmentSpec, RunbookError
from phases.runner import run_checks

if TYPE_CHECKING:
    from bot.engine import Engine

# An unscheduled start's ticks count this long (a tick from yesterday is not about now).
UNSCHEDULED_TICKS_FOR = timedelta(hours=12)


@dataclass(frozen=True)
class Scope:
    environment: str
    schedule_id: int | None = None

    @property
    def key(self) -> str:
        return f"schedule:{self.schedule_id}" if self.schedule_id else f"env:{self.environment}"

    @property
    def target(self) -> str:
        """What a person types to name it: `/cutover tick 3 …` or `/cutover tick prod …`."""
        return str(self.schedule_id) if self.schedule_id else self.environment

    @property
    def label(self) -> str:
        if self.schedule_id:
            return f"scheduled cutover #{self.schedule_id} of {self.environment}"
        return f"the next unscheduled start of {self.environment}"


@dataclass(frozen=True)
class TickResult:
    changed: bool
    message: str


class Checklists:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ reading

    def item(self, item_id: str) -> ChecklistItem:
        items = self.engine.runbook.start_items()
        for it in items:
            if it.id == item_id:
                return it
        known = ", ".join(i.id or "" for i in items) or "none"
        raise EngineError(
            f"no pre-cutover item {item_id!r} gates Start in this runbook; the ones that do: "
            f"{known}"
        )

    def states(self, scope: Scope, starter: Actor | None = None) -> list[ItemState]:
        """Where each item stands; for a start by `starter` (the start gate), an item counts
        only if the approval rules let its ticks count for that person."""
        items = self.engine.runbook.start_items()
        if not items:
            return []
        now = self.engine.now()
        ticks = self._ticks(scope, now) if any(not i.check for i in items) else {}
        results = self._results(scope.environment) if any(i.check for i in items) else []
        states = [
            self._check_state(it, results, now, scope)
            if it.check
            else self._tick_state(it, ticks, scope)
            for it in items
        ]
        if starter is None:
            return states
        env = self.engine.environment(scope.environment)
        return [
            self._for_starter(st, ticks, env, starter, scope) if not st.item.check else st
            for st in states
        ]

    def missing(self, scope: Scope, starter: Actor | None = None) -> list[ItemState]:
        return [st for st in self.states(scope, starter) if not st.done]

    @staticmethod
    def _for_starter(
        st: ItemState,
        ticks: dict[str, dict[str, Any]],
        env: EnvironmentSpec,
        starter: Actor,
        scope: Scope,
    ) -> ItemState:
        tick = ticks.get(st.id)
        if tick is None or approvals.start_tick_counts(env, tick["by"], starter):
            return st
        how = f"another approver ticks it: /cutover tick {scope.target} {st.id}"
        return ItemState(st.item, False, approvals.self_tick_refusal(starter.id), how)

    def _ticks(self, scope: Scope, now: datetime) -> dict[str, dict[str, Any]]:
        """item id -> the data of its tick since the last untick (+ actor, at), with `by`:
        everyone who ticked it since (a second approver when self-approval is off) and `also`:
        (who, when) of those after the first; only ticks still counting."""
        with self.engine.store.tx() as tx:
            rows = checklist_rows.ticks(tx, scope.key)
            since = None
            if scope.schedule_id is None:
                last = checklist_rows.last_real_start(tx, scope.environment)
                since = now - UNSCHEDULED_TICKS_FOR
                if last is not None:  # a tick made before (or as) that run started was for it
                    since = max(since, last + timedelta(microseconds=1))
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            data = json.loads(row.data)
            if data.get("scope") != scope.key:
                continue
            at = datetime.fromisoformat(row.at)
            if since is not None and at < since:
                continue
            item = str(data.get("item"))
            if row.kind == AuditKind.CHECKLIST_UNTICKED:
                latest.pop(item, None)
            elif item in latest:  # a second approver's tick (self-approval off): kept too
                latest[item]["by"].append(row.actor)
                latest[item]["also"].append((row.actor, at))
            else:
                latest[item] = {
                    **data,
                    "actor": row.actor,
                    "at": at,
                    "by": [row.actor],
                    "also": [],
                }
        return latest

    def _results(self, env_name: str) -> list[tuple[datetime, dict[str, Any]]]:
        """The environment's readiness dry runs, newest first (a bounded look back)."""
        with self.engine.store.tx() as tx:
            rows = checklist_rows.readiness(tx, env_name)
        out = []
        for row in rows:
            data = json.loads(row.data)
            if data.get("environment") == env_name:
                out.append((datetime.fromisoformat(row.at), data))
        return out

    @staticmethod
    def _tick_state(
        item: ChecklistItem, ticks: dict[str, dict[str, Any]], scope: Scope
    ) -> ItemState:
        tick = ticks.get(item.id or "")
        if tick is None:
            box = " (or its box on the T-1h checklist)" if scope.schedule_id else ""
            how = f"an approver ticks it once done: /cutover tick {scope.target} {item.id}{box}"
            return ItemState(item, False, "not ticked", how)
        note = f" ({tick['note']})" if tick.get("note") else ""
        also = "".join(f", {who} at {hhmm(at)}" for who, at in tick["also"])
        return ItemState(
            item, True, f"ticked by {tick['actor']} at {hhmm(tick['at'])}{note}{also}", ""
        )

    def _check_state(
        self,
        item: ChecklistItem,
        results: list[tuple[datetime, dict[str, Any]]],
        now: datetime,
        scope: Scope,
    ) -> ItemState:
        assert item.check is not None
        phase_id, step_id = item.check.split("/")
        again = f"/cutover tick {scope.target} {item.id} (the bot checks it now)"
        for at, data in results:
            if data.get("phase") != phase_id:
                continue
            found = next((r for r in data.get("results") or [] if r.get("step") == step_id), None)
            if found is None:
                continue
            status = str(found.get("status"))
            evidence = str(found.get("evidence") or "")[:160]
            age = now - at
            when = f"check {step_id} {status} at {hhmm(at)}"
            if status != "pass":
                return ItemState(item, False, f"{when}: {evidence}", f"fix it, then {again}")
            if age > timedelta(minutes=item.fresh):
                return ItemState(
                    item,
                    False,
                    f"{when}, older than {item.fresh} min",
                    f"have it checked again: {again}",
                )
            return ItemState(item, True, f"{when}: {evidence}", "")
        return ItemState(item, False, f"check {step_id} has not run yet", f"run it: {again}")

    # ------------------------------------------------------------------ writing

    def tick(self, scope: Scope, item_id: str, actor: Actor, note: str | None = None) -> TickResult:
        """An approver ticks an item (permission checked now); a bot-checked item is checked
        now instead. Ticking a ticked item changes nothing."""
        item = self.item(item_id)
        self._may(scope, actor, "tick")
        if item.check:
            return self.check_now(scope, item, actor)
        tick = self._ticks(scope, self.engine.now()).get(item_id)
        if tick is not None:
            if any(actor.is_(who) for who in tick["by"]):
                return TickResult(False, f"{item_id} is already ticked by you for {scope.label}.")
            env = self.engine.environment(scope.environment)
            if env.allow_self_approval:
                return TickResult(False, f"{item_id} is already ticked for {scope.label}.")
            # Self-approval off: a tick counts only for a start by someone else, so a second
            # approver's tick is recorded too (the first ticker may then start).
        note = self.engine.masker.untrusted(note) if note else note  # typed: never a ping
        self._record(AuditKind.CHECKLIST_TICKED, scope, item_id, actor, text=item.text, note=note)
        return TickResult(
            True, f"✅ {item.text} [{item_id}] ticked by {actor.label} for {scope.label}."
        )

    def _record(
        self, kind: AuditKind, scope: Scope, item_id: str, actor: Actor, **extra: Any
    ) -> None:
        """A tick or an untick: one audit row (the latest per item wins), then the redraw."""
        data = {
            "scope": scope.key,
            "environment": scope.environment,
            "schedule": scope.schedule_id,
            "item": item_id,
            **extra,
        }
        self.engine.store.record(kind, actor=actor.id, data=data, at=self.engine.now())
        self._redraw(scope)

    def untick(self, scope: Scope, item_id: str, actor: Actor) -> TickResult:
        item = self.item(item_id)
        self._may(scope, actor, "untick")
        if item.check:
            return TickResult(False, f"{item_id} is checked by the bot; there is no tick to undo.")
        if item_id not in self._ticks(scope, self.engine.now()):
            return TickResult(False, f"{item_id} is not ticked for {scope.label}.")
        self._record(AuditKind.CHECKLIST_UNTICKED, scope, item_id, actor)
        return TickResult(
            True, f"☐ {item.text} [{item_id}] unticked by {actor.label} for {scope.label}."
        )

    def _redraw(self, scope: Scope) -> None:
        """The checklist message shows the change, whether the tick came from its box or was
        typed (`/cutover tick`), from any replica: the surface finds it in the database."""
        if scope.schedule_id is not None and isinstance(self.engine.surface, ChecklistSurface):
            self.engine.tell("checklist_changed", scope.schedule_id)

    def _may(self, scope: Scope, actor: Actor, action: str) -> None:
        refusal = approvals.may_tick_checklist(
            scope.environment, self.engine.environment(scope.environment), actor
        )
        if refusal:
            self.engine.refuse(
                actor, action, refusal, environment=scope.environment, schedule=scope.schedule_id
            )
            raise EngineError(refusal)

    def check_now(self, scope: Scope, item: ChecklistItem, actor: Actor) -> TickResult:
        """Runs the item's bound check now (dry-run context: it only reads) and records the
        result as a readiness dry run of that one check."""
        assert item.check is not None
        engine, runbook = self.engine, self.engine.runbook
        phase_id, step_id = item.check.split("/")
        step = next(c for c in runbook.phase(phase_id).checks if c.id == step_id)
        env = engine.environment(scope.environment)
        try:
            values = runbook.values_for(scope.environment)
        except RunbookError as exc:
            raise EngineError(str(exc)) from None
        engine.register_secrets(scope.environment)
        ctx = engine.context_factory(env, True, engine.masker)
        ctx.public_env_keys = frozenset(env.public_env_keys)
        outcome = run_checks([step], values, ctx)[0]
        status, evidence = str(outcome.result.status), engine.masker.mask(outcome.result.evidence)
        engine.store.record(
            AuditKind.READINESS_CHECKED,
            actor=actor.id if actor is not SYSTEM else SYSTEM.id,
            data={
                "schedule": scope.schedule_id,
                "environment": scope.environment,
                "phase": phase_id,
                "dry_run": True,
                "trigger": "tick",
                "asked_for": item.id,
                "results": [{"step": step_id, "status": status, "evidence": evidence}],
            },
            at=engine.now(),
        )
        self._redraw(scope)
        icon = "✅" if status == "pass" else "❌"
        return TickResult(
            status == "pass",
            f"{icon} {item.text} [{item.id}] is checked by the bot: check {step_id} {status} "
            f"now: {evidence}",
        )
