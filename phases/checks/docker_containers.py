"""`docker_containers`: a compose project's containers running, healthy or absent.

Phase 1 checks the old services are gone (`docker ps | grep nostrmaxi` shows nothing),
phase 5 waits for every container to be healthy (max 60 s), monitoring checks each round
that every service still runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from phases.checks.base import Status, StepContext, StepKind, StepResult, pause, register
from phases.checks.docker_client import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    DockerHostParams,
    _budget,
    _display_names,
    _docker,
    _guarded,
    _join,
    _project_containers,
    _service,
    _state,
)

POLL_INTERVAL = 1.0
# What `docker ps` lists: a container in one of these states is still "up".
UP_STATES = ("running", "restarting", "paused")


class ContainersParams(DockerHostParams):
    project: str = Field(min_length=1)
    services: list[str] = Field(default_factory=list)  # empty: every container of the project
    expect: Literal["running", "healthy", "absent"] = "healthy"
    wait_seconds: int = Field(default=60, ge=0, le=3600)
    # With expect: absent, the project must have existed: stopped containers remain, or the
    # engine's events show its containers stopping since the phase started. A misspelt
    # project name otherwise "passes" by matching nothing.
    require_existed: bool = False
    # With expect: absent, also no running container of any project (or none) whose name
    # matches this regular expression: the runbook's `docker ps | grep nostrmaxi`, which
    # sees an old deployment started by hand or under another project name too.
    name_pattern: str | None = Field(default=None, min_length=1)

    @field_validator("name_pattern")
    @classmethod
    def pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def pattern_only_when_absent(self) -> ContainersParams:
        if self.name_pattern is not None and self.expect != "absent":
            raise ValueError("name_pattern is for expect: absent (no such container running)")
        return self


@dataclass
class _Verdict:
    ok: bool
    terminal: bool  # waiting longer cannot help
    evidence: str
    details: dict[str, Any]


def _container_info(c: Any, name: str, masker: Any) -> dict[str, Any]:
    state = _state(c)
    health = state.get("Health") if isinstance(state.get("Health"), dict) else None
    info: dict[str, Any] = {
        "name": c.name,
        "service": name,
        "state": state.get("Status", "unknown"),
        "exit_code": state.get("ExitCode"),
        "health": health.get("Status") if health else None,
    }
    if health and health.get("Log"):
        last = health["Log"][-1]
        info["last_health_output"] = masker.mask(" ".join(str(last.get("Output", "")).split()))[
            :200
        ]
    return info


def _may_restart(c: Any, exit_code: Any) -> bool:
    policy = (c.attrs.get("HostConfig") or {}).get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if name == "no":
        return False
    return not (name == "on-failure" and exit_code == 0)


def _evaluate(client: Any, params: ContainersParams, ctx: StepContext, waited: float) -> _Verdict:
    expect = params.expect
    containers = _project_containers(client, params.project, all_states=True)
    if params.services:
        containers = [c for c in containers if _service(c) in params.services]
    names = _display_names(containers)
    order = {s: i for i, s in enumerate(params.services)}
    containers.sort(key=lambda c: (order.get(_service(c), len(order)), names[c.id]))
    infos = [_container_info(c, names[c.id], ctx.masker) for c in containers]
    details: dict[str, Any] = {"project": params.project, "containers": infos}

    if expect == "absent":
        up = [i for i in infos if i["state"] in UP_STATES]
        named = _running_named(client, params.name_pattern, {c.id for c in containers})
        details["named_running"] = named
        like = f"; none running named like {params.name_pattern!r}" if params.name_pattern else ""
        if not up and not named:
            stopped = len(infos)
            rest = f" ({stopped} stopped container(s) remain)" if stopped else ""
            return _Verdict(
                True, True, f"no running containers of {params.project}{rest}{like}", details
            )
        still: list[str] = []
        if up:
            listed = _join(f"{i['service']} ({i['state']})" for i in up)
            still.append(
                f"{len(up)} container(s) of {params.project} still running after "
                f"{waited:.0f}s: {listed}"
            )
        if named:
            still.append(
                f"{len(named)} container(s) named like {params.name_pattern!r} still running "
                f"after {waited:.0f}s: {_join(named)}"
            )
        return _Verdict(False, False, "; ".join(still), details)

    problems: list[str] = []
    terminal = True
    seen = {i["service"] for i in infos} | {_service(c) for c in containers}
    for service in params.services:
        if service not in seen:
            problems.append(f"{service} missing")
            terminal = False  # compose may still be creating it
    if not infos and not params.services:
        problems.append(f"no containers of project {params.project}")
        terminal = False
    good: list[str] = []
    for c, info in zip(containers, infos, strict=True):
        name, status, health = info["service"], info["state"], info["health"]
        if status in ("exited", "dead"):
            problems.append(f"{name} {status} ({info['exit_code']})")
            terminal = terminal and not _may_restart(c, info["exit_code"])
        elif status != "running":
            problems.append(f"{name} {status}")
            terminal = False
        elif expect == "running":
            good.append(name)
        elif health is None:
            problems.append(f"{name} has no healthcheck")
        elif health == "healthy":
            good.append(name)
        else:
            problems.append(
                f"{name} {'unhealthy' if health == 'unhealthy' else 'not healthy'} "
                f"after {waited:.0f}s (health: {health})"
            )
            terminal = False
    total = max(len(infos), len(params.services))
    if not problems:
        return _Verdict(
            True, True, f"{len(good)}/{total} containers {expect}: {_join(good)}", details
        )
    return _Verdict(False, terminal, "; ".join(problems), details)


def _running_named(client: Any, pattern: str | None, known: set[str]) -> list[str]:
    """Names of running containers (any project, or none) matching `pattern`, except the
    project's own (`known` ids: already judged by their project)."""
    if pattern is None:
        return []
    found = re.compile(pattern)
    running = client.containers.list(all=False, ignore_removed=True)
    return sorted(c.name for c in running if c.id not in known and found.search(c.name))


