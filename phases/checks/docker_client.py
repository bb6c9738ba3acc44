"""The Docker engine, as the Docker steps reach it: the client of a step, the compose
project's containers, and what an unreachable engine or an API error becomes.

Compose marks its containers with the labels below, so the Docker steps find a project's
containers the way `docker-compose ps` does, through the Docker SDK: `ctx.docker_factory()`
when set, else `docker.from_env()` (DOCKER_HOST), or a step's own `docker_host`. An engine
that cannot be reached is an ERROR with a one-line reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from pydantic import field_validator

from phases.checks.base import Status, StepContext, StepParams, StepResult

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


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
    import docker.errors  # when a step runs, not at import (phases/checks/__init__.py)
    import requests

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
    import docker.errors  # when a step runs, not at import (phases/checks/__init__.py)

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


_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def _engine_epoch(value: Any) -> float | None:
    """An engine's RFC 3339 time (nanoseconds, as Docker writes them) in epoch seconds."""
    m = _STAMP.match(str(value or ""))
    if not m:
        return None
    base, frac, tz = m.groups()
    stamp = datetime.fromisoformat(base + ("+00:00" if tz == "Z" else tz))
    return stamp.timestamp() + (float(f"0.{frac}") if frac else 0.0)
