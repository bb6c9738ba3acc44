"""Phase 1 "if running on different host/port": a Docker step names its engine
(`docker_host`, the runbook's `old_docker_host` var); given, it wins over DOCKER_HOST; an
engine that does not answer is an ERROR naming that host; a value that is no engine address
is refused with how to write one."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import ValidationError

from phases.checks.base import Status, StepContext
from phases.checks.docker_containers import ContainersParams, run_containers
from tests.docker_fixtures import Compose, compose, docker_client  # noqa: F401
from tests.nostrmaxi_lines import run_shipped, shipped_step
from tests.standin_env import SERVICE_COMMAND

NOWHERE = "unix:///tmp/cutover-no-such-engine.sock"


@pytest.mark.docker
def test_phase_1_stops_the_old_project_on_the_engine_the_runbook_names(
    compose: Compose,  # noqa: F811
    docker_client: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = os.environ["DOCKER_HOST"]  # the shared test engine's socket, given explicitly
    # A service that stops on SIGTERM, as real ones do (a bare `sleep` as PID 1 ignores it, and
    # the step would wait out its 30 s grace before killing it).
    compose.write({"backend": {"command": SERVICE_COMMAND}})
    compose("up", "-d")
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)  # the bot's own engine is elsewhere
    values = {"old_compose_project": compose.project, "old_docker_host": engine}
    _, params = shipped_step("stop-old", "compose-down", **values)
    assert params.docker_host == engine
    result = run_shipped("stop-old", "compose-down", StepContext(timeout=60), **values)
    assert result.status is Status.PASS, result.evidence
    label = f"com.docker.compose.project={compose.project}"
    assert docker_client.containers.list(filters={"label": label}) == []

    # Without old_docker_host the step goes to DOCKER_HOST, which does not answer: it says so.
    result = run_shipped(
        "stop-old", "compose-down", StepContext(timeout=10), old_compose_project=compose.project
    )
    assert result.status is Status.ERROR
    assert result.evidence == f"Docker engine unreachable at {NOWHERE}: no such socket"


@pytest.mark.parametrize(
    ("host", "reason"),
    [(NOWHERE, "no such socket"), ("tcp://127.0.0.1:1", "connection refused")],
)
def test_an_engine_that_does_not_answer_is_an_error_naming_that_host(
    host: str, reason: str
) -> None:
    params = ContainersParams(project="nostrmaxi-old", expect="absent", docker_host=host)
    result = run_containers(params, StepContext(timeout=10))
    assert result.status is Status.ERROR
    assert result.evidence == f"Docker engine unreachable at {host}: {reason}"


def test_a_docker_host_that_is_no_engine_address_is_refused_saying_how_to_write_it() -> None:
    with pytest.raises(ValidationError) as err:
        ContainersParams(project="p", expect="absent", docker_host="10.0.0.5:2375")
    assert (
        "docker_host '10.0.0.5:2375' is not an engine address: write it as "
        "unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST"
    ) in str(err.value)
