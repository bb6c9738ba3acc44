"""The console surface: run a cutover at a terminal, on SQLite, with no Slack account.

Like Errbot's text backend or Hubot's shell: you type `/cutover start staging`,
see each checkpoint, and answer Continue / Rollback / Retry at the prompt.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import TextIO

from bot.domain.errors import CutoverError
from bot.engine import Engine
from bot.surface import Actor
from bot.text import checkpoint_text, status_text
from bot.views import gate_view, open_gate_id, run_view
from commands.handlers import CommandService
from commands.parser import UsageError, parse
from phases.runbook import RunbookError

PROMPT_HELP = """At a checkpoint:
  c | continue          approve the phase and go on
  r | rollback REASON   roll back (final)
  t | retry             run the phase again
  tick ITEM             mark a manual step done
Any time: /cutover start ENV [--dry-run] | /cutover status [ENV] | /cutover abort ENV --reason TEXT
          /cutover audit RUN | quit
          /cutover schedule ENV TIME [--stakeholders #ch] | /cutover schedule list
          /cutover unschedule ID"""


class ConsoleSurface:
    def __init__(self, engine_ref: Callable[[], Engine], out: TextIO = sys.stdout) -> None:
        self._engine = engine_ref
        self.out = out

    def _say(self, text: str) -> None:
        self.out.write(self._engine().masker.mask(text) + "\n")
        self.out.flush()

    def run_changed(self, run_id: int) -> None:
        engine = self._engine()
        view = run_view(engine.db, engine.runbook, run_id)
        if view is not None and view.status in ("completed", "rolled_back"):
            self._say(status_text(view, engine.now()))

    def checkpoint(self, gate_id: int) -> None:
        engine = self._engine()
        view = gate_view(engine.db, engine.runbook, gate_id)
        if view is not None:
            self._say("\n" + checkpoint_text(view))

    def gate_changed(self, gate_id: int) -> None:
        engine = self._engine()
        view = gate_view(engine.db, engine.runbook, gate_id)
        if view is not None and view.status != "open":
            self._say(f"Phase {view.phase_number} {view.status} by {view.decided_by}.")

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        self._say(text)

    def scheduled_notice(self, schedule_id: int, kind: str, channel: str | None, text: str) -> None:
        self._say(f"\n[{channel}] {text}" if channel else f"\n{text}")

    def start_reminder(
        self, schedule_id: int, channel: str | None, text: str, approvers: list[str]
    ) -> None:
        # The console's Start button: an approver types /cutover start ENV at the prompt.
        self._say(f"\n[{channel}] {text}" if channel else f"\n{text}")


class Console:
    def __init__(
        self, engine: Engine, actor: Actor, inp: TextIO = sys.stdin, out: TextIO = sys.stdout
    ) -> None:
        self.engine, self.actor, self.inp, self.out = engine, actor, inp, out
        self.commands = CommandService(engine)
        self.current_run: int | None = None

    def say(self, text: str) -> None:
        self.out.write(self.engine.masker.mask(text) + "\n")
        self.out.flush()

    def loop(self) -> int:
        self.say(
            f"cutover console — runbook {self.engine.runbook.name!r}, you are "
            f"{self.actor.id}. Type help."
        )
        for line in self.engine.recover():
            self.say(f"recovered: {line}")
        while True:
            gate = open_gate_id(self.engine.db, self.current_run) if self.current_run else None
            self.out.write("decision> " if gate else "cutover> ")
            self.out.flush()
            line = self.inp.readline()
            if not line:
                return 0
            line = line.strip()
            if line in ("quit", "exit"):
                return 0
            if not line:
                continue
            try:
                self.handle(line, gate)
            except (CutoverError, RunbookError) as exc:
                self.say(f"error: {exc}")

    def handle(self, line: str, gate: int | None) -> None:
        word, _, rest = line.partition(" ")
        word = word.lower()
        if word in ("help", "?"):
            self.say(PROMPT_HELP)
            return
        if gate is not None and word in ("c", "continue", "r", "rollback", "t", "retry", "tick"):
            if word == "tick":
                self.say(self.engine.tick(gate, rest.strip(), self.actor).message)
                return
            kind = {"c": "continue", "r": "rollback", "t": "retry"}.get(word, word)
            result = self.engine.decide(
                gate,
                self.actor,
                kind,  # type: ignore[arg-type]
                reason=rest.strip() or None,
            )
            if not result.changed or result.outcome == "vote_recorded":
                self.say(result.message)
            return
        if not line.startswith("/cutover"):
            self.say("type /cutover help, or help for the prompt's commands")
            return
        try:
            cmd = parse(line)
        except UsageError as exc:
            self.say(str(exc))
            return
        reply = self.commands.execute(cmd, self.actor)
        if reply.run_id is not None:
            self.current_run = reply.run_id
        self.say(reply.text)


def console_actor(name: str | None) -> Actor:
    login = (name or getpass.getuser() or "operator").lower()
    return Actor(f"console:{login}", login)
