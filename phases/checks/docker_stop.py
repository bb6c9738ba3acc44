"""`docker_stop`: phase 1's `docker-compose down --timeout 30` of the old services (an action:
a dry run says what it would stop)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepResult, register
from phases.checks.docker_client import (
    PROJECT_LABEL,
    DockerHostParams,
    _display_names,
    _docker,
    _guarded,
    _join,
    _project_containers,
)


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
    import docker  # when a step runs, not at import (phases/checks/__init__.py)

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
    import docker.errors  # when a step runs, not at import (phases/checks/__init__.py)

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
