"""`/cutover deviation RUN TEXT`: a person says what was done differently from the runbook
(a step done by hand, one skipped on purpose), for the record's "Deviations from Runbook".

The bot lists the deviations it saw itself (retries, skips, missed rounds); what people did
outside it only they can tell, so it is taken as they say it: audited with who and when,
masked (it is typed text, and may quote a secret) and unable to ping anyone.
"""

from __future__ import annotations

from bot import audit
from bot.domain import approvals
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import InvalidInput, NotFound
from bot.engine.core import Decision, EngineCore
from bot.models import Run
from bot.surface import Actor


class Deviations(EngineCore):
    def add_deviation(self, run_id: int, actor: Actor, text: str) -> Decision:
        """A "Deviations from Runbook" entry, from an approver of the run's environment."""
        said = self.masker.untrusted(text).strip()[:500]
        if not said:
            raise InvalidInput("say what was done differently: the deviation's text is empty")
        with self.db.session() as s:
            run = s.get(Run, run_id)
        if run is None:
            raise NotFound(f"no run #{run_id}")
        refusal = approvals.may_tick(run.environment, self.environment(run.environment), actor)
        if refusal:
            self.refuse(actor, "deviation", refusal, run_id=run_id)
            return Decision("refused", refusal, None, run_id)
        audit.record(
            self.db,
            AuditKind.RECORD_DEVIATION,
            actor=actor.id,
            run_id=run_id,
            data={"text": said},
            at=self.now(),
        )
        return Decision(
            "ticked", f"deviation added to run #{run_id}'s record: {said}", None, run_id
        )
