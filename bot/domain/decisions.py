"""What a request to the engine answers: a `Decision` (its outcome and the message for the
person who asked), and the three decisions a gate takes. Plain data: the engine returns
them (bot.engine re-exports both) and the surfaces read them without importing the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DecisionName = Literal["continue", "rollback", "retry"]


@dataclass(frozen=True)
class Decision:
    outcome: Literal[
        "approved",
        "vote_recorded",
        "rolled_back",
        "retried",
        "cancelled",
        "overridden",
        "refused",
        "already_decided",
        "already_voted",
        "ticked",
        "unknown_gate",
    ]
    message: str
    gate_id: int | None = None
    run_id: int | None = None
    # What the decision read of the gate under its lock, so the surface need not read it
    # again: its quorum (for "1/2 approved") and its chat message.
    quorum: int | None = None
    surface_ref: str | None = None

    @property
    def changed(self) -> bool:
        return self.outcome in (
            "approved",
            "vote_recorded",
            "rolled_back",
            "retried",
            "cancelled",
            "overridden",
            "ticked",
        )
