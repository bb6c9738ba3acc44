"""What every use case of the engine shares, each piece given only what it needs: its clock
(`EngineClock`), its pool for follow-up work (`FollowUps`), its calls to the surface
(`SurfaceCalls`, typed by `Notify`), audited refusals (`Refusals`) and a run's completion
(`Completion`). The services are built in one place (bot/engine/services.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from bot.domain.audit_kinds import AuditKind
from bot.domain.decisions import Decision as Decision  # re-exported: plain data
from bot.domain.decisions import DecisionName as DecisionName  # re-exported
from bot.engine import signoff_request
from bot.engine.errors import EngineError as EngineError  # re-exported
from bot.engine.errors import LeaseLost as LeaseLost  # re-exported
from bot.store import runs
from bot.store.models import Run
from bot.store.unit import Store, Tx
from bot.surface import SYSTEM, Actor, NullSurface, SignoffSurface, Surface
from bot.views import GateView
from phases.checks.base import Clock, StepContext, SystemClock
from phases.runbook import EnvironmentSpec, Runbook
from phases.secrets import (
    Masker,
)

log = logging.getLogger(__name__)

ContextFactory = Callable[[EnvironmentSpec, bool, Masker], StepContext]


def default_context(env: EnvironmentSpec, dry_run: bool, masker: Masker) -> StepContext:
    return StepContext(dry_run=dry_run, masker=masker)


def uses_run_backup(params: Any) -> bool:
    """True if step params name the run's backup (`{run_backup}`, `{run_backup_sha256}`)."""
    return "{run_backup" in json.dumps(params, default=str)


def runbook_digest(runbook: Runbook) -> str:
    return hashlib.sha256(runbook.model_dump_json().encode()).hexdigest()


