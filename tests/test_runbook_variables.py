"""A runbook reads only the variables it declares, never the bot's own settings.

`${VAR}` in a runbook is filled from the bot's environment, which also holds the Slack
signing secret, the bot token and the bot's own database URL. A runbook may read
CUTOVER_RUNBOOK_* and the names it lists under `variables:`; the bot's settings never,
listed or not, and `cutover runbook check` says which and what to write instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import EXIT_RUNBOOK, main
from phases.runbook import RunbookError, expand_env_vars, load_runbook

ROOT = Path(__file__).resolve().parent.parent

RUNBOOK = """\
name: Variables
{variables}
phases:
  - id: one
    name: One
    estimate_minutes: 1
    checkpoint: ok
    checks:
      - {{id: c, name: C, kind: http, params: {{url: "{{base_url}}/health"}}}}
environments:
  staging:
    domain: staging.test
    base_url: "{base_url}"
    approvers: ["T1:U1"]
"""


def write(tmp_path: Path, base_url: str, variables: str = "") -> Path:
    path = tmp_path / "rb.yml"
    path.write_text(RUNBOOK.format(base_url=base_url, variables=variables), encoding="utf-8")
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["runbook", "check", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    "name",
    [
        "SLACK_SIGNING_SECRET",
        "SLACK_BOT_TOKEN",
        "CUTOVER_DATABASE_URL",
        "DATABASE_URL",
        "PGPASSWORD",
    ],
)
def test_runbook_check_refuses_a_runbook_reading_the_bots_own_settings(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    monkeypatch.setenv(name, "bot-own-secret-7Qx")
    code, said = check(write(tmp_path, "http://127.0.0.1:9/?sig=${" + name + "}"), capsys)
    assert code == EXIT_RUNBOOK
    assert f"environments > staging > base_url: ${{{name}}} is one of the bot's own" in said
    assert "${CUTOVER_RUNBOOK_" in said  # what to write instead
    assert "bot-own-secret-7Qx" not in said


def test_listing_a_bot_setting_under_variables_does_not_make_it_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "http://127.0.0.1:9/?sig=${SLACK_SIGNING_SECRET}",
        variables="variables: [SLACK_SIGNING_SECRET]",
    )
    code, said = check(path, capsys)
    assert code == EXIT_RUNBOOK
    assert "variables: ${SLACK_SIGNING_SECRET} is one of the bot's own settings" in said


def test_runbook_check_refuses_an_undeclared_variable_and_says_how_to_declare_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = check(write(tmp_path, "http://${TARGET_HOST}:9"), capsys)
    assert code == EXIT_RUNBOOK
    assert (
        "${TARGET_HOST} is not a variable this runbook may read: list it at the top of the "
        "runbook (variables: [TARGET_HOST]) or name it CUTOVER_RUNBOOK_TARGET_HOST"
    ) in said


def test_a_declared_variable_and_a_prefixed_one_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARGET_HOST", "127.0.0.7")
    monkeypatch.setenv("CUTOVER_RUNBOOK_TARGET_PORT", "8087")
    path = write(
        tmp_path,
        "http://${TARGET_HOST}:${CUTOVER_RUNBOOK_TARGET_PORT}",
        variables="variables: [TARGET_HOST]",
    )
    assert load_runbook(path).values_for("staging")["base_url"] == "http://127.0.0.7:8087"


def test_filling_in_refuses_a_bot_setting_even_past_the_loader() -> None:
    env = {"SLACK_SIGNING_SECRET": "s3cret", "X": "x"}
    with pytest.raises(RunbookError, match="one of the bot's own settings") as caught:
        expand_env_vars("${SLACK_SIGNING_SECRET}", env, ["SLACK_SIGNING_SECRET"])
    assert "s3cret" not in str(caught.value)
    with pytest.raises(RunbookError, match=r"variables: \[X\]"):
        expand_env_vars("${X}", env)


def test_the_shipped_runbook_declares_the_variables_it_reads() -> None:
    rb = load_runbook(ROOT / "runbooks" / "nostrmaxi.yml")
    assert rb.variables == ["NOSTRMAXI_PROD_DATABASE_URL", "NOSTRMAXI_STAGING_DATABASE_URL"]
