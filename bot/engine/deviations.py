"""`/cutover deviation RUN TEXT`: a person says what was done differently from the runbook
(a step done by hand, one skipped on purpose), for the record's "Deviations from Runbook".

The bot lists the deviations it saw itself (retries, skips, missed rounds); what people did
outside it only they can tell, so it is taken as they say it: audited with who and when,
masked (it is typed text, and may quote a secret) and unable to ping anyone.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import InvalidInput
from bot.engine.core import Decision
from bot.surface import Actor
from phases.secrets import Masker


class Deviations:
    def __init__(self, masker: Masker, add_to_record: Callable[..., Decision]) -> None:
        """`add_to_record`: `ManualTicks.add_to_record`, an entry a person adds to a record."""
        self.masker, self.add_to_record = masker, add_to_record

    def add_deviation(self, run_id: int, actor: Actor, text: str) -> Decision:
        """A "Deviations from Runbook" entry, from an approver of the run's environment."""
        said = self.masker.untrusted(text).strip()[:500]
        if not said:
            raise InvalidInput("say what was done differently: the deviation's text is empty")
        done = f"deviation added to run #{run_id}'s record: {said}"
        return self.add_to_record(
            run_id, actor, "deviation", AuditKind.RECORD_DEVIATION, said, done
        )
