"""Bad input gets a clear error that says what to fix, and nothing is half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from bot.cli import EXIT_RUNBOOK, main
from bot.engine import Engine, EngineError
from bot.store.db import Database, DatabaseUnavailable
from bot.store.models import AuditEvent, Run
from bot.store.reads import open_gate_id
from bot.surface import Actor
from commands.parser import Abort, AuditCmd, Help, Start, StatusCmd, UsageError, parse
from phases.runbook import RunbookError, load_runbook
from tests.small_runbook import small_runbook

ROOT = Path(__file__).resolve().parent.parent
BOB = Actor("T1:U2", "bob")


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "rb.yml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def shipped() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "runbooks" / "nostrmaxi.yml").read_text(encoding="utf-8"))


def test_shipped_nostrmaxi_runbook_is_valid() -> None:
    rb = load_runbook(ROOT / "runbooks" / "nostrmaxi.yml")
    assert [p.id for p in rb.phases] == [
        "readiness",
        "stop-old",
        "deploy-config",
        "build",
        "migrate",
        "start",
        "smoke",
        "e2e",
        "public-access",
        "monitoring",
    ]
    assert rb.phase("migrate").on_fail == "restore_and_rollback"
    assert str(rb.phase("build").estimate_minutes) == "10-15 min"


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nphases: [\n  - id: a\n")
    with pytest.raises(RunbookError, match=r"rb\.yml: line \d+, column \d+: not valid YAML"):
        load_runbook(path)


def test_wrong_field_names_the_phase_and_the_field(tmp_path: Path) -> None:
    data = shipped()
    data["phases"][4]["checks"][1]["timeout"] = "soon"
    with pytest.raises(RunbookError) as err:
        load_runbook(write(tmp_path, data))
    msg = str(err.value)
    assert "phases[4] (id 'migrate') > checks[1] (id 'migrations') > timeout" in msg
    assert "valid number" in msg


def test_unknown_check_parameter_names_phase_step_and_environment(tmp_path: Path) -> None:
    data = shipped()
    data["phases"][6]["checks"][0]["params"]["max_msec"] = 500
    with pytest.raises(RunbookError) as err:
        load_runbook(write(tmp_path, data))
    msg = str(err.value)
    assert "phase 'smoke' > checks > 'health' (environment 'prod'): params.max_msec" in msg
    assert "Extra inputs are not permitted" in msg


def test_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    data = shipped()
    data["phases"][0]["checks"][0]["kind"] = "secretz"
    with pytest.raises(RunbookError, match=r"unknown kind 'secretz'; known: .*secrets"):
        load_runbook(write(tmp_path, data))


def test_unknown_placeholder_is_named(tmp_path: Path) -> None:
    data = shipped()
    data["phases"][0]["checks"][3]["params"]["path"] = "{backups_dir}"
    with pytest.raises(RunbookError, match=r"unknown placeholder \{backups_dir\}"):
        load_runbook(write(tmp_path, data))


def test_state_changing_step_under_checks_is_refused(tmp_path: Path) -> None:
    data = shipped()
    data["phases"][0]["checks"].append(
        {"id": "oops", "name": "oops", "kind": "run", "params": {"argv": ["true"]}}
    )
    with pytest.raises(RunbookError, match="changes state; put it under actions"):
        load_runbook(write(tmp_path, data))


def test_approver_given_as_a_display_name_is_refused(tmp_path: Path) -> None:
    data = shipped()
    data["environments"]["prod"]["approvers"] = ["@alice"]
    with pytest.raises(RunbookError, match="ids, never display names"):
        load_runbook(write(tmp_path, data))


def test_missing_runbook_file_is_a_clear_cli_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--runbook", str(tmp_path / "nope.yml"), "runbook", "check"]) == EXIT_RUNBOOK
    assert "cannot read runbook" in capsys.readouterr().err


def test_unknown_environment_names_the_known_ones(sqlite_db: Database, tmp_path: Path) -> None:
    engine = Engine(sqlite_db, small_runbook(tmp_path), background=False)
    with pytest.raises(
        RunbookError, match="unknown environment 'qa'; this runbook defines: prod, staging"
    ):
        engine.start_run("qa", BOB)


def test_missing_env_file_refuses_to_start_and_writes_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    rb = small_runbook(tmp_path, env={"env_file": str(tmp_path / "missing.env")})
    engine = Engine(sqlite_db, rb, background=False)
    with pytest.raises(
        EngineError,
        match=r"env file .*missing\.env of environment 'staging' "
        r"does not exist.*No run was started",
    ):
        engine.start_run("staging", BOB)
    with sqlite_db.session() as s:
        assert s.exec(select(Run)).all() == []
        assert s.exec(select(AuditEvent)).all() == []


def test_missing_environment_variable_is_named(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUTOVER_RUNBOOK_TARGET_DB_URL", raising=False)
    rb = small_runbook(tmp_path, env={"database_url": "${CUTOVER_RUNBOOK_TARGET_DB_URL}"})
    engine = Engine(sqlite_db, rb, background=False)
    with pytest.raises(
        RunbookError,
        match=r"\$\{CUTOVER_RUNBOOK_TARGET_DB_URL\} is used by the runbook but not "
        "set",
    ):
        engine.start_run("staging", BOB)
    with sqlite_db.session() as s:
        assert s.exec(select(Run)).all() == []


def test_unreachable_target_fails_the_check_and_the_gate_fails_closed(
    sqlite_db: Database, tmp_path: Path
) -> None:
    phases = [
        {
            "id": "smoke",
            "name": "Smoke",
            "estimate_minutes": 1,
            "checkpoint": "up",
            "checks": [
                {
                    "id": "health",
                    "name": "health",
                    "kind": "http",
                    "timeout": 3,
                    "params": {"url": "{base_url}/health"},
                }
            ],
        }
    ]
    engine = Engine(sqlite_db, small_runbook(tmp_path, phases=phases), background=False)
    run = engine.start_run("staging", BOB)
    gate = open_gate_id(sqlite_db, run.id or 0)
    assert gate is not None
    from bot.store.reads import gate_view

    view = gate_view(sqlite_db, engine.runbook, gate)
    assert view is not None and not view.checks_passed
    assert view.steps[0].status == "error"
    assert "127.0.0.1:9" in view.steps[0].evidence or "connect" in view.steps[0].evidence.lower()
    assert engine.decide(gate, BOB, "continue").outcome == "refused"


def test_database_gone_away_is_a_clear_error(tmp_path: Path) -> None:
    db = Database("postgresql+psycopg://nobody:secretpw@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable) as err:
        db.create_all()
    assert "127.0.0.1:1" in str(err.value) and "secretpw" not in str(err.value)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("/cutover start prod", Start("prod")),
        ("start staging --dry-run", Start("staging", dry_run=True)),
        ("status", StatusCmd()),
        ("status prod", StatusCmd("prod")),
        ("abort prod --reason 'db is down'", Abort("prod", "db is down")),
        ("abort prod", Abort("prod", None)),  # Slack asks in a form, the console at its prompt
        ("audit 12", AuditCmd(12)),
        ("", Help()),
    ],
)
def test_slash_command_grammar(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text,problem",
    [
        ("start", "start needs exactly one environment"),
        ("start prod staging", "start needs exactly one environment"),
        ("start prod --force", "unknown option '--force'"),
        ("start 'prod; rm -rf /'", "is not an environment name"),
        ("start $(whoami)", "is not an environment name"),
        ("abort prod --why x", "abort needs --reason"),
        ("abort --reason x", "abort needs an environment"),
        ("audit latest", "audit needs a run number"),
        ("deploy prod", "unknown command 'deploy'"),
        ("start 'prod", "cannot read the arguments"),
    ],
)
def test_wrong_slash_command_argument_gets_usage(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(text)
    assert problem in str(err.value) and "Usage:" in str(err.value)


@pytest.mark.parametrize(
    "text", ["audit 9999999999", "audit ٣", "unschedule 12345678901", "audit -1"]
)
def test_run_numbers_beyond_an_id_column_get_usage(text: str) -> None:
    with pytest.raises(UsageError, match="needs a (run|schedule) number"):
        parse(text)
