"""The deployment examples (deploy/, docs/deploy.md) are what an operator can run: the compose
file passes `docker compose config` (or docker-compose's) and wires what it promises; the
systemd unit calls commands that exist."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.cli import EXIT_OK, main
from tests.require import unavailable

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    unavailable(
        "neither `docker compose` nor docker-compose is installed (scripts/test.sh installs it)"
    )
    raise AssertionError  # unreachable


def compose_config(tmp_path: Path, *, env_files: bool = True) -> subprocess.CompletedProcess[str]:
    """`… config` on a copy of deploy/, set up as the file's header says."""
    folder = tmp_path / "deploy"
    shutil.copytree(DEPLOY, folder)
    if env_files:
        shutil.copy(folder / "cutover.env.example", folder / "cutover.env")
        shutil.copy(folder / "postgres.env.example", folder / "postgres.env")
    shutil.copy(REPO / "runbooks" / "nostrmaxi.yml", folder / "runbook.yml")
    env = {**os.environ, "DOCKER_GID": "998"}
    return subprocess.run(
        [*compose_command(), "config"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def config(tmp_path: Path) -> dict:
    done = compose_config(tmp_path)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def mounts(service: dict) -> dict[str, str]:
    """target → source of a service's volumes, in either of compose's output forms."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v.get("source", ""), v["target"]
        out[target] = source
    return out


def test_compose_file_passes_compose_config(config: dict) -> None:
    assert set(config["services"]) == {"bot", "db"}


def test_bot_keeps_its_data_in_a_volume_and_reaches_the_docker_socket(config: dict) -> None:
    bot = mounts(config["services"]["bot"])
    assert bot["/data"] == "botdata" and "botdata" in config["volumes"]
    assert bot["/var/run/docker.sock"] == "/var/run/docker.sock"
    assert config["services"]["bot"]["group_add"] == ["998"]  # the socket's group, from DOCKER_GID
    assert mounts(config["services"]["db"])["/var/lib/postgresql/data"] == "pgdata"


def test_runbook_is_mounted_where_cutover_runbook_points(config: dict, tmp_path: Path) -> None:
    bot = config["services"]["bot"]
    target = bot["environment"]["CUTOVER_RUNBOOK"]
    assert mounts(bot)[target] == str(tmp_path / "deploy" / "runbook.yml")


def test_secrets_come_from_the_env_file_and_the_database_url_names_the_db_service(
    config: dict,
) -> None:
    env = config["services"]["bot"]["environment"]
    assert env["SLACK_BOT_TOKEN"].startswith("xoxb-") and env["SLACK_SIGNING_SECRET"]
    url = make_url(env["CUTOVER_DATABASE_URL"])
    assert url.host in config["services"] and url.database == "cutover"
    db = config["services"]["db"]
    assert url.password == db["environment"]["POSTGRES_PASSWORD"]
    assert config["services"]["bot"]["depends_on"]["db"]["condition"] == "service_healthy"
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    assert "xoxb-" not in text and "POSTGRES_PASSWORD:" not in text  # no secret in the file


def test_compose_without_the_env_file_is_refused(tmp_path: Path) -> None:
    done = compose_config(tmp_path, env_files=False)
    assert done.returncode != 0 and "env file" in done.stderr + done.stdout


def test_systemd_unit_runs_commands_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    unit = (DEPLOY / "cutover-bot.service").read_text(encoding="utf-8")
    commands = [
        shlex.split(line.split("=", 1)[1])
        for line in unit.splitlines()
        if line.startswith(("ExecStart=", "ExecStartPre="))
    ]
    assert [c[1:] for c in commands] == [["db", "upgrade"], ["serve"]]
    for argv in commands:
        with pytest.raises(SystemExit) as exited:
            main([*argv[1:], "--help"])
        assert exited.value.code == EXIT_OK


def test_deploy_guide_is_linked_from_the_readme() -> None:
    assert "docs/deploy.md" in (REPO / "README.md").read_text(encoding="utf-8")
    guide = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for topic in (
        "CREATE ROLE",
        "cutover db upgrade",
        "pg_dump",
        "pg_restore",
        "journalctl",
        "/metrics",
        "cutover audit verify",
        "deploy/cutover-bot.service",
    ):
        assert topic in guide, topic
