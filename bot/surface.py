"""What the engine tells a chat surface (Slack, console). The engine knows no chat API.

A surface is told *that* something changed and reads the state it shows from
the database (`bot.views`), so a message rebuilt after a restart is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Actor:
    """Who acts: an id that is team + user (T123:U456) or console:NAME; the name is display only."""

    id: str
    name: str | None = None
    groups: frozenset[str] = frozenset()  # user groups the surface resolved at click time

    @property
    def label(self) -> str:
        return self.name or self.id


SYSTEM = Actor("system", "cutover-bot")


class Surface(Protocol):
    def run_changed(self, run_id: int) -> None:
        """The run's phase list or state changed: update its parent message."""

    def checkpoint(self, gate_id: int) -> None:
        """A gate opened: post the checkpoint with its results and the decision buttons."""

    def gate_changed(self, gate_id: int) -> None:
        """A vote, tick or decision: update the checkpoint message."""

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        """Free text for the run's thread (rollback report, restart notice)."""


class NullSurface:
    def run_changed(self, run_id: int) -> None:
        pass

    def checkpoint(self, gate_id: int) -> None:
        pass

    def gate_changed(self, gate_id: int) -> None:
        pass

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        pass
