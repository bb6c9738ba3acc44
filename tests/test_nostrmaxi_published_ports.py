"""Phase 5's published ports (3000, 80, 443 as `docker-compose ps` shows them), for real.

The containers run on a second private engine that has a bridge and Docker's userland
proxy (tests/bridged_engine.py), so a published port really listens on the host: the
shipped step `start/published-ports` must see Docker's binding AND get a TCP connection
accepted and held on the host port. Host ports are free loopback ports of this machine in
place of production's 3000, 80 and 443 (the runbook's `published_ports` var)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from phases.checks.base import Status, StepContext
from standins.fast_clock import FastClock
from tests.bridged_engine import BridgedEngine, bridged_engine, free_port  # noqa: F401
from tests.docker_fixtures import BASE_IMAGE, Compose, compose, docker_client  # noqa: F401
from tests.nostrmaxi_lines import run_shipped

pytestmark = pytest.mark.docker

# busybox httpd on each container port (it backgrounds itself), then wait for SIGTERM.
SERVE = (
    "mkdir -p /w && echo ok > /w/index.html && for p in {ports}; do httpd -p $p -h /w; done; "
    "trap 'exit 0' TERM; sleep 3600 & wait"
)


class Project:
    def __init__(self, engine: BridgedEngine) -> None:
        self.engine = engine
        self.name = f"nmxp{uuid.uuid4().hex[:8]}"

    def service(
        self, service: str, publish: dict[int, int], listen: list[int] | None = None
    ) -> None:
        """A running container of `service`, publishing container port → loopback host port,
        with httpd listening on `listen` (default: every published container port)."""
        ports = listen if listen is not None else list(publish)
        self.engine.client.containers.run(
            BASE_IMAGE,
            ["sh", "-c", SERVE.format(ports=" ".join(map(str, ports)) or "")],
            name=f"{self.name}-{service}-1",
            detach=True,
            labels={
                "com.docker.compose.project": self.name,
                "com.docker.compose.service": service,
            },
            ports={f"{c}/tcp": ("127.0.0.1", h) for c, h in publish.items()},
        )

    def remove(self) -> None:
        label = f"com.docker.compose.project={self.name}"
        for c in self.engine.client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)


@pytest.fixture
def project(bridged_engine: BridgedEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:  # noqa: F811
    monkeypatch.setenv("DOCKER_HOST", bridged_engine.url)  # the bot's engine: the new stack's
    p = Project(bridged_engine)
    yield p
    p.remove()


def _ports() -> tuple[int, int, int]:
    return free_port(), free_port(), free_port()


def _run(project: Project, ports: list[str]) -> Any:
    return run_shipped(
        "start",
        "published-ports",
        StepContext(timeout=30, clock=FastClock()),  # the 10 s wait for the ports, fast
        compose_project=project.name,
        published_ports=ports,
    )


def test_backend_and_nginx_publishing_3000_80_443_and_answering_pass(project: Project) -> None:
    app, http, https = _ports()
    project.service("backend", {3000: app})
    project.service("nginx", {80: http, 443: https})
    result = _run(project, [f"backend {app}:3000", f"nginx {http}:80", f"nginx {https}:443"])
    assert result.status is Status.PASS, result.evidence
    assert result.evidence == (
        f"3/3 ports published as docker-compose ps shows them and answering: "
        f"backend 127.0.0.1:{app}->3000/tcp, nginx 127.0.0.1:{http}->80/tcp, "
        f"nginx 127.0.0.1:{https}->443/tcp (a TCP connection to each host port on 127.0.0.1 "
        "was accepted and held open 0.3 s)"
    )


def test_nginx_not_publishing_443_fails_naming_that_port(project: Project) -> None:
    app, http, https = _ports()
    project.service("backend", {3000: app})
    project.service("nginx", {80: http}, listen=[80, 443])
    result = _run(project, [f"backend {app}:3000", f"nginx {http}:80", f"nginx {https}:443"])
    assert result.status is Status.FAIL
    assert result.evidence == (
        f"nginx does not publish 443/tcp on host port {https} "
        f"(it publishes: 127.0.0.1:{http}->80/tcp)"
    )


def test_a_published_port_nothing_listens_behind_fails(project: Project) -> None:
    app = free_port()
    project.service("backend", {3000: app}, listen=[])  # Docker publishes it; no server
    result = _run(project, [f"backend {app}:3000"])
    assert result.status is Status.FAIL
    assert result.evidence == (
        f"backend 127.0.0.1:{app}->3000/tcp published, but 127.0.0.1:{app}: "
        "accepted, then closed at once: nothing listens behind it"
    )


def test_a_missing_service_fails_naming_it(project: Project) -> None:
    app, http = free_port(), free_port()
    project.service("backend", {3000: app})
    result = _run(project, [f"backend {app}:3000", f"nginx {http}:80"])
    assert result.status is Status.FAIL
    assert result.evidence == "nginx: no running container"


def test_a_container_without_a_network_publishes_nothing_and_fails(
    compose: Compose,  # noqa: F811
    docker_client: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shared engine's containers (network_mode none) cannot publish: never a pass."""
    import os

    compose.write({"backend": {"command": ["sleep", "3600"]}})
    compose("up", "-d")
    monkeypatch.setenv("DOCKER_HOST", os.environ["DOCKER_HOST"])
    result = run_shipped(
        "start",
        "published-ports",
        StepContext(timeout=30, clock=FastClock()),
        compose_project=compose.project,
        published_ports=["backend 3000:3000"],
    )
    assert result.status is Status.FAIL
    assert result.evidence == (
        "backend does not publish 3000/tcp on host port 3000 (it publishes: nothing)"
    )


def test_no_ports_asked_for_is_skipped_and_says_so() -> None:
    result = run_shipped(
        "start", "published-ports", StepContext(timeout=5), compose_project="x", published_ports=[]
    )
    assert result.status is Status.SKIPPED
    assert result.evidence == "no published ports asked for (ports is empty): none checked"


def test_probe_host_names_where_the_bot_connects(project: Project) -> None:
    """A bot in a container reaches the host's ports at another address (ports_probe_host);
    the evidence says where it connected."""
    app = free_port()
    project.service("backend", {3000: app})  # bound to 127.0.0.1 only
    result = run_shipped(
        "start",
        "published-ports",
        StepContext(timeout=30, clock=FastClock()),
        compose_project=project.name,
        published_ports=[f"backend {app}:3000"],
        ports_probe_host="127.0.0.2",
    )
    assert result.status is Status.FAIL
    assert result.evidence == (
        f"backend 127.0.0.1:{app}->3000/tcp published, but 127.0.0.2:{app}: connection refused"
    )
