"""A runbook step runs outside the bot's trust (issue 22, item 1).

A real `cutover console` process holds a known Slack signing secret in its environment, a
known bot token in its `.env` and an Ed25519 audit key in its key file. A step of its
runbook tries to read the bot's /proc environ, memory, open files, key file and settings,
and prints whatever it found: it finds nothing, and none of the planted values reaches the
step's evidence, the console, a log line or the audit trail.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.isolation import IsolationError, step_user
from phases.checks.base import StepContext, StepUser
from phases.checks.command import CommandParams, child_env, default_runner
from phases.secrets import Masker
from tests.conftest import STEP_USER
from tests.small_runbook import small_runbook

ROOT = Path(__file__).resolve().parent.parent
# Python for what runs as the step user: the tests' own interpreter may sit in root's home.
SYSTEM_PYTHON = "/usr/bin/python3"
SITE = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"), None)
PROBE = r"""
import json, os, sys
out, key_file, settings_file = sys.argv[1], sys.argv[2], sys.argv[3]
bot = os.getppid()
found = dict()

def probe(name, read):
    try:
        data = read()
    except OSError as exc:
        found[name] = "denied: " + type(exc).__name__
        return
    found[name] = data if isinstance(data, str) else data.decode("utf-8", "replace")

def read(path):
    with open(path, "rb") as f:
        return f.read()

def memory():
    chunks = []
    with open("/proc/%d/maps" % bot) as maps, open("/proc/%d/mem" % bot, "rb") as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("rw"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(min(end - start, 1 << 22)))
            except OSError:
                continue
    return b"".join(chunks)

probe("environ", lambda: read("/proc/%d/environ" % bot))
probe("cmdline", lambda: read("/proc/%d/cmdline" % bot))
probe("memory", memory)
probe("open files", lambda: "\n".join(os.listdir("/proc/%d/fd" % bot)))
probe("cwd", lambda: os.readlink("/proc/%d/cwd" % bot))
probe("key file", lambda: read(key_file))
probe("settings", lambda: read(settings_file))
found["own environment"] = "\n".join(k + "=" + v for k, v in sorted(os.environ.items()))
with open(out, "w") as f:
    json.dump(found, f)
for name, value in found.items():
    print(name, "->", value[:20000])