class EngineClock:
    """The engine's clock, replaceable while it runs (a test moves time): every service is
    handed this one object, which asks the clock of the moment."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.current: Clock = clock or SystemClock()

    def now(self) -> float:
        return self.current.now()

    def monotonic(self) -> float:
        return self.current.monotonic()

    def sleep(self, seconds: float) -> None:
        self.current.sleep(seconds)

    def when(self) -> datetime:
        """Now, as the engine stamps its rows (UTC)."""
        return datetime.fromtimestamp(self.current.now(), UTC)


class FollowUps:
    """Follow-up work (the next phase, a rollback) on the engine's pool, or in the calling
    thread when `background` is off. `runner` is how work is handed over: a test or a crash
    driver may hold it to see what would run."""

    def __init__(self, workers: int, background: bool) -> None:
        self.background = background
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cutover-run")
        self.runner: Callable[..., None] = self._run

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        self.runner(fn, *args)

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.background:
            self._pool.submit(self._guard, fn, *args)
        else:
            self._guard(fn, *args)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            named = getattr(fn, "func", fn)  # a partial: its function's name, not its arguments
            log.exception("background task %s failed", getattr(named, "__name__", named))

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)


class SurfaceCalls:
    """Tells the surface (replaceable while the engine runs); a failed post is logged and
    audited, never lost silently."""

    def __init__(
        self,
        surface: Surface | None,
        store: Store,
        masker: Masker,
        now: Callable[[], datetime],
    ) -> None:
        self.surface: Surface = surface or NullSurface()
        self.store = store
        self.masker = masker
        self.now = now

    def tell(self, what: str, *args: Any) -> None:
        """Tells the surface, in this thread; a failed post is logged and audited, never lost
        silently. A surface that talks to a slow chat service keeps its own queue: the Slack
        surface hands a redraw of a posted message to its outbox (bot/slack/outbox.py), which
        coalesces redraws of one message and draws the latest state when it sends."""
        try:
            getattr(self.surface, what)(*args)
        except Exception as exc:
            log.warning("surface %s failed: %s", what, self.masker.mask(str(exc)))
            run_id: int | None = None
            try:
                if what in ("checkpoint", "gate_changed"):
                    with self.store.tx() as tx:
                        found = runs.gate_of(tx, args[0])
                        run_id = found[0] if found is not None else None
                elif what in ("run_changed", "notice"):
                    run_id = args[0]
            except Exception:
                log.exception("could not read the gate of a failed surface call")
            self.record_surface_failure(what, str(exc), run_id)

    def shows_signoffs(self) -> bool:
        """Whether the surface draws a sign-off message of its own (Slack's buttons)."""
        return isinstance(self.surface, SignoffSurface)

    def record_surface_failure(self, call: str, error: str, run_id: int | None) -> None:
        """Audits a chat post that failed (masked); never raises."""
        try:
            self.store.record(
                AuditKind.SURFACE_FAILED,
                actor=SYSTEM.id,
                run_id=run_id,
                data={"call": call, "error": self.masker.mask(error)[:300]},
                at=self.now(),
            )
        except Exception:
            log.exception("could not audit a failed surface call")


class Notify:
    """The engine's typed calls to its surface; each goes through `SurfaceCalls.tell`, which
    logs and audits a failed post."""

    def __init__(self, calls: SurfaceCalls) -> None:
        self._calls = calls
        self._tell = calls.tell

    def run_changed(self, run_id: int) -> None:
        self._tell("run_changed", run_id)

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        """`opened`: the checkpoint as the transaction that opened the gate wrote it."""
        self._tell("checkpoint", gate_id, opened)

    def gate_changed(self, gate_id: int) -> None:
        self._tell("gate_changed", gate_id)

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        """Free text in the run's thread; with no run, a message in `channel`."""
        if channel is None:
            self._tell("notice", run_id, text)
        else:
            self._tell("notice", run_id, text, channel)

    def signoff_changed(self, run_id: int) -> bool:
        """Redraws the run's sign-off message on a surface that draws one; False (nothing
        told) on a surface without one, which the caller tells as text."""
        if not self._calls.shows_signoffs():
            return False
        self._tell("signoff_changed", run_id)
        return True


class Refusals:
    """Audited refusals, one shape for every action and surface."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self.store = store
        self.now = now

    def refuse(
        self,
        actor: Actor,
        action: str,
        reason: str,
        *,
        run_id: int | None = None,
        tx: Any = None,
        session: Any = None,
        **data: Any,
    ) -> str:
        """Audits a refusal the same way for every action and surface (`Tx.refuse`), in the
        caller's transaction `tx` if it has one; returns the reason. `session`: a caller's
        Session (modules not yet converted to the store)."""
        within = tx if tx is not None else session
        if within is not None:
            return Tx.of(within, self.now).refuse(actor.id, action, reason, run_id=run_id, **data)
        return self.store.refuse(actor.id, action, reason, run_id=run_id, **data)

    def refused(
        self,
        actor: Actor,
        action: str,
        reason: str,
        *,
        run_id: int | None = None,
        gate_id: int | None = None,
        tx: Tx | None = None,
        surface_ref: str | None = None,
        **data: Any,
    ) -> Decision:
        """The one shape of a refusal a surface is answered with: audited (`refuse`, in `tx`
        if the caller holds one) and returned as a "refused" Decision; a start, which has no
        Decision, raises `Refused(self.refuse(…))` instead. `gate_id`: the gate refused at,
        named in the audit row and the Decision."""
        at_gate = {"gate": gate_id} if gate_id is not None else {}
        self.refuse(actor, action, reason, run_id=run_id, tx=tx, **at_gate, **data)
        return Decision("refused", reason, gate_id, run_id, surface_ref=surface_ref)


class Completion:
    """A run whose last phase passed ends (the table's `completed` move), and the people its
    environment names are asked to sign it off, in the same transaction."""

    def __init__(
        self, runbook: Runbook, now: Callable[[], datetime], epochs: dict[int, int]
    ) -> None:
        self.runbook = runbook
        self.now = now
        self._epochs = epochs

    def complete(self, tx: Tx | Any, run: Run) -> None:
        within = Tx.of(tx, self.now)
        within.apply(run, "completed", SYSTEM.id, {"environment": run.environment})
        assert run.id is not None
        self._epochs.pop(run.id, None)
        signoff_request.ask(within, run, self.runbook.environments.get(run.environment), self.now())
