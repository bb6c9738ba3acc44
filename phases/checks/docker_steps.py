"""Docker checks and the stop action, for the compose project of the runbook.

Phase 1 stops the old services (`docker-compose down --timeout 30`, then
`docker ps | grep nostrmaxi` shows nothing), phase 3 verifies the built images,
phase 5 waits for every container to be healthy (max 60 s) and phase 9 watches
`docker stats` (memory < 80 % of the container limit, CPU < 70 %).

Compose marks its containers with the labels below, so these steps find a
project's containers the way `docker-compose ps` does, through the Docker SDK:
`ctx.docker_factory()` when set, else `docker.from_env()` (DOCKER_HOST).
An engine that cannot be reached is an ERROR with a one-line reason.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import docker
import docker.errors
import requests
from pydantic import Field, field_validator, model_validator

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
POLL_INTERVAL = 1.0
# What `docker ps` lists: a container in one of these states is still "up".
UP_STATES = ("running", "restarting", "paused")
MIB = 1024 * 1024


class EngineUnreachable(Exception):
    """The Docker engine could not be reached; the message is one short line."""


# --------------------------------------------------------------------------- client


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (
        ("No such file or directory", "no such socket"),
        ("Connection refused", "connection refused"),
        ("Permission denied", "permission denied"),
        ("timed out", "timed out"),
        ("Name or service not known", "unknown host"),
        ("Network is unreachable", "network unreachable"),
    ):
        if needle in text:
            return reason
    text = " ".join(text.split())
    return text[:160] or type(exc).__name__


def _factory_url(factory: Callable[[], Any]) -> str:
    """Where a docker_factory points, if it says: a `base_url` attribute or a partial's keyword."""
    url = getattr(factory, "base_url", None) or (getattr(factory, "keywords", None) or {}).get(
        "base_url"
    )
    return str(url) if url else "the engine of docker_factory"


def _engine_url(client: Any | None) -> str:
    if client is not None:
        adapter = getattr(getattr(client, "api", None), "_custom_adapter", None)
        socket_path = getattr(adapter, "socket_path", None)
        if socket_path:
            return f"unix://{socket_path}"
        base_url = getattr(getattr(client, "api", None), "base_url", None)
        if base_url:
            return str(base_url)
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@contextmanager
def _docker(ctx: StepContext, host: str | None = None) -> Iterator[Any]:
    """The step's Docker client; any failure to talk to the engine becomes EngineUnreachable.
    `host` (a step's `docker_host`: the runbook's "if running on a different host") names the
    engine; empty or None: `ctx.docker_factory`, else DOCKER_HOST."""
    client: Any | None = None
    owned = ctx.docker_factory is None or bool(host)
    try:
        try:
            if host:
                client = docker.DockerClient(base_url=host, timeout=max(5, int(ctx.timeout)))
            elif ctx.docker_factory is not None:
                client = ctx.docker_factory()
            else:
                client = docker.from_env(timeout=max(5, int(ctx.timeout)))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            where = host or (
                _factory_url(ctx.docker_factory) if ctx.docker_factory else _engine_url(None)
            )
            raise EngineUnreachable(
                f"Docker engine unreachable at {where}: {_short_reason(exc)}"
            ) from None
        try:
            yield client
        except docker.errors.APIError:
            raise  # the engine answered: not an unreachable engine
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnreachable(
                f"Docker engine unreachable at {host or _engine_url(client)}: {_short_reason(exc)}"
            ) from None
    finally:
        if owned and client is not None:
            with suppress(Exception):  # closing is best effort
                client.close()


class DockerHostParams(StepParams):
    """Base of the Docker step kinds' params: `docker_host` names the engine a step talks to
    (the runbook's "if running on a different host/port": the old deployment elsewhere),
    as unix:///path, tcp://host:port or ssh://user@host, `${VAR}`-able through a runbook
    var; empty or absent: the bot's DOCKER_HOST."""

    docker_host: str | None = None

    @field_validator("docker_host")
    @classmethod
    def engine_url(cls, value: str | None) -> str | None:
        if value and not re.match(r"(unix|tcp|ssh|http|https)://", value):
            raise ValueError(
                f"docker_host {value!r} is not an engine address: write it as "
                "unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST"
            )
        return value or None


def _guarded(fn: Callable[[], StepResult]) -> StepResult:
    try:
        return fn()
    except EngineUnreachable as exc:
        return StepResult(Status.ERROR, str(exc))
    except docker.errors.APIError as exc:
        explanation = exc.explanation if isinstance(exc.explanation, str) else str(exc)
        return StepResult(Status.ERROR, f"Docker API error: {' '.join(explanation.split())[:200]}")


