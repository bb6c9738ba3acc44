"""Runs one program, not through a shell (a launcher shell only holds its start): own
session, bounded output tail, killed whole."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import shlex
import signal
import subprocess
import time
import uuid
from typing import Any

from phases.checks.base import CommandOutput, StepContext, StepUser, StopRequest
from phases.checks.output_tail import Interleaved, Tail

# All a step inherits from the bot: where programs are, the language and time zone, and the
# engine the docker steps talk to (so compose commands talk to the same one). Never a path
# to the bot's credentials (DOCKER_CONFIG, DOCKER_CERT_PATH): a runbook that needs one says
# so in the step's `env`.
INHERITED_ENV = ("PATH", "LANG", "TZ", "DOCKER_HOST", "DOCKER_CONTEXT")
KILL_GRACE_SECONDS = 2.0
TAIL_BYTES = 64 * 1024  # of each stream, kept while the command runs
READ_CHUNK = 64 * 1024
EXIT_GRACE_SECONDS = 1.0  # after the program exits, for its last output
MARKER_VAR = "CUTOVER_STEP_ID"  # marks every process a step starts, grandchildren included


def default_runner(
    argv: list[str],
    *,
    timeout: float,
    cwd: str | None,
    env: dict[str, str] | None,
    watch: str | None = None,
    user: StepUser | None = None,
    stop: StopRequest | None = None,
    grace: float = KILL_GRACE_SECONDS,
) -> CommandOutput:
    """The program, not through a shell, in its own session, killed whole on timeout.

    A launcher (`launch_script`: /bin/sh, exec'ing the program with `argv` as given) holds
    the program's start until the holder's lease watchdog knows its process group: a
    holder paused or killed in between leaves a program that is killed at the lease's end,
    or was never begun. If it must not begin (`Leash.watch`: the lease may have lapsed),
    StepNotStarted is raised. A program that cannot be executed raises what Popen would
    (FileNotFoundError, PermissionError, OSError); one difference: an executable text file
    without a `#!` line runs under /bin/sh, as from a shell (Popen refused it).

    The child gets `env` and nothing else of the bot's (None: the minimal inherited
    environment, never the bot's own); with `user` it runs as that account with that
    account's groups only (none of the bot's supplementary groups).

    Output is read as it comes and only a bounded tail of each stream is kept
    (`TAIL_BYTES`), so a command printing gigabytes costs no memory; `watch` is looked for
    in the whole of stdout as it streams by. On timeout the process group is killed, and so
    is every process that carries this step's marker in its environment (a grandchild that
    left the group with `setsid` still inherited it). Once `stop` is set (an abort, a lost
    lease) the process group gets SIGTERM, and SIGKILL if it still runs `grace` seconds later.
    """
    marker = uuid.uuid4().hex
    environ = dict(base_env(user) if env is None else env)
    environ[MARKER_VAR] = marker
    leash = stop.leash if stop is not None else None
    if leash is not None:
        leash.ready()  # the watchdog up before the step, not after it
    # Its own random name (not the marker, which is in the program's environment): the
    # program, which replaces the launcher, never sees it, so cannot print its words.
    launcher = f"{LAUNCHER_NAME}-{uuid.uuid4().hex[:16]}"
    proc = subprocess.Popen(
        ["/bin/sh", "-c", launch_script(environ), launcher, *argv],
        shell=False,
        cwd=cwd,
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        **as_user(user),
    )
    try:
        # Its session's group is killed if the holder's lease lapses: the watchdog knows
        # of it before the program begins (the line is in its pipe even if this process
        # is paused or killed right after), or the program never begins.
        refused = leash.watch(proc.pid) if leash is not None else None
        _begin(proc, go=refused is None)
        if refused is not None:
            proc.wait()
            raise StepNotStarted(refused)
        out = _collect(proc, marker, timeout, watch, stop, grace)
    except BaseException:
        kill_tree(proc, marker)
        proc.wait()
        raise
    finally:
        if leash is not None:
            leash.unwatch(proc.pid)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    failed = _exec_failure(out, launcher, argv[0])
    if failed is not None:
        raise failed
    return out


def stopped_words(out: CommandOutput, ctx: StepContext) -> tuple[str, dict[str, Any]]:
    """How a program stopped on request ended (`out.stopped`), said for its evidence, and
    the details its step records (the rollback's hand-over reads them)."""
    why = ctx.stop.reason if ctx.stop is not None and ctx.stop.reason else "request"
    how = (
        f"SIGTERM after {out.stop_seconds:.1f} s"
        if out.stopped == "sigterm"
        else f"SIGKILL after the {ctx.stop_grace:g} s grace (it ignored SIGTERM)"
    )
    details = {"stopped": out.stopped, "stop_seconds": round(out.stop_seconds, 2)}
    return f"stopped by {why}: {how}", details


class StepNotStarted(Exception):
    """The step's program was not begun (nothing of it ran), for the reason given."""


# The launcher: the step's program begins only once the holder sends a line on its stdin,
# after telling the leash's watchdog of its process group (a holder that dies before that
# closes the pipe: the program never begins), then replaces the shell, with stdin from
# /dev/null and the environment it was given: dash sets PWD (and resets IFS, OPTIND,
# PPID) from its own state, so those are put back as given, or PWD unset. One line, so
# that an exec failure reads "NAME: 1: exec: PROGRAM: why" (`_exec_failure`).
LAUNCHER_NAME = "cutover-step"
_DASH_SETS = ("IFS", "OPTIND", "PPID")


def launch_script(environ: dict[str, str]) -> str:
    restore = [f"{k}={shlex.quote(environ[k])}; export {k}; " for k in _DASH_SETS if k in environ]
    pwd = f"PWD={shlex.quote(environ['PWD'])}; export PWD; " if "PWD" in environ else "unset PWD; "
    return f'read _ || exit 125; {pwd}{"".join(restore)}exec "$@" </dev/null'


def _begin(proc: subprocess.Popen[bytes], *, go: bool) -> None:
    """Lets the launcher begin the program (`go`), or ends it unbegun (EOF: exit 125)."""
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ValueError):
        if go:
            proc.stdin.write(b"\n")
        proc.stdin.close()


