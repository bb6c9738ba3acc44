"""The engine's core: its collaborators (database, runbook, surface, clock, step context), the
follow-up pool, telling the surface and audited refusals. The services it holds and the use
cases share: `Leases` (bot/engine/leasing.py: leases and fencing, which make a phase or a
rollback belong to the one process executing it), `StepLog` (bot/engine/step_log.py: step
results) and `RunFacts` (bot/engine/run_facts.py: a run's restore point, ref, artifacts and
stakeholders).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.engine import signoff_request
from bot.engine.errors import EngineError as EngineError  # re-exported
from bot.engine.errors import LeaseLost as LeaseLost  # re-exported
from bot.engine.leasing import Leases
from bot.engine.run_facts import RunFacts
from bot.engine.step_log import StepLog
from bot.store import runs
from bot.store.models import Run
from bot.store.unit import Database, Store, Tx
from bot.surface import SYSTEM, Actor, NullSurface, SignoffSurface, Surface
from phases.checks.base import Clock, StepContext, SystemClock
from phases.runbook import EnvironmentSpec, PhaseSpec, Runbook, RunbookError, StepSpec, Value
from phases.runner import StepOutcome
from phases.secrets import (
    GLOBAL_MASKER,
    EnvFileError,
    Masker,
    install_log_masking,
    parse_env_file,
)

log = logging.getLogger(__name__)

DecisionName = Literal["continue", "rollback", "retry"]


@dataclass(frozen=True)
class Decision:
    outcome: Literal[
        "approved",
        "vote_recorded",
        "rolled_back",
        "retried",
        "cancelled",
        "overridden",
        "refused",
        "already_decided",
        "already_voted",
        "ticked",
        "unknown_gate",
    ]
    message: str
    gate_id: int | None = None
    run_id: int | None = None
    # What the decision read of the gate under its lock, so the surface need not read it
    # again: its quorum (for "1/2 approved") and its chat message.
    quorum: int | None = None
    surface_ref: str | None = None

    @property
    def changed(self) -> bool:
        return self.outcome in (
            "approved",
            "vote_recorded",
            "rolled_back",
            "retried",
            "cancelled",
            "overridden",
            "ticked",
        )


ContextFactory = Callable[[EnvironmentSpec, bool, Masker], StepContext]


def default_context(env: EnvironmentSpec, dry_run: bool, masker: Masker) -> StepContext:
    return StepContext(dry_run=dry_run, masker=masker)


def uses_run_backup(params: Any) -> bool:
    """True if step params name the run's backup (`{run_backup}`, `{run_backup_sha256}`)."""
    return "{run_backup" in json.dumps(params, default=str)


def runbook_digest(runbook: Runbook) -> str:
    return hashlib.sha256(runbook.model_dump_json().encode()).hexdigest()


class Notify:
    """The engine's typed calls to its surface; each goes through `EngineCore.tell`, which
    logs and audits a failed post (and runs redraws off the calling thread)."""

    def __init__(self, tell: Callable[..., None]) -> None:
        self._tell = tell

    def run_changed(self, run_id: int) -> None:
        self._tell("run_changed", run_id)

    def checkpoint(self, gate_id: int) -> None:
        self._tell("checkpoint", gate_id)

    def gate_changed(self, gate_id: int) -> None:
        self._tell("gate_changed", gate_id)

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        """Free text in the run's thread; with no run, a message in `channel`."""
        if channel is None:
            self._tell("notice", run_id, text)
        else:
            self._tell("notice", run_id, text, channel)