def _project_containers(client: Any, project: str, *, all_states: bool) -> list[Any]:
    return list(
        client.containers.list(
            all=all_states, filters={"label": f"{PROJECT_LABEL}={project}"}, ignore_removed=True
        )
    )


def _service(container: Any) -> str:
    labels = container.labels or {}
    return str(labels.get(SERVICE_LABEL) or container.name)


def _display_names(containers: list[Any]) -> dict[str, str]:
    """Container id → its service name, or its container name when a service has several."""
    counts: dict[str, int] = {}
    for c in containers:
        counts[_service(c)] = counts.get(_service(c), 0) + 1
    return {c.id: _service(c) if counts[_service(c)] == 1 else c.name for c in containers}


def _state(container: Any) -> dict[str, Any]:
    state = container.attrs.get("State")
    return state if isinstance(state, dict) else {"Status": str(state or "unknown")}


def _budget(wait_seconds: float, ctx: StepContext) -> float:
    """Waits stop 2 s before the step's own timeout so the verdict is ours, not the runner's."""
    return max(0.0, min(float(wait_seconds), ctx.timeout - 2.0))


def _join(names: Iterable[str]) -> str:
    return ", ".join(names)


# --------------------------------------------------------------------- docker_containers


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
                ctx.clock.sleep(min(POLL_INTERVAL, remaining))
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


# ------------------------------------------------------------------------ docker_images


class ImagesParams(DockerHostParams):
    # "repo:tag" matches exactly; a name without a tag matches every repo starting with it,
    # as `docker images | grep nostrmaxi` would.
    names: list[str] = Field(default_factory=list)
    # Images a `compose build` of this project made for these services, by either name
    # Compose gives them: v1 (`docker-compose`) PROJECT_SERVICE, v2 (`docker compose`)
    # PROJECT-SERVICE. The runbook may call either; the check accepts what was built.
    compose_project: str | None = Field(default=None, min_length=1)
    services: list[str] = Field(default_factory=list)
    # Phase 3 builds with --no-cache: an image older than this is a stale one, not this build.
    max_age_minutes: int | None = Field(default=None, ge=1)
    # The image was created after this run started: a build from yesterday is not this build.
    built_after_run_start: bool = False
    # Every image of this compose file (with compose_project): a service with `build:` by
    # the name Compose gives its build (its `image:`, else v1 PROJECT_SERVICE or v2
    # PROJECT-SERVICE, judged fresh as above); one with only `image:` by that name (pulled:
    # present is enough). Runbook Phase 3 "docker images | grep nostrmaxi", every image.
    compose_file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def something_to_look_for(self) -> ImagesParams:
        if (self.services or self.compose_file) and not self.compose_project:
            raise ValueError(
                "services and compose_file need compose_project (the -p of the compose build)"
            )
        if not self.names and not self.services and not self.compose_file:
            raise ValueError("give names, or compose_project and services or compose_file")
        return self


def compose_image_names(project: str, service: str) -> tuple[str, str]:
    """The image repository Compose v1 and v2 give a built service (v1 `_`, v2 `-`)."""
    return f"{project}_{service}", f"{project}-{service}"


def _repo(tag: str) -> str:
    repo = tag.rsplit(":", 1)[0] if _has_tag(tag) else tag
    for prefix in ("docker.io/library/", "docker.io/"):
        if repo.startswith(prefix):
            return repo[len(prefix) :]
    return repo


def _repo_in(repos: tuple[str, ...], tag: str) -> bool:
    return _repo(tag) in repos


def _wanted(params: ImagesParams) -> list[tuple[str, Callable[[str], bool]]]:
    """(what the evidence calls it, does a tag match it) for each image asked for."""
    out: list[tuple[str, Callable[[str], bool]]] = [
        (name, functools.partial(_matches, name)) for name in params.names
    ]
    for service in params.services:
        forms = compose_image_names(params.compose_project or "", service)
        out.append((" or ".join(forms), functools.partial(_repo_in, forms)))
    return out


class ComposeFileError(Exception):
    """The compose file could not be read; the message says why in one line."""


