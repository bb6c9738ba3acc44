"""Phase 1 "docker ps | grep nostrmaxi should return nothing": the shipped check finds any
running container whose name matches the runbook's pattern, not only the old Compose
project's (an old deployment started by hand, or under another project name), on the real
Docker engine."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from phases.checks.base import Status, StepContext
from phases.checks.docker_containers import ContainersParams
from standins.fast_clock import FastClock
from tests.docker_fixtures import BASE_IMAGE
from tests.nostrmaxi_lines import run_shipped, shipped, shipped_step

if TYPE_CHECKING:
    from tests.docker_fixtures import Compose

pytestmark = pytest.mark.docker

SLEEP = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def test_the_shipped_pattern_is_the_runbook_s_grep_word() -> None:
    assert shipped().vars["old_container_pattern"] == "nostrmaxi"
    _, params = shipped_step("stop-old", "none-left")
    assert params.name_pattern == "nostrmaxi" and params.expect == "absent"


def test_a_stray_container_named_like_the_app_fails_phase_1_until_it_is_gone(
    compose: Compose, docker_client: Any
) -> None:
    compose.write({"backend": {"command": SLEEP}})
    compose("up", "-d")
    for c in docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={compose.project}"}
    ):
        c.stop(timeout=1)  # the old project is down: its stopped containers remain
    token = f"nmx{uuid.uuid4().hex[:8]}"
    stray = docker_client.containers.run(
        BASE_IMAGE, SLEEP, name=f"{token}-legacy-backend", detach=True
    )
    try:
        values = {"old_compose_project": compose.project, "old_container_pattern": token}
        # The stray never goes: the check's 10 s wait for it passes on a fast-forwarded clock
        # (each look at the engine is real; the 1 s between looks is skipped).
        ctx = StepContext(timeout=20.0, clock=FastClock())
        result = run_shipped("stop-old", "none-left", ctx, **values)
        assert result.status is Status.FAIL
        assert result.evidence.startswith(
            f"1 container(s) named like '{token}' still running after "
        )
        assert result.evidence.endswith(f": {token}-legacy-backend")
    finally:
        stray.remove(force=True)
    result = run_shipped("stop-old", "none-left", StepContext(timeout=20.0), **values)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence == (
        f"no running containers of {compose.project} (1 stopped container(s) remain); "
        f"none running named like '{token}'"
    )


def test_a_name_pattern_is_only_for_absent_and_must_compile() -> None:
    with pytest.raises(ValueError, match="name_pattern is for expect: absent"):
        ContainersParams(project="p", expect="running", name_pattern="x")
    with pytest.raises(ValueError, match="'nostr\\(' is not a regular expression"):
        ContainersParams(project="p", expect="absent", name_pattern="nostr(")
