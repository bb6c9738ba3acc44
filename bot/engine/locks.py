"""Locks and change freezes (issue 20, item 3): what may stop a start before a run exists.

A lock is a row (`env_lock`, the environment as its key): shared by every replica, audited
(`env.locked`, `env.unlocked`), set and lifted by an approver. A freeze is declared in the
runbook (`bot.domain.freezes`). Both refuse a start (a dry run changes nothing and is not
refused); a freeze also refuses a schedule inside it. An emergency start inside a freeze is a
break-glass (`approvals.may_override` rules, for a start): each override approver types
`/cutover start ENV --emergency --reason …`; the vote that reaches the override quorum starts
the run, and that transaction spends the votes (deletes them) and writes `freeze.overridden`
beside `run.started`: a double submission or a second completer starts nothing twice (the
one-active-run key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain import approvals, freezes
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import CutoverError, InvalidInput, Refused
from bot.engine.core import Decision, Notify, Refusals
from bot.engine.overrides import one_line
from bot.store import env_locks, override_votes
from bot.store.models import EnvLock, OverrideVote
from bot.store.unit import Duplicate, Store
from bot.surface import Actor
from phases.runbook import Runbook
from phases.secrets import Masker

EMERGENCY_VOTE_MINUTES = 60  # an emergency start's votes count this long


class EmergencyPending(CutoverError):
    """An emergency-start vote was recorded; the override quorum is not reached yet."""


@dataclass(frozen=True)
class LockView:
    environment: str
    reason: str
    locked_by: str
    locked_at: datetime

    def text(self) -> str:
        return (
            f"{self.environment} is locked by {self.locked_by} since "
            f"{self.locked_at.strftime('%Y-%m-%d %H:%M UTC')}: {self.reason}"
        )


def emergency_subject(env_name: str, frozen: freezes.Frozen) -> str:
    return f"start:{env_name}:{frozen.freeze.id}:{frozen.until.isoformat()}"


class Locks:
    def __init__(
        self,
        store: Store,
        runbook: Runbook,
        masker: Masker,
        now: Callable[[], datetime],
        notify: Notify,
        refusals: Refusals,
    ) -> None:
        self.store = store
        self.runbook = runbook
        self.environment = runbook.environment
        self.masker = masker
        self.now = now
        self.notify = notify
        self.refuse, self.refused = refusals.refuse, refusals.refused

    def lock(self, env_name: str, actor: Actor, reason: str) -> Decision:
        env = self.environment(env_name)
        text = one_line(self.masker.untrusted(reason or ""))
        if not text:
            raise InvalidInput("say why: lock needs --reason TEXT")
        refusal = approvals.may_lock(env_name, env, actor)
        if refusal:
            return self.refused(actor, "lock", refusal, environment=env_name)
        now = self.now()
        try:
            with self.store.tx() as tx:
                tx.add(
                    EnvLock(environment=env_name, reason=text, locked_by=actor.id, locked_at=now)
                )
                tx.flush()
                tx.audit(
                    AuditKind.ENV_LOCKED,
                    actor=actor.id,
                    run_id=None,
                    data={"environment": env_name, "reason": text},
                    at=now,
                )
        except Duplicate:  # locked already (or at the same instant by someone else)
            held = self.lock_of(env_name)
            said = held.text() if held else f"{env_name} was being locked at the same time"
            return Decision("already_decided", f"{said}; nothing was changed")
        return Decision("ticked", f"🔒 {env_name} locked by {actor.label}: {text}")

    def unlock(self, env_name: str, actor: Actor) -> Decision:
        env = self.environment(env_name)
        refusal = approvals.may_lock(env_name, env, actor)
        if refusal:
            return self.refused(actor, "unlock", refusal, environment=env_name)
        now = self.now()
        with self.store.tx() as tx:
            held = env_locks.lock(tx, env_name)
            if held is None:
                return Decision("already_decided", f"{env_name} is not locked; nothing was changed")
            data = {"environment": env_name, "reason": held.reason, "locked_by": held.locked_by}
            env_locks.remove(tx, held)
            tx.audit(AuditKind.ENV_UNLOCKED, actor=actor.id, run_id=None, data=data, at=now)
        return Decision("ticked", f"🔓 {env_name} unlocked by {actor.label}")

    def lock_of(self, env_name: str) -> LockView | None:
        with self.store.tx() as tx:
            row = env_locks.get(tx, env_name)
        return _view(row) if row is not None else None

    def locks(self) -> list[LockView]:
        with self.store.tx() as tx:
            return [_view(r) for r in env_locks.every(tx)]

    def start_blocker(self, env_name: str, actor: Actor, dry_run: bool) -> str | None:
        """Why a start of `env_name` is refused now (a lock, a freeze), audited; None if it
        may go on. A dry run changes nothing: never refused here."""
        if dry_run:
            return None
        held = self.lock_of(env_name)
        if held is not None:
            reason = f"{held.text()}. Unlock it first: /cutover unlock {env_name}"
            self.refuse(actor, "start", reason, environment=env_name)
            return reason
        return None

    def frozen(self, env_name: str, at: datetime | None = None) -> freezes.Frozen | None:
        return freezes.frozen(self.runbook, env_name, at or self.now())

    def emergency_vote(
        self, env_name: str, actor: Actor, justification: str, frozen: freezes.Frozen
    ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """Records one emergency-start vote inside a freeze. Raises EmergencyPending while
        short of the override quorum (the vote is recorded), else returns (subject,
        approvers, justifications): the caller starts the run and spends the votes in the
        transaction that inserts it (`RunStart.insert`). Raises Refused by the rules."""
        env = self.environment(env_name)
        text = one_line(self.masker.untrusted(justification or ""))
        if not text:
            raise InvalidInput("an emergency start needs --reason TEXT saying why")
        refusal = None
        if not approvals.is_override_approver(env, actor):
            refusal = f"you may not break the change freeze of {env_name}; nothing was started"
        subject = emergency_subject(env_name, frozen)
        now = self.now()
        fresh = now - timedelta(minutes=EMERGENCY_VOTE_MINUTES)
        need = env.override_quorum_for()
        with self.store.tx() as tx:
            votes = override_votes.fresh(tx, subject, since=fresh)
            if refusal is None and any(actor.is_(v.actor) for v in votes):
                refusal = (
                    "you already asked for this emergency start; another override approver "
                    f"must type /cutover start {env_name} --emergency --reason …"
                )
            if refusal:
                tx.refuse(actor.id, "start", refusal, environment=env_name)
            else:
                tx.add(OverrideVote(subject=subject, actor=actor.id, justification=text, at=now))
                tx.audit(
                    AuditKind.OVERRIDE_VOTE,
                    actor=actor.id,
                    run_id=None,
                    data={
                        "subject": "start",
                        "environment": env_name,
                        "freeze": frozen.freeze.id,
                        "justification": text,
                        "votes": len(votes) + 1,
                        "quorum": need,
                    },
                    at=now,
                )
        if refusal:
            raise Refused(refusal)
        if len(votes) + 1 < need:
            said = (
                f"🟥 Emergency start of {env_name} during the change freeze "
                f"{frozen.freeze.id!r} asked for by {actor.label} ({len(votes) + 1}/{need} "
                f"override approvals): {text}. Another override approver agrees with "
                f"/cutover start {env_name} --emergency --reason … within "
                f"{EMERGENCY_VOTE_MINUTES} min."
            )
            if env.channel:
                self.notify.notice(None, self.masker.mask(said), env.channel)
            raise EmergencyPending(said)
        approvers = (*[v.actor for v in votes], actor.id)
        quoted = (*[f"{v.actor}: {v.justification}" for v in votes], f"{actor.id}: {text}")
        return subject, approvers, quoted


def _view(row: EnvLock) -> LockView:
    return LockView(row.environment, row.reason, row.locked_by, row.locked_at)
