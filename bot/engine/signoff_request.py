"""The request for a completed run's sign-off, written in the transaction that completes
the run (bot/engine/core.py `_complete`), so a completed run's trail always says whether a
sign-off was asked and of whom (bot/engine/run_signoff.py takes the sign-offs)."""

from __future__ import annotations

from datetime import datetime

from bot.domain.audit_kinds import AuditKind
from bot.store.models import Run
from bot.store.unit import Tx
from bot.surface import SYSTEM
from phases.runbook import EnvironmentSpec
from phases.signoff_spec import signers


def ask(tx: Tx, run: Run, env: EnvironmentSpec | None, at: datetime) -> bool:
    """In the transaction that completes `run`: asks the people its environment names to
    sign it off (one audit row). Nobody named, or a dry run: nothing is asked."""
    spec = env.signoff if env is not None else None
    if env is None or spec is None or run.dry_run or run.id is None:
        return False
    tx.audit(
        AuditKind.RUN_SIGNOFF_REQUESTED,
        actor=SYSTEM.id,
        run_id=run.id,
        data={
            "by": signers(spec, env.slack_team),
            "groups": list(spec.groups),
            "quorum": spec.quorum,
        },
        at=at,
    )
    return True
