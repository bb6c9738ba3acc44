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

import httpx
import yaml

from bot.app import run_console
from bot.console import Console
from bot.demo_standins import BackendLogs, DemoClock, payment_webhook, statuspage_standin
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
DEMO_PROJECT = "nostrmaxi"
STATUSPAGE_KEY_VAR = "CUTOVER_RUNBOOK_DEMO_STATUSPAGE_KEY"  # a ${VAR}, as a real key would be
DEMO_HELP = """Demo commands (the stand-ins, and the demo's clock):
  wait N            let N minutes pass on the demo's clock (monitoring rounds come every 5)
  webhook           a payment webhook reaches the backend during the next wait (a PRO payment)
  webhook forged    one with a bad signature does (the backend turns it down)
  claim NAME        a user claims NAME@localhost (NIP-05): the NIP-05 API answers it"""


class Demo:
    """The stand-ins the demo's prompt drives: the backend, its log, the clock."""

    def __init__(self, clock: DemoClock) -> None:
        self.clock = clock
        self.app: NostrMaxiStandin | None = None
        self.webhook_secret = os.urandom(16).hex()
        self.webhooks: list[str] = []  # signatures of the deliveries the next wait brings

    def deliver(self) -> list[str]:
        """POSTs each queued webhook to the backend stand-in; what it answered."""
        assert self.app is not None
        said = []
        for signature in self.webhooks:
            answer = httpx.post(
                f"{self.app.url}/api/v1/payments/webhook?provider=btcpay",
                json={"type": "InvoiceSettled"},
                headers={"x-webhook-signature": signature},
                timeout=10,
            )
            said.append(f"POST /api/v1/payments/webhook: the backend answered {answer.status_code}")
        self.webhooks = []
        return said


def demo_console(demo: Demo) -> type[Console]:
    """The console with the demo's commands (`wait`, `webhook`, `claim`) before its own."""

    class DemoConsole(Console):
        def handle(self, line: str, gate: int | None) -> None:
            word, _, rest = line.strip().partition(" ")
            if word == "wait":
                self._wait(rest.strip())
            elif word == "webhook":
                self._webhook(rest.strip())
            elif word == "claim":
                self._claim(rest.strip())
            elif word in ("help", "?"):
                super().handle(line, gate)
                self.say(DEMO_HELP)
            else:
                super().handle(line, gate)

        def _wait(self, arg: str) -> None:
            if not arg.isdigit() or not 0 < int(arg) <= 120:
                self.say("wait takes a number of minutes, 1 to 120: wait 5")
                return
            # Traffic arrives halfway, so the next round's "last 5 min" holds it.
            demo.clock.advance(int(arg) / 2)
            for line in demo.deliver():
                self.say(line)
            demo.clock.advance(int(arg) / 2)
            self.say(f"{arg} min pass on the demo's clock.")
            if self.on_run_end is not None:
                self.on_run_end()  # a scheduler tick: what is due now runs now

        def _webhook(self, arg: str) -> None:
            demo.webhooks.append(demo.webhook_secret if arg != "forged" else "forged")
            how = "with a bad signature " if arg == "forged" else ""
            self.say(f"A payment webhook {how}will reach the backend during the next wait.")

        def _claim(self, name: str) -> None:
            assert demo.app is not None
            if not name.isidentifier() and not name.replace("-", "").isalnum():
                self.say("claim takes a name: claim demo-user")
                return
            demo.app.names[name.lower()] = os.urandom(32).hex()
            self.say(f"{name}@localhost is claimed: the NIP-05 API answers it")

    return DemoConsole


def trail_commands(database: Path) -> str:
    """How to read the demo's audit trail after quitting: the exact commands."""
    url = f"sqlite:///{database}"
    return (
        f"The demo's audit trail is kept in {database}. Export or verify it with:\n"
        f"  cutover audit export --database-url {url}\n"
        f"  cutover audit verify --database-url {url}"
    )


def prepare(workdir: Path, stack: ExitStack, login: str, demo: Demo | None = None) -> Path:
    """Starts the stand-ins and writes the filled-in runbook; returns its path."""
    demo = demo or Demo(DemoClock())
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
    demo.app = app
    logs = BackendLogs(DEMO_PROJECT, demo.clock)
    logs.start()
    stack.callback(logs.stop)
    logs.nest("LOG", "NestApplication", "Nest application successfully started +3ms")
    logs.write("🚀 NostrMaxi running on http://localhost:3000")
    payment_webhook(app, logs, demo.webhook_secret)
    page, component, key = "demo-page", "nostrmaxi-api", os.urandom(16).hex()
    os.environ[STATUSPAGE_KEY_VAR] = key
    statuspage = statuspage_standin(page, component, "NostrMaxi API", key)
    stack.callback(statuspage.stop)
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
            "statuspage_api": statuspage.url,
            "statuspage_page_id": page,
            "statuspage_component_id": component,
            "statuspage_token": f"${{{STATUSPAGE_KEY_VAR}}}",
            "docker_host": logs.url,
            "compose_project": DEMO_PROJECT,
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
    demo = Demo(DemoClock())
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cutover-demo-")))
        runbook_path = prepare(workdir, stack, login, demo)
        # Time moves when `wait N` says so (or a run ends): the scheduler ticks then, not
        # on its own, so a monitoring round never runs between two lines typed at once.
        update: dict[str, Any] = {
            "runbook": runbook_path,
            "database_url": f"sqlite:///{database}",
            "scheduler_enabled": False,
        }
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
            "Try: /cutover tick demo maintenance-page   (the T-1h item Start waits for)\n"
            "     /cutover start demo   then answer c (continue), r (rollback), tick ITEM;\n"
            "     /cutover deviation RUN TEXT   records what you did differently.\n"
            f"{DEMO_HELP}\n"
        )
        try:
            return run_console(
                demo_settings,
                load_runbook(runbook_path),
                login,
                clock=demo.clock,
                console=demo_console(demo),
            )
        finally:
            print("\n" + trail_commands(database))
