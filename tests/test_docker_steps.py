"""docker_* steps against a real Docker engine (DOCKER_HOST; see tests/docker_fixtures.py).

Containers are busybox ones made by tests/stand_in_compose.py with the labels
docker-compose sets; each test has its own project name and removes what it made.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from typing import TYPE_CHECKING, Any

import docker
import pytest

from phases.checks.base import Status, StepContext, SystemClock
from phases.checks.docker_containers import ContainersParams, run_containers
from phases.checks.docker_images import ImagesParams, run_images
from phases.checks.docker_stats import StatsParams, run_stats
from phases.checks.docker_stop import StopParams, describe_stop, run_stop
from phases.runbook import StepSpec
from phases.runner import run_step
from tests.docker_fixtures import BASE_IMAGE

if TYPE_CHECKING:
    from tests.docker_fixtures import Compose

pytestmark = pytest.mark.docker

SLEEP = ["sleep", "3600"]
HEALTHY = {"test": ["CMD", "true"], "interval": "1s", "retries": 1}


def ctx(**kw: Any) -> StepContext:
    return StepContext(timeout=kw.pop("timeout", 30.0), **kw)


def running(client: Any, project: str) -> list[str]:
    label = f"com.docker.compose.project={project}"
    return sorted(c.name for c in client.containers.list(filters={"label": label}))


def test_containers_turn_healthy_within_the_wait(compose: Compose) -> None:
    compose.write(
        {
            "backend": {"command": SLEEP, "healthcheck": HEALTHY},
            "db": {"command": SLEEP, "healthcheck": HEALTHY},
        }
    )
    compose("up", "-d")
    params = ContainersParams(project=compose.project, services=["backend", "db"], wait_seconds=20)
    started = time.monotonic()
    result = run_containers(params, ctx())
    assert result.status is Status.PASS, result.evidence
    assert result.evidence == "2/2 containers healthy: backend, db"
    assert time.monotonic() - started < 10
    assert {c["health"] for c in result.details["containers"]} == {"healthy"}


def test_failing_healthcheck_no_healthcheck_and_crash_fail_within_the_wait(
    compose: Compose,
) -> None:
    compose.write(
        {
            "backend": {
                "command": SLEEP,
                "healthcheck": {"test": ["CMD", "false"], "interval": "1s", "retries": 1},
            },
            "redis": {"command": SLEEP},
            "nginx": {"command": "exit 1"},
        }
    )
    compose("up", "-d")
    started = time.monotonic()
    result = run_containers(ContainersParams(project=compose.project, wait_seconds=4), ctx())
    elapsed = time.monotonic() - started
    assert result.status is Status.FAIL
    assert "backend unhealthy after 4s (health: unhealthy)" in result.evidence
    assert "redis has no healthcheck" in result.evidence
    assert "nginx exited (1)" in result.evidence
    assert 3.5 <= elapsed < 8
    # A container without a healthcheck is fine when only "running" is asked for.
    only_redis = ContainersParams(
        project=compose.project, services=["redis"], expect="running", wait_seconds=2
    )
    result = run_containers(only_redis, ctx())
    assert (result.status, result.evidence) == (Status.PASS, "1/1 containers running: redis")
    # A service that never appears is reported, within the wait.
    missing = ContainersParams(project=compose.project, services=["worker"], wait_seconds=1)
    result = run_containers(missing, ctx())
    assert (result.status, result.evidence) == (Status.FAIL, "worker missing")


def test_wait_is_bounded_by_the_step_timeout(compose: Compose) -> None:
    compose.write({"backend": {"command": SLEEP}})
    compose("up", "-d")
    started = time.monotonic()
    params = ContainersParams(project=compose.project, services=["backend", "db"], wait_seconds=60)
    result = run_containers(params, ctx(timeout=4.0))
    assert result.status is Status.FAIL
    assert time.monotonic() - started < 4.0


def test_stop_dry_run_changes_nothing_then_stop_leaves_none(
    compose: Compose, docker_client: Any
) -> None:
    compose.write({"backend": {"command": SLEEP}, "db": {"command": SLEEP}})
    compose("up", "-d")
    before = running(docker_client, compose.project)
    assert len(before) == 2
    absent = ContainersParams(project=compose.project, expect="absent", wait_seconds=1)
    result = run_containers(absent, ctx())
    assert result.status is Status.FAIL
    assert result.evidence.startswith(f"2 container(s) of {compose.project} still running")

    params = {"project": compose.project, "timeout": 1}
    step = StepSpec(id="stop-old", name="Stop old services", kind="docker_stop", params=params)
    result = run_step(step, {}, ctx(dry_run=True))
    assert result.status is Status.SKIPPED
    assert result.evidence == (
        f"dry run: would stop 2 containers of project {compose.project} (backend, db) "
        "with timeout 1s and remove them"
    )
    result = run_stop(StopParams.model_validate(params), ctx(dry_run=True))
    assert result.status is Status.SKIPPED
    assert "would stop 2 containers" in result.evidence
    assert running(docker_client, compose.project) == before

    result = run_stop(StopParams.model_validate(params), ctx())
    assert result.status is Status.PASS, result.evidence
    assert result.evidence == (
        f"stopped 2 containers of {compose.project}, removed 2; none left running"
    )
    assert running(docker_client, compose.project) == []
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={compose.project}"}
        )
        == []
    )
    result = run_containers(absent, ctx())
    assert (result.status, result.evidence) == (
        Status.PASS,
        f"no running containers of {compose.project}",
    )
    # Stopping again is a no-op, not an error.
    result = run_stop(StopParams.model_validate(params), ctx())
    assert (result.status, result.evidence) == (
        Status.PASS,
        f"no running containers of {compose.project}",
    )


def test_images_present_missing_and_stale(compose: Compose) -> None:
    compose.write({"backend": {"build": "."}, "frontend": {"build": "."}})
    compose("build", "--no-cache")
    backend = f"{compose.project}-backend:latest"
    result = run_images(ImagesParams(names=[backend, compose.project]), ctx())
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith(f"2/2 images present: {backend}")
    assert sorted(result.details["found"][compose.project]) == [
        backend,
        f"{compose.project}-frontend:latest",
    ]

    nginx = f"{compose.project}-nginx:latest"
    result = run_images(ImagesParams(names=[backend, nginx]), ctx())
    assert (result.status, result.evidence) == (
        Status.FAIL,
        f"missing images: {nginx} (1/2 present)",
    )

    class Later(SystemClock):
        def now(self) -> float:
            return time.time() + 2 * 3600

    aged = ImagesParams(names=[backend], max_age_minutes=60)
    assert run_images(aged, ctx()).status is Status.PASS
    result = run_images(aged, ctx(clock=Later()))
    assert result.status is Status.FAIL
    assert result.evidence == f"older than 60 min: {backend} (1/1 present)"


@pytest.mark.parametrize("compose_version", ["v1", "v2"])
def test_the_shipped_image_check_accepts_what_docker_compose_v1_and_v2_build(
    compose: Compose, docker_client: Any, compose_version: str
) -> None:
    """The runbook calls `docker-compose` (v1 names the image PROJECT_SERVICE) or
    `docker compose` (v2: PROJECT-SERVICE); Phase 3's check must find either."""
    from pathlib import Path

    from phases.runbook import load_runbook, resolve_step

    compose.write({"backend": {"build": "."}})
    compose("build", "--no-cache")
    v1, v2 = f"{compose.project}_backend", f"{compose.project}-backend"
    if compose_version == "v1":
        docker_client.images.get(f"{v2}:latest").tag(v1, "latest")
        docker_client.images.remove(f"{v2}:latest", noprune=True)
    try:
        shipped = load_runbook(Path(__file__).resolve().parent.parent / "runbooks/nostrmaxi.yml")
        step = next(c for c in shipped.phase("build").checks if c.id == "images")
        values = {
            "compose_project": compose.project,
            "app_dir": str(compose.file.parent),
            "compose_file": compose.file.name,
        }
        kind, params = resolve_step(step, values)
        result = kind.run(params, ctx(run_started_at=0.0))
        built = v1 if compose_version == "v1" else v2
        assert (result.status, result.evidence) == (
            Status.PASS,
            f"1/1 images present: {built}:latest",
        )
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(f"{v1}:latest", noprune=True)


