"""The one transaction that starts a run (its row and its audit rows), and what a start that
lost the environment's one active slot is told."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import Conflict
from bot.engine.errors import EngineError
from bot.store import override_votes
from bot.store import runs as run_rows
from bot.store.models import Run
from bot.store.unit import Store
from bot.surface import Actor
from phases.runbook import EnvironmentSpec, Runbook
from phases.secrets import EnvFileError


def no_ref(env_name: str, ref: str | None, values: dict[str, Any]) -> str | None:
    """Why a start with `ref=` is refused: the runbook deploys no ref; None: it may start."""
    if ref is None or "ref" in values:
        return None
    return (
        f"ref={ref} given, but this runbook deploys no ref (it has no `ref` var for "
        f"{env_name!r}); start without ref=, or add `ref: main` to its vars and use "
        "{ref} in its git steps. No run was started."
    )


def check_env_file(
    env_name: str, values: dict[str, Any], register_secrets: Callable[..., None]
) -> None:
    """Raises EngineError unless the environment's env file exists and parses; registers its
    secrets (`register_secrets(env_name, strict=True)`)."""
    path = Path(str(values["env_file"]))
    if not path.is_file():
        raise EngineError(
            f"env file {path} of environment {env_name!r} does not exist; create it or fix "
            f"env_file in the runbook. No run was started."
        )
    try:
        register_secrets(env_name, strict=True)
    except EnvFileError as exc:
        raise EngineError(f"{exc}. No run was started.") from None


class RunStart:
    def __init__(
        self, store: Store, runbook: Runbook, digest: str, now: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.runbook = runbook
        self.digest = digest
        self.now = now

    def already_active(self, env_name: str) -> Conflict:
        with self.store.tx() as tx:
            active = run_rows.active(tx, env_name)
        if active is None:
            return Conflict(f"another run of {env_name} was starting at the same time; try again")
        return Conflict(
            f"run #{active.id} is already active for {env_name} ({active.status}, phase "
            f"{active.phase_index + 1}); finish or abort it first"
        )

    def insert(
        self,
        env_name: str,
        env: EnvironmentSpec,
        actor: Actor,
        channel: str | None,
        dry_run: bool,
        spend: tuple[str, tuple[str, ...], tuple[str, ...], Any] | None = None,
        ref: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> Run | None:
        with self.store.tx() as tx:
            if run_rows.active_id(tx, env_name) is not None:
                return None
            # The votes are spent by the one transaction that starts.
            if spend is not None and override_votes.spend(tx, spend[0]) < len(spend[1]):
                return None  # another start spent them first
            run = Run(
                environment=env_name,
                active_env=env_name,
                runbook_name=self.runbook.name,
                runbook_digest=self.digest,
                dry_run=dry_run,
                requested_by=actor.id,
                channel=channel or env.channel,
                started_at=self.now(),
            )
            tx.add(run)
            tx.flush()
            assert run.id is not None
            tx.audit(
                AuditKind.RUN_STARTED,
                actor=actor.id,
                run_id=run.id,
                data={
                    "environment": env_name,
                    "dry_run": dry_run,
                    "runbook": self.runbook.name,
                    "version": self.runbook.version,
                    **ref_data(ref, values),
                },
                at=self.now(),
            )
            if spend is not None:
                _, approvers, said_by, frozen = spend
                tx.audit(
                    AuditKind.FREEZE_OVERRIDDEN,
                    actor=actor.id,
                    run_id=run.id,
                    data={
                        "environment": env_name,
                        "freeze": frozen.freeze.id,
                        "reason": frozen.freeze.reason,
                        "by": frozen.freeze.by,
                        "until": frozen.until.isoformat(),
                        "approvers": list(approvers),
                        "justifications": list(said_by),
                    },
                    at=self.now(),
                )
        return run


def ref_data(ref: str | None, values: dict[str, Any] | None) -> dict[str, Any]:
    """The run.started fields naming what the run deploys: the ref given at start (`ref=`),
    else the environment's default (the runbook's `ref` var); none for a runbook without."""
    if ref is not None:
        return {"ref": ref, "ref_from": "start"}
    default = (values or {}).get("ref")
    return {"ref": default, "ref_from": "runbook"} if isinstance(default, str) else {}
