"""`compose_up` (action): `docker-compose up -d` of a project on the engine the runbook names.

The rollback's "start the old deployment again" runs where the old deployment lives: the
runbook's `old_docker_host` (Phase 1 stopped it there). The compose program gets that
engine as DOCKER_HOST in its environment (empty `docker_host`: the bot's own DOCKER_HOST,
inherited as every `run` step inherits it), runs as a `run` step does (argv, never a shell;
output kept and masked; stopped on abort), and then the bot asks that same engine, through
the Docker API, which containers of the project run. The evidence says which engine, and
which containers run there: "started on unix:///… (docker_host): backend, db running".
"""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepResult, register
from phases.checks.command import CommandParams, run_command
from phases.checks.docker_client import (
    DockerHostParams,
    _display_names,
    _docker,
    _engine_url,
    _guarded,
    _project_containers,
)


class ComposeUpParams(DockerHostParams):
    compose: list[str] = Field(default_factory=lambda: ["docker-compose"], min_length=1)
    project: str = Field(min_length=1)
    file: str = Field(min_length=1)
    cwd: str | None = None
    env_file: str | None = None

    def argv(self) -> list[str]:
        return [*self.compose, "-p", self.project, "-f", self.file, "up", "-d"]

    def as_command(self) -> CommandParams:
        """The `run` step it is: its program, folder and env file (preflight checks them)."""
        env = {"DOCKER_HOST": self.docker_host} if self.docker_host else {}
        return CommandParams(argv=self.argv(), cwd=self.cwd, env_file=self.env_file, env=env)


def _engine(params: ComposeUpParams, client: Any) -> str:
    """Which engine, and why that one: the step's docker_host or the bot's DOCKER_HOST."""
    if params.docker_host:
        return f"{params.docker_host} (docker_host)"
    return f"{_engine_url(client)} (the bot's DOCKER_HOST)"


def run_compose_up(params: ComposeUpParams, ctx: StepContext) -> StepResult:
    ran = run_command(params.as_command(), ctx)
    where = params.docker_host or "the bot's DOCKER_HOST"
    if ran.status is not Status.PASS:
        details = {**ran.details, "docker_host": params.docker_host}
        return StepResult(ran.status, f"{ran.evidence} (on {where})", ran.duration_ms, details)

    def verify() -> StepResult:
        with _docker(ctx, params.docker_host) as client:
            engine = _engine(params, client)
            running = _project_containers(client, params.project, all_states=False)
            names = sorted(_display_names(running).values())
        details = {**ran.details, "engine": engine, "running": names}
        if not running:
            return StepResult(
                Status.FAIL,
                f"{ran.evidence}, but no container of {params.project} runs on {engine}",
                details=details,
            )
        return StepResult(
            Status.PASS,
            f"{ran.evidence}; started on {engine}: {len(names)} container(s) of "
            f"{params.project} running ({', '.join(names)})",
            details=details,
        )

    return _guarded(verify)


def describe(params: ComposeUpParams) -> str:
    where = params.docker_host or "the bot's DOCKER_HOST"
    return f"run {shlex.join(params.argv())} on {where}"


COMPOSE_UP = register(
    StepKind("compose_up", ComposeUpParams, run_compose_up, mutates=True, describe=describe)
)
