"""Helpers for the scheduler, monitoring and record tests: a recording surface, a runbook
with a pre-cutover checklist and a monitoring phase, and engines on a controllable clock."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.engine import Engine
from bot.engine.core import ContextFactory, default_context
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.surface import Actor
from phases.checks.base import StepContext
from phases.runbook import EnvironmentSpec, Runbook, load_runbook
from phases.secrets import Masker
from standins.fast_clock import FastClock
from tests.servers import ManualClock

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")
MALLORY = Actor("T1:U9", "mallory")
# Sunday 1 March 2026, 14:00 UTC: the scheduled start in these tests.
START = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]


@dataclass
class RecordingSurface:
    """A real Surface (with the scheduling methods) that keeps every call."""

    calls: list[Call] = field(default_factory=list)
    fail_next: int = 0  # the next N scheduled notices raise (a chat API outage)
    crash_on: str | None = None  # the next notice of this kind kills the "process"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _add(self, method: str, *args: Any) -> None:
        with self._lock:
            self.calls.append(Call(method, args))

    def run_changed(self, run_id: int) -> None:
        self._add("run_changed", run_id)

    def checkpoint(self, gate_id: int, opened: object = None) -> None:
        self._add("checkpoint", gate_id)

    def gate_changed(self, gate_id: int) -> None:
        self._add("gate_changed", gate_id)

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        self._add("notice", run_id, text, channel)

    def scheduled_notice(self, schedule_id: int, kind: str, channel: str | None, text: str) -> None:
        if self.crash_on == kind:
            self.crash_on = None
            raise SystemExit("the process died while posting")
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("chat API answered 503")
        self._add("scheduled_notice", schedule_id, kind, channel, text)

    def start_reminder(
        self, schedule_id: int, channel: str | None, text: str, approvers: list[str]
    ) -> None:
        self._add("start_reminder", schedule_id, channel, text, approvers)

    # -------------------------------------------------------------- reading

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def scheduled(self, kind: str | None = None) -> list[Call]:
        return [c for c in self.of("scheduled_notice") if kind is None or c.args[1] == kind]

    def notices(self, contains: str = "") -> list[Call]:
        return [c for c in self.of("notice") if contains in c.args[1]]


def write_runbook(tmp_path: Path, data: dict[str, Any], name: str = "sched.yml") -> Runbook:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_runbook(path)


def true_check(step_id: str = "ok", name: str = "true") -> dict[str, Any]:
    return {"id": step_id, "name": name, "kind": "command", "params": {"argv": ["true"]}}


def schedule_runbook(
    tmp_path: Path,
    *,
    phases: list[dict[str, Any]] | None = None,
    env: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Runbook:
    """A runbook with the NostrMaxi pre-cutover checklists; phases default to a readiness
    phase (one passing, one failing check) and one ordinary phase."""
    flag = tmp_path / "no-such-backup"
    data: dict[str, Any] = {
        "name": "Scheduled test runbook",
        "version": "2",
        "estimated_duration": "2-4 hours",
        "pre_cutover": {
            "t_minus_24h": {
                "title": "T-24 hours: preparation",
                "phase": "readiness",
                "items": ["Run readiness checker", "Fresh database backup <1 hour old"],
            },
            "t_minus_1h": {
                "title": "T-1 hour: final verification",
                "items": [
                    'Notify stakeholders - "Production cutover starting in 1 hour"',
                    "Verify no users logged in (check active sessions)",
                    "Final database backup (./scripts/backup-db.sh)",
                ],
            },
        },
        "phases": phases
        or [
            {
                "id": "readiness",
                "name": "Readiness checks",
                "estimate_minutes": 5,
                "checkpoint": "All critical readiness checks PASS",
                "actions": [
                    {
                        "id": "mark",
                        "name": "touch a marker",
                        "kind": "run",
                        "params": {"argv": ["touch", str(tmp_path / "acted")]},
                    }
                ],
                "checks": [
                    true_check("secrets", "Secrets provisioned"),
                    {
                        "id": "backup",
                        "name": "Database backup <1 hour old",
                        "kind": "command",
                        "params": {"argv": ["test", "-e", str(flag)]},
                    },
                ],
            },
            {
                "id": "deploy",
                "name": "Deploy",
                "estimate_minutes": "10-15",
                "checkpoint": "deployed",
                "checks": [true_check()],
            },
        ],
        "success_criteria": ["All services running and healthy for 30+ minutes"],
        "post_cutover_tasks": ["Send launch announcement", "Enable uptime monitoring"],
        "environments": {
            "prod": {
                "domain": "prod.test",
                "base_url": "https://prod.test",
                "channel": "#cutover",
                "approvers": ["T1:U1", "T1:U2"],
                "gate_timeout_minutes": 20,
                **(env or {}),
            },
        },
        **(extra or {}),
    }
    return write_runbook(tmp_path, data)


def make_engine(
    db: Database,
    runbook: Runbook,
    clock: ManualClock,
    surface: RecordingSurface | None = None,
    context_factory: ContextFactory = default_context,
) -> tuple[Engine, RecordingSurface]:
    surface = surface or RecordingSurface()
    engine = Engine(
        db, runbook, surface=surface, clock=clock, background=False, context_factory=context_factory
    )
    return engine, surface


def paced_context(env: EnvironmentSpec, dry_run: bool, masker: Masker) -> StepContext:
    """The bot's own step context, but for the pace of repeated readings: Phase 9's CPU
    window takes its 5 real `docker stats` readings back to back instead of 2 s apart
    (`StepContext.pace`), as each of the 7 monitoring rounds runs it."""
    return dataclasses.replace(default_context(env, dry_run, masker), pace=FastClock())


def make_scheduler(engine: Engine, **kw: Any) -> Scheduler:
    return Scheduler(engine, **kw)


def clock_at(when: datetime) -> ManualClock:
    return ManualClock(when.timestamp())


def set_clock(clock: ManualClock, when: datetime) -> datetime:
    clock.set(when.timestamp())
    return when


BERLIN = ZoneInfo("Europe/Berlin")


def next_transition(gap: bool) -> date:
    """The next day (after tomorrow) on which 02:30 in Berlin is skipped (gap) or shown twice."""
    day = datetime.now(UTC).date() + timedelta(days=2)
    for _ in range(400):
        naive = datetime(day.year, day.month, day.day, 2, 30)
        a, b = naive.replace(tzinfo=BERLIN, fold=0), naive.replace(tzinfo=BERLIN, fold=1)
        if a.utcoffset() != b.utcoffset():
            skipped = a.astimezone(UTC).astimezone(BERLIN).replace(tzinfo=None) != naive
            if skipped == gap:
                return day
        day += timedelta(days=1)
    raise AssertionError("no daylight-saving change in Berlin within 400 days")