def _compose_images(
    params: ImagesParams, ctx: StepContext
) -> list[tuple[str, Callable[[str], bool], bool]]:
    """(name, matcher, built here) for every service of the compose file."""
    if params.compose_file is None:
        return []
    from phases.yaml_loader import RunbookError, load_yaml_file

    path = params.compose_file
    if ctx.workdir and not os.path.isabs(path):
        path = os.path.join(ctx.workdir, path)
    try:
        data = load_yaml_file(path)
    except (OSError, RunbookError) as exc:
        raise ComposeFileError(f"compose file {path}: {' '.join(str(exc).split())[:150]}") from None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict) or not services:
        raise ComposeFileError(f"compose file {path} names no services")
    out: list[tuple[str, Callable[[str], bool], bool]] = []
    for service, spec in services.items():
        spec = spec if isinstance(spec, dict) else {}
        image = spec.get("image")
        if image:
            out.append((str(image), functools.partial(_matches, str(image)), "build" in spec))
        elif "build" in spec:
            forms = compose_image_names(params.compose_project or "", str(service))
            out.append((" or ".join(forms), functools.partial(_repo_in, forms), True))
        else:
            raise ComposeFileError(f"compose file {path}: service {service} has no image or build")
    return out


def _has_tag(name: str) -> bool:
    return ":" in name.rsplit("/", 1)[-1]


def _matches(name: str, tag: str) -> bool:
    if _has_tag(name):
        return tag == name or tag == f"docker.io/library/{name}" or tag == f"docker.io/{name}"
    return tag.rsplit(":", 1)[0].startswith(name)


_CREATED = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def _created_epoch(value: Any) -> float | None:
    m = _CREATED.match(str(value or ""))
    if not m:
        return None
    base, frac, tz = m.groups()
    stamp = datetime.fromisoformat(base + ("+00:00" if tz == "Z" else tz))
    return stamp.timestamp() + (float(f"0.{frac}") if frac else 0.0)


def run_images(params: ImagesParams, ctx: StepContext) -> StepResult:
    def go() -> StepResult:
        with _docker(ctx, params.docker_host) as client:
            images = client.images.list()
        now = ctx.clock.now()
        if params.built_after_run_start and ctx.run_started_at is None:
            return StepResult(Status.ERROR, "built_after_run_start needs a run (no start time)")
        found: dict[str, list[str]] = {}
        missing: list[str] = []
        stale: list[str] = []
        try:
            from_file = _compose_images(params, ctx)
        except ComposeFileError as exc:
            return StepResult(Status.ERROR, str(exc))
        wanted = [(n, m) for n, m in _wanted(params)]
        pulled = {n for n, _m, built in from_file if not built}
        wanted += [(n, m) for n, m, _b in from_file if n not in dict(wanted)]
        for name, matches in wanted:
            tags: list[str] = []
            fresh = False
            for image in images:
                hits = [t for t in (image.tags or []) if matches(t)]
                if not hits:
                    continue
                tags.extend(hits)
                created = _created_epoch(image.attrs.get("Created"))
                young = (
                    name in pulled
                    or params.max_age_minutes is None
                    or (created is not None and now - created <= params.max_age_minutes * 60)
                )
                after = (
                    name in pulled
                    or not params.built_after_run_start
                    or (
                        created is not None
                        and ctx.run_started_at is not None
                        and created >= ctx.run_started_at
                    )
                )
                if young and after:
                    fresh = True
            found[name] = sorted(set(tags))
            if not tags:
                missing.append(name)
            elif not fresh:
                stale.append(name)
        details: dict[str, Any] = {"found": found, "missing": missing, "stale": stale}
        present = len(wanted) - len(missing)
        if missing or stale:
            parts = []
            if missing:
                parts.append(f"missing images: {_join(missing)}")
            if stale:
                limits = []
                if params.max_age_minutes is not None:
                    limits.append(f"older than {params.max_age_minutes} min")
                if params.built_after_run_start:
                    limits.append("built before this run started")
                parts.append(f"{' or '.join(limits)}: {_join(stale)}")
            return StepResult(
                Status.FAIL,
                f"{'; '.join(parts)} ({present}/{len(wanted)} present)",
                details=details,
            )
        shown = _join(t for name, _m in wanted for t in found[name][:3])
        return StepResult(
            Status.PASS,
            f"{len(wanted)}/{len(wanted)} images present: {shown}",
            details=details,
        )

    return _guarded(go)


DOCKER_IMAGES = register(
    StepKind(
        "docker_images",
        ImagesParams,
        run_images,
        describe=lambda p: f"check images present: {_join(name for name, _m in _wanted(p))}",
    )
)


# ------------------------------------------------------------------------- docker_stats


class StatsParams(DockerHostParams):
    project: str = Field(min_length=1)
    max_memory_percent: float = Field(default=80.0, gt=0, le=100)
    max_cpu_percent: float = Field(default=70.0, gt=0)
    # Phase 9 "CPU usage reasonable (<70% sustained)": CPU is read this many times, each a
    # `docker stats` reading (about 1 s of CPU time) `cpu_interval_seconds` apart, and judged
    # sustained: over max_cpu_percent only when the median of the window is (more than half
    # of it), so one spike is shown, not a breach. 1: a single reading, as `docker stats`.
    cpu_samples: int = Field(default=1, ge=1, le=30)
    cpu_interval_seconds: float = Field(default=1.0, ge=0, le=60)