sys.exit(1)
"""


def _planted(tmp: Path) -> dict[str, Any]:
    """The bot's secrets: a signing secret in its environment, a bot token in its .env, an
    audit key in its key file (both mode 600, as the docs say)."""
    signing = "sig" + uuid.uuid4().hex
    token = "tok" + uuid.uuid4().hex
    key, pub = tmp / "audit.key", tmp / "audit.pub"
    audit.keygen(key, pub)
    settings = tmp / ".env"
    settings.write_text(f"SLACK_BOT_TOKEN={token}\n", encoding="utf-8")
    settings.chmod(0o600)
    signer = audit.Signer.from_file(key)
    return {
        "signing": signing,
        "token": token,
        "key": key,
        "settings": settings,
        "needles": [signing, token, *signer.secrets()[1:]],  # PEM body, each line, raw hex
    }


def _runbook(tmp: Path, planted: dict[str, Any], out: Path) -> None:
    probe = tmp / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    leaked = tmp / "leaked.pem"  # the key, leaked some other way: printed by a failing check
    leaked.write_bytes(planted["key"].read_bytes())
    leaked.chmod(0o644)
    program = [SYSTEM_PYTHON, str(probe), str(out), str(planted["key"]), str(planted["settings"])]
    small_runbook(
        tmp,
        phases=[
            {
                "id": "build",
                "name": "Build",
                "estimate_minutes": 1,
                "checkpoint": "built",
                "checks": [
                    {
                        "id": "probe",
                        "name": "a build script reads the bot",
                        "kind": "command",
                        "params": {"argv": program, "output_tail_lines": 1000},
                    },
                    {
                        "id": "leak",
                        "name": "a failing check prints the key",
                        "kind": "command",
                        "params": {"argv": ["sh", "-c", f"cat {leaked}; exit 1"]},
                    },
                ],
            }
        ],
    )


def _console(
    tmp: Path,
    planted: dict[str, Any],
    *,
    step_user: str | None,
    user: int | None = None,
    export: bool = True,
) -> tuple[subprocess.CompletedProcess[str], str]:
    """`cutover console` started, a run started, quit; then the audit export. With `user`,
    the bot runs as that user (on the system's Python with this checkout's packages)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "SLACK_"))}
    env.update(
        CUTOVER_DATABASE_URL=f"sqlite:///{tmp / 'bot.db'}",
        CUTOVER_RUNBOOK=str(tmp / "small.yml"),
        CUTOVER_AUDIT_KEY_FILE=str(planted["key"]),
        CUTOVER_LOG_LEVEL="DEBUG",
        CUTOVER_HISTORY=str(tmp / "history"),
        SLACK_SIGNING_SECRET=planted["signing"],
        PYTHONPATH=str(ROOT),
    )
    if step_user is not None:
        env["CUTOVER_STEP_USER"] = step_user
    python = sys.executable
    if user is not None:
        python, env["PYTHONPATH"] = SYSTEM_PYTHON, f"{ROOT}:{SITE}"
    proc = subprocess.run(
        [python, "-m", "bot.cli", "console", "--as", "alice"],
        input="/cutover start staging\n/cutover status staging\nquit\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,  # where the bot reads its .env
        timeout=120,
        user=user,
    )
    if not export:
        return proc, ""
    exported = subprocess.run(
        [python, "-m", "bot.cli", "audit", "export", "--format", "jsonl"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=60,
        user=user,
        check=True,
    )
    return proc, exported.stdout


def _nothing_planted(text: str, needles: list[str], where: str) -> None:
    for needle in needles:
        assert needle not in text, f"a planted secret ({needle[:6]}…) reached {where}"


def test_a_step_run_as_the_step_user_reads_nothing_of_the_bot(step_tmp: Path) -> None:
    planted = _planted(step_tmp)
    out = step_tmp / "found.json"
    _runbook(step_tmp, planted, out)
    proc, exported = _console(step_tmp, planted, step_user=STEP_USER)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(out.read_text(encoding="utf-8"))
    for what in ("environ", "memory", "open files", "cwd", "key file", "settings"):
        assert found[what].startswith("denied"), (what, found[what][:200])
    _nothing_planted(json.dumps(found), planted["needles"], "the step")
    own = dict(line.split("=", 1) for line in found["own environment"].splitlines())
    assert set(own) <= {"PATH", "LANG", "TZ", "DOCKER_HOST", "DOCKER_CONTEXT", "HOME"} | {
        "CUTOVER_STEP_ID",  # the step's marker, for killing its process tree
        "CUTOVER_FENCING_TOKEN",  # the run's lease epoch: a step may refuse stale work
    }
    assert own.get("CUTOVER_FENCING_TOKEN", "1").isdigit()
    assert own["HOME"] == pwd.getpwnam(STEP_USER).pw_dir
    # the checks ran and failed (so their evidence and output tails were shown and audited)
    assert "a build script reads the bot" in proc.stdout and "exit 1" in proc.stdout
    assert '"step": "leak"' in exported and '"step": "probe"' in exported
    _nothing_planted(proc.stdout, planted["needles"], "the console")
    _nothing_planted(proc.stderr, planted["needles"], "a log line")
    _nothing_planted(exported, planted["needles"], "the audit trail")


def test_a_bot_not_run_as_root_is_closed_to_its_own_steps(step_tmp: Path) -> None:
    """No step user: the steps run as the bot's own user, and still cannot read its
    environment or memory (the bot is non-dumpable)."""
    planted = _planted(step_tmp)
    nobody = pwd.getpwnam(STEP_USER)
    for path in (planted["key"], planted["settings"]):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    out = step_tmp / "found.json"
    _runbook(step_tmp, planted, out)
    proc, exported = _console(step_tmp, planted, step_user=None, user=nobody.pw_uid)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(out.read_text(encoding="utf-8"))
    for what in ("environ", "memory", "open files", "cwd"):
        assert found[what].startswith("denied"), (what, found[what][:200])
    assert planted["signing"] not in json.dumps(found)
    # the bot's own user may read its key file: that is what CUTOVER_STEP_USER is for; what
    # the step prints of it is masked everywhere
    _nothing_planted(proc.stdout, planted["needles"], "the console")
    _nothing_planted(proc.stderr, planted["needles"], "a log line")
    _nothing_planted(exported, planted["needles"], "the audit trail")


def test_a_root_bot_without_a_step_user_refuses_to_run_a_runbook_with_programs(
    step_tmp: Path,
) -> None:
    planted = _planted(step_tmp)
    _runbook(step_tmp, planted, step_tmp / "found.json")
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--as", "alice"],
        input="/cutover start staging\nquit\n",
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "SLACK_"))},
            "CUTOVER_DATABASE_URL": f"sqlite:///{step_tmp / 'bot.db'}",
            "CUTOVER_RUNBOOK": str(step_tmp / "small.yml"),
            "PYTHONPATH": str(ROOT),
        },
        cwd=step_tmp,
        timeout=60,
    )
    assert proc.returncode == 4, proc.stdout
    assert "runs as root and CUTOVER_STEP_USER is not set" in proc.stderr
    assert "'build' > probe" in proc.stderr
    assert not (step_tmp / "found.json").exists()


def test_a_settings_file_others_may_read_is_refused(step_tmp: Path) -> None:
    planted = _planted(step_tmp)
    _runbook(step_tmp, planted, step_tmp / "found.json")
    planted["settings"].chmod(0o644)
    proc, _ = _console(step_tmp, planted, step_user=STEP_USER, export=False)
    assert proc.returncode == 4
    assert f"{planted['settings']} holds the bot's secrets but is mode 644" in proc.stderr
    assert f"chmod 600 {planted['settings']}" in proc.stderr
    assert not (step_tmp / "found.json").exists()


def test_an_audit_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    audit.keygen(key, tmp_path / "audit.pub")
    key.chmod(0o640)
    with pytest.raises(
        audit.AuditKeyError, match=r"open to group or others \(mode 640\).*chmod 600"
    ):
        audit.Signer.from_file(key)


