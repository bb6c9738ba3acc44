"""A `cutover` command that runs no step does not import the steps' network libraries.

The CLI loads every step kind to validate a runbook; each kind imports httpx, the docker SDK
or dnspython only when it runs (phases/checks/__init__.py). About 0.3 s of every command's
start, and of each of the suite's `cutover` processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NETWORK_LIBRARIES = ("httpx", "docker", "requests", "dns.resolver")

PROBE = """
import json, sys
import bot.cli
from phases.runbook import load_runbook
load_runbook(sys.argv[1])
print(json.dumps(sorted(m for m in {names} if m in sys.modules)))
"""


def imported_after(runbook: Path) -> list[str]:
    code = PROBE.format(names=repr(NETWORK_LIBRARIES))
    out = subprocess.run(
        [sys.executable, "-c", code, str(runbook)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return list(json.loads(out.stdout))


def test_loading_the_cli_and_the_shipped_runbook_imports_no_network_library() -> None:
    assert imported_after(REPO / "runbooks" / "nostrmaxi.yml") == []


RUN_CHECKS = """
import json, sys
from phases.checks import REGISTRY, StepContext
steps = {
    "http": {"url": "http://127.0.0.1:9/health"},
    "docker_containers": {"project": "p", "docker_host": "unix:///nonexistent/docker.sock"},
    "dns": {"name": "example.test", "expected_ip": "192.0.2.1", "resolvers": ["127.0.0.1:9"]},
}
out = {}
for name, params in steps.items():
    kind = REGISTRY[name]
    result = kind.run(kind.params(**params), StepContext(timeout=1.0))
    out[name] = [str(result.status), result.evidence]
out["imported"] = sorted(m for m in NAMES if m in sys.modules)
print(json.dumps(out))
"""


def test_each_check_imports_its_library_when_it_runs() -> None:
    """In a fresh process: the checks find httpx, the docker SDK and dnspython when they
    run (an unreachable target: each says why, none a NameError)."""
    code = f"NAMES = {NETWORK_LIBRARIES!r}\n{RUN_CHECKS}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    got = json.loads(out.stdout)
    assert got.pop("imported") == sorted(NETWORK_LIBRARIES)
    for name, (status, evidence) in got.items():
        assert status in ("fail", "error"), (name, evidence)
        assert "NameError" not in evidence and "not defined" not in evidence, (name, evidence)
    assert "unreachable" in got["docker_containers"][1]
