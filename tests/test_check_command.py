"""`command` and `run`: one program per step, never a shell; killed whole on timeout; masked."""

from __future__ import annotations

import base64
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from phases.checks import REGISTRY
from phases.checks.base import CommandOutput, Status, StepContext, StepResult
from phases.checks.command import default_runner
from phases.secrets import MASK, Masker
from tests.servers import run_check

PY = sys.executable


def run(argv: list[str], ctx: StepContext | None = None, kind: str = "command", **params: Any):
    timeout = params.pop("timeout", 5.0)
    result = run_check(kind, {"argv": argv, **params}, ctx, timeout=timeout)
    assert len(result.evidence) <= 200
    return result


def py(code: str, **params: Any) -> StepResult:
    return run([PY, "-c", code], **params)


def pid_alive(pid: int) -> bool:
    """Running and not a zombie (an unreaped zombie has already been killed)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_command_is_a_check_and_run_is_an_action() -> None:
    assert REGISTRY["command"].mutates is False
    assert REGISTRY["run"].mutates is True


def test_run_describes_itself_for_dry_run_quoting_arguments() -> None:
    kind = REGISTRY["run"]
    params = kind.params.model_validate({"argv": ["npx", "prisma", "migrate", "deploy"]})
    assert kind.describe is not None
    assert kind.describe(params) == "run npx prisma migrate deploy"
    odd = kind.params.model_validate({"argv": ["test", "-f", "dist/main file.js"]})
    assert kind.describe(odd) == "run test -f 'dist/main file.js'"


def test_exit_0_passes_with_duration() -> None:
    result = run(["true"])
    assert result.status is Status.PASS
    assert result.evidence.startswith("exit 0 in ") and result.evidence.endswith("s")
    assert result.details["exit_code"] == 0


def test_build_artifact_missing_fails_like_test_f(tmp_path: Path) -> None:
    result = run(["test", "-f", "dist/main.js"], cwd=str(tmp_path))
    assert result.status is Status.FAIL
    assert result.evidence == "exit 1"
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "main.js").write_text("//")
    assert run(["test", "-f", "dist/main.js"], cwd=str(tmp_path)).status is Status.PASS


def test_nonzero_exit_fails_with_last_stderr_line() -> None:
    result = py(
        "import sys; print('building'); sys.stderr.write('warn\\nBuild failed!\\n'); sys.exit(3)"
    )
    assert result.status is Status.FAIL
    assert result.evidence == "exit 3: Build failed!"
    assert result.details["exit_code"] == 3


def test_expected_nonzero_exit_passes() -> None:
    result = py("import sys; sys.exit(2)", expect_exit=2)
    assert result.status is Status.PASS
    wrong = py("import sys; sys.exit(0)", expect_exit=2)
    assert wrong.status is Status.FAIL
    assert wrong.evidence == "exit 0 (expected 2)"


def test_expected_output_must_appear_in_stdout() -> None:
    ok = py(
        "print('🚀 NostrMaxi running on http://localhost:3000')", expect_output="NostrMaxi running"
    )
    assert ok.status is Status.PASS
    result = py("print('starting')", expect_output="NostrMaxi running")
    assert result.status is Status.FAIL
    assert "output lacks 'NostrMaxi running'" in result.evidence


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen(['sleep', '30'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(30)\n"
    )
    start = time.monotonic()
    result = py(code, timeout=0.7)
    assert time.monotonic() - start < 3.0
    assert result.status is Status.ERROR
    assert result.evidence == "timed out after 0.7s; process group killed"
    assert result.details["timed_out"] is True
    assert "started" in result.details["output_tail"]
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(grandchild)


def test_shell_metacharacters_are_passed_as_data_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    victim = tmp_path / "victim"
    victim.mkdir()
    payload = f"$(touch {marker}); rm -rf {victim} | tee {marker} && `touch {marker}` > {marker}"
    result = run(["echo", payload])
    assert result.status is Status.PASS
    assert not marker.exists()
    assert victim.is_dir()
    assert result.details["output_tail"] == payload  # echoed back verbatim


def test_classic_pwned_argument_does_nothing() -> None:
    existed = os.path.exists("/tmp/pwned")
    result = run(["echo", "$(touch /tmp/pwned); rm -rf /"])
    assert result.status is Status.PASS
    assert result.details["output_tail"] == "$(touch /tmp/pwned); rm -rf /"
    assert os.path.exists("/tmp/pwned") == existed


def test_child_gets_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUTOVER_BOT_SLACK_TOKEN", "xoxb-should-not-leak")
    code = "import os, json; print(json.dumps(sorted(os.environ)))"
    result = py(code, env={"NODE_ENV": "production"})
    assert result.status is Status.PASS
    names = result.details["output_tail"]
    assert "CUTOVER_BOT_SLACK_TOKEN" not in names
    assert '"NODE_ENV"' in names and '"PATH"' in names


def test_env_file_values_reach_the_child_and_are_masked_in_output(tmp_path: Path) -> None:
    secret = "s3cr3t-" + "Qx7" * 8
    env_file = tmp_path / ".env"
    env_file.write_text(f"DOMAIN=nostrmaxi.example\nJWT_SECRET={secret}\n")
    code = (
        "import os, sys, base64\n"
        "s = os.environ['JWT_SECRET']\n"
        "print('domain', os.environ['DOMAIN'])\n"
        "print('jwt', s)\n"
        "print('b64', base64.b64encode(s.encode()).decode())\n"
        "sys.stderr.write('failed with secret ' + s + '\\n')\n"
        "sys.exit(1)\n"
    )
    ctx = StepContext(masker=Masker(), timeout=5.0, public_env_keys=frozenset({"DOMAIN"}))
    result = run([PY, "-c", code], ctx, env_file=str(env_file))
    assert result.status is Status.FAIL
    b64 = base64.b64encode(secret.encode()).decode()
    for shown in (result.evidence, result.details["output_tail"]):
        assert secret not in shown and b64 not in shown
    assert result.evidence == f"exit 1: failed with secret {MASK}"
    assert "domain nostrmaxi.example" in result.details["output_tail"]
    assert f"jwt {MASK}" in result.details["output_tail"]


def test_output_tail_keeps_the_last_lines_only() -> None:
    result = py("for i in range(100): print('line', i)", output_tail_lines=5)
    tail = result.details["output_tail"].splitlines()
    assert tail == [f"line {i}" for i in range(95, 100)]


def test_missing_program_is_an_error() -> None:
    result = run(["definitely-not-a-program-xyz", "--version"])
    assert result.status is Status.ERROR
    assert result.evidence == "cannot run definitely-not-a-program-xyz: not found"


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    result = run(["true"], env_file=str(tmp_path / ".env.prod"))
    assert result.status is Status.ERROR
    assert result.evidence.startswith("env_file: ")


def test_cwd_is_relative_to_the_workdir(tmp_path: Path) -> None:
    (tmp_path / "frontend" / "dist").mkdir(parents=True)
    (tmp_path / "frontend" / "dist" / "index.html").write_text("<html>")
    ctx = StepContext(workdir=str(tmp_path), timeout=5.0)
    result = run(["test", "-f", "dist/index.html"], ctx, cwd="frontend")
    assert result.status is Status.PASS, result.evidence
    assert run(["pwd"], ctx).details["output_tail"] == str(tmp_path)


def test_missing_cwd_is_an_error(tmp_path: Path) -> None:
    result = run(["true"], cwd=str(tmp_path / "nope"))
    assert result.status is Status.ERROR
    assert "not found" in result.evidence


def test_run_action_executes_and_reports_like_a_check(tmp_path: Path) -> None:
    target = tmp_path / "built"
    result = run(["touch", str(target)], kind="run")
    assert result.status is Status.PASS
    assert target.exists()


def test_context_command_runner_is_used_when_set() -> None:
    calls: list[tuple[list[str], float, str | None]] = []

    def runner(
        argv: list[str], *, timeout: float, cwd: str | None, env: dict[str, str] | None
    ) -> CommandOutput:
        calls.append((argv, timeout, cwd))
        return CommandOutput(0, "ok\n", "")

    ctx = StepContext(command_runner=runner, timeout=7.0)
    result = run(["npm", "run", "build"], ctx)
    assert result.status is Status.PASS
    assert calls == [(["npm", "run", "build"], 7.0, None)]


def test_default_runner_reports_exit_and_streams() -> None:
    out = default_runner(
        [PY, "-c", "import sys; print('o'); sys.stderr.write('e'); sys.exit(4)"],
        timeout=5,
        cwd=None,
        env=None,
    )
    assert (out.returncode, out.stdout, out.stderr, out.timed_out) == (4, "o\n", "e", False)


@pytest.mark.parametrize(
    "params",
    [
        {"argv": []},
        {"argv": [""]},
        {"argv": "npm run build"},
        {"argv": ["echo"], "shell": True},
        {"argv": ["echo"], "output_tail_lines": -1},
    ],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REGISTRY["command"].params.model_validate(params)
