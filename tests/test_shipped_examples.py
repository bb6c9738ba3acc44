"""The shipped runbook says what matters to the people around a production cutover."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from phases.runbook import load_runbook

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "runbooks" / "nostrmaxi.yml"


def test_the_shipped_prod_environment_tells_its_stakeholders_of_any_start() -> None:
    prod = load_runbook(SHIPPED).environment("prod")
    assert prod.stakeholders == "C0NMLAUNCH"  # by id: a rename cannot break it


def test_runbook_check_of_the_shipped_runbook_warns_of_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["runbook", "check", str(SHIPPED)]) == 0
    assert "warning" not in capsys.readouterr().out


def test_runbook_check_warns_when_a_production_environment_has_no_stakeholders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace(
        '    stakeholders: "C0NMLAUNCH"  # #nostrmaxi-launch\n', ""
    )
    path = tmp_path / "rb.yml"
    path.write_text(text, encoding="utf-8")
    assert main(["runbook", "check", str(path)]) == 0  # a warning, not a refusal
    out = capsys.readouterr().out
    assert (
        "  warning: environment 'prod' looks like production but has no stakeholders channel"
    ) in out
    assert "staging" not in out.split("warning:", 1)[1]
