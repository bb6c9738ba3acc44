"""What was deployed, in the record: the commit of the environment's checkout (`git
rev-parse HEAD`, as Phase 2 leaves it) and the images its compose project runs after
"start services", captured by the `deployed` step against a real git repository and the
real Docker engine, audited with the step result, shown in the record and told to the
stakeholders when the cutover completes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.record import build_record, deployed_lines, record_text
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.reads import open_gate_id
from phases.checks.base import Status
from tests.docker_fixtures import Compose, compose, docker_client  # noqa: F401  (fixtures)
from tests.schedule_helpers import ALICE, BOB, START, clock_at, make_engine, write_runbook
from tests.servers import run_check
from tests.trail_checker import check_ended_feed, check_record, exported_rows

pytestmark = pytest.mark.docker

STAKEHOLDERS = "C0STAKEHOLDERS"
SLEEP = ["sleep", "3600"]


def git_repo(path: Path) -> str:
    """A checkout with one commit; returns HEAD's object name."""
    path.mkdir()
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
    }
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "v1"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True, text=True
    ).stdout.strip()


def started(compose: Compose) -> None:  # noqa: F811
    compose.write({"backend": {"build": ".", "command": SLEEP}, "db": {"command": SLEEP}})
    compose("build")
    compose("up", "-d")


def test_deployed_records_the_commit_and_each_running_image(
    compose: Compose,  # noqa: F811
    docker_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    head = git_repo(tmp_path / "app")
    started(compose)
    result = run_check("deployed", {"repo": str(tmp_path / "app"), "project": compose.project})
    assert result.status is Status.PASS, result.evidence
    artifact = result.details["artifact"]
    assert artifact["type"] == "deployed" and artifact["commit"] == head
    images = {i["service"]: i for i in artifact["images"]}
    assert sorted(images) == ["backend", "db"]
    backend = docker_client.containers.get(f"{compose.project}-backend-1")
    assert images["backend"]["id"] == backend.attrs["Image"]  # what `docker inspect` shows
    assert images["backend"]["image"] == f"{compose.project}-backend:latest"
    assert images["backend"]["repo_digests"] == []  # built here: no registry digest
    assert result.evidence.startswith(f"commit {head[:12]} of {tmp_path / 'app'}; 2 container(s)")


def test_deployed_fails_when_the_checkout_is_no_git_repository(
    compose: Compose,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "app").mkdir()
    started(compose)
    result = run_check("deployed", {"repo": str(tmp_path / "app"), "project": compose.project})
    assert result.status is Status.FAIL
    assert result.evidence.startswith("no commit: fatal: not a git repository")
    assert len(result.details["artifact"]["images"]) == 2  # what is known is still kept


def test_deployed_fails_when_nothing_of_the_project_runs(
    docker_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    git_repo(tmp_path / "app")
    result = run_check("deployed", {"repo": str(tmp_path / "app"), "project": "cutover-none"})
    assert result.status is Status.FAIL
    assert result.evidence == "no running container of cutover-none"


def runbook(tmp_path: Path, project: str) -> Any:
    return write_runbook(
        tmp_path,
        {
            "name": "Deploy",
            "phases": [
                {
                    "id": "start",
                    "number": 5,
                    "name": "Start production services",
                    "estimate_minutes": 5,
                    "checkpoint": "running",
                    "checks": [
                        {
                            "id": "deployed",
                            "name": "Deployed commit and image digests recorded",
                            "kind": "deployed",
                            "params": {"repo": "{app_dir}", "project": "{compose_project}"},
                        }
                    ],
                }
            ],
            "environments": {
                "prod": {
                    "domain": "prod.test",
                    "base_url": "http://127.0.0.1:9",
                    "channel": "C0RUN",
                    "stakeholders": STAKEHOLDERS,
                    "compose_project": project,
                    "approvers": ["T1:U1", "T1:U2"],
                    "vars": {"app_dir": str(tmp_path / "app")},
                }
            },
        },
    )


def test_record_and_stakeholders_show_the_deployed_commit_and_images(
    sqlite_db: Database,
    compose: Compose,  # noqa: F811
    docker_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    head = git_repo(tmp_path / "app")
    started(compose)
    engine, surface = make_engine(sqlite_db, runbook(tmp_path, compose.project), clock_at(START))
    run = engine.start_run("prod", ALICE)
    assert run.id is not None
    assert engine.decide(open_gate_id(sqlite_db, run.id) or 0, BOB, "continue").outcome == (
        "approved"
    )
    Scheduler(engine).tick()
    results = [
        json.loads(e.data) for e in audit.events(sqlite_db, run.id) if e.kind == "step.result"
    ]
    assert results[0]["artifact"]["commit"] == head  # audited as the step's result
    backend = docker_client.containers.get(f"{compose.project}-backend-1").attrs["Image"]
    rec = build_record(sqlite_db, engine.runbook, run.id)
    text = record_text(rec, engine.runbook)
    assert f"Deployed: commit {head} of {tmp_path / 'app'}" in text
    assert (
        f"- backend: {compose.project}-backend:latest {backend[:19]} "
        "(built here, no registry digest)"
    ) in text
    feed = [c.args[1] for c in surface.of("notice") if c.args[2:] == (STAKEHOLDERS,)]
    [ended] = [m for m in feed if m.startswith("🎉")]  # told with the record's facts
    assert ended.splitlines()[0] == (
        f"🎉 prod: cutover completed (run #{run.id}): commit {head[:12]}, 2 image(s) running."
    )
    check_ended_feed(ended, exported_rows(sqlite_db, run.id), engine.runbook)
    assert f"Deployed: commit {head}" in feed[-1]  # the record, the feed's last message
    check_record(text, exported_rows(sqlite_db, run.id), engine.runbook)


def test_record_says_when_the_deployed_step_never_ran() -> None:
    assert deployed_lines(None, expected=True) == [
        "Deployed: not captured (the run never reached its deployed step)"
    ]
    assert deployed_lines(None, expected=False) == []  # a runbook without one: nothing to say
