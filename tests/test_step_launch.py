"""A command step's program begins only once its holder's lease watchdog knows its process
group (phases/checks/command_process.py's launcher): a holder paused or killed between the
step's start and telling the watchdog left the program running unwatched, beside the rollback
of the replica that took the lease over. The launcher changes nothing else the program sees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from phases.checks import command_process, leash
from phases.checks.base import StepContext, StopRequest
from phases.checks.command import CommandParams, run_command
from phases.checks.command_process import StepNotStarted, default_runner

ROOT = Path(__file__).resolve().parents[1]


def leashed(seconds: float) -> StopRequest:
    """A holder whose lease is safe for `seconds` from now (negative: lapsed already)."""
    holder = leash.Leash()
    holder.renew(time.monotonic() + seconds)
    stop = StopRequest()
    stop.leash = holder
    return stop


def test_the_program_does_not_begin_before_the_watchdog_knows_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = tmp_path / "ran"
    seen_while_telling: list[bool] = []
    tell = leash._WATCHDOG.tell

    def slow_tell(*lines: str, start: bool = True) -> bool:
        if any(line.startswith("watch ") for line in lines):
            time.sleep(0.3)  # a holder slowed (or paused) between the start and the watch
            seen_while_telling.append(ran.exists())
        return tell(*lines, start=start)

    monkeypatch.setattr(leash._WATCHDOG, "tell", slow_tell)
    out = default_runner(["touch", str(ran)], timeout=10, cwd=None, env=None, stop=leashed(30))
    assert seen_while_telling == [False]  # not begun while the watchdog was being told
    assert out.returncode == 0 and ran.exists()  # begun right after


def test_a_holder_killed_before_telling_the_watchdog_leaves_its_program_never_begun(
    tmp_path: Path,
) -> None:
    ran = tmp_path / "ran"
    holder = textwrap.dedent(
        f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from phases.checks import leash
        from phases.checks.base import StopRequest
        from phases.checks.command_process import default_runner
        held = leash.Leash()
        held.renew(time.monotonic() + 30)
        stop = StopRequest()
        stop.leash = held
        def die(pgid):  # the holder dies after the step's start, before the watch
            print(pgid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        held.watch = die
        default_runner(["touch", {str(ran)!r}], timeout=10, cwd=None, env=None, stop=stop)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", holder], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    launcher = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _running(launcher) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(launcher)  # the launcher ended with its holder's pipe
    assert not ran.exists()  # and the program never began


def _running(pid: int) -> bool:
    """Alive and not a zombie (its parent, the holder, died: init reaps it when it will)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_step_does_not_begin_once_its_holders_lease_may_have_lapsed(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    with pytest.raises(StepNotStarted, match="lease may have lapsed"):
        default_runner(["touch", str(ran)], timeout=10, cwd=None, env=None, stop=leashed(-1))
    ctx = StepContext(timeout=10, stop=leashed(-1))
    result = run_command(CommandParams(argv=["touch", str(ran)]), ctx)
    assert result.status == "error"
    assert result.evidence == (
        "not started: this replica's lease may have lapsed (it was not renewed in time); "
        "nothing of it ran"
    )
    assert not ran.exists()


def test_a_step_does_not_begin_when_its_watchdog_cannot_be_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = tmp_path / "ran"
    monkeypatch.setattr(leash._WATCHDOG, "tell", lambda *lines, start=True: False)
    with pytest.raises(StepNotStarted, match="watchdog could not be told"):
        default_runner(["touch", str(ran)], timeout=10, cwd=None, env=None, stop=leashed(30))
    assert not ran.exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"A": "1"}, {"A": "1"}),  # no PWD given: none (the launching shell sets one)
        ({"PWD": "/declared", "IFS": "x", "OPTIND": "5"}, None),  # as given, not the shell's
    ],
)
def test_the_program_gets_exactly_the_environment_it_was_given(
    given: dict[str, str], expected: dict[str, str] | None, tmp_path: Path
) -> None:
    out = default_runner(["env", "-0"], timeout=10, cwd=str(tmp_path), env=given)
    got = dict(item.split("=", 1) for item in out.stdout.split("\0") if item)
    assert got.pop(command_process.MARKER_VAR)
    assert got == (expected if expected is not None else given)


def test_a_program_that_cannot_be_executed_raises_what_popen_raised(tmp_path: Path) -> None:
    not_executable = tmp_path / "plain.sh"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01\x02 not a program")
    garbage.chmod(0o755)
    cases: list[tuple[list[str], type[OSError], int]] = [
        (["definitely-not-a-program-xyz"], FileNotFoundError, 2),
        ([str(not_executable)], PermissionError, 13),
        ([str(garbage)], OSError, 8),
    ]
    for argv, kind, code in cases:
        with pytest.raises(OSError) as popen:
            subprocess.Popen(argv).wait()  # what the runner raised before the launcher
        with pytest.raises(kind) as launched:
            default_runner(argv, timeout=10, cwd=None, env=None, stop=leashed(30))
        assert type(launched.value) is type(popen.value) and launched.value.errno == code


def test_a_program_that_prints_the_launchers_words_is_not_taken_for_an_exec_failure(
    tmp_path: Path,
) -> None:
    """The launcher's failure line carries its random name: a program cannot forge it."""
    said = "cutover-step-0123456789ab: 1: exec: x: not found"
    out = default_runner(
        ["sh", "-c", f"echo '{said}' >&2; exit 127"], timeout=10, cwd=None, env=None
    )
    assert out.returncode == 127 and said in out.stderr


def test_a_program_knowing_its_step_marker_cannot_pass_for_an_exec_failure() -> None:
    """The launcher's name is not derived from the marker the program is given."""
    for n in (12, 16):
        forge = f'echo "cutover-step-$(printf %.{n}s "$CUTOVER_STEP_ID"): 1: exec: sh: not found"'
        out = default_runner(["sh", "-c", f"{forge} >&2; exit 127"], timeout=10, cwd=None, env=None)
        assert out.returncode == 127  # an exit, not FileNotFoundError


def test_the_program_is_the_process_group_the_watchdog_watches() -> None:
    """exec, not a child of the shell: the program's pid is the launcher's, so the group the
    watchdog kills and the signals a stop sends reach the program itself."""
    out = default_runner(
        ["sh", "-c", 'echo "$$ $(ps -o pgid= -p $$)"'], timeout=10, cwd=None, env=None
    )
    pid, pgid = out.stdout.split()
    assert pid == pgid
    assert os.getpgid(0) != int(pgid)
