"""Phase 9 "Monitor disk space: df -h" on the production data volume: df runs inside the db
container (Docker exec) on PostgreSQL's data directory, and with no threshold in the runbook
none is invented: the usage is shown and the evidence says it was not judged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from phases.checks.base import Status, StepContext
from phases.checks.disk import DiskParams, check_disk
from phases.checks.docker_client import PROJECT_LABEL, SERVICE_LABEL
from tests.docker_fixtures import BASE_IMAGE, docker_client  # noqa: F401
from tests.nostrmaxi_lines import run_shipped, shipped_step

DATA = "/var/lib/postgresql/data"


@pytest.fixture
def db_container(docker_client: Any) -> Iterator[tuple[str, Any]]:  # noqa: F811
    """A running `db` service whose data directory is its own 8 MiB volume, 7 MiB full."""
    project = f"cutover-t{uuid.uuid4().hex[:8]}"
    c = docker_client.containers.run(
        BASE_IMAGE,
        ["sleep", "3600"],
        name=f"{project}-db-1",
        labels={PROJECT_LABEL: project, SERVICE_LABEL: "db"},
        tmpfs={DATA: "size=8m"},
        detach=True,
    )
    try:
        code, out = c.exec_run(["dd", "if=/dev/zero", f"of={DATA}/fill", "bs=1048576", "count=7"])
        assert code == 0, out
        yield project, c
    finally:
        c.remove(force=True)


@pytest.mark.docker
def test_shipped_disk_check_reads_the_db_container_s_data_volume_unjudged(
    db_container: tuple[str, Any],
) -> None:
    project, _ = db_container
    _, params = shipped_step("monitoring", "disk")
    assert params.max_used_percent is None  # the runbook gives no threshold
    result = run_shipped("monitoring", "disk", StepContext(timeout=30), compose_project=project)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith(f"{DATA} in {project}/db 88% used, 0.0 GiB free")
    assert result.evidence.endswith("(no threshold (the runbook gives none): shown, not judged)")
    assert result.details["used_percent"] == 88 and result.details["threshold"] is None


@pytest.mark.docker
def test_a_threshold_the_runbook_gives_fails_a_fuller_volume(
    db_container: tuple[str, Any],
) -> None:
    _, c = db_container
    params = DiskParams(container=c.name, path=DATA, max_used_percent=80)
    result = check_disk(params, StepContext(timeout=30))
    assert result.status is Status.FAIL, result.evidence
    assert result.evidence == f"{DATA} in container {c.name} 88% used, 0.0 GiB free (max 80%)"


@pytest.mark.docker
def test_no_running_db_container_is_an_error_naming_it(docker_client: Any) -> None:  # noqa: F811
    params = DiskParams(project="cutover-tnone", service="db", path=DATA)
    result = check_disk(params, StepContext(timeout=30))
    assert result.status is Status.ERROR
    assert result.evidence == "cannot run df: no running cutover-tnone/db"


class _LosesOutput:
    """The real engine, except that the first `lose` execs come back as the CI machine's
    did once under load: exit 0 and no output at all."""

    def __init__(self, client: Any, lose: int) -> None:
        self._client, self.lose, self.execs = client, lose, 0
        self.containers = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def list(self, **kw: Any) -> list[Any]:
        return [_Exec(self, c) for c in self._client.containers.list(**kw)]

    def close(self) -> None:
        pass


class _Exec:
    def __init__(self, engine: _LosesOutput, container: Any) -> None:
        self._engine, self._c = engine, container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)

    def exec_run(self, cmd: list[str]) -> tuple[int, bytes]:
        self._engine.execs += 1
        code, out = self._c.exec_run(cmd)  # df really runs, every time
        return (0, b"") if self._engine.execs <= self._engine.lose else (code, out)


def df_losing(client: Any, project: str, lose: int, path: str = DATA) -> tuple[Any, _LosesOutput]:
    """The disk check on the db service, its engine losing the first `lose` execs' output."""
    engine = _LosesOutput(client, lose)
    params = DiskParams(project=project, service="db", path=path)
    return check_disk(params, StepContext(timeout=30, docker_factory=lambda: engine)), engine


@pytest.mark.docker
def test_an_exec_that_lost_its_output_is_read_again_and_the_evidence_says_so(
    db_container: tuple[str, Any],
    docker_client: Any,  # noqa: F811
) -> None:
    project, _ = db_container
    result, engine = df_losing(docker_client, project, lose=1)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith(f"{DATA} in {project}/db 88% used")
    assert result.evidence.endswith("(read 2 times: the engine returned no output before)")
    assert engine.execs == 2


@pytest.mark.docker
def test_an_engine_that_never_returns_output_is_an_error_after_three_reads(
    db_container: tuple[str, Any],
    docker_client: Any,  # noqa: F811
) -> None:
    project, _ = db_container
    result, engine = df_losing(docker_client, project, lose=99)
    assert result.status is Status.ERROR
    assert result.evidence == f"df -P {DATA} in {project}/db failed (exit 0): no output (3 reads)"
    assert engine.execs == 3


@pytest.mark.docker
def test_a_failing_df_is_said_at_once_not_read_again(
    db_container: tuple[str, Any],
    docker_client: Any,  # noqa: F811
) -> None:
    project, _ = db_container
    result, engine = df_losing(docker_client, project, lose=0, path="/no/such/dir")
    assert result.status is Status.ERROR
    assert result.evidence.startswith(f"df -P /no/such/dir in {project}/db failed (exit 1)")
    assert engine.execs == 1
