"""Rollback's `start-old` starts the old deployment on the old deployment's engine.

Two engines the test tells apart: the bot's (the shared test engine, DOCKER_HOST) and the old
deployment's (a second private engine, tests/bridged_engine.py), named by the runbook's
`old_docker_host`. Phase 1 stops the old project there; the rollback starts it there again
(`docker-compose up -d` with that engine as DOCKER_HOST), never on the bot's engine; the
rollback report says where.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.engine import Engine
from bot.store.db import Database
from phases.checks.base import Status, StepContext, timed
from phases.runbook import RUN_PLACEHOLDERS, load_runbook, resolve_step
from tests.bridged_engine import BridgedEngine, bridged_engine  # noqa: F401
from tests.docker_fixtures import Compose, compose, docker_client  # noqa: F401
from tests.nostrmaxi_lines import shipped
from tests.standin_env import COMPOSE, Standin
from tests.test_runbook_for_real import events, rollback_report
from tests.test_runs import ALICE, BOB, approve_until

pytestmark = pytest.mark.docker


def _running(client: Any, project: str) -> dict[str, str]:
    label = f"com.docker.compose.project={project}"
    return {
        c.labels["com.docker.compose.service"]: c.status
        for c in client.containers.list(all=True, filters={"label": label})
    }


def test_rollback_starts_the_old_deployment_on_old_docker_host_and_says_where(
    pg_db: Database,
    standin: Standin,
    bridged_engine: BridgedEngine,  # noqa: F811
    docker_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    old = standin.old_project
    old_dir = standin.app_dir.parent / "old"
    # The old deployment lives on the other engine; the bot's engine has none of it.
    subprocess.run(
        [*COMPOSE, "-p", old, "-f", str(old_dir / "docker-compose.yml"), "up", "-d"],
        check=True,
        capture_output=True,
        cwd=old_dir,
        env={**os.environ, "DOCKER_HOST": bridged_engine.url},
    )
    for c in docker_client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={old}"}
    ):
        c.remove(force=True)
    data = yaml.safe_load((tmp_path / "runbook.yml").read_text(encoding="utf-8"))
    data["environments"]["standin"]["vars"]["old_docker_host"] = bridged_engine.url
    path = tmp_path / "runbook-two-engines.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    engine = Engine(pg_db, load_runbook(path), background=False)

    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    gate = approve_until(engine, run.id, stop_at="deploy-config")  # Phase 1 stopped it there
    assert gate is not None
    assert _running(bridged_engine.client, old) == {}
    notices: list[str] = []
    engine.surface.notice = lambda _run, text, *rest: notices.append(text)  # type: ignore[method-assign]
    assert engine.decide(gate.id, BOB, "rollback", reason="two engines").outcome == "rolled_back"

    assert _running(bridged_engine.client, old) == {"backend": "running"}
    assert _running(docker_client, old) == {}  # never on the bot's engine
    report = rollback_report(notices)
    assert (
        f"started on {bridged_engine.url} (docker_host): 1 container(s) of {old} running (backend)"
    ) in report
    done = events(pg_db, run.id, "run.rolled_back")[0]
    assert done["verified"] is True, report


def test_start_old_without_old_docker_host_uses_the_bots_engine_and_says_so(
    compose: Compose,  # noqa: F811
    tmp_path: Path,
) -> None:
    compose.write({"backend": {"command": ["sleep", "3600"]}})
    runbook = shipped()
    step = next(s for s in runbook.rollback if s.id == "start-old")
    values = {
        **RUN_PLACEHOLDERS,
        **runbook.values_for("prod", expand=False),  # old_docker_host: "" as shipped
        "compose": COMPOSE,
        "old_compose_project": compose.project,
        "old_compose_file": str(compose.file),
        "old_compose_dir": str(tmp_path),
    }
    kind, params = resolve_step(step, values)
    ctx = StepContext(timeout=60)
    result = timed(lambda: kind.run(params, ctx), ctx.clock)
    assert result.status is Status.PASS, result.evidence
    engine = os.environ["DOCKER_HOST"]
    assert result.evidence.endswith(
        f"; started on {engine} (the bot's DOCKER_HOST): 1 container(s) of {compose.project} "
        "running (backend)"
    )
