"""A local stand-in of the NostrMaxi production environment, for whole runs of the real runbook.

Everything the runbook touches is real and on this machine: a git repository
with an origin, the NostrMaxi HTTP endpoints, a DNS server for the domain, a TLS
server with a certificate from a test CA, a backups folder, an env file with
seeded secrets, a throwaway PostgreSQL database as the target, and containers
on the real Docker engine made by the compose stand-in. The shipped runbook
`runbooks/nostrmaxi.yml` is used unchanged; only a `standin` environment is added.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.standin import (
    LoopbackDNSServer,
    NostrMaxiStandin,
    Response,
    make_ca,
    make_leaf,
    nostrmaxi_env_values,
    tls_server,
)
from phases.runbook import Runbook, load_runbook
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.docker_fixtures import BASE_IMAGE, STANDIN_HEALTHCHECK, _tag_lists
from tests.require import unavailable

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "runbooks" / "nostrmaxi.yml"
TOOL = [sys.executable, str(Path(__file__).with_name("stand_in_tool.py"))]
COMPOSE = [sys.executable, str(Path(__file__).with_name("stand_in_compose.py"))]
APPROVERS = ["T0TEST:U0ALICE", "T0TEST:U0BOB", "T0TEST:U0CAROL"]

# PID 1 ignores SIGTERM unless it traps it; real services stop on it within the grace time.
SERVICE_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
# Phase 7: the test account's pubkey (NIP-19's example key), as the NIP-05 claim's tick gives
# it, and the backend's line when the payment's webhook comes (`pay_invoice`).
STANDIN_PUBKEY = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
WEBHOOK_LINE = "LOG [WebhooksController] webhook received from btcpay"
STARTUP_LINE = "🚀 NostrMaxi running on http://localhost:3000"
NEST_STARTED = "LOG [NestApplication] Nest application successfully started +3ms"
BACKEND_COMMAND = [
    "sh",
    "-c",
    f"echo '{NEST_STARTED}'; echo '{STARTUP_LINE}'; trap 'exit 0' TERM; sleep 3600 & wait",
]
# The db holds PostgreSQL's data directory, where Phase 9's disk check runs df.
DB_COMMAND = [
    "sh",
    "-c",
    "mkdir -p /var/lib/postgresql/data; trap 'exit 0' TERM; sleep 3600 & wait",
]
SERVICES = {
    name: {
        "build": ".",
        "command": {"backend": BACKEND_COMMAND, "db": DB_COMMAND}.get(name, SERVICE_COMMAND),
        "healthcheck": STANDIN_HEALTHCHECK,
        "mem_limit": "64m",
    }
    for name in ("backend", "db", "redis", "nginx")
}


@dataclass
class Standin:
    app_dir: Path
    runbook: Runbook
    env_file: Path
    secret_values: list[str]
    app: NostrMaxiStandin
    dns: LoopbackDNSServer
    project: str
    old_project: str
    target_db_url: str
    ca_file: Path
    extra: dict[str, Any] = field(default_factory=dict)
    old_app: NostrMaxiStandin | None = None  # the old deployment's HTTP endpoints

    def fail(self, what: str) -> None:
        """Makes the stand-in tool's step `what` fail (build, build-frontend, migrate, drift…)."""
        (self.app_dir / ".standin" / f"fail-{what}").write_text("", encoding="utf-8")

    def calls(self) -> list[str]:
        log = self.app_dir / ".standin" / "calls.log"
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []

    def all_secret_forms(self) -> list[str]:
        forms = []
        for s in self.secret_values:
            forms += [s, base64.b64encode(s.encode()).decode()]
        return forms


# The runbook's own scripts, as the app ships them (the runbook runs each as a step).
SCRIPTS = {
    "production-readiness-check.sh": 'test -r "$1" && echo "readiness: 0 failures"\n',
    "validate-secrets-full.sh": 'grep -q "^JWT_SECRET=" "$1" && echo "secrets: 0 failures"\n',
    "backup-db.sh": 'mkdir -p backups && date > backups/last && echo "backup: ok"\n',
    "health-check.sh": (
        f"exec {sys.executable} -c 'import sys, urllib.request; "
        'urllib.request.urlopen(sys.argv[1] + "/health", timeout=5); '
        'print("health: 200", sys.argv[1])\' "$1"\n'
    ),
}


def _ship_scripts(app: Path) -> None:
    (app / "scripts").mkdir()
    for name, body in SCRIPTS.items():
        path = app / "scripts" / name
        path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
        path.chmod(0o755)


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )


