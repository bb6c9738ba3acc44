"""Reverts: the runs that undo a completed run (`reverts_run_id`) and their approvers'
votes (`revert_vote`)."""

from __future__ import annotations

from sqlmodel import col, select

from bot.store.models import RevertVote, Run, RunStatus
from bot.store.unit import Tx


def votes(tx: Tx, run_id: int) -> list[str]:
    """Who approved the revert run `run_id` so far."""
    return [v.actor for v in tx.session.exec(select(RevertVote).where(RevertVote.run_id == run_id))]


def pending(tx: Tx, env_name: str) -> int | None:
    """The environment's revert waiting for its approvers, if any."""
    return tx.session.exec(
        select(Run.id).where(Run.active_env == env_name, Run.status == RunStatus.REVERT_PENDING)
    ).first()


def pending_of(tx: Tx, run_id: int) -> int | None:
    """The revert of run `run_id` waiting for its approvers, if any."""
    return tx.session.exec(
        select(Run.id).where(Run.reverts_run_id == run_id, Run.status == RunStatus.REVERT_PENDING)
    ).first()


def last_real(tx: Tx, env_name: str, run_id: int | None = None) -> Run | None:
    """The environment's last real run (not a dry run, not a revert), or run `run_id` if it
    is one."""
    return tx.session.exec(
        select(Run)
        .where(
            Run.environment == env_name,
            col(Run.dry_run).is_(False),
            col(Run.reverts_run_id).is_(None),
            *([Run.id == run_id] if run_id is not None else []),
        )
        .order_by(col(Run.id).desc())
    ).first()


def first_after(tx: Tx, env_name: str, run_id: int | None) -> Run | None:
    """The environment's first run started after run `run_id`."""
    return tx.session.exec(
        select(Run).where(Run.environment == env_name, col(Run.id) > run_id).order_by(col(Run.id))
    ).first()
