"""The console surface: run a cutover at a terminal, on SQLite, with no Slack account.

Like Errbot's text backend or Hubot's shell: you type `/cutover start staging`,
see each checkpoint, and answer Continue / Rollback / Retry at the prompt.

At a real terminal the prompt has line editing and history (readline; history in
~/.cutover_history), and whatever another thread says (the scheduler's notices, a log
line) is printed above the prompt, which is then drawn again with what you had typed:
never over it. Rollback is final, as in Slack: it asks for a reason and a confirmation.
What Slack asks in a form, the console asks at its prompt: the reason of `/cutover abort ENV`,
the fields of a bare `/cutover schedule`; `c COMMENT` continues with a comment.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from bot.domain.errors import CutoverError
from bot.ports import EnginePort, ReadsPort, Services
from bot.surface import Actor
from bot.text import checkpoint_text, in_words, status_text, who
from bot.views import GateView
from commands.handlers import CommandService
from commands.parser import (
    Abort,
    EmergencyForm,
    FieldError,
    Revert,
    Schedule,
    ScheduleForm,
    Start,
    UsageError,
    compose_time,
    parse,
)
from phases.runbook import RunbookError

PROMPT_HELP = """At a checkpoint:
  c | continue [COMMENT]  approve the phase and go on (a comment goes into the record)
  r | rollback [REASON]   roll back (final: asks for a reason, then to confirm)
  t | retry               run the phase again
  o | override WHY        break-glass: continue past failed overridable steps (a
                          justification is required; the override quorum decides)
  tick ITEM [VALUE]       mark a manual step done (VALUE: what a step asking for one
                          needs, e.g. tick nip05-claim npub1…)