def build_standin(
    tmp_path: Path,
    stack: ExitStack,
    docker_client: Any,
    approvers: list[str] | None = None,
    quorum: int = 1,
    allow_self_approval: bool = True,
) -> Standin:
    target_url = stack.enter_context(throwaway_pg_database("nostrmaxi_target"))
    libpq_url = target_url.replace("postgresql+psycopg://", "postgresql://")

    origin, app_dir = tmp_path / "origin.git", tmp_path / "app"
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "prisma").mkdir()
    from tests.stand_in_tool import SCHEMA

    (seed / "prisma" / "schema.prisma").write_text(SCHEMA, encoding="utf-8")
    _ship_scripts(seed)
    (seed / ".gitignore").write_text(
        ".env\n.standin/\ndist/\nfrontend/\nbackups/\n", encoding="utf-8"
    )
    project = f"nmx{uuid.uuid4().hex[:8]}"
    (seed / "docker-compose.prod.yml").write_text(
        yaml.safe_dump({"services": SERVICES}), encoding="utf-8"
    )
    _git("init", "-q", "-b", "main", cwd=seed)
    _git("add", ".", cwd=seed)
    _git("commit", "-q", "-m", "seed", cwd=seed)
    _git("clone", "-q", "--bare", str(seed), str(origin), cwd=tmp_path)
    _git("clone", "-q", str(origin), str(app_dir), cwd=tmp_path)
    (app_dir / ".standin").mkdir()

    values = nostrmaxi_env_values()
    values["DATABASE_URL"] = libpq_url
    env_file = tmp_path / ".env.prod"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")

    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "nostrmaxi-latest.sql.gz").write_bytes(b"backup" * 100)

    ca = make_ca(tmp_path)
    leaf = make_leaf(tmp_path, ca, "localhost", 90, sans=["localhost", "127.0.0.1"])
    cert_file = leaf
    https = tls_server(leaf)
    stack.enter_context(https)

    app = NostrMaxiStandin()
    app.route("GET", "/", Response(200, "<!doctype html><title>NostrMaxi</title>"))
    app.names["cutover-test"] = STANDIN_PUBKEY  # Phase 7 Test 2: the test account's claim
    app.route(  # … and Test 3: its subscription, upgraded by the payment
        "GET",
        f"/api/v1/subscription/list/{STANDIN_PUBKEY}",
        Response(200, '{"tier": "PRO"}', {"Content-Type": "application/json"}),
    )
    app.start()
    stack.callback(app.stop)
    dns = LoopbackDNSServer(records={"localhost": "127.0.0.1"})
    dns.start()
    stack.callback(dns.stop)

    # The old deployment: its backend container (with a healthcheck, as the runbook's
    # rollback checks ask Docker for its health) and its HTTP endpoints.
    old_app = NostrMaxiStandin()
    old_app.start()
    stack.callback(old_app.stop)
    old_project = f"{project}old"
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    (old_dir / "docker-compose.yml").write_text(
        yaml.safe_dump(
            {
                "services": {
                    "backend": {
                        "image": BASE_IMAGE,
                        "command": SERVICE_COMMAND,
                        "healthcheck": SERVICES["backend"]["healthcheck"],
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    subprocess.run(
        [*COMPOSE, "-p", old_project, "-f", str(old_dir / "docker-compose.yml"), "up", "-d"],
        check=True,
        capture_output=True,
        cwd=old_dir,
    )
    # Callbacks run last-in first-out: containers go before the images they use.
    stack.callback(_remove_images, docker_client, project)
    stack.callback(_remove_project, docker_client, old_project)
    stack.callback(_remove_project, docker_client, project)

    env = {
        "domain": "localhost",
        "base_url": app.url,
        "expected_ip": "127.0.0.1",
        "compose_project": project,
        "env_file": str(env_file),
        "database_url": libpq_url,
        "channel": "C0CUTOVER",
        "approvers": approvers if approvers is not None else APPROVERS,
        "quorum": quorum,
        "allow_self_approval": allow_self_approval,
        "vars": {
            "app_dir": str(app_dir),
            "compose": COMPOSE,
            "compose_file": "docker-compose.prod.yml",
            "npm": [*TOOL, "npm"],
            "npx": [*TOOL, "npx"],
            "git": ["git"],
            "old_compose_project": old_project,
            # Phase 1's name check, kept to this test's names on the shared engine.
            "old_container_pattern": f"^{old_project}",
            "old_compose_dir": str(old_dir),
            "old_base_url": old_app.url,
            "backup_dir": str(backups),
            "tls_cert": str(cert_file.cert),
            "staging_url": app.url,
            "public_resolvers": [dns.address, dns.address],
            "dns_resolvers": [dns.address],
            "https_port": str(https.port),
            # The shared engine's containers have no network, so none publishes a port:
            # Phase 5's published-ports check says "none checked" here (it is tested on a
            # bridged engine in tests/test_nostrmaxi_published_ports.py).
            "published_ports": [],
        },
    }
    data = yaml.safe_load(RUNBOOK.read_text(encoding="utf-8"))
    data["environments"]["standin"] = env
    path = tmp_path / "runbook.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Standin(
        app_dir=app_dir,
        runbook=load_runbook(path),
        env_file=env_file,
        secret_values=[
            values[k] for k in ("BTCPAY_API_KEY", "JWT_SECRET", "WEBHOOK_SECRET", "DATABASE_URL")
        ],
        app=app,
        dns=dns,
        project=project,
        old_project=old_project,
        target_db_url=libpq_url,
        ca_file=ca.cert,
        old_app=old_app,
    )


def pay_invoice(project: str, after: float = 1.0) -> threading.Thread:
    """Phase 7 Test 3 in the stand-in: `after` seconds from now the backend container logs
    the payment's webhook line (written to its PID 1's stdout, as the app would log it)."""
    import docker

    def webhook() -> None:
        time.sleep(after)  # the payment's tick comes first: the line must be after it
        backend = docker.from_env().containers.get(f"{project}-backend-1")
        backend.exec_run(["sh", "-c", f"echo '{WEBHOOK_LINE}' > /proc/1/fd/1"])

    thread = threading.Thread(target=webhook, daemon=True)
    thread.start()
    return thread


def _remove_project(client: Any, project: str) -> None:
    for c in client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    ):
        c.remove(force=True)


def _remove_images(client: Any, project: str) -> None:
    for tags in _tag_lists(client):
        for tag in tags:
            if tag.startswith(f"{project}-"):
                client.images.remove(tag, noprune=True)


@pytest.fixture
def standin(
    tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Standin]:
    if not postgres_reachable():
        unavailable("the target database needs the PostgreSQL server")
    with ExitStack() as stack:
        s = build_standin(tmp_path, stack, docker_client)
        monkeypatch.setenv("SSL_CERT_FILE", str(s.ca_file))
        yield s
