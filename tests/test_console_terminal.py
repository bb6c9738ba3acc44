"""The console at a real terminal (a pseudo-terminal driven by pexpect): line editing and
history, a rollback that asks for a reason and a yes, messages from other threads printed
above the prompt and never over it, and the cutover record as soon as the run ends."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pexpect

from tests.conftest import STEP_USER
from tests.small_runbook import small_runbook

LEFT, UP = "\x1b[D", "\x1b[A"


def console(tmp_path: Path) -> pexpect.spawn:
    small_runbook(tmp_path)  # writes small.yml
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "SLACK_"))}
    env.update(
        CUTOVER_DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}",
        CUTOVER_RUNBOOK=str(tmp_path / "small.yml"),
        CUTOVER_HISTORY=str(tmp_path / "history"),
        CUTOVER_STEP_USER=STEP_USER,
        TERM="xterm",
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "bot.cli", "console", "--as", "alice"],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    child.expect("cutover> ")
    return child


def test_arrow_keys_edit_the_line(tmp_path: Path) -> None:
    child = console(tmp_path)
    child.send("/cutover sttus" + LEFT * 3 + "a\r")  # left three, insert the missing letter
    child.expect("No active cutover run.")
    child.sendline("quit")
    child.expect(pexpect.EOF)


def test_up_arrow_recalls_the_last_command_across_sessions(tmp_path: Path) -> None:
    child = console(tmp_path)
    child.sendline("/cutover status")
    child.expect("No active cutover run.")
    child.sendline("quit")
    child.expect(pexpect.EOF)
    again = console(tmp_path)  # history is kept in CUTOVER_HISTORY
    again.send(UP + UP + "\r")  # the last line typed was `quit`; the one before it
    again.expect("No active cutover run.")
    again.sendline("quit")
    again.expect(pexpect.EOF)


def test_r_asks_for_a_reason_and_a_yes_before_rolling_back(step_tmp: Path) -> None:
    tmp_path = step_tmp  # the rollback step (run as the step user) marks a file there
    child = console(tmp_path)
    child.sendline("/cutover start staging")
    child.expect("decision> ")
    child.sendline("r")
    child.expect("Reason for the rollback")
    child.sendline("")
    child.expect("Rollback not started.")
    child.sendline("r")
    child.expect("Reason for the rollback")
    child.sendline("health check red")
    child.expect("This is final")
    child.sendline("no")
    child.expect("Rollback not started.")
    assert not (tmp_path / "rolled-back").exists()
    child.sendline("r")
    child.expect("Reason for the rollback")
    child.sendline("health check red")
    child.expect("Type yes to roll back: ")
    child.sendline("yes")
    child.expect("Rollback: health check red \\(by alice\\)")
    assert (tmp_path / "rolled-back").exists()
    child.sendline("quit")
    child.expect(pexpect.EOF)


def test_the_record_prints_when_the_run_ends_before_the_next_prompt(tmp_path: Path) -> None:
    child = console(tmp_path)
    child.sendline("/cutover start staging")
    for answer in ("c", "tick browser", "c", "c"):
        child.expect("decision> ")
        child.sendline(answer)
    child.expect("Run #1 · staging · completed")
    child.expect("📋 Cutover record — run #1, staging: completed", timeout=15)
    child.expect("cutover> ")
    child.sendline("quit")
    child.expect(pexpect.EOF)


TYPING_WHILE_A_NOTICE_ARRIVES = textwrap.dedent(
    """
    import logging, sys, threading, time
    from bot.console import Terminal, TerminalLogHandler
    t = Terminal()
    assert t.readline is not None, "not a terminal"
    logging.getLogger().addHandler(TerminalLogHandler(t))
    def later():
        time.sleep(1.0)
        t.say("[#ops] T-1h notice")
        logging.getLogger("bot.scheduler").warning("scheduler log line")
        print("SAID", file=sys.stderr, flush=True)
    threading.Thread(target=later).start()
    line = t.ask("cutover> ")
    print("GOT", repr(line))
    """
)


def test_a_message_from_another_thread_lands_above_the_prompt_not_on_it(tmp_path: Path) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-c", TYPING_WHILE_A_NOTICE_ARRIVES],
        cwd=str(Path(__file__).resolve().parent.parent),
        env={**os.environ, "CUTOVER_HISTORY": str(tmp_path / "h"), "TERM": "xterm"},
        encoding="utf-8",
        timeout=30,
    )
    child.expect("cutover> ")
    child.send("/cutover sta")  # half typed when the notice comes
    child.expect("SAID")
    screen = child.before
    child.send("tus\r")
    child.expect("GOT '/cutover status'")
    # The prompt line is cleared, the message printed, the prompt drawn again with the text.
    assert "\r\x1b[K[#ops] T-1h notice\r\ncutover> /cutover sta" in screen
    assert "\r\x1b[Kscheduler log line\r\ncutover> /cutover sta" in screen
    assert "/cutover sta[#ops]" not in screen and "/cutover stascheduler" not in screen
