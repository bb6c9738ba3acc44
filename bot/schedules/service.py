"""`ScheduleService`: the one face every surface uses, composed of booking, start and reconcile."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from bot.checklists import Scope
from bot.schedules.booking import ScheduleBook
from bot.schedules.common import PreflightResult, StartResult
from bot.schedules.reconcile import Reconciler
from bot.schedules.start_gate import StartGate
from bot.store.models import Schedule, ScheduledEvent
from bot.store.unit import Tx
from bot.surface import Actor

if TYPE_CHECKING:
    from bot.engine import Engine


class ScheduleService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.book = ScheduleBook(engine)  # create, cancel, list, find
        self.starts = StartGate(engine, self.book)  # preflight, the start gate, start
        self.reconciler = Reconciler(engine, self.starts.link)

    # ------------------------------------------------------------------ create / cancel / list

    def create(
        self,
        env_name: str,
        start_at: datetime,
        actor: Actor,
        *,
        stakeholders: str | None = None,
        channel: str | None = None,
    ) -> Schedule:
        return self.book.create(
            env_name, start_at, actor, stakeholders=stakeholders, channel=channel
        )

    def cancel(self, schedule_id: int, actor: Actor) -> str:
        return self.book.cancel(schedule_id, actor)

    def listing(self, include_past: bool = False) -> list[tuple[Schedule, list[ScheduledEvent]]]:
        return self.book.listing(include_past)

    def list_text(self) -> str:
        return self.book.list_text()

    def blocking(self, env_name: str) -> Schedule | None:
        """The environment's scheduled cutover that a new one would clash with, if any."""
        return self.book.blocking(env_name)

    def due_for(self, env_name: str) -> Schedule | None:
        """The environment's scheduled cutover that a run started now would be."""
        return self.book.due_for(env_name)

    # ------------------------------------------------------------------ preflight and start

    def preflight(
        self,
        env_name: str,
        stage: str,
        schedule_id: int | None = None,
        quorum: str | None = None,
    ) -> PreflightResult:
        return self.starts.preflight(env_name, stage, schedule_id, quorum)

    def scope(self, target: str | int) -> Scope:
        return self.starts.scope(target)

    def gate(
        self,
        env_name: str,
        actor: Actor,
        schedule_id: int | None,
        group_members: Collection[str] | None = None,
    ) -> str | None:
        return self.starts.gate(env_name, actor, schedule_id, group_members)

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
        return self.starts.start_env(
            env_name,
            actor,
            channel=channel,
            dry_run=dry_run,
            group_members=group_members,
            emergency=emergency,
            ref=ref,
        )

    def start(
        self,
        schedule_id: int,
        actor: Actor,
        group_members: Collection[str] | None = None,
        *,
        ref: str | None = None,
    ) -> StartResult:
        return self.starts.start(schedule_id, actor, group_members, ref=ref)

    def link(self, tx: Tx, schedule_id: int, run_id: int, actor: str, via: str) -> bool:
        return self.starts.link(tx, schedule_id, run_id, actor, via)

    # ------------------------------------------------------------------ reconcile (scheduler)

    def reconcile(self, now: datetime | None = None) -> list[str]:
        return self.reconciler.reconcile(now)
