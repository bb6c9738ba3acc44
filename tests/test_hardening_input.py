"""Hostile text on its way to a command step: passed as data, or refused; never executed.

Values with shell metacharacters and leading dashes reach `command` and `run`
steps through runbook placeholders; the program receives each one verbatim as
one argument. Slash-command arguments never reach a step at all: the grammar
refuses them, or keeps them as data (an abort reason) that no step reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import Run
from bot.store.reads import Reads, gate_view, open_gate_id
from bot.surface import Actor
from commands.handlers import CommandService
from commands.parser import UsageError, parse
from phases.runbook import Runbook, RunbookError, load_runbook
from tests.small_runbook import small_runbook

BOB = Actor("T1:U2", "bob")
ECHO_ARGV = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


def payloads(tmp: Path) -> dict[str, str]:
    marker, victim = tmp / "pwned", tmp / "victim"
    return {
        "subst": f"$(touch {marker})",
        "backticks": f"`touch {marker}`",
        "chain": f"; touch {marker}; rm -rf {victim}",
        "pipe": f"| tee {marker}",
        "and": f"&& touch {marker}",
        "redirect": f"> {marker}",
        "newline": f"ok\ntouch {marker}",
        "glob": f"{victim}/*",
        "var": "$HOME $PATH",  # (${VAR} is the runbook's own syntax for the bot's env)
        "help": "--help",
        "rf": "-rf",
        "option": f"--output={marker}",
        "dash": "-",
        "braces": "{base_url} {{domain}}",  # no second round of placeholder filling
        "quote": 'it\'s "quoted" \\ back',
    }


def runbook_with_vars(tmp: Path, phases: list[dict[str, Any]], values: dict[str, str]) -> Runbook:
    data = {
        "name": "Hostile values",
        "vars": values,
        "phases": phases,
        "rollback": [],
        "environments": {
            "staging": {
                "domain": "staging.test",
                "base_url": "http://127.0.0.1:9",
                "approvers": ["T1:U1", "T1:U2"],
            },
        },
    }
    path = tmp / "hostile.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_runbook(path)


def hostile_runbook(tmp: Path) -> tuple[Engine, list[str]]:
    values = payloads(tmp)
    names = list(values)
    out_check, out_action = tmp / "argv-check.json", tmp / "argv-action.json"
    argv = [f"{{{n}}}" for n in names]
    phases = [
        {
            "id": "one",
            "name": "One",
            "estimate_minutes": 1,
            "checkpoint": "args as data",
            "actions": [
                {
                    "id": "act",
                    "name": "action echo",
                    "kind": "run",
                    "params": {"argv": [sys.executable, "-c", ECHO_ARGV, str(out_action), *argv]},
                }
            ],
            "checks": [
                {
                    "id": "echo",
                    "name": "check echo",
                    "kind": "command",
                    "params": {"argv": [sys.executable, "-c", ECHO_ARGV, str(out_check), *argv]},
                },
                {
                    "id": "printf",
                    "name": "printf",
                    "kind": "command",
                    "params": {"argv": ["printf", "%s|", *argv], "expect_output": values["subst"]},
                },
            ],
        },
        {
            "id": "two",
            "name": "Two",
            "estimate_minutes": 1,
            "checkpoint": "program as data",
            "checks": [
                {
                    "id": "dash-program",
                    "name": "a value as the program",
                    "kind": "command",
                    "params": {"argv": ["{help}"]},
                },
                {
                    "id": "subst-program",
                    "name": "a value as the program",
                    "kind": "command",
                    "params": {"argv": ["{subst}"]},
                },
            ],
        },
    ]
    runbook = runbook_with_vars(tmp, phases, values)
    (tmp / "victim").mkdir()
    (tmp / "victim" / "keep").write_text("")
    return Engine(Database(f"sqlite:///{tmp / 'bot.db'}"), runbook, background=False), names


def test_placeholder_values_with_metacharacters_and_dashes_reach_the_program_verbatim(
    tmp_path: Path,
) -> None:
    engine, names = hostile_runbook(tmp_path)
    engine.db.create_all()
    expected = [payloads(tmp_path)[n] for n in names]
    run = engine.start_run("staging", BOB)
    assert run.id is not None
    gate = gate_view(engine.db, engine.runbook, open_gate_id(engine.db, run.id) or 0)
    assert gate is not None
    assert {s.step_id: s.status for s in gate.steps} == {
        "act": "pass",
        "echo": "pass",
        "printf": "pass",
    }, [(s.step_id, s.evidence) for s in gate.steps]
    for out in ("argv-check.json", "argv-action.json"):
        assert json.loads((tmp_path / out).read_text()) == expected
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "victim" / "keep").exists()
    assert not (tmp_path / "--output=").exists()

    # a hostile value in the program's place is a program that does not exist
    assert engine.decide(gate.id, BOB, "continue").outcome == "approved"
    second = gate_view(engine.db, engine.runbook, open_gate_id(engine.db, run.id) or 0)
    assert second is not None and not second.checks_passed
    evidence = {s.step_id: (s.status, s.evidence) for s in second.steps}
    assert evidence["dash-program"] == ("error", "cannot run --help: not found")
    assert evidence["subst-program"][0] == "error"
    assert "not found" in evidence["subst-program"][1]
    assert not (tmp_path / "pwned").exists()
    engine.db.dispose()


def test_a_nul_byte_in_a_value_is_refused_when_the_runbook_loads(tmp_path: Path) -> None:
    phases = [
        {
            "id": "one",
            "name": "One",
            "estimate_minutes": 1,
            "checkpoint": "x",
            "checks": [
                {
                    "id": "nul",
                    "name": "nul",
                    "kind": "command",
                    "params": {"argv": ["touch", "{nul}"]},
                }
            ],
        }
    ]
    with pytest.raises(RunbookError) as refused:
        runbook_with_vars(tmp_path, phases, {"nul": f"{tmp_path}/a\x00b"})
    assert "phase 'one' > checks > 'nul' (environment 'staging')" in str(refused.value)
    assert "argv elements must not contain NUL" in str(refused.value)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    "text",
    [
        "start '$(touch {m})'",
        "start `touch {m}`",
        "start staging;touch {m}",
        "start staging '; touch {m}'",
        "start -rf",
        "start --help staging",
        "start staging --dry-run=$(touch {m})",
        "start -- staging",
        "status -rf",
        "status '$(touch {m})'",
        "abort -rf --reason x",
        "abort staging --reason",
        "audit '1; touch {m}'",
        "audit -1",
    ],
)
def test_slash_command_arguments_with_metacharacters_or_dashes_are_refused(
    sqlite_db: Database, tmp_path: Path, text: str
) -> None:
    marker = tmp_path / "pwned"
    text = text.replace("{m}", str(marker))
    with pytest.raises(UsageError) as refused:
        parse(text)
    assert "Usage:" in str(refused.value)
    assert not marker.exists()


def test_an_abort_reason_full_of_shell_is_kept_as_data_and_runs_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    engine = Engine(sqlite_db, small_runbook(tmp_path, act=True), background=False)
    service = CommandService(engine, Reads(engine.db, engine.runbook))
    actor = Actor("T1:U1", "alice")
    marker = tmp_path / "pwned"
    started = service.execute(parse("start staging"), actor)
    assert started.run_id is not None
    reason = f"$(touch {marker}); rm -rf {tmp_path} `id` --help -rf"
    reply = service.execute(parse(f"abort staging --reason {json.dumps(reason)}"), actor)
    assert "aborted" in reply.text or "rolled back" in reply.text, reply.text
    with sqlite_db.session() as s:
        run = s.get(Run, started.run_id)
    assert run is not None and run.status == "rolled_back"
    assert run.rollback_reason == f"aborted: {reason}"
    assert (tmp_path / "rolled-back").exists()  # the rollback's own steps ran, nothing else
    assert not marker.exists() and tmp_path.is_dir()
    exported = audit.export(sqlite_db, started.run_id, "jsonl")
    assert json.dumps(reason)[1:-1] in exported
