"""Sign-off of a completed cutover by the people its environment names (`signoff:`).

Asked for when the run completes (`signoff_request.ask`, in the transaction that completes it: a
`run.signoff_requested` row naming who and how many), then shown by the surface the way the
criterion sign-offs are (Slack: a "Sign off" button in the run's sign-off message; the
console: text and `/cutover signoff RUN`). Each sign-off is checked when it arrives (named
now, not the starter when self-approval is off, a completed real run that was asked),
audited, and counted once per person: the run row is locked while it is decided, and the
`run_signoff` row's unique key (run, person) holds even if two clicks got past that.
Nothing is inferred: a runbook that names nobody gets no request, and its record says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from bot.domain import run_signoff_rules
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import NotFound
from bot.engine.core import Decision, Notify, Refusals
from bot.signoffs import run_signoff_text
from bot.store import run_signoffs, runs, trail
from bot.store.models import RunSignoff
from bot.store.reads import run_signoff_state
from bot.store.unit import Database, Duplicate, Store
from bot.surface import Actor
from phases.runbook import Runbook
from phases.secrets import Masker


class RunSignoffs:
    def __init__(
        self,
        db: Database,
        store: Store,
        runbook: Runbook,
        masker: Masker,
        now: Callable[[], datetime],
        notify: Notify,
        refusals: Refusals,
        feed: Callable[[int, str], None],
    ) -> None:
        self.db, self.store, self.environment = db, store, runbook.environment
        self.masker, self.now, self.notify, self.refused = masker, now, notify, refusals.refused
        self.feed = feed

    def show_run_signoff(self, run_id: int) -> None:
        """Shows the completed run's sign-off request, if one was asked: Slack redraws (or
        posts) the run's sign-off message with its button; a surface without one is told
        as text, with the command. Never raises: the run's end is committed already."""
        try:
            state = run_signoff_state(self.db, run_id)
        except Exception:
            return
        if state is None:
            return
        if not self.notify.signoff_changed(run_id):
            self.notify.notice(run_id, run_signoff_text(run_id, state))

    def sign_off_run(self, run_id: int, actor: Actor, note: str | None = None) -> Decision:
        """A person the environment names signs the completed run off (audited, once)."""
        with self.store.tx() as tx:
            run = runs.get(tx, run_id)
        if run is None:
            raise NotFound(f"no run #{run_id}")
        refusal = run_signoff_rules.may_sign_off_run(
            run.environment, self.environment(run.environment), actor, run.requested_by
        )
        if refusal:
            return self.refused(actor, "run_signoff", refusal, run_id=run_id)
        try:
            decided = self._sign(run_id, actor, note)
        except Duplicate:  # the unique key: another click of theirs got in first
            decided = self._signed_already(run_id, actor)
        if decided.outcome == "ticked":
            self._told_signed(run_id)
        return decided

    def _sign(self, run_id: int, actor: Actor, note: str | None) -> Decision:
        with self.store.tx() as tx:
            # Locked: two clicks of one person are decided one after the other.
            run = runs.lock(tx, run_id)
            refusal = run_signoff_rules.run_signoff_refusal(run_id, str(run.status), run.dry_run)
            asked = trail.first_data(tx, run_id, AuditKind.RUN_SIGNOFF_REQUESTED)
            if refusal is None and asked is None:
                refusal = (
                    f"no sign-off was asked of run #{run_id} when it completed (its "
                    "environment named nobody then); nothing was recorded"
                )
            if refusal:
                return self.refused(actor, "run_signoff", refusal, run_id=run_id, tx=tx)
            mine = run_signoffs.of(tx, run_id, actor.id)
            if mine is not None:
                return self._signed_text(run_id, mine)
            now = self.now()
            tx.add(RunSignoff(run_id=run_id, actor=actor.id, at=now))
            tx.flush()  # the unique key decides a click that got past the lock
            signed = run_signoffs.count(tx, run_id)
            quorum = int(_quorum(asked))
            tx.audit(
                AuditKind.RUN_SIGNED_OFF,
                actor=actor.id,
                run_id=run_id,
                data={
                    "note": self.masker.untrusted(note or "")[:300],
                    "signed": signed,
                    "quorum": quorum,
                },
                at=now,
            )
        done = "signed off" if signed >= quorum else "your sign-off is recorded"
        return Decision(
            "ticked", f"run #{run_id}: {done} ({signed} of {quorum} needed)", None, run_id
        )

    def _signed_already(self, run_id: int, actor: Actor) -> Decision:
        with self.store.tx() as tx:
            mine = run_signoffs.of(tx, run_id, actor.id)
        assert mine is not None  # the unique key refused a second row of theirs
        return self._signed_text(run_id, mine)

    @staticmethod
    def _signed_text(run_id: int, mine: RunSignoff) -> Decision:
        at = mine.at.strftime("%H:%M UTC") if mine.at is not None else "?"
        return Decision(
            "already_voted",
            f"you signed off run #{run_id} at {at} already; it counts once",
            None,
            run_id,
        )

    def _told_signed(self, run_id: int) -> None:
        """Redraws the sign-off message (or tells the console) and, once the quorum is
        reached, tells the stakeholders who signed off and when (from the rows)."""
        self.show_run_signoff(run_id)
        try:
            state = run_signoff_state(self.db, run_id)
            with self.store.tx() as tx:
                env = runs.environment(tx, run_id)
        except Exception:
            return
        if state is not None and state.done and len(state.signatures) == state.quorum:
            who = ", ".join(f"{x.actor} at {x.at[11:16]} UTC" for x in state.signatures)
            self.feed(run_id, f"✍️ {env}: cutover run #{run_id} signed off by {who}.")


def _quorum(data: str | None) -> int:
    try:
        return int(json.loads(data or "{}").get("quorum") or 1)
    except (ValueError, TypeError):
        return 1