def test_an_image_check_by_compose_service_names_both_forms_when_missing(
    compose: Compose,
) -> None:
    params = ImagesParams(compose_project=compose.project, services=["nginx"])
    result = run_images(params, ctx())
    p = compose.project
    assert (result.status, result.evidence) == (
        Status.FAIL,
        f"missing images: {p}_nginx or {p}-nginx (0/1 present)",
    )


def test_stats_memory_over_the_limit_fails_and_small_passes(compose: Compose) -> None:
    # Files in /dev/shm (tmpfs) stay charged to the container's memory cgroup: held RSS.
    fill = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=14 2>/dev/null; touch /tmp/ready; "
    ready = {"test": ["CMD", "test", "-f", "/tmp/ready"], "interval": "1s", "retries": 3}
    compose.write(
        {
            "backend": {"command": fill + "sleep 3600", "mem_limit": "16m", "healthcheck": ready},
            "redis": {"command": SLEEP, "mem_limit": "64m", "healthcheck": HEALTHY},
            "nginx": {"command": SLEEP, "healthcheck": HEALTHY},  # no memory limit
        }
    )
    compose("up", "-d")
    up = run_containers(ContainersParams(project=compose.project, wait_seconds=20), ctx())
    assert up.status is Status.PASS, up.evidence

    result = run_stats(StatsParams(project=compose.project), ctx())
    assert result.status is Status.FAIL, result.evidence
    # 14 of 16 MiB held: about 88-91% depending on what the kernel counts as inactive
    assert re.match(
        r"backend memory (8[1-9]|9\d|100)% of 16 MiB limit \(max 80%\)", result.evidence
    )
    figures = result.details["containers"]
    assert figures["backend"]["memory_percent"] > 80
    assert figures["redis"]["memory_percent"] < 10
    assert figures["nginx"]["memory_limit_bytes"] is None
    assert figures["nginx"]["memory_percent"] is None
    assert figures["nginx"]["memory_bytes"] > 0
    assert all(f["cpu_percent"] is not None for f in figures.values())

    # Without the memory hog the others pass; no limit means no percent, not a warning.
    compose("down", "--timeout", "0")
    compose.write({"redis": {"command": SLEEP, "mem_limit": "64m"}, "nginx": {"command": SLEEP}})
    compose("up", "-d")
    result = run_stats(StatsParams(project=compose.project), ctx())
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith("2 containers within limits: ")
    assert "(no limit)" in result.evidence


