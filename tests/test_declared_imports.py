"""The test command's dependency check: what the code imports directly is declared.

scripts/test.sh runs deptry twice (README "Run the tests"); these run the same commands.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPTRY = str(Path(sys.executable).parent / "deptry")


def deptry(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEPTRY, "--no-ansi", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


def test_every_direct_import_of_the_code_is_declared() -> None:
    result = deptry(".")
    assert result.returncode == 0, result.stdout


def test_every_direct_import_of_the_tests_is_declared() -> None:
    result = deptry("tests", "--exclude", r"\.venv", "--ignore", "DEP002,DEP004")
    assert result.returncode == 0, result.stdout


def test_a_package_that_arrives_only_through_another_fails_the_check(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "bot", project / "bot")
    shutil.copytree(ROOT / "commands", project / "commands")
    shutil.copytree(ROOT / "phases", project / "phases")
    pyproject = (ROOT / "pyproject.toml").read_text()
    without = re.sub(r'\n\s*"sqlalchemy[^\n]*', "", pyproject)
    assert without != pyproject
    (project / "pyproject.toml").write_text(without)
    result = deptry(".", cwd=project)
    assert result.returncode == 1
    assert "DEP003 'sqlalchemy' imported but it is a transitive dependency" in result.stdout
    assert "bot/store/models.py" in result.stdout


def test_the_code_may_not_import_a_test_only_package(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "phases", project / "phases")
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / "phases" / "uses_pytest.py").write_text("import pytest\n")
    result = deptry(".", "--ignore", "DEP002", cwd=project)
    assert result.returncode == 1
    assert "DEP004 'pytest' imported but declared as a dev dependency" in result.stdout
