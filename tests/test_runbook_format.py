"""The runbook format is versioned: `format: 1` (or none) is read, a format this bot does not
read is refused saying what it reads, and a kind an older format named otherwise is read as
today's name with a deprecation warning in `cutover runbook check`. Driven through the
command, as the runbook's author would see it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import EXIT_RUNBOOK, main
from bot.engine.core import runbook_digest
from phases.runbook import load_runbook
from phases.runbook_format import FORMAT, RENAMES
from tests.test_runbook_yaml import SMALL

ROOT = Path(__file__).resolve().parent.parent
OLD_BACKUP_CHECK = (
    "      - {id: fresh, name: Fresh backup, kind: backup, "
    'params: {path: "/var/backups", max_age_minutes: 60}}\n'
)
BACKUP_ACTION = (
    "    actions:\n"
    "      - {id: dump, name: Dump, kind: backup, "
    'params: {database_url: "postgresql://app@db/app", dir: "/var/backups"}}\n'
)


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "runbook.yml"
    path.write_text(text, encoding="utf-8")
    code = main(["runbook", "check", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def with_format(value: str) -> str:
    return f"format: {value}\n{SMALL}"


def test_a_runbook_without_a_format_is_read_as_format_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = check(tmp_path, SMALL, capsys)
    assert code == 0 and ": OK — Small" in said and "warning" not in said


def test_format_1_reads_the_same_runbook_with_the_same_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = check(tmp_path, with_format("1"), capsys)
    assert code == 0 and ": OK — Small" in said
    (tmp_path / "plain.yml").write_text(SMALL, encoding="utf-8")
    plain = load_runbook(tmp_path / "plain.yml")
    assert runbook_digest(load_runbook(tmp_path / "runbook.yml")) == runbook_digest(plain)


def test_a_newer_format_is_refused_saying_what_this_bot_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = check(tmp_path, with_format("2"), capsys)
    assert code == EXIT_RUNBOOK
    assert "runbook format 2 is newer than this cutover reads (it reads format 1)" in said
    assert "upgrade cutover-bot" in said


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "0",
            "runbook format 0 is not one this cutover reads (it reads format 1): write format: 1",
        ),
        ('"1"', "format: '1' is not a format number; write format: 1"),
        ("1.5", "format: 1.5 is not a format number"),
        ("true", "format: True is not a format number"),
    ],
)
def test_a_format_that_is_not_one_this_bot_reads_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, expected: str
) -> None:
    code, said = check(tmp_path, with_format(value), capsys)
    assert code == EXIT_RUNBOOK and expected in said


def test_the_old_backup_check_kind_is_read_as_backup_age_with_a_deprecation_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SMALL.replace("    checks:\n", "    checks:\n" + OLD_BACKUP_CHECK)
    code, said = check(tmp_path, text, capsys)
    assert code == 0, said
    assert (
        "warning: deprecated: phases[0] > checks[0] (step 'fresh'): kind 'backup' was renamed "
        "'backup_age'" in said
    )
    assert "Write kind: backup_age" in said
    step = load_runbook(tmp_path / "runbook.yml").phases[0].checks[0]
    assert (step.id, step.kind) == ("fresh", "backup_age")


def test_the_backup_action_of_today_is_not_taken_for_the_old_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SMALL.replace("    checks:\n", BACKUP_ACTION + "    checks:\n")
    code, said = check(tmp_path, text, capsys)
    assert code == 0, said
    assert "deprecated" not in said
    assert load_runbook(tmp_path / "runbook.yml").phases[0].actions[0].kind == "backup"


def test_the_readme_documents_the_format_and_every_rename() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"format: {FORMAT}" in readme
    for rename in RENAMES:
        assert f"`{rename.old}` → `{rename.new}`" in readme, rename
