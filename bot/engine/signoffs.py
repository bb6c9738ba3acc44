"""Sign-offs: approvers vouch for the success criteria the runbook binds to `signoff`.

Asked for once, when the run's last phase begins (an audited `signoff.requested`); the
surface shows the request (Slack: a message with a "Sign off" button per criterion). Each
click or `/cutover signoff` is checked when it arrives (an approver of the run's
environment, not its requester when self-approval is off, a run still going on) and
audited; one person's sign-off of one criterion counts once, however often they click: the
run row is locked while the trail is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from bot.domain import approvals
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import InvalidInput, NotFound
from bot.engine.core import Decision, Notify, Refusals
from bot.signoffs import refusal_for, signoff_text
from bot.store import runs, trail
from bot.store.reads import signoff_view
from bot.store.unit import Database, Store
from bot.surface import SYSTEM, Actor
from phases.runbook import Runbook
from phases.secrets import Masker


class Signoffs:
    def __init__(
        self,
        db: Database,
        store: Store,
        runbook: Runbook,
        masker: Masker,
        now: Callable[[], datetime],
        notify: Notify,
        refusals: Refusals,
    ) -> None:
        self.db, self.store, self.runbook, self.environment = (
            db,
            store,
            runbook,
            runbook.environment,
        )
        self.masker, self.now, self.notify, self.refused = masker, now, notify, refusals.refused

    def request_signoffs(self, run_id: int) -> None:
        """Asks the approvers to sign off the runbook's `signoff` criteria, once per run. Asked
        already (a retry whose first COMMIT landed unseen): the message is shown again all
        the same, so a lost acknowledgement never leaves the request unshown."""
        ids = [c.id for c in self.runbook.success_criteria if c.signoff]
        if not ids:
            return
        with self.store.tx() as tx:
            runs.lock(tx, run_id)
            asked = trail.first_seq(tx, run_id, AuditKind.SIGNOFF_REQUESTED)
            if asked is None:
                tx.audit(
                    AuditKind.SIGNOFF_REQUESTED,
                    actor=SYSTEM.id,
                    run_id=run_id,
                    data={"criteria": ids},
                    at=self.now(),
                )
        self._show_signoffs(run_id, asked_now=asked is None)

    def _show_signoffs(self, run_id: int, *, asked_now: bool = False) -> None:
        """The surface's sign-off message, posted or redrawn; a surface without one is told
        the request as text (once: its people answer with the command)."""
        if self.notify.signoff_changed(run_id):
            return
        if asked_now:
            view = signoff_view(self.db, self.runbook, run_id)
            if view is not None:
                self.notify.notice(run_id, signoff_text(view))

    def sign_off(
        self, run_id: int, criterion_id: str, actor: Actor, note: str | None = None
    ) -> Decision:
        """An approver vouches for a success criterion bound to `signoff` (audited)."""
        with self.store.tx() as tx:
            run = runs.get(tx, run_id)
        if run is None:
            raise NotFound(f"no run #{run_id}")
        spec = self.runbook.criterion(criterion_id)  # unknown: RunbookError lists the known ones
        if not spec.signoff:
            raise InvalidInput(
                f"criterion {criterion_id!r} is shown by "
                f"{spec.check or spec.monitoring or spec.manual or 'nothing'}, not by a sign-off"
            )
        refusal = approvals.may_sign_off(
            run.environment, self.environment(run.environment), actor, run.requested_by
        )
        if refusal:
            return self.refused(actor, "signoff", refusal, run_id=run_id, criterion=criterion_id)
        with self.store.tx() as tx:
            # Locked: two clicks of one person read the trail one after the other.
            run = runs.lock(tx, run_id)
            refusal = refusal_for(str(run.status), run_id)
            if refusal:
                return self.refused(
                    actor, "signoff", refusal, run_id=run_id, tx=tx, criterion=criterion_id
                )
            for row in trail.by_actor(tx, run_id, AuditKind.CRITERION_SIGNED_OFF, actor.id):
                if json.loads(row.data).get("criterion") == criterion_id:
                    at = datetime.fromisoformat(row.at).strftime("%H:%M UTC")
                    return Decision(
                        "already_voted",
                        f"you signed off {spec.text!r} at {at} already; it counts once",
                        None,
                        run_id,
                    )
            tx.audit(
                AuditKind.CRITERION_SIGNED_OFF,
                actor=actor.id,
                run_id=run_id,
                data={"criterion": criterion_id, "note": self.masker.untrusted(note or "")[:300]},
                at=self.now(),
            )
        self._show_signoffs(run_id)
        return Decision("ticked", f"{spec.text}: signed off", None, run_id)