def test_the_audit_key_is_masked_wherever_it_is_printed(tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    audit.keygen(key, tmp_path / "audit.pub")
    masker = Masker(audit.Signer.from_file(key).secrets())
    pem = key.read_text(encoding="utf-8")
    body = "".join(ln for ln in pem.splitlines() if not ln.startswith("-----"))
    for printed in (pem, body, json.dumps(pem), pem.replace("\n", " ")):
        assert body not in masker.mask(printed)


def test_a_step_inherits_only_the_declared_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SLACK_SIGNING_SECRET": "s3cret-of-the-bot",
        "CUTOVER_DATABASE_URL": "postgresql://bot:pw@db/cutover",
        "DOCKER_CONFIG": "/root/.docker",
        "DOCKER_CERT_PATH": "/root/.docker/certs",
        "HOME": "/root",
        "DOCKER_HOST": "unix:///run/docker.sock",
    }.items():
        monkeypatch.setenv(name, value)
    user = StepUser("builder", 4242, 4242, (), "/home/builder")
    params = CommandParams(argv=["true"], env={"NODE_ENV": "production"})
    env = child_env(params, StepContext(run_as=user))
    assert set(env) <= {"PATH", "LANG", "TZ", "DOCKER_HOST", "DOCKER_CONTEXT", "HOME", "NODE_ENV"}
    assert env["HOME"] == "/home/builder" and env["NODE_ENV"] == "production"
    assert env["DOCKER_HOST"] == "unix:///run/docker.sock"  # compose talks to the same engine


def test_a_runner_given_no_environment_passes_none_of_the_bots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret-of-the-bot")
    out = default_runner(["env"], timeout=10, cwd=None, env=None)
    assert out.returncode == 0
    assert "s3cret-of-the-bot" not in out.stdout and "SLACK_SIGNING_SECRET" not in out.stdout


def test_a_step_runs_as_the_step_user_with_its_groups_only() -> None:
    user = step_user(STEP_USER, None)
    assert user is not None
    out = default_runner(
        ["id", "-u"], timeout=10, cwd="/", env={"PATH": "/usr/bin:/bin"}, user=user
    )
    assert out.stdout.strip() == str(user.uid)
    groups = default_runner(
        ["id", "-G"], timeout=10, cwd="/", env={"PATH": "/usr/bin:/bin"}, user=user
    )
    assert set(groups.stdout.split()) == {str(user.gid), *map(str, user.groups)}
    assert "0" not in groups.stdout.split()


@pytest.mark.parametrize(
    ("value", "euid", "message"),
    [
        ("root", 0, "is root or in root's group"),
        ("0", 0, "is root or in root's group"),
        ("no-such-user-" + uuid.uuid4().hex[:6], 0, "no such user on this host; create one"),
        (STEP_USER, 1000, "the bot runs as uid 1000, not root"),
    ],
    ids=["root", "uid-0", "unknown-user", "non-root-bot"],  # stable: xdist workers compare ids
)
def test_a_step_user_that_cannot_hold_the_boundary_is_refused(
    value: str, euid: int, message: str
) -> None:
    with pytest.raises(IsolationError, match=message):
        step_user(value, None, euid=euid)


def test_programs_may_run_as_a_non_root_bots_own_user(tmp_path: Path) -> None:
    runbook = small_runbook(tmp_path)
    assert step_user(None, runbook, euid=1000) is None
    assert step_user(None, None, euid=0) is None  # nothing to run: nothing to refuse
    with pytest.raises(IsolationError, match="would run as root"):
        step_user(None, runbook, euid=0)


def test_the_step_user_gets_the_extra_groups_named_and_never_roots() -> None:
    user = step_user(STEP_USER, None, extra_groups="4321, 4322")
    assert user is not None and {4321, 4322} <= set(user.groups)
    out = default_runner(
        ["id", "-G"], timeout=10, cwd="/", env={"PATH": "/usr/bin:/bin"}, user=user
    )
    assert {"4321", "4322"} <= set(out.stdout.split())
    with pytest.raises(IsolationError, match="must not hold root's group"):
        step_user(STEP_USER, None, extra_groups="0")
    with pytest.raises(IsolationError, match="no group 'no-such-group-x'"):
        step_user(STEP_USER, None, extra_groups="no-such-group-x")


def test_preflight_says_who_the_programs_run_as_or_why_the_bot_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    small_runbook(tmp_path)
    path = str(tmp_path / "small.yml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUTOVER_STEP_USER", raising=False)
    main(["runbook", "check", path, "--env", "staging", "--preflight"])
    assert "❌ step user: the bot runs as root and CUTOVER_STEP_USER is not set" in (
        capsys.readouterr().out
    )
    monkeypatch.setenv("CUTOVER_STEP_USER", STEP_USER)
    main(["runbook", "check", path, "--env", "staging", "--preflight"])
    assert (
        f"✅ step user: the runbook's programs run as user {STEP_USER}" in capsys.readouterr().out
    )