Any time: /cutover start ENV [--dry-run] | /cutover status [ENV] | /cutover audit RUN | quit
          /cutover abort ENV [--reason TEXT]   (asks for the reason when not given)
          /cutover revert ENV [--reason TEXT]  undo ENV's completed run (asks for the reason)
          /cutover start ENV --emergency [--reason TEXT]   (asks for the justification)
          /cutover schedule [ENV TIME [--stakeholders #ch]]   (asks for each field when bare)
          /cutover schedule list | /cutover unschedule ID"""


HISTORY = Path(os.environ.get("CUTOVER_HISTORY", Path.home() / ".cutover_history"))
ENDED = ("completed", "rolled_back", "cancelled")


class Terminal:
    """The console's input and output. One lock orders every write; a message that arrives
    while the prompt waits is printed above it and the prompt is drawn again."""

    def __init__(self, inp: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
        self.inp, self.out = inp, out
        self.lock = threading.RLock()
        self.prompt: str | None = None  # shown and waiting for a line
        self.readline: Any = None
        if inp is sys.stdin and out is sys.stdout and _isatty(inp) and _isatty(out):
            import readline

            self.readline = readline
            with contextlib.suppress(OSError):
                readline.read_history_file(HISTORY)
            readline.set_history_length(1000)

    def ask(self, prompt: str) -> str | None:
        """One line typed at `prompt`, without its newline; None at end of input."""
        with self.lock:
            self.prompt = prompt
            if self.readline is None:
                self.out.write(prompt)
                self.out.flush()
        try:
            if self.readline is not None:
                try:
                    line = input(prompt)
                except EOFError:
                    self.out.write("\n")
                    return None
                with contextlib.suppress(OSError):
                    self.readline.write_history_file(HISTORY)
                return line
            raw = self.inp.readline()
            return raw.rstrip("\n") if raw else None
        finally:
            with self.lock:
                self.prompt = None

    def say(self, text: str, stream: TextIO | None = None) -> None:
        out = stream or self.out
        with self.lock:
            if self.prompt is None:
                out.write(text + "\n")
            elif self.readline is not None:  # clear the prompt line, print, draw it again
                out.write("\r\x1b[K" + text + "\n")
                out.flush()
                self.out.write(self.prompt + self.readline.get_line_buffer())
            else:  # a pipe: the prompt stays on its own line
                out.write("\n" + text + "\n")
                out.flush()
                self.out.write(self.prompt)
            out.flush()
            self.out.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class TerminalLogHandler(logging.Handler):
    """Log lines through the terminal, so they land above the prompt, not on it."""

    def __init__(self, terminal: Terminal, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        self.terminal, self.stream = terminal, stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.terminal.say(self.format(record), self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class ConsoleSurface:
    def __init__(
        self,
        engine_ref: Callable[[], EnginePort],
        out: TextIO = sys.stdout,
        terminal: Terminal | None = None,
        *,
        reads: ReadsPort,
        services: Services | None = None,
    ) -> None:
        self._engine = engine_ref
        self.reads = reads  # what it says is drawn from (bot.ports; the wiring builds it)
        # What the console's commands work with (the wiring sets it once the engine exists).
        self.services = services
        self.out = out
        self.terminal = terminal or Terminal(out=out)
        self.started: set[int] = set()  # runs whose start was said

    def _say(self, text: str) -> None:
        self.terminal.say(self._engine().masker.mask(text))

    def run_changed(self, run_id: int) -> None:
        engine = self._engine()
        view = self.reads.run_view(run_id)
        if view is None:
            return
        if run_id not in self.started:  # said before its first phase runs, not after it
            self.started.add(run_id)
            if view.status == "running" and view.phase_index == 0:
                self._say(
                    f"Run #{run_id} of {view.environment}"
                    f"{' (dry run)' if view.dry_run else ''} started by "
                    f"{who(view.requested_by)}."
                )
        if view.status in ENDED:
            self._say(status_text(view, engine.now()))
            revertable = view.status == "completed" and not view.dry_run
            if revertable and engine.revert_refusal(run_id) is None:  # Slack's Revert…
                self._say(
                    f"To undo it within {engine.runbook.revert_window_hours:g} h: "
                    f"/cutover revert {view.environment} (asks for the reason)."
                )

    def checkpoint(self, gate_id: int, opened: GateView | None = None) -> None:
        view = opened or self.reads.gate_view(gate_id)
        if view is not None:
            self._say("\n" + checkpoint_text(view))

    def gate_changed(self, gate_id: int) -> None:
        view = self.reads.gate_view(gate_id)
        if view is not None and view.status != "open":
            self._say(
                f"Phase {view.phase_number} {in_words(view.status)} by {who(view.decided_by)}."
            )

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
    """The prompt. `on_run_end` is called once a run this console follows has ended: the
    composition root hands in a scheduler tick, so the cutover record prints then."""

    def __init__(
        self,
        engine: EnginePort,
        actor: Actor,
        inp: TextIO = sys.stdin,
        out: TextIO = sys.stdout,
        on_run_end: Callable[[], object] | None = None,
        *,
        reads: ReadsPort | None = None,
        services: Services | None = None,
    ) -> None:
        self.engine, self.actor, self.inp, self.out = engine, actor, inp, out
        surface = engine.surface
        # Unless given, what the wiring (bot.app.console_engine) gave this console's surface.
        if reads is None or services is None:
            if not isinstance(surface, ConsoleSurface) or surface.services is None:
                raise TypeError(
                    "Console needs `reads` and `services` unless its engine's surface is a "
                    "console the wiring built (bot.app.console_engine)"
                )
            reads = reads or surface.reads
            services = services or surface.services
        self.reads = reads
        self.terminal = (
            surface.terminal
            if isinstance(surface, ConsoleSurface) and surface.terminal.out is out
            else Terminal(inp, out)
        )
        self.terminal.inp = inp
        self.commands = CommandService(engine, reads, services=services)
        self.current_run: int | None = None
        self.on_run_end = on_run_end
        self._ended: set[int] = set()

    def say(self, text: str) -> None:
        self.terminal.say(self.engine.masker.mask(text))

    def loop(self) -> int:
        self.say(
            f"cutover console — runbook {self.engine.runbook.name!r}, you are "
            f"{who(self.actor.id)}. Type help."
        )
        for said in self.engine.recover():
            self.say(f"recovered: {said}")
        while True:
            gate = self.reads.open_gate_id(self.current_run) if self.current_run else None
            line = self.terminal.ask("decision> " if gate else "cutover> ")
            if line is None:
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
            self._after()

    def _after(self) -> None:
        """The run this console follows has ended: its record now, not a tick later."""
        run = self.current_run
        if run is None or run in self._ended or self.on_run_end is None:
            return
        view = self.reads.run_view(run)
        if view is not None and view.status in ENDED:
            self._ended.add(run)
            self.on_run_end()

    def _rollback_reason(self, given: str) -> str | None:
        """Rollback is final: a reason (asked for when not given) and a typed yes."""
        reason = given
        while not reason:
            typed = self.terminal.ask("Reason for the rollback (empty line: keep going): ")
            if typed is None or not typed.strip():
                self.say("Rollback not started.")
                return None
            reason = typed.strip()
        answer = self.terminal.ask(
            "Roll back now? This is final: the rollback steps run and the run cannot "
            "continue. Type yes to roll back: "
        )
        if (answer or "").strip().lower() not in ("y", "yes"):
            self.say("Rollback not started.")
            return None
        return reason

    def _asked(self, prompt: str, gave_up: str) -> str | None:
        """One required text at the prompt (Slack's form field); None, said, when empty."""
        typed = (self.terminal.ask(prompt) or "").strip()
        if not typed:
            self.say(gave_up)
            return None
        return typed

    def _override(self, gate: int, given: str) -> None:
        """Break-glass at the prompt: the justification Slack's form asks for (asked for when
        not given); the engine checks permission, the runbook's rules and the quorum."""
        why = given
        if not why:
            typed = self.terminal.ask("Justification for the override (empty line: none): ")
            why = (typed or "").strip()
            if not why:
                self.say("Override not requested: it needs a justification.")
                return
        result = self.engine.override(gate, self.actor, why)
        if result.outcome == "vote_recorded":
            self.say(f"Override vote recorded: {result.message}; another override approver "
                     "must vote (o WHY).")  # fmt: skip
        elif not result.changed:
            self.say(result.message)

    def _schedule_prompts(self) -> Schedule | None:
        """`/cutover schedule` with no arguments: the fields of Slack's form, one prompt
        each; a wrong value is said and asked again, an empty line gives up."""
        envs = list(self.engine.runbook.environments)
        answers: dict[str, str] = {}
        prompts = [
            ("env", f"Environment ({', '.join(envs)}): "),
            ("date", "Day (YYYY-MM-DD): "),
            ("time", "Start time (HH:MM): "),
            ("tz", "Time zone (e.g. UTC, Europe/Berlin) [UTC]: "),
            ("stakeholders", "Stakeholders' channel (#name or id; empty: the run channel): "),
        ]
        i = 0
        while i < len(prompts):
            key, prompt = prompts[i]
            typed = self.terminal.ask(prompt)
            if typed is None:
                self.say("Nothing scheduled.")
                return None
            typed = typed.strip()
            if key == "tz" and not typed:
                typed = "UTC"
            if not typed and key != "stakeholders":
                self.say("Nothing scheduled.")
                return None
            if key == "env" and typed not in envs:
                self.say(f"{typed!r} is not an environment of the runbook; pick one of those.")
                continue
            answers[key] = typed
            if key == "tz":
                try:
                    compose_time(answers["date"], answers["time"], typed, self.engine.now())
                except FieldError as exc:
                    self.say(exc.problem)
                    i = 1 if exc.field in ("date", "time") else 3  # ask again from the day
                    continue
            i += 1
        at = compose_time(answers["date"], answers["time"], answers["tz"], self.engine.now())
        stakeholders = answers.get("stakeholders") or None
        return Schedule(answers["env"], at, stakeholders.lstrip("#") if stakeholders else None)

    def handle(self, line: str, gate: int | None) -> None:
        word, _, rest = line.partition(" ")
        word = word.lower()
        if word in ("help", "?"):
            self.say(PROMPT_HELP)
            return
        if gate is not None and word in ("o", "override"):
            self._override(gate, rest.strip())
            return
        if gate is not None and word in ("c", "continue", "r", "rollback", "t", "retry", "tick"):
            if word == "tick":
                item, _, value = rest.strip().partition(" ")  # a step with `value`: its value
                said = self.engine.tick(gate, item, self.actor, value.strip() or None).message
                self.say(said)
                return
            kind = {"c": "continue", "r": "rollback", "t": "retry"}.get(word, word)
            reason: str | None = rest.strip() or None
            if kind == "rollback":
                reason = self._rollback_reason(rest.strip())
                if reason is None:
                    return
            result = self.engine.decide(
                gate,
                self.actor,
                kind,  # type: ignore[arg-type]
                reason=reason,
            )
            if not result.changed or result.outcome == "vote_recorded":
                self.say(result.message)
            return
        if not line.startswith("/cutover"):
            self.say("type /cutover help, or help for the prompt's commands")
            return
        try:
            cmd = parse(line, now=self.engine.now())
            if isinstance(cmd, Abort) and cmd.reason is None:  # Slack's form, as prompts
                reason = self._rollback_reason("")
                if reason is None:
                    return
                cmd = Abort(cmd.env, reason)
            elif isinstance(cmd, Revert) and cmd.reason is None:  # the Revert… form
                reason = self._asked("Reason for the revert (empty line: none): ", "Not reverted.")
                if reason is None:
                    return
                cmd = Revert(cmd.env, reason[:500])
            elif isinstance(cmd, EmergencyForm):  # Slack's emergency-start form
                why = self._asked(
                    "Justification for the emergency start (empty line: none): ", "Not started."
                )
                if why is None:
                    return
                cmd = Start(cmd.env, emergency=why[:500])
            elif isinstance(cmd, ScheduleForm):
                asked = self._schedule_prompts()
                if asked is None:
                    return
                cmd = asked
        except UsageError as exc:
            self.say(str(exc))
            return
        reply = self.commands.execute(cmd, self.actor)
        if reply.run_id is not None:
            self.current_run = reply.run_id
        surface = self.engine.surface
        if (  # "Run #1 … started by …" was said before its first checkpoint
            reply.run_id is not None
            and isinstance(surface, ConsoleSurface)
            and reply.run_id in surface.started
            and reply.text.startswith(f"Run #{reply.run_id} of ")
        ):
            return
        self.say(reply.text)


def console_actor(name: str | None) -> Actor:
    login = (name or getpass.getuser() or "operator").lower()
    return Actor(f"console:{login}", login)
