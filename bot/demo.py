"""`cutover demo`: a whole cutover on one machine, with no Slack and no Docker.

Starts local stand-ins (the NostrMaxi HTTP endpoints, an HTTPS server with a
certificate from a throwaway CA, a DNS server for `localhost`), writes an env
file with random secrets and a fresh backup, then opens the console on
`runbooks/demo.yml` with those addresses filled in.

The stand-ins live in a temporary folder; the bot's database does not: it is
cutover-demo.db in the working folder, so the audit trail of every demo run can be
exported and verified after quitting (said at start and at exit).
"""

from __future__ import annotations

import getpass
import os
import pwd
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from bot.app import run_console
from bot.settings import Settings
from bot.standin import (
    LoopbackDNSServer,
    NostrMaxiStandin,
    make_ca,
    make_leaf,
    nostrmaxi_env_values,
    tls_server,
)
from phases.yaml_loader import load_yaml_file

DEMO_RUNBOOK = Path(__file__).resolve().parent.parent / "runbooks" / "demo.yml"
DEMO_DATABASE = "cutover-demo.db"
DEMO_STEP_USER = "nobody"  # a root demo runs its steps as this user


def trail_commands(database: Path) -> str:
    """How to read the demo's audit trail after quitting: the exact commands."""
    url = f"sqlite:///{database}"
    return (
        f"The demo's audit trail is kept in {database}. Export or verify it with:\n"
        f"  cutover audit export --database-url {url}\n"
        f"  cutover audit verify --database-url {url}"
    )


def prepare(workdir: Path, stack: ExitStack, login: str) -> Path:
    """Starts the stand-ins and writes the filled-in runbook; returns its path."""
    app_dir, backups = workdir / "app", workdir / "backups"
    app_dir.mkdir(parents=True, exist_ok=True)
    backups.mkdir(exist_ok=True)
    (backups / "nostrmaxi.sql.gz").write_bytes(b"demo backup\n" * 64)
    env_file = workdir / ".env.prod"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in nostrmaxi_env_values().items()), encoding="utf-8"
    )
    env_file.chmod(0o600)
    ca = make_ca(workdir)
    leaf = make_leaf(workdir, ca, "localhost", 90, sans=["localhost", "127.0.0.1"])
    https = stack.enter_context(tls_server(leaf))
    app = NostrMaxiStandin()
    app.start()
    stack.callback(app.stop)
    dns = LoopbackDNSServer(records={"localhost": "127.0.0.1"})
    dns.start()
    stack.callback(dns.stop)

    data: dict[str, Any] = load_yaml_file(DEMO_RUNBOOK)  # the runbooks' own bounded reader
    # The stand-ins' addresses replace the placeholders; the rest of the runbook's demo
    # environment (public_env_keys: what of the env file is not secret) stays as written.
    data["environments"]["demo"] = {
        **data["environments"]["demo"],
        "domain": "localhost",
        "base_url": app.url,
        "expected_ip": "127.0.0.1",
        "env_file": str(env_file),
        "approvers": [f"console:{login}"],
        "vars": {
            "app_dir": str(app_dir),
            "backup_dir": str(backups),
            "tls_cert": str(leaf.cert),
            "https_port": str(https.port),
            "ca_file": str(ca.cert),
            "resolvers": [dns.address],
        },
    }
    path = workdir / "demo-runbook.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def hand_over(workdir: Path, user: str) -> None:
    """Lets `user` work where the demo's steps work: the app folder and the env file it
    installs from (the workdir itself only traversable)."""
    entry = pwd.getpwnam(user)
    workdir.chmod(0o711)
    for path in (workdir / "app", workdir / ".env.prod"):
        os.chown(path, entry.pw_uid, entry.pw_gid)


def run_demo(settings: Settings, as_user: str | None = None) -> int:
    from phases.runbook import load_runbook

    login = (as_user or getpass.getuser() or "demo").lower()
    database = Path.cwd().resolve() / DEMO_DATABASE
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cutover-demo-")))
        runbook_path = prepare(workdir, stack, login)
        update: dict[str, Any] = {"runbook": runbook_path, "database_url": f"sqlite:///{database}"}
        if os.geteuid() == 0 and not settings.step_user:
            # Never the runbook's programs as root: the demo's steps run as nobody, in
            # files the demo hands to it (docs/hardening.md, "The trust boundary").
            update["step_user"] = DEMO_STEP_USER
            hand_over(workdir, DEMO_STEP_USER)
        demo_settings = settings.model_copy(update=update)
        print(
            f"Demo environment up: NostrMaxi stand-in, HTTPS, DNS on 127.0.0.1; its files in "
            f"{workdir} (removed at exit).\n"
            f"The bot's database (runs, audit trail) is {database}: it stays after you quit.\n"
            "Try: /cutover start demo   then answer c (continue), r (rollback), tick ITEM;\n"
            "     /cutover deviation RUN TEXT   records what you did differently.\n"
        )
        try:
            return run_console(demo_settings, load_runbook(runbook_path), login)
        finally:
            print("\n" + trail_commands(database))
