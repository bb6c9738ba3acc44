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

import os
import shlex
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
    clip,
    register,
)
from phases.checks.command_process import TAIL_BYTES as TAIL_BYTES  # re-exported: its old home
from phases.checks.command_process import (
    StepNotStarted,
    base_env,
    default_runner,
    stopped_words,
)
from phases.checks.command_process import as_user as as_user  # re-exported: its old home
from phases.checks.dns_check import DnsParams, run_dns
from phases.secrets import EnvFileError, is_secret_key, parse_env_file

EVIDENCE_LIMIT = 200
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


def _resolve(path: str, base: str | None) -> str:
    if base and not os.path.isabs(path):
        return os.path.join(base, path)
    return path


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
    evidence = clip(ctx.masker.mask(f"{result.evidence}; {why}"), EVIDENCE_LIMIT)
    return StepResult(result.status, evidence, result.duration_ms, details)


def _run_command(params: CommandParams, ctx: StepContext) -> StepResult:
    cwd = _resolve(params.cwd, ctx.workdir) if params.cwd else ctx.workdir
    if cwd and not os.path.isdir(cwd):
        return StepResult(Status.ERROR, clip(f"working directory {cwd} not found", EVIDENCE_LIMIT))
    missing = _shipped(params.argv[0], cwd) if params.if_missing != "error" else None
    if missing is not None:
        status = Status.FAIL if params.if_missing == "fail" else Status.WARN
        where = f" in {cwd}" if cwd and not os.path.isabs(params.argv[0]) else ""
        return StepResult(
            status,
            clip(f"not shipped: {params.argv[0]} not found{where}; not run", EVIDENCE_LIMIT),
            details={"missing": missing},
        )
    try:
        env = child_env(params, ctx)
    except EnvFileError as exc:
        return StepResult(Status.ERROR, clip(f"env_file: {exc}", EVIDENCE_LIMIT))
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
    except StepNotStarted as exc:
        return StepResult(
            Status.ERROR,
            clip(f"not started: {exc}; nothing of it ran", EVIDENCE_LIMIT),
            details={"not_started": str(exc)},
        )
    except FileNotFoundError:
        return StepResult(Status.ERROR, clip(f"cannot run {program}: not found", EVIDENCE_LIMIT))
    except PermissionError:
        who = f" as user {ctx.run_as.name}" if ctx.run_as is not None else ""
        return StepResult(
            Status.ERROR, clip(f"cannot run {program}{who}: permission denied", EVIDENCE_LIMIT)
        )
    except OSError as exc:
        return StepResult(
            Status.ERROR, clip(f"cannot run {program}: {exc.strerror or exc}", EVIDENCE_LIMIT)
        )
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
        said, how = stopped_words(out, ctx)
        return StepResult(Status.ERROR, said, details={**details, **how})
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
        return StepResult(Status.FAIL, clip(mask(evidence), EVIDENCE_LIMIT), details=details)
    matched = out.stdout_matches if out.stdout_matches is not None else None
    if matched is None and params.expect_output is not None:
        matched = params.expect_output in out.stdout
    if params.expect_output is not None and not matched:
        evidence = f"exit {out.returncode} in {took} but output lacks {params.expect_output!r}"
        return StepResult(Status.FAIL, clip(mask(evidence), EVIDENCE_LIMIT), details=details)
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
