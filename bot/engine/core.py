"""The engine's core: its collaborators (database, runbook, surface, clock, step context), the
follow-up pool, telling the surface, audited refusals, and the leases that make a phase or a
rollback belong to the one process executing it.

A replica id names one replica across its restarts (CUTOVER_REPLICA_ID; the hostname by
default, one per container). A process holding a run renews `run.lease_until` every third of
the lease; another replica takes over only once that lapsed, or at once when the owner was an
earlier incarnation of its own replica (it was restarted).

Leases are read and written on the database's clock (`db_now`), never a machine's own. Each
take-over increments `run.lease_epoch` (a fencing token): the holder's writes (claim, step
result, gate, end of rollback) are conditional on the epoch it took, so a stale holder's write
is refused; the token reaches each step as CUTOVER_FENCING_TOKEN. A holder that cannot renew
(the database unreachable for half a lease, or the row shows another owner or epoch) stops
its running step at once, killing it before its lease can lapse (docs/hardening.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bot import audit, metrics
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import CutoverError
from bot.engine import restore_point, signoff_request
from bot.models import Run, StepRun
from bot.store import leases, runs, step_outputs, steps
from bot.store.unit import Database, DatabaseUnavailable, Store, Tx
from bot.surface import SYSTEM, Actor, NullSurface, SignoffSurface, Surface
from phases.checks.base import Clock, StepContext, StopRequest, SystemClock
from phases.checks.leash import Leash
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
# A holder's steps are killed once this share of a lease passed since its last renewal was
# sent: before the lease can lapse on the database's clock and another replica take over.
LEASH_SHARE = 0.8


class EngineError(CutoverError):
    """A request the engine refuses; the message says why and what to do."""


class LeaseLost(EngineError):
    """A write of a holder whose lease epoch was superseded (or whose run another process
    owns now): refused, so a stale holder never records over the new one."""


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
        self.replica = replica_id or os.environ.get("CUTOVER_REPLICA_ID") or socket.gethostname()
        self.me = f"{self.replica}#{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=lease_seconds)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._threads_lock = threading.Lock()
        self._claims = 0  # bumped after each committed claim (see _renew_loop)
        self._announced: set[int] = set()  # runs whose final chain head was posted
        # Facts that never change once written, kept to spare a read on every click:
        # a gate's run and environment, a run's stakeholder channel (None: it has none).
        self._gate_runs: dict[int, tuple[int, str]] = {}
        self._stakeholders: dict[int, str | None] = {}
        self._completed_by: set[str] = set()  # claims that found the run's last phase done
        # What this process executes now (a phase, a rollback) and how to stop it, by run; and
        # the lease epoch (fencing token) it took for each run it holds.
        self._executing: dict[int, tuple[StopRequest, str]] = {}
        self._epochs: dict[int, int] = {}
        # Kills this process's running steps once its leases may have lapsed, even if this
        # process is paused or dead (a separate process, started when a step first runs).
        self.leash = Leash()
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

    def _dead(self, owner: str | None, lease_until: datetime | None, now: datetime) -> bool:
        """True when the owner of a run's execution is gone: its lease lapsed (`now`: the
        database's clock, `db_now`), or it was an earlier incarnation of this very replica
        (this process replaced it)."""
        if owner is None:
            return True
        if owner == self.me:
            return False
        if owner.rsplit("#", 1)[0] == self.replica:
            return True
        return lease_until is None or lease_until < now

    def _take_lease(self, tx: Tx | Any, run: Run) -> None:
        """Takes the run's lease in the caller's transaction, on the database's clock, with
        the next epoch: a conditional UPDATE (WHERE lease_epoch = the one read), so of two
        processes taking it at once one wins and the other gets LeaseLost. Call
        `_ensure_heartbeat()` once the transaction committed."""
        assert run.id is not None
        asked = time.monotonic()
        epoch = leases.take(Tx.of(tx, self.now), run, self.me, self.lease)
        if epoch is None:
            raise LeaseLost(f"run #{run.id}: another process took its lease first")
        with self._threads_lock:
            self._epochs[run.id] = epoch
        self.leash.renew(asked + self.lease.total_seconds() * LEASH_SHARE)

    def holds(self, tx: Tx | Any, run_id: int) -> bool:
        """Fencing, in the caller's transaction: True if this process still holds the run's
        lease with the epoch it took (the row is locked for the rest of the transaction, so
        no take-over can slip in before the caller's write commits)."""
        epoch = self._epochs.get(run_id)
        if epoch is None:
            return False
        return leases.holds(Tx.of(tx, self.now), run_id, self.me, epoch)

    def fence(self, tx: Tx | Any, run_id: int, what: str) -> None:
        """Raises LeaseLost (and logs it) unless this process still holds the run's lease."""
        if not self.holds(tx, run_id):
            log.warning(
                "run #%s: %s refused: this process (%s, epoch %s) no longer holds the lease",
                run_id,
                what,
                self.me,
                self._epochs.get(run_id),
            )
            raise LeaseLost(f"run #{run_id}: {what} refused: the lease was lost")

    def _ensure_heartbeat(self) -> None:
        with self._threads_lock:
            self._claims += 1
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._heartbeat = threading.Thread(
                    target=self._renew_loop, name="cutover-lease", daemon=True
                )
                self._heartbeat.start()

    def renew_leases(self) -> int:
        """Extends the lease of every run this process holds, each on its own epoch, on the
        database's clock; returns how many. A run whose row shows another owner or epoch is
        lost: its running step is stopped. A run aborted (rolling back) while this process
        executes one of its phases: that phase's running step is stopped (the abort's
        rollback waits for it)."""
        with self._threads_lock:
            held = dict(self._epochs)
        if not held:
            return 0
        with self.store.tx() as tx:
            renewed, aborted = leases.renew(tx, held, self.me, self.lease)
        for run_id, epoch in held.items():
            if run_id not in renewed:
                self._lose(run_id, epoch, "the lease was lost to another process", time.monotonic())
        for rid in aborted:
            with self._threads_lock:
                running = self._executing.get(rid)
            if running is not None and running[1] == "phase":
                running[0].set("abort")
        return len(renewed)

    def _lose(self, run_id: int, epoch: int, reason: str, kill_by: float | None = None) -> None:
        """This process no longer holds the run (epoch `epoch`): forget it, and stop what it
        executes for it. A released run (its gate opened, its end recorded) has nothing
        running: then this only forgets the epoch."""
        with self._threads_lock:
            if self._epochs.get(run_id) != epoch:
                return  # claimed again meanwhile, with a newer epoch
            del self._epochs[run_id]
            running = self._executing.get(run_id)
        if running is not None:
            log.warning("run #%s: %s; stopping its running step", run_id, reason)
            running[0].set(reason, kill_by=kill_by)

    def _renew_loop(self) -> None:
        """Renews while this process owns runs; ends when it owns none and claimed nothing
        meanwhile (a claim after that starts a new one). When the database cannot be reached
        for half a lease, every step this process runs is stopped, and killed before the
        lease can lapse: another replica may take the runs over after that."""
        lease = self.lease.total_seconds()
        interval = max(lease / 3, 0.05)
        renewed_at = time.monotonic()  # the last renewal's request left no later than this
        while not self._stop.wait(interval):
            with self._threads_lock:
                claims = self._claims
            asked = time.monotonic()
            try:
                renewed = self.renew_leases()
                renewed_at = asked
                if renewed:
                    self.leash.renew(asked + lease * LEASH_SHARE)
            except Exception as exc:
                log.warning("cannot renew leases: %s", self.masker.mask(str(exc)))
                if time.monotonic() - renewed_at >= lease / 2:
                    with self._threads_lock:
                        held = dict(self._epochs)
                    for run_id, epoch in held.items():
                        self._lose(
                            run_id,
                            epoch,
                            "the lease could not be renewed",
                            kill_by=renewed_at + lease * LEASH_SHARE,
                        )
                continue
            if renewed == 0:
                with self._threads_lock:
                    if self._claims == claims:
                        self._heartbeat = None
                        return

    def start_reaper(self, interval: float | None = None) -> None:
        """Takes over, every `interval` seconds, what a dead replica left executing."""
        every = interval if interval is not None else max(self.lease.total_seconds() / 3, 0.05)

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    for line in self.reap():
                        log.warning("took over: %s", line)
                except DatabaseUnavailable as exc:
                    log.warning("cannot look for dead replicas' runs: %s", exc)
                except Exception:
                    log.exception("reaper failed")

        with self._threads_lock:
            if self._reaper is None:
                self._reaper = threading.Thread(target=loop, name="cutover-reaper", daemon=True)
                self._reaper.start()

    # ------------------------------------------------------------------ shared by the use cases

    def record_step(
        self,
        run_id: int,
        phase_run_id: int | None,
        outcome: StepOutcome,
        *,
        fenced: bool = False,
    ) -> None:
        """Records a step result; retried while the database is unavailable, never twice.
        `fenced`: written by the lease holder, only while it still holds the lease (else
        LeaseLost)."""
        tries = 0

        def once() -> None:
            nonlocal tries
            tries += 1
            self._record_step_once(run_id, phase_run_id, outcome, retry=tries > 1, fenced=fenced)

        self.db.retrying(once, f"run #{run_id}: record step {outcome.step.id}")
        r = outcome.result
        metrics.observe_step(outcome.section, outcome.step.kind, str(r.status), r.duration_ms)

    def _record_step_once(
        self,
        run_id: int,
        phase_run_id: int | None,
        outcome: StepOutcome,
        retry: bool,
        fenced: bool = False,
    ) -> None:
        with self.store.tx() as tx:
            if fenced:
                self.fence(tx, run_id, f"recording step {outcome.step.id}")
            if (
                retry
                and phase_run_id is not None
                and steps.recorded(tx, phase_run_id, outcome.section, outcome.step.id)
            ):
                return  # the attempt whose connection dropped did commit
            self.add_step(tx, run_id, phase_run_id, outcome)

    def add_step(
        self, within: Tx | Any, run_id: int, phase_run_id: int | None, outcome: StepOutcome
    ) -> None:
        """A step's result and its audit row, in the caller's transaction."""
        tx = Tx.of(within, self.now)
        r = outcome.result
        step = StepRun(
            run_id=run_id,
            phase_run_id=phase_run_id,
            section=outcome.section,
            step_id=outcome.step.id,
            name=outcome.step.name,
            status=r.status,
            evidence=r.evidence,
            duration_ms=r.duration_ms,
            at=self.now(),
        )
        tx.add(step)
        output = step_outputs.keep(tx, step, r, self.masker.mask)  # what it printed, masked
        tx.audit(
            AuditKind.STEP_RESULT,
            actor=SYSTEM.id,
            run_id=run_id,
            data={
                "section": outcome.section,
                "step": outcome.step.id,
                "status": str(r.status),
                "evidence": r.evidence,
                "duration_ms": r.duration_ms,
                # What a step made that later steps rely on (a backup's path and SHA-256).
                **({"artifact": r.details["artifact"]} if "artifact" in r.details else {}),
                **({"output": output} if output else {}),  # its digest: step_output's text
            },
            at=self.now(),
        )
        if outcome.section == "actions" and phase_run_id is not None and not r.status.blocks_gate:
            restore_point.fix_after_step(
                tx, self.runbook, run_id, phase_run_id, outcome.step, self.now()
            )

    def stakeholder_channel(self, run_id: int) -> str | None:
        """The stakeholders' channel of a run: its schedule's, else its environment's. Read
        once per run and kept: a run's schedule and environment are fixed when it starts."""
        with self._threads_lock:
            if run_id in self._stakeholders:
                return self._stakeholders[run_id]
        with self.store.tx() as tx:
            row = runs.stakeholders(tx, run_id)
        if row is None:
            return None
        environment, scheduled = row
        channel = scheduled or self.environment(environment).stakeholders
        with self._threads_lock:
            if len(self._stakeholders) > 10_000:
                self._stakeholders.clear()
            self._stakeholders[run_id] = channel
        return channel

    def feed(self, run_id: int, text: str) -> None:
        """One short message to the stakeholders (never a secret: masked); none configured:
        nothing."""
        try:
            channel = self.stakeholder_channel(run_id)
        except Exception as exc:  # after a decision committed: never turn it into an error
            log.warning(
                "stakeholder feed of run #%s skipped: %s", run_id, self.masker.mask(str(exc))
            )
            return
        if channel:
            self.notify.notice(None, self.masker.mask(text), channel)

    def run_backup(self, run_id: int) -> dict[str, Any] | None:
        """The run's restore point (path and SHA-256 of the verified backup fixed before the
        first state-changing action of a restore-protected phase), never merely the newest
        backup: a Retry's backup may hold a half-applied migration."""
        point = restore_point.read(self.db, run_id)
        return point.data if point is not None and point.found else None

    def run_ref(self, run_id: int | None) -> str | None:
        """The ref given at the run's start (`/cutover start prod ref=v1.4.2`), or None."""
        if run_id is None:
            return None
        for ev in audit.events_containing(self.db, run_id, AuditKind.RUN_STARTED, '"ref"'):
            data = json.loads(ev.data)
            if data.get("ref_from") == "start" and isinstance(data.get("ref"), str):
                return str(data["ref"])
        return None

    def run_artifact(self, run_id: int, kind: str) -> dict[str, Any] | None:
        """The newest artifact of `kind` ("backup", "deployed") a passed step of the run made."""
        found: dict[str, Any] | None = None
        for ev in audit.events_containing(self.db, run_id, AuditKind.STEP_RESULT, '"artifact"'):
            data = json.loads(ev.data)
            artifact = data.get("artifact")
            if (
                data.get("status") == "pass"
                and isinstance(artifact, dict)
                and artifact.get("type") == kind
            ):
                found = artifact
        return found

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