_EXEC_FAILED = re.compile(r"\A(?P<name>\S+): 1: exec: (?P<program>.*): (?P<why>[^\n]+)\n?\Z")


def _exec_failure(out: CommandOutput, launcher: str, program: str) -> OSError | None:
    """The error Popen would have raised for the program itself (not found, permission
    denied, exec format error), told by the launcher's exit status and its one line of
    stderr, which carries its random name: the program cannot print it."""
    if out.returncode not in (126, 127) or out.stdout:
        return None
    said = _EXEC_FAILED.match(out.stderr)
    if said is None or said["name"] != launcher or said["program"] != program:
        return None
    why = said["why"]
    if why == "not found":
        return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if why == "Permission denied":
        return PermissionError(errno.EACCES, why, program)
    return OSError(errno.ENOEXEC if "format" in why else 0, why, program)


def _collect(
    proc: subprocess.Popen[bytes],
    marker: str,
    timeout: float,
    watch: str | None,
    stop: StopRequest | None = None,
    grace: float = KILL_GRACE_SECONDS,
) -> CommandOutput:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = Tail(TAIL_BYTES), Tail(TAIL_BYTES)
    both = Interleaved(TAIL_BYTES)
    tails = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    needle = watch.encode() if watch else b""
    found = not needle
    carry = b""
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    timed_out = False
    stopping = _Stopping(proc, marker, stop, grace)
    with selectors.DefaultSelector() as sel:
        for fd in tails:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            now = time.monotonic()
            if stopping.poll(now):
                break  # killed after the grace: what it still prints is not waited for
            if now >= deadline:
                timed_out = True
                break
            if proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > EXIT_GRACE_SECONDS:
                    break  # a detached grandchild holds the pipes: its output is not ours
            for key, _ in sel.select(min(deadline - now, 0.05 if stopping.how else 0.25)):
                chunk = os.read(key.fd, READ_CHUNK)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                tails[key.fd].feed(chunk)
                both.feed(key.fd, chunk)
                if not found and key.fd == proc.stdout.fileno():
                    window = carry + chunk
                    found = needle in window
                    carry = window[-(len(needle) - 1) :] if len(needle) > 1 else b""
    if timed_out:
        kill_tree(proc, marker)
    try:
        returncode = proc.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        kill_tree(proc, marker)
        returncode = proc.wait()
    if stopping.how is not None:
        kill_tree(proc, marker)  # what the stopped step left behind in its group
        stopping.ended(time.monotonic())
    return CommandOutput(
        -9 if timed_out and returncode is None else returncode,
        out.text(),
        err.text(),
        timed_out=timed_out,
        truncated=out.truncated or err.truncated,
        stdout_matches=found if watch else None,
        combined=both.text(),
        total_bytes=out.total + err.total,
        stopped=stopping.how,
        stop_seconds=stopping.seconds,
    )


class _Stopping:
    """Stops a step's process group on request: SIGTERM, then SIGKILL after `grace`."""

    def __init__(
        self, proc: subprocess.Popen[bytes], marker: str, stop: StopRequest | None, grace: float
    ) -> None:
        self.proc, self.marker, self.stop, self.grace = proc, marker, stop, grace
        self.how: str | None = None  # "sigterm" (it ended within the grace) or "sigkill"
        self.sent_at = 0.0
        self.seconds = 0.0  # from SIGTERM to its end

    def poll(self, now: float) -> bool:
        """Signals as due; True once the process group was killed."""
        if self.stop is None or not self.stop.is_set():
            return False
        if self.how is None:
            if self.proc.poll() is not None:
                return False  # it finished on its own before the request was seen
            self.how, self.sent_at = "sigterm", now
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            return False
        grace = self.grace
        if self.stop.kill_by is not None:
            grace = min(grace, max(self.stop.kill_by - self.sent_at, 0.0))
        if self.how == "sigterm" and self.proc.poll() is None and now - self.sent_at >= grace:
            self.how = "sigkill"
            kill_tree(self.proc, self.marker)
            self.seconds = now - self.sent_at
            return True
        if self.proc.poll() is not None and not self.seconds:
            self.seconds = now - self.sent_at
        return False

    def ended(self, now: float) -> None:
        if not self.seconds:
            self.seconds = now - self.sent_at


def kill_tree(proc: subprocess.Popen[bytes], marker: str) -> None:
    """Kills the step's process group, then every process carrying its marker (twice: a
    process may fork while the first sweep runs)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    needle = f"{MARKER_VAR}={marker}".encode()
    for _ in range(2):
        for pid in _marked(needle):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _marked(needle: bytes) -> list[int]:
    found: list[int] = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def base_env(user: StepUser | None = None) -> dict[str, str]:
    """What a step inherits: `INHERITED_ENV` and the HOME of the user it runs as."""
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    home = user.home if user is not None else os.environ.get("HOME")
    if home:
        env["HOME"] = home
    return env


def as_user(user: StepUser | None) -> dict[str, Any]:
    """Popen arguments that start the child as `user`, with its groups and none of the bot's
    (empty: the bot's own user)."""
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}