def test_stats_without_running_containers_fails(docker_client: Any) -> None:
    result = run_stats(StatsParams(project="cutover-nothing-here"), ctx())
    assert (result.status, result.evidence) == (
        Status.FAIL,
        "no running containers of cutover-nothing-here",
    )


def test_docker_factory_seam_is_used(compose: Compose) -> None:
    compose.write({"backend": {"command": SLEEP}})
    compose("up", "-d")
    made: list[Any] = []

    def factory() -> Any:
        client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
        made.append(client)
        return client

    params = ContainersParams(project=compose.project, expect="running", wait_seconds=1)
    result = run_containers(params, ctx(docker_factory=factory))
    assert (result.status, result.evidence) == (Status.PASS, "1/1 containers running: backend")
    assert len(made) == 1
    made[0].close()


def test_an_image_removed_while_the_images_are_read_is_missing_not_an_error(
    compose: Compose, docker_client: Any
) -> None:
    """`docker image rm` (or a prune) between the engine's list of images and the inspect of
    one of them: that image is gone, and the others are still judged (the SDK's own
    `images.list()` raised ImageNotFound for the whole step)."""
    compose.write({"backend": {"build": "."}})
    compose("build")
    backend = f"{compose.project}-backend:latest"
    box = docker_client.containers.create(BASE_IMAGE, ["true"])
    try:  # an image of its own (its own id), so removing its one tag deletes it
        doomed = f"{compose.project}-doomed"
        box.commit(repository=doomed, tag="latest")
    finally:
        box.remove(force=True)
    client = docker.from_env()
    listing = client.api.images

    def list_then_remove(*args: Any, **kw: Any) -> Any:
        rows = listing(*args, **kw)
        client.images.remove(f"{doomed}:latest")  # gone before its inspect
        return rows

    client.api.images = list_then_remove
    params = ImagesParams(names=[backend, f"{doomed}:latest"])
    result = run_images(params, ctx(docker_factory=lambda: client))
    assert (result.status, result.evidence) == (
        Status.FAIL,
        f"missing images: {doomed}:latest (1/2 present)",
    )


DOWN_HOST = "unix:///tmp/cutover-no-engine-here/docker.sock"


@pytest.mark.parametrize(
    ("run", "params"),
    [
        (run_containers, ContainersParams(project="nostrmaxi", wait_seconds=1)),
        (run_images, ImagesParams(names=["nostrmaxi"])),
        (run_stats, StatsParams(project="nostrmaxi")),
        (run_stop, StopParams(project="nostrmaxi")),
    ],
    ids=["containers", "images", "stats", "stop"],
)
def test_engine_down_is_an_error_with_a_clear_reason(
    monkeypatch: pytest.MonkeyPatch, run: Any, params: Any
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DOWN_HOST)
    result = run(params, ctx())
    assert result.status is Status.ERROR
    assert result.evidence == f"Docker engine unreachable at {DOWN_HOST}: no such socket"


def test_engine_down_through_the_factory_and_in_describe(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = functools.partial(docker.DockerClient, base_url=DOWN_HOST)
    result = run_images(ImagesParams(names=["x"]), ctx(docker_factory=factory))
    assert result.status is Status.ERROR
    assert result.evidence == f"Docker engine unreachable at {DOWN_HOST}: no such socket"
    monkeypatch.setenv("DOCKER_HOST", DOWN_HOST)
    assert describe_stop(StopParams(project="nostrmaxi")) == (
        "stop the running containers of project nostrmaxi with timeout 30s and remove them"
    )
