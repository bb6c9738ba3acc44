"""Fixtures for tests against a real Docker engine (DOCKER_HOST).

Start one with `eval "$(scripts/docker-engine.sh start)"`; without it these tests skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.require import unavailable

BASE_IMAGE = "cutover-test/busybox:latest"
STAND_IN = Path(__file__).with_name("stand_in_compose.py")
HOW_TO = 'start the engine with: eval "$(scripts/docker-engine.sh start)"'
# The healthcheck of the long-lived stand-in services. Each check is a `docker exec` of
# `true` (runc, containerd, dockerd): about 40 ms of CPU, so 1 s apart a scenario's five
# healthchecked containers kept a fifth of a CPU busy for the whole test, in a suite that
# is CPU-bound. 3 s apart a service is healthy about 2 s later after its start, and the
# shipped runbook still waits "healthy within 60 s". Tests of health semantics themselves
# (tests/test_docker_steps.py) keep their own 1 s checks.
STANDIN_HEALTHCHECK = {"test": ["CMD", "true"], "interval": "3s", "retries": 3}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    host = os.environ.get("DOCKER_HOST")
    if not host:
        unavailable(f"DOCKER_HOST is not set; {HOW_TO}")
    import docker

    try:
        client = docker.DockerClient(base_url=host, timeout=30)
        client.ping()
    except Exception as exc:
        unavailable(f"Docker engine at {host} unreachable ({type(exc).__name__}); {HOW_TO}")
    try:
        client.images.get(BASE_IMAGE)
    except Exception:
        client.close()
        unavailable(f"image {BASE_IMAGE} missing at {host}; {HOW_TO}")
    yield client
    client.close()


class Compose:
    """Runs tests/stand_in_compose.py for one project; removes everything it made afterwards."""

    def __init__(self, client: Any, project: str, tmp_path: Path) -> None:
        self.client = client
        self.project = project
        self.file = tmp_path / "compose.yml"

    def write(self, services: dict[str, dict[str, Any]]) -> None:
        self.file.write_text(yaml.safe_dump({"services": services}), encoding="utf-8")

    def __call__(self, *args: str) -> str:
        cmd = [sys.executable, str(STAND_IN), "-p", self.project, "-f", str(self.file), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode:
            raise AssertionError(f"{' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def cleanup(self) -> None:
        label = f"com.docker.compose.project={self.project}"
        for c in self.client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)
        for tags in _tag_lists(self.client):
            for tag in tags:
                if tag.startswith(f"{self.project}-"):
                    self.client.images.remove(tag, noprune=True)


def _tag_lists(client: Any) -> list[list[str]]:
    """Each image's tags, from the engine's one list call: the SDK's `images.list()` inspects
    every image after listing them, and raised ImageNotFound for one another test removed in
    between (seen once in a CI run with four workers)."""
    return [row.get("RepoTags") or [] for row in client.api.images()]


@pytest.fixture
def compose(docker_client: Any, tmp_path: Path) -> Iterator[Compose]:
    project = f"cutover-t{uuid.uuid4().hex[:8]}"
    stand_in = Compose(docker_client, project, tmp_path)
    yield stand_in
    stand_in.cleanup()
