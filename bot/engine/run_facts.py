"""Facts of a run read back for its steps and its stakeholders: its restore point, the ref
given at its start, the artifacts its steps made, its stakeholders' channel."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.engine import restore_point
from bot.store import runs
from bot.store.unit import Database, Store
from phases.runbook import Runbook
from phases.secrets import Masker

log = logging.getLogger(__name__)


class RunFacts:
    """`notice(run_id, text, channel)`: how a stakeholder message is posted (the surface)."""

    def __init__(
        self,
        db: Database,
        store: Store,
        runbook: Runbook,
        masker: Masker,
        notice: Callable[[int | None, str, str], None],
    ) -> None:
        self.db = db
        self.store = store
        self.runbook = runbook
        self.masker = masker
        self.notice = notice
        self._lock = threading.Lock()
        self._stakeholders: dict[int, str | None] = {}  # None: the run has none

    def stakeholder_channel(self, run_id: int) -> str | None:
        """The stakeholders' channel of a run: its schedule's, else its environment's. Read
        once per run and kept: a run's schedule and environment are fixed when it starts."""
        with self._lock:
            if run_id in self._stakeholders:
                return self._stakeholders[run_id]
        with self.store.tx() as tx:
            row = runs.stakeholders(tx, run_id)
        if row is None:
            return None
        environment, scheduled = row
        channel = scheduled or self.runbook.environment(environment).stakeholders
        with self._lock:
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
            self.notice(None, self.masker.mask(text), channel)

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
