"""Where the checks of a tick stand, from their audit rows alone: begun by the lease holder
(`tick.checks_started`), interrupted by a restart or a dead replica (`tick.checks_interrupted`),
or asked to run again (`tick.checks_resumed`). The latest row of a (gate, item) says it; the
checkpoint, the Continue refusal and the notice word an interruption from that row."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.domain.audit_kinds import AuditKind

KINDS = (
    AuditKind.TICK_CHECKS_STARTED,
    AuditKind.TICK_CHECKS_INTERRUPTED,
    AuditKind.TICK_CHECKS_RESUMED,
)


@dataclass(frozen=True)
class Mark:
    kind: str
    at: datetime
    data: dict[str, Any]

    @property
    def started(self) -> bool:
        return self.kind == AuditKind.TICK_CHECKS_STARTED

    @property
    def interrupted(self) -> bool:
        return self.kind == AuditKind.TICK_CHECKS_INTERRUPTED


def latest(rows: Iterable[tuple[str, str, str]], gate_id: int) -> dict[str, Mark]:
    """item → its latest mark at the gate; `rows`: audit (kind, data, at), oldest first."""
    out: dict[str, Mark] = {}
    for kind, raw, at in rows:
        data = json.loads(raw)
        if kind in KINDS and data.get("gate") == gate_id:
            out[str(data["item"])] = Mark(str(kind), datetime.fromisoformat(at), data)
    return out


def cause_words(cause: str, owner: str) -> str:
    return "a restart" if cause == "restart" else f"replica {owner} stopping"


def interrupted_said(mark: Mark) -> str:
    """ "interrupted by a restart at 04:31 UTC; tick nip05-claim again or Retry"."""
    at = mark.at if mark.at.tzinfo else mark.at.replace(tzinfo=UTC)
    return (
        f"interrupted by {cause_words(mark.data['cause'], mark.data['owner'])} at "
        f"{at.astimezone(UTC):%H:%M} UTC; tick {mark.data['item']} again or Retry"
    )
