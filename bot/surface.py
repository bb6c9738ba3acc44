"""What the engine tells a chat surface (Slack, console). The engine knows no chat API.

A surface is told *that* something changed and reads the state it shows from
the database (`bot.views`), so a message rebuilt after a restart is the same. One
exception, for speed: a checkpoint's first post may be handed the view its gate-opening
transaction read of its own rows (`checkpoint(gate_id, opened)`), which is that same state.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bot.domain.actor import SYSTEM, Actor
from bot.views import GateView

__all__ = [
    "SYSTEM",
    "Actor",
    "ChecklistSurface",
    "NullSurface",
    "SchedulingSurface",
    "SignoffSurface",
    "Surface",
]


class Surface(Protocol):
    def run_changed(self, run_id: int) -> None:
        """The run's phase list or state changed: update its parent message."""

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        """A gate opened: post the checkpoint with its results and the decision buttons.
        `opened`: the checkpoint as the transaction that opened the gate wrote it (the
        executing phase's, just committed), to draw without reading it back; None: read it."""

    def gate_changed(self, gate_id: int) -> None:
        """A vote, tick or decision: update the checkpoint message."""

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        """Free text for the run's thread (rollback report, restart notice)."""


@runtime_checkable
class SchedulingSurface(Protocol):
    """What a surface adds to show scheduled cutovers (`bot.scheduler`). Optional: a surface
    without these methods gets the same text through `notice(None, text, channel)`.

    Both are called from the scheduler's leader thread, at most once per event (a claim
    in `scheduled_event` guards it). Raise if the message could not be posted: the claim
    is released and the post retried on a later tick (audited as notice.failed). Only
    after a crash between posting and recording can a notice repeat; it then says so.
    """

    def scheduled_notice(self, schedule_id: int, kind: str, channel: str | None, text: str) -> None:
        """Post `text` as a new top-level message in `channel` (no run exists yet, so no
        thread). kind: "t-24h" (readiness dry run + T-24h checklist, run channel), "t-1h"
        (stakeholder notice, stakeholder channel), "t-1h-checklist" (run channel).
        channel may be None on the console (no channels there)."""

    def start_reminder(
        self, schedule_id: int, channel: str | None, text: str, approvers: list[str]
    ) -> None:
        """At the scheduled time: post `text` (it names the approvers as TEAM:USER ids and
        their user groups) to `channel` with a Start button. approvers: the environment's
        approver ids (TEAM:USER or console:NAME), sorted, for mentions. A click on Start must call
        `bot.schedules.ScheduleService(engine).start(schedule_id, actor)`, which checks that
        the clicker is an approver, starts the run and answers with a message for them.
        The cutover never starts without that click."""


@runtime_checkable
class SignoffSurface(Protocol):
    """What a surface adds to show sign-offs as a message of its own (Slack: a "Sign off"
    button per criterion). Optional: a surface without it gets the request as text through
    `notice(run_id, text)`, and people sign with `/cutover signoff RUN CRITERION`."""

    def signoff_changed(self, run_id: int) -> None:
        """Sign-offs were asked for, or one was given: post the run's sign-off message, or
        redraw it from the database (`bot.signoffs.signoff_view`)."""


@runtime_checkable
class ChecklistSurface(Protocol):
    """A surface that shows a scheduled cutover's T-1h checklist as a message of its own, to
    be redrawn when an item is ticked or unticked, by a click or by a typed command."""

    def checklist_changed(self, schedule_id: int) -> None:
        """Redraw the checklist of scheduled cutover `schedule_id` from the database."""


@runtime_checkable
class DirectorySurface(Protocol):
    """A surface that reads who is who from the chat service (Slack: approver user groups),
    and can say before a cutover that it cannot (a missing scope, a deleted group)."""

    def directory_problems(self, env_name: str) -> list[str]:
        """What keeps the environment's approvers from being known, one line each; [] if
        nothing does. Preflight fails on any."""


class NullSurface:
    def run_changed(self, run_id: int) -> None:
        pass

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        pass

    def gate_changed(self, gate_id: int) -> None:
        pass

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        pass

    def scheduled_notice(self, schedule_id: int, kind: str, channel: str | None, text: str) -> None:
        pass

    def start_reminder(
        self, schedule_id: int, channel: str | None, text: str, approvers: list[str]
    ) -> None:
        pass