class EngineCore:
    def __init__(
        self,
        db: Database,
        runbook: Runbook,
        *,
        surface: Surface | None = None,
        clock: Clock | None = None,
        context_factory: ContextFactory = default_context,
        background: bool = True,
        workers: int = 4,
        masker: Masker = GLOBAL_MASKER,
        replica_id: str | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.clock = clock or SystemClock()
        self.store = Store(db, self.now)  # the engine's one door to the database
        self.runbook = runbook
        self.digest = runbook_digest(runbook)
        self.surface: Surface = surface or NullSurface()
        self.context_factory = context_factory
        self.masker = masker
        self.background = background
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cutover-run")
        self.notify = Notify(self.tell)
        self._env_files: dict[str, int] = {}  # env file path -> mtime when last registered
        # A replica id names one replica across its restarts (CUTOVER_REPLICA_ID; the
        # hostname by default, which is one per container): leases left by an earlier
        # incarnation of this replica are known dead at once, others only once they lapse.
        replica = replica_id or os.environ.get("CUTOVER_REPLICA_ID") or socket.gethostname()
        self._stop = threading.Event()
        self.leases = Leases(
            self.store, masker, self.now, replica, timedelta(seconds=lease_seconds), self._stop
        )
        # The lease state and calls the use cases share (bot/engine/leasing.py).
        self.replica, self.me, self.lease = replica, self.leases.me, self.leases.lease
        self.leash, self._threads_lock = self.leases.leash, self.leases.lock
        self._epochs, self._executing = self.leases.epochs, self.leases.executing
        self._take_lease, self._dead = self.leases.take, self.leases.dead
        self.holds, self.fence = self.leases.holds, self.leases.fence
        self._ensure_heartbeat, self.renew_leases = self.leases.ensure_heartbeat, self.leases.renew
        self._announced: set[int] = set()  # runs whose final chain head was posted
        # Facts that never change once written, kept to spare a read on every click:
        # a gate's run and environment.
        self._gate_runs: dict[int, tuple[int, str]] = {}
        self._completed_by: set[str] = set()  # claims that found the run's last phase done
        # Step results (bot/engine/step_log.py) and a run's facts (bot/engine/run_facts.py).
        self.step_log = StepLog(db, self.store, runbook, masker, self.now, self.leases.fence)
        self.record_step, self.add_step = self.step_log.record, self.step_log.add
        self._record_step_once = self.step_log.record_once
        self.facts = RunFacts(db, self.store, runbook, masker, self.notify.notice)
        self.stakeholder_channel, self.feed = self.facts.stakeholder_channel, self.facts.feed
        self.run_backup, self.run_ref = self.facts.run_backup, self.facts.run_ref
        self.run_artifact = self.facts.run_artifact
        # Secrets are known from the moment the engine exists, before any run is read back
        # after a restart: every environment's ${VAR} values, URL userinfo and env file.
        install_log_masking()
        for env_name in runbook.environments:
            self.register_secrets(env_name)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Runs follow-up work (the next phase, a rollback) on the engine's pool."""
        if self.background:
            self._pool.submit(self._guard, fn, *args)
        else:
            self._guard(fn, *args)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__name__", fn))

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

    def run_ended(self, run_id: int) -> None:
        """Called where a run ends (completed, rolled back, cancelled), once its end has
        committed: posts the audit chain's head in its thread, so a database rewritten later
        disagrees with the copy Slack keeps. Never raises: the end is committed already."""
        with self._threads_lock:
            if run_id in self._announced:
                return
            self._announced.add(run_id)
        if isinstance(self.surface, SignoffSurface) and any(
            c.signoff for c in self.runbook.success_criteria
        ):
            self.tell("signoff_changed", run_id)  # an ended run takes no more sign-offs
        self.show_run_signoff(run_id)  # a completed run: the people named are asked
        try:
            seq, digest = audit.head(self.db)
        except Exception as exc:
            log.warning("chain head of run #%s not posted: %s", run_id, self.masker.mask(str(exc)))
            return
        signer = self.db.audit_signer
        signed = f", rows signed with key {signer.key_id}" if signer is not None else ", unsigned"
        self.notify.notice(
            run_id,
            f"Audit chain head at the end of run #{run_id}: row {seq}, sha256 {digest}{signed}. "
            "A rewritten or shortened audit table fails "
            f"`cutover audit verify --expect-head {seq}:{digest}`.",
        )
        checkpoint = self.db.audit_checkpoint  # the head posted: a restart refuses less
        if checkpoint is not None:
            checkpoint.advance(self.db, seq, digest)

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

    def shutdown(self, wait: bool = True) -> None:
        self._stop.set()
        self._pool.shutdown(wait=wait)
        self.leash.close()

    def redraws_idle(self, timeout: float = 10.0) -> bool:
        """True once every redraw was handed to the surface: at once, since the engine tells
        the surface in the thread that changed the state (kept for the tests that wait)."""
        return True

    def environment(self, name: str) -> EnvironmentSpec:
        return self.runbook.environment(name)

    def register_secrets(self, env_name: str, *, strict: bool = False) -> None:
        """Registers what an environment must never show: its ${VAR} values, the userinfo of
        its URLs, every value of its env file but the keys the runbook marks public.

        `strict`: a missing or malformed env file raises EnvFileError (starting a run);
        otherwise it is left to the secrets check to report."""
        env = self.environment(env_name)
        self.masker.add_all(self.runbook.secret_values(env_name))
        if not env.env_file:
            return
        try:
            path = str(self.runbook.values_for(env_name)["env_file"])
            stamp = os.stat(path).st_mtime_ns if os.path.exists(path) else None
            if not strict and stamp is not None and self._env_files.get(path) == stamp:
                return  # registered already, and the file has not changed since
            self.masker.add_env(parse_env_file(path), public=env.public_env_keys)
            if stamp is not None:
                self._env_files[path] = stamp
        except (EnvFileError, RunbookError):  # a ${VAR} unset: starting a run reports it
            if strict:
                raise

    def context(
        self, run: Run, steps: Sequence[StepSpec] | None = None
    ) -> tuple[StepContext, dict[str, Value]]:
        """The step context and template values of a run (its secrets registered).

        `steps`: the only steps these values are for; the run's backup (an audit query) is
        looked up only if one of them names `run_backup` (every phase of most runbooks
        never does, and a click waits for this)."""
        env = self.environment(run.environment)
        values = self.runbook.values_for(run.environment)
        self.register_secrets(run.environment)
        run_id = run.reverts_run_id or run.id  # a revert restores the backup of what it undoes
        wanted = steps is None or any(uses_run_backup(st.params) for st in steps)
        backup = (
            # Background work retries a dropped connection rather than failing the phase.
            self.db.retrying(lambda: self.run_backup(run_id), f"run #{run_id}: its backup")
            if run_id is not None and wanted
            else None
        )
        if backup is not None:
            values["run_backup"] = str(backup["path"])
            values["run_backup_sha256"] = str(backup["sha256"])
        if (
            run.id is not None
            and "ref" in values
            and (
                steps is None or any("{ref}" in json.dumps(st.params, default=str) for st in steps)
            )
        ):
            given = self.db.retrying(lambda: self.run_ref(run_id), f"run #{run_id}: its ref")
            if given is not None:
                values["ref"] = given
        ctx = self.context_factory(env, run.dry_run, self.masker)
        ctx.public_env_keys = frozenset(env.public_env_keys)
        if run.started_at is not None:
            ctx = dataclasses.replace(ctx, run_started_at=run.started_at.timestamp())
        return ctx, values

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

    def start_reaper(self, interval: float | None = None) -> None:
        """Takes over, every `interval` seconds, what a dead replica left executing."""
        self.leases.start_reaper(self.reap, interval)

    # ------------------------------------------------------------------ shared by the use cases

    def _complete(self, tx: Tx | Any, run: Run) -> None:
        """The run's last phase passed: it ends (the table's `completed` move)."""
        within = Tx.of(tx, self.now)
        within.apply(run, "completed", SYSTEM.id, {"environment": run.environment})
        assert run.id is not None
        self._epochs.pop(run.id, None)
        signoff_request.ask(within, run, self.runbook.environments.get(run.environment), self.now())

    # Use cases that call each other across modules (runs.py, rollback.py, recovery.py).

    def advance(self, run_id: int) -> None:
        raise NotImplementedError

    def execute_rollback(self, run_id: int) -> None:
        raise NotImplementedError

    def request_signoffs(self, run_id: int) -> None:
        raise NotImplementedError

    def show_run_signoff(self, run_id: int) -> None:
        raise NotImplementedError

    def open_gate(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        passed: bool,
        note: str | None = None,
        *,
        executor: bool = False,
        checks: Sequence[StepOutcome] = (),
    ) -> int | None:
        raise NotImplementedError

    def reap(self) -> list[str]:
        raise NotImplementedError
