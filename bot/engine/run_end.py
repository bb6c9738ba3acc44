"""What happens once a run's end (completed, rolled back, cancelled) has committed: the
sign-off messages are redrawn or asked for, and the audit chain's head is posted in its
thread, so a database rewritten later disagrees with the copy the chat keeps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot import audit
from bot.engine.core import Notify
from bot.store.unit import Database
from phases.runbook import Runbook
from phases.secrets import Masker

log = logging.getLogger(__name__)


class RunEnd:
    def __init__(
        self,
        db: Database,
        runbook: Runbook,
        masker: Masker,
        notify: Notify,
        show_run_signoff: Callable[[int], None],
        lock: threading.Lock,
    ) -> None:
        self.db = db
        self.runbook = runbook
        self.masker = masker
        self.notify = notify
        self.show_run_signoff = show_run_signoff
        self._threads_lock = lock
        self._announced: set[int] = set()  # runs whose final chain head was posted

    def run_ended(self, run_id: int) -> None:
        """Called where a run ends (completed, rolled back, cancelled), once its end has
        committed: posts the audit chain's head in its thread, so a database rewritten later
        disagrees with the copy Slack keeps. Never raises: the end is committed already."""
        with self._threads_lock:
            if run_id in self._announced:
                return
            self._announced.add(run_id)
        if any(c.signoff for c in self.runbook.success_criteria):
            self.notify.signoff_changed(run_id)  # an ended run takes no more sign-offs
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