def run_containers(params: ContainersParams, ctx: StepContext) -> StepResult:
    def go() -> StepResult:
        with _docker(ctx, params.docker_host) as client:
            start = ctx.clock.monotonic()
            budget = _budget(params.wait_seconds, ctx)
            while True:
                waited = ctx.clock.monotonic() - start
                verdict = _evaluate(client, params, ctx, waited)
                remaining = budget - (ctx.clock.monotonic() - start)
                if verdict.ok or verdict.terminal or remaining <= 0:
                    break
                pause(ctx, min(POLL_INTERVAL, remaining))
            details = {**verdict.details, "waited_s": round(waited, 1)}
            status = Status.PASS if verdict.ok else Status.FAIL
            evidence = verdict.evidence
            if verdict.ok and params.expect == "absent" and params.require_existed:
                stopped = _stopped_here(client, params.project, ctx)
                details["stopped_since_phase_start"] = stopped
                if not details["containers"] and not stopped:
                    return StepResult(
                        Status.FAIL,
                        f"project {params.project} never existed on this engine: no containers "
                        "and none stopped since the phase started (wrong project name?)",
                        details=details,
                    )
                if stopped:
                    evidence += f"; {len(stopped)} stopped in this phase: {_join(stopped)}"
            return StepResult(status, evidence, details=details)

    return _guarded(go)


def _stopped_here(client: Any, project: str, ctx: StepContext) -> list[str]:
    """Services of the project whose containers died or were removed since the phase began."""
    since = ctx.phase_started_at or ctx.run_started_at
    if since is None:
        return []
    events = client.api.events(
        since=int(since) - 1,
        until=int(ctx.clock.now()) + 1,
        filters={"type": "container", "label": f"{PROJECT_LABEL}={project}"},
        decode=True,
    )
    names: set[str] = set()
    for ev in events:
        if ev.get("status") in ("die", "stop", "destroy", "kill"):
            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            names.add(str(attrs.get(SERVICE_LABEL) or attrs.get("name") or ev.get("id", "")[:12]))
    return sorted(names)


def describe_containers(params: ContainersParams) -> str:
    what = _join(params.services) if params.services else "all containers"
    return f"check {what} of {params.project} are {params.expect} (wait {params.wait_seconds}s)"


DOCKER_CONTAINERS = register(
    StepKind("docker_containers", ContainersParams, run_containers, describe=describe_containers)
)
