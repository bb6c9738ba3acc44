"""`command` (read-only check) and `run` (action): one program, never a shell.

The runbook's shell lines (`npm run build`, `npx prisma migrate deploy`,
`test -f dist/main.js`) become argv lists: each element reaches the program as
one argument, so `$(…)`, `;` and `|` are data, not syntax. The child gets a
minimal environment (PATH, HOME, LANG) plus `env_file` and `env`; every secret
of those is registered with the masker, and only a masked output tail is kept.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from typing import Any

from pydantic import Field, field_validator

from phases.checks.base import (
    CommandOutput,
    Status,
    StepContext,
    StepKind,
    StepParams,
    StepResult,
    register,
)
from phases.secrets import EnvFileError, parse_env_file

EVIDENCE_LIMIT = 200
# The engine the docker steps talk to is the one compose commands talk to.
INHERITED_ENV = (
    "PATH", "HOME", "LANG", "TZ", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG",
    "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
)
KILL_GRACE_SECONDS = 2.0


class CommandParams(StepParams):
    argv: list[str] = Field(min_length=1)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    env_file: str | None = None
    expect_exit: int = 0
    expect_output: str | None = None  # a substring of stdout
    output_tail_lines: int = Field(default=20, ge=0, le=1000)

    @field_validator("argv")
    @classmethod
    def program_named(cls, argv: list[str]) -> list[str]:
        if not argv[0].strip():
            raise ValueError("argv[0] must name a program")
        if any("\x00" in a for a in argv):
            raise ValueError("argv elements must not contain NUL")
        return argv


def default_runner(
    argv: list[str], *, timeout: float, cwd: str | None, env: dict[str, str] | None
) -> CommandOutput:
    """subprocess without a shell, in its own process group, killed whole on timeout."""
    proc = subprocess.Popen(
        argv,
        shell=False,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        return CommandOutput(proc.returncode, stdout, stderr)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            stdout, stderr = proc.communicate(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes
            proc.kill()
            stdout, stderr = "", ""
        return CommandOutput(
            proc.returncode if proc.returncode is not None else -9,
            stdout or "",
            stderr or "",
            timed_out=True,
        )
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


def _resolve(path: str, base: str | None) -> str:
    if base and not os.path.isabs(path):
        return os.path.join(base, path)
    return path


def child_env(params: CommandParams, ctx: StepContext) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    if params.env_file:
        file_env = parse_env_file(_resolve(params.env_file, ctx.workdir))
        ctx.masker.add_env(file_env)
        env.update(file_env)
    ctx.masker.add_env(params.env)
    env.update(params.env)
    return env


def tail(text: str, lines: int) -> list[str]:
    if lines <= 0:
        return []
    return text.splitlines()[-lines:]


def _duration(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def run_command(params: CommandParams, ctx: StepContext) -> StepResult:
    cwd = _resolve(params.cwd, ctx.workdir) if params.cwd else ctx.workdir
    if cwd and not os.path.isdir(cwd):
        return StepResult(Status.ERROR, _clip(f"working directory {cwd} not found"))
    try:
        env = child_env(params, ctx)
    except EnvFileError as exc:
        return StepResult(Status.ERROR, _clip(f"env_file: {exc}"))
    runner = ctx.command_runner or default_runner
    program = params.argv[0]
    start = ctx.clock.monotonic()
    try:
        out = runner(list(params.argv), timeout=ctx.timeout, cwd=cwd, env=env)
    except FileNotFoundError:
        return StepResult(Status.ERROR, _clip(f"cannot run {program}: not found"))
    except PermissionError:
        return StepResult(Status.ERROR, _clip(f"cannot run {program}: permission denied"))
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
    }
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
    if params.expect_output is not None and params.expect_output not in out.stdout:
        evidence = f"exit {out.returncode} in {took} but output lacks {params.expect_output!r}"
        return StepResult(Status.FAIL, _clip(mask(evidence)), details=details)
    return StepResult(Status.PASS, f"exit {out.returncode} in {took}", details=details)


def describe(params: CommandParams) -> str:
    return "run " + shlex.join(params.argv)


COMMAND = register(StepKind(name="command", params=CommandParams, run=run_command, mutates=False))
RUN = register(
    StepKind(name="run", params=CommandParams, run=run_command, mutates=True, describe=describe)
)