def sustained(readings: list[float]) -> float | None:
    """The window's CPU %, as judged: its median (None without a reading)."""
    return statistics.median(readings) if readings else None


def _memory_usage(mem: dict[str, Any]) -> int | None:
    """Usage without the page cache that can be dropped, as `docker stats` reports it."""
    usage = mem.get("usage")
    if not isinstance(usage, int):
        return None
    stats = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):  # cgroup v1, cgroup v2
        inactive = stats.get(key)
        if isinstance(inactive, int) and inactive < usage:
            return usage - inactive
    return usage


def _cpu_percent(cur: dict[str, Any], pre: dict[str, Any]) -> float | None:
    """The `docker stats` CPU %: share of host CPU time, times the number of CPUs."""
    try:
        cpu_delta = cur["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cur["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cur.get("online_cpus") or len(cur["cpu_usage"].get("percpu_usage") or []) or 1
    if system_delta <= 0 or cpu_delta < 0:
        return 0.0
    return cpu_delta / system_delta * online * 100.0


def _has_sample(cpu: Any) -> bool:
    return bool(isinstance(cpu, dict) and cpu.get("system_cpu_usage") and cpu.get("cpu_usage"))


def _window(
    container: Any, ctx: StepContext, params: StatsParams
) -> tuple[dict[str, Any], list[float]]:
    """The last stats of a container and its CPU readings over the window."""
    readings: list[float] = []
    stats: dict[str, Any] = {}
    for i in range(params.cpu_samples):
        if i:
            ctx.clock.sleep(params.cpu_interval_seconds)
        stats = _sample(container, ctx)
        pct = _cpu_percent(stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {})
        if pct is not None:
            readings.append(pct)
    return stats, readings


def _sample(container: Any, ctx: StepContext) -> dict[str, Any]:
    stats = container.stats(stream=False)
    pre = stats.get("precpu_stats")
    if not _has_sample(pre):  # an engine that gave one sample only: take a second one
        first = stats.get("cpu_stats") or {}
        ctx.clock.sleep(1.0)
        stats = container.stats(stream=False)
        stats["precpu_stats"] = first
    return dict(stats)


def _fmt_mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB" if n < 10 * MIB else f"{n / MIB:.0f} MiB"


def run_stats(params: StatsParams, ctx: StepContext) -> StepResult:
    def go() -> StepResult:
        with _docker(ctx, params.docker_host) as client:
            containers = _project_containers(client, params.project, all_states=False)
            if not containers:
                return StepResult(Status.FAIL, f"no running containers of {params.project}")
            names = _display_names(containers)
            containers.sort(key=lambda c: names[c.id])
            with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
                windows = list(pool.map(lambda c: _window(c, ctx, params), containers))

        figures: dict[str, dict[str, Any]] = {}
        breaches: list[str] = []
        many = params.cpu_samples > 1
        for c, (stats, readings) in zip(containers, windows, strict=True):
            name = names[c.id]
            mem = stats.get("memory_stats") or {}
            usage = _memory_usage(mem)
            configured = int((c.attrs.get("HostConfig") or {}).get("Memory") or 0)
            limit = int(mem.get("limit") or configured) if configured else None
            mem_pct = usage / limit * 100.0 if usage is not None and limit else None
            cpu_pct = sustained(readings)
            figures[name] = {
                "memory_bytes": usage,
                "memory_limit_bytes": limit,
                "memory_percent": round(mem_pct, 1) if mem_pct is not None else None,
                "cpu_percent": round(cpu_pct, 1) if cpu_pct is not None else None,
                **({"cpu_readings": [round(r, 1) for r in readings]} if many else {}),
            }
            if mem_pct is not None and limit and mem_pct > params.max_memory_percent:
                breaches.append(
                    f"{name} memory {mem_pct:.0f}% of {_fmt_mib(limit)} limit "
                    f"(max {params.max_memory_percent:g}%)"
                )
            if cpu_pct is not None and cpu_pct > params.max_cpu_percent:
                over = sum(r > params.max_cpu_percent for r in readings)
                breaches.append(
                    f"{name} cpu {cpu_pct:.0f}% sustained ({over}/{len(readings)} readings over "
                    f"{params.max_cpu_percent:g}%, median)"
                    if many
                    else f"{name} cpu {cpu_pct:.0f}% (max {params.max_cpu_percent:g}%)"
                )
        details: dict[str, Any] = {"project": params.project, "containers": figures}
        if breaches:
            return StepResult(Status.FAIL, "; ".join(breaches), details=details)
        parts = []
        for name, f in figures.items():
            mem_text = (
                f"{f['memory_percent']:.0f}% mem"
                if f["memory_percent"] is not None
                else (
                    f"{_fmt_mib(f['memory_bytes'])} (no limit)"
                    if f["memory_bytes"] is not None
                    else "mem ?"
                )
            )
            cpu_text = f"{f['cpu_percent']:.0f}% cpu" if f["cpu_percent"] is not None else "cpu ?"
            parts.append(f"{name} {mem_text}, {cpu_text}")
        window = (
            f" (cpu: median of {params.cpu_samples} readings {params.cpu_interval_seconds:g} s "
            "apart)"
            if many
            else ""
        )
        return StepResult(
            Status.PASS,
            f"{len(figures)} containers within limits{window}: {'; '.join(parts)}",
            details=details,
        )

    return _guarded(go)


DOCKER_STATS = register(
    StepKind(
        "docker_stats",
        StatsParams,
        run_stats,
        describe=lambda p: (
            f"check memory < {p.max_memory_percent:g}% and cpu < "
            f"{p.max_cpu_percent:g}% for {p.project}"
        ),
    )
)


# -------------------------------------------------------------------------- docker_stop


class StopParams(DockerHostParams):
    project: str = Field(min_length=1)
    timeout: int = Field(default=30, ge=0, le=600)  # grace period before SIGKILL
    remove: bool = True  # `down` removes the containers and the project's networks


def _stop_text(params: StopParams, count: int | None, names: list[str]) -> str:
    what = (
        f"{count} container{'s' if count != 1 else ''} of project {params.project}"
        if count is not None
        else f"the running containers of project {params.project}"
    )
    listed = f" ({_join(names)})" if names else ""
    then = " and remove them" if params.remove else ""
    return f"stop {what}{listed} with timeout {params.timeout}s{then}"


def describe_stop(params: StopParams) -> str:
    """What a dry run reports: counts the containers when its engine answers quickly."""
    try:
        host = params.docker_host
        client = (
            docker.DockerClient(base_url=host, timeout=3) if host else docker.from_env(timeout=3)
        )
    except Exception:
        return _stop_text(params, None, [])
    try:
        running = _project_containers(client, params.project, all_states=False)
        names = _display_names(running)
        return _stop_text(params, len(running), sorted(names.values()))
    except Exception:
        return _stop_text(params, None, [])
    finally:
        client.close()


def run_stop(params: StopParams, ctx: StepContext) -> StepResult:
    def go() -> StepResult:
        with _docker(ctx, params.docker_host) as client:
            running = _project_containers(client, params.project, all_states=False)
            names = _display_names(running)
            if ctx.dry_run:
                text = _stop_text(params, len(running), sorted(names.values()))
                return StepResult(Status.SKIPPED, f"dry run: would {text}")

            def stop(c: Any) -> None:
                with suppress(docker.errors.NotFound):  # gone already
                    c.stop(timeout=params.timeout)

            if running:
                with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
                    list(pool.map(stop, running))  # compose stops them in parallel too
            removed = 0
            if params.remove:
                for c in _project_containers(client, params.project, all_states=True):
                    try:
                        c.remove()
                        removed += 1
                    except docker.errors.NotFound:
                        pass
                    except docker.errors.APIError:
                        pass  # still up: the verification below reports it
                label = f"{PROJECT_LABEL}={params.project}"
                for net in client.networks.list(filters={"label": label}):
                    with suppress(docker.errors.APIError):  # in use outside the project
                        net.remove()
            left = _project_containers(client, params.project, all_states=False)
        details: dict[str, Any] = {
            "stopped": sorted(names.values()),
            "removed": removed,
            "still_running": sorted(_display_names(left).values()),
        }
        if left:
            return StepResult(
                Status.FAIL,
                f"{len(left)} container(s) of {params.project} still running: "
                f"{_join(details['still_running'])}",
                details=details,
            )
        if not running:
            note = f", removed {removed} stopped" if removed else ""
            return StepResult(
                Status.PASS, f"no running containers of {params.project}{note}", details=details
            )
        note = f", removed {removed}" if params.remove else ""
        return StepResult(
            Status.PASS,
            f"stopped {len(running)} container{'s' if len(running) != 1 else ''} of "
            f"{params.project}{note}; none left running",
            details=details,
        )

    return _guarded(go)


DOCKER_STOP = register(
    StepKind("docker_stop", StopParams, run_stop, mutates=True, describe=describe_stop)
)
