"""`command` (read-only check) and `run` (action): one program, never a shell.

The runbook's shell lines (`npm run build`, `npx prisma migrate deploy`,
`test -f dist/main.js`) become argv lists: each element reaches the program as
one argument, so `$(…)`, `;` and `|` are data, not syntax. The child gets a
minimal environment (PATH, LANG, TZ, the Docker engine's address, HOME of the
user it runs as) plus `env_file` and `env`: nothing else of the bot's. Every
secret of those is registered with the masker, and only a masked output tail is
kept. With a step user (`StepContext.run_as`) the child runs as that account, with
its own groups only, so it cannot read the bot's process, key file or settings
(docs/hardening.md, "The trust boundary").
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator

from phases.checks.base import (
    OUTPUT,
    CommandOutput,
    KeptOutput,
    Status,
    StepContext,
    StepKind,
    StepParams,
    StepResult,
    StepUser,
    StopRequest,
    register,
)
from phases.checks.dns_check import DnsParams, run_dns
from phases.secrets import EnvFileError, is_secret_key, parse_env_file

EVIDENCE_LIMIT = 200
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
FENCING_VAR = "CUTOVER_FENCING_TOKEN"  # the run's lease epoch: a step may refuse stale work


def _argv_ok(argv: list[str]) -> list[str]:
    if not argv[0].strip():
        raise ValueError("argv[0] must name a program")
    if any("\x00" in a for a in argv):
        raise ValueError("argv elements must not contain NUL")
    return argv


class FallbackParams(StepParams):
    """The runbook's "if the domain is not yet resolving, test via IP": when
    `unless_resolves` (a `dns` check's name, expected_ip, resolvers) does not pass, `argv`
    runs instead of the step's own, and the evidence says why. A name that resolves to
    another address (the old server) counts as not resolving yet: testing through it
    would test the wrong server."""

    argv: list[str] = Field(min_length=1)
    unless_resolves: DnsParams

    @field_validator("argv")
    @classmethod
    def program_named(cls, argv: list[str]) -> list[str]:
        return _argv_ok(argv)


class CommandParams(StepParams):
    argv: list[str] = Field(min_length=1)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    env_file: str | None = None
    expect_exit: int = 0
    expect_output: str | None = None  # a substring of stdout
    output_tail_lines: int = Field(default=20, ge=0, le=1000)
    # A program given as a path (./scripts/backup-db.sh) that the app does not ship: "error"
    # (the default) as any program that cannot run; "fail" or "warn" says "not shipped" and
    # names the folder, so a runbook can run an app's own scripts where it has them, beside
    # the bot's checks, without a missing one ever reading as a pass.
    if_missing: Literal["error", "fail", "warn"] = "error"
    fallback: FallbackParams | None = None

    @field_validator("argv")
    @classmethod
    def program_named(cls, argv: list[str]) -> list[str]:
        return _argv_ok(argv)


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
    """subprocess without a shell, in its own session, killed whole on timeout.

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
    proc = subprocess.Popen(
        argv,
        shell=False,
        cwd=cwd,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        **as_user(user),
    )
    leash = stop.leash if stop is not None else None
    if leash is not None:
        leash.watch(proc.pid)  # its session's group: killed if the holder's lease lapses
    try:
        return _collect(proc, marker, timeout, watch, stop, grace)
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


class _Tail:
    """The last `cap` bytes of a stream (kept between cap and 2*cap, trimmed in bulk)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.truncated = False
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buf += chunk
        if len(self.buf) > 2 * self.cap:
            del self.buf[: len(self.buf) - self.cap]
            self.truncated = True

    def text(self) -> str:
        data = bytes(self.buf[-self.cap :]) if len(self.buf) > self.cap else bytes(self.buf)
        text = data.decode("utf-8", errors="replace")
        if self.truncated or len(self.buf) > self.cap:
            text = text.split("\n", 1)[-1]  # drop the partial first line
        return text


class _Interleaved:
    """stdout and stderr in one tail, a whole line at a time as each stream completes one, so
    a line of one stream never splits a line (or a secret in it) of the other. Two pipes: the
    order across streams is the order they were read in, so lines the program printed to both
    within the same instant may come out swapped."""

    def __init__(self, cap: int) -> None:
        self.tail = _Tail(cap)
        self.pending: dict[int, bytes] = {}

    def feed(self, fd: int, chunk: bytes) -> None:
        data = self.pending.get(fd, b"") + chunk
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > self.tail.cap:  # one endless line: keep what there is
            cut = len(data)
        if cut:
            self.tail.feed(data[:cut])
        self.pending[fd] = data[cut:]

    def text(self) -> str:
        for fd in sorted(self.pending):
            if self.pending[fd]:
                self.tail.feed(self.pending[fd] + b"\n")
        self.pending.clear()
        return self.tail.text()


def _collect(
    proc: subprocess.Popen[bytes],
    marker: str,
    timeout: float,
    watch: str | None,
    stop: StopRequest | None = None,
    grace: float = KILL_GRACE_SECONDS,
) -> CommandOutput:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Tail(TAIL_BYTES), _Tail(TAIL_BYTES)
    both = _Interleaved(TAIL_BYTES)
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


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


def _resolve(path: str, base: str | None) -> str:
    if base and not os.path.isabs(path):
        return os.path.join(base, path)
    return path


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


def child_env(params: CommandParams, ctx: StepContext) -> dict[str, str]:
    """The step's whole environment: `base_env`, then its `env_file` (read by the bot, so
    the step user needs no access to it), then its `env`."""
    env = base_env(ctx.run_as)
    if params.env_file:
        file_env = parse_env_file(_resolve(params.env_file, ctx.workdir))
        ctx.masker.add_env(file_env, public=ctx.public_env_keys)
        env.update(file_env)
    ctx.masker.add_all(v for k, v in params.env.items() if is_secret_key(k))
    env.update(params.env)
    return env


def tail(text: str, lines: int) -> list[str]:
    if lines <= 0:
        return []
    return text.splitlines()[-lines:]


def _duration(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _shipped(program: str, cwd: str | None) -> str | None:
    """The path of a program named by a path (it holds a /) when it is not there; else None."""
    if "/" not in program:
        return None
    path = program if os.path.isabs(program) or not cwd else os.path.join(cwd, program)
    return None if os.path.isfile(path) else os.path.normpath(path)


def run_command(params: CommandParams, ctx: StepContext) -> StepResult:
    if params.fallback is None:
        return _run_command(params, ctx)
    probe = run_dns(params.fallback.unless_resolves, ctx)
    if probe.status is Status.PASS:
        result = _run_command(params, ctx)
        why = f"{probe.evidence}: ran {shlex.join(params.argv)}"
    else:
        alt = params.model_copy(update={"argv": params.fallback.argv, "fallback": None})
        result = _run_command(alt, ctx)
        name = params.fallback.unless_resolves.name
        why = f"{name} not resolving to {params.fallback.unless_resolves.expected_ip} yet "
        why += f"({probe.evidence.split('; ', 1)[-1]}): ran {shlex.join(params.fallback.argv)}"
    details = {**result.details, "resolved": probe.status is Status.PASS, "dns": probe.evidence}
    evidence = _clip(ctx.masker.mask(f"{result.evidence}; {why}"))
    return StepResult(result.status, evidence, result.duration_ms, details)


def _run_command(params: CommandParams, ctx: StepContext) -> StepResult:
    cwd = _resolve(params.cwd, ctx.workdir) if params.cwd else ctx.workdir
    if cwd and not os.path.isdir(cwd):
        return StepResult(Status.ERROR, _clip(f"working directory {cwd} not found"))
    missing = _shipped(params.argv[0], cwd) if params.if_missing != "error" else None
    if missing is not None:
        status = Status.FAIL if params.if_missing == "fail" else Status.WARN
        where = f" in {cwd}" if cwd and not os.path.isabs(params.argv[0]) else ""
        return StepResult(
            status,
            _clip(f"not shipped: {params.argv[0]} not found{where}; not run"),
            details={"missing": missing},
        )
    try:
        env = child_env(params, ctx)
    except EnvFileError as exc:
        return StepResult(Status.ERROR, _clip(f"env_file: {exc}"))
    if ctx.fencing_token is not None:
        env[FENCING_VAR] = str(ctx.fencing_token)
    runner = ctx.command_runner or default_runner
    program = params.argv[0]
    start = ctx.clock.monotonic()
    try:
        if runner is default_runner:
            out = default_runner(
                list(params.argv),
                timeout=ctx.timeout,
                cwd=cwd,
                env=env,
                watch=params.expect_output,
                user=ctx.run_as,
                stop=ctx.stop,
                grace=ctx.stop_grace,
            )
        else:
            out = runner(list(params.argv), timeout=ctx.timeout, cwd=cwd, env=env)
    except FileNotFoundError:
        return StepResult(Status.ERROR, _clip(f"cannot run {program}: not found"))
    except PermissionError:
        who = f" as user {ctx.run_as.name}" if ctx.run_as is not None else ""
        return StepResult(Status.ERROR, _clip(f"cannot run {program}{who}: permission denied"))
    except OSError as exc:
        return StepResult(Status.ERROR, _clip(f"cannot run {program}: {exc.strerror or exc}"))
    took = _duration(ctx.clock.monotonic() - start)
    mask = ctx.masker.mask
    out_tail = tail(out.stdout, params.output_tail_lines) + tail(
        out.stderr, params.output_tail_lines
    )
    out_tail = out_tail[-params.output_tail_lines :] if params.output_tail_lines else []
    details: dict[str, Any] = {
        "exit_code": out.returncode,
        "timed_out": out.timed_out,
        "output_tail": mask("\n".join(out_tail)),
        "output_truncated": out.truncated,
        OUTPUT: kept_output(out, mask),
    }
    if out.stopped is not None:
        why = ctx.stop.reason if ctx.stop is not None and ctx.stop.reason else "request"
        how = (
            f"SIGTERM after {out.stop_seconds:.1f} s"
            if out.stopped == "sigterm"
            else f"SIGKILL after the {ctx.stop_grace:g} s grace (it ignored SIGTERM)"
        )
        details.update(stopped=out.stopped, stop_seconds=round(out.stop_seconds, 2))
        return StepResult(Status.ERROR, f"stopped by {why}: {how}", details=details)
    if out.timed_out:
        return StepResult(
            Status.ERROR,
            f"timed out after {ctx.timeout:g}s; process group killed",
            details=details,
        )
    if out.returncode != params.expect_exit:
        last = next(
            (ln for ln in reversed(out.stderr.splitlines()) if ln.strip()),
            next((ln for ln in reversed(out.stdout.splitlines()) if ln.strip()), ""),
        )
        expected = "" if params.expect_exit == 0 else f" (expected {params.expect_exit})"
        evidence = f"exit {out.returncode}{expected}" + (f": {last.strip()}" if last else "")
        return StepResult(Status.FAIL, _clip(mask(evidence)), details=details)
    matched = out.stdout_matches if out.stdout_matches is not None else None
    if matched is None and params.expect_output is not None:
        matched = params.expect_output in out.stdout
    if params.expect_output is not None and not matched:
        evidence = f"exit {out.returncode} in {took} but output lacks {params.expect_output!r}"
        return StepResult(Status.FAIL, _clip(mask(evidence)), details=details)
    return StepResult(Status.PASS, f"exit {out.returncode} in {took}", details=details)


def kept_output(out: CommandOutput, mask: Callable[[str], str]) -> KeptOutput:
    """What the step printed (its last TAIL_BYTES, both streams as they came), masked here,
    before it leaves the step; a runner that keeps no interleaved tail gives stdout, then
    stderr."""
    if out.combined is not None:
        text = out.combined
    else:
        text = out.stdout + ("\n" if out.stdout and not out.stdout.endswith("\n") else "")
        text += out.stderr
    total = out.total_bytes if out.total_bytes is not None else len(text.encode())
    return KeptOutput(mask(text), out.truncated or total > len(text.encode()), total)


def describe(params: CommandParams) -> str:
    return "run " + shlex.join(params.argv)


COMMAND = register(StepKind(name="command", params=CommandParams, run=run_command, mutates=False))
RUN = register(
    StepKind(name="run", params=CommandParams, run=run_command, mutates=True, describe=describe)
)
