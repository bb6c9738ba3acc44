"""A failing step's output is kept: `npm run build` fails after printing 200 lines, one of
them holding the database password from the environment's env file. What it printed is kept
with its result (the last 64 KB, masked before it is written), `cutover logs` prints it, the
checkpoint quotes its last lines, and in Slack the checkpoint's Show output button opens a
modal with the last lines that the stand-in accepts. The password appears nowhere: not in the
database, the CLI's output, the chat reply, the modal or the checkpoint. On SQLite and on the
real PostgreSQL, with a real subprocess.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select
from sqlmodel import col

from bot import audit, cli
from bot.engine import Engine
from bot.slack.blocks import gate_message
from bot.store.db import Database
from bot.store.models import StepOutput, StepRun
from bot.store.reads import gate_view, open_gate_id
from bot.surface import Actor
from bot.text import checkpoint_text
from phases.checks.command import TAIL_BYTES
from phases.secrets import forms
from tests.slack_harness import running_bot
from tests.small_runbook import small_runbook

ALICE = Actor("T1:U1", "alice")
LINE_PAD = "x" * 400  # 200 lines of ~410 bytes: ~82 KB, more than the 64 KB kept

BUILD = """
import os, sys, time
pw = os.environ["DB_PASSWORD"]
for i in range(197):
    out = sys.stderr if i % 20 == 19 else sys.stdout
    text = f"connecting to postgres://app:{pw}@db:5432/app" if i == 150 else "{pad}"
    print(f"line {i:03d} {text}", file=out, flush=True)
time.sleep(0.05)  # the two streams are two pipes: lines printed at once may swap
print(f"Error: P1001: Can't reach database server at postgres://app:{pw}@db", flush=True)
time.sleep(0.05)
print(f"npm ERR! DATABASE_PASSWORD={pw}", file=sys.stderr, flush=True)
time.sleep(0.05)
print("npm ERR! build failed with exit code 1", file=sys.stderr, flush=True)
sys.exit(1)
""".replace("{pad}", LINE_PAD)


def build_runbook(tmp_path: Path) -> tuple[Any, str]:
    """A runbook whose `build` phase runs the failing build with the env file's variables;
    returns it and the planted password."""
    password = "pw-" + secrets.token_hex(12)
    env_file = tmp_path / "app.env"
    env_file.write_text(f"DB_PASSWORD={password}\nNODE_ENV=production\n", encoding="utf-8")
    script = tmp_path / "build.py"
    script.write_text(BUILD, encoding="utf-8")
    phases = [
        {
            "id": "build",
            "name": "Build",
            "estimate_minutes": 5,
            "checkpoint": "Build output exists",
            "actions": [
                {
                    "id": "npm-build",
                    "name": "npm run build",
                    "kind": "run",
                    "params": {"argv": [sys.executable, str(script)], "env_file": str(env_file)},
                }
            ],
            "checks": [
                {"id": "ok", "name": "true", "kind": "command", "params": {"argv": ["true"]}}
            ],
        }
    ]
    rb = small_runbook(tmp_path, phases=phases, env={"env_file": str(env_file)})
    return rb, password


def printed_bytes() -> int:
    """What the build prints, byte for byte (its lines as the script makes them)."""
    total = 0
    for i in range(197):
        text = "connecting to postgres://app:PW@db:5432/app" if i == 150 else LINE_PAD
        total += len(f"line {i:03d} {text}\n")
    return total


def assert_no_secret(password: str, **places: str) -> None:
    for where, text in places.items():
        for form in forms(password):
            assert form not in text, f"the password ({form!r}) leaked into {where}"


def everything_in(db: Database) -> str:
    """Every row of every table of the bot's database, as text."""
    meta = MetaData()
    meta.reflect(db.engine)
    with db.engine.connect() as conn:
        return "\n".join(
            repr(row) for table in meta.sorted_tables for row in conn.execute(select(table))
        )


def failed_build(db: Database, tmp_path: Path) -> tuple[Engine, int, int, str]:
    rb, password = build_runbook(tmp_path)
    engine = Engine(db, rb, background=False)
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    gate_id = open_gate_id(db, run.id)
    assert gate_id is not None
    return engine, run.id, gate_id, password


def test_a_failed_build_keeps_its_last_64_kb_masked_with_its_result(
    db: Database, tmp_path: Path
) -> None:
    engine, run_id, _, password = failed_build(db, tmp_path)
    with db.session() as s:
        step, kept = s.exec(
            select(StepRun, StepOutput).join(
                StepOutput, col(StepOutput.step_run_id) == col(StepRun.id)
            )
        ).one()
    engine.shutdown()
    assert (step.step_id, step.status, kept.run_id) == ("npm-build", "fail", run_id)
    assert kept.truncated and len(kept.text.encode()) <= TAIL_BYTES
    # what it printed in all: the 197 lines and the three last ones, the password's length
    # four times (line 150, the last three hold it twice)
    last = (
        len("Error: P1001: Can't reach database server at postgres://app:@db\n")
        + len("npm ERR! DATABASE_PASSWORD=\n")
        + len("npm ERR! build failed with exit code 1\n")
    )
    assert kept.bytes == printed_bytes() - 2 + last + 3 * len(password)
    lines = kept.text.splitlines()
    assert lines[0].startswith("line ") and lines[0].endswith(LINE_PAD)  # whole lines only
    assert lines[-3:] == [
        "Error: P1001: Can't reach database server at postgres://[redacted]@db",
        "npm ERR! DATABASE_PASSWORD=[redacted]",
        "npm ERR! build failed with exit code 1",
    ]
    assert "connecting to postgres://[redacted]@db:5432/app" in kept.text
    assert kept.last_lines.splitlines()[-1] == "npm ERR! build failed with exit code 1"
    assert_no_secret(password, database=everything_in(db))


def test_the_step_s_audit_row_vouches_for_the_output_kept(db: Database, tmp_path: Path) -> None:
    """The step's audit row holds the kept text's SHA-256 and sizes: the output shown later
    is the output the hash-chained trail recorded with the result."""
    engine, run_id, _, _ = failed_build(db, tmp_path)
    engine.shutdown()
    with db.session() as s:
        kept = s.exec(select(StepOutput)).one()[0]
    rows = [json.loads(e.data) for e in audit.events(db, run_id) if e.kind == "step.result"]
    build = next(r for r in rows if r["step"] == "npm-build")
    data = kept.text.encode()
    assert build["output"] == {
        "bytes": kept.bytes,
        "kept": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert all("output" not in r for r in rows if r["step"] != "npm-build")  # `true`: silent


def test_cutover_logs_lists_the_steps_and_prints_one_masked(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, run_id, _, password = failed_build(db, tmp_path)
    engine.shutdown()
    url = ["--database-url", db.url]
    assert cli.main([*url, "logs", str(run_id)]) == 0
    listing = capsys.readouterr()
    assert "build/npm-build#1" in listing.out and "fail" in listing.out
    assert "ok" not in listing.out.split("build/npm-build#1")[1].split("\n")[0]  # `true`: silent

    assert cli.main([*url, "logs", str(run_id), "build/npm-build"]) == 0
    one = capsys.readouterr()
    assert one.out.splitlines()[-1] == "npm ERR! build failed with exit code 1"
    assert "DATABASE_PASSWORD=[redacted]" in one.out
    assert f"run #{run_id} · build/npm-build#1 (npm run build) · fail" in one.err
    assert "earlier output not kept" in one.err or "kept" in one.err
    assert_no_secret(password, stdout=one.out, stderr=one.err, listing=listing.out)

    assert cli.main([*url, "logs", str(run_id), "build/npm-build#1"]) == 0
    assert capsys.readouterr().out == one.out
    # what does not exist is bad usage (exit 2), saying what does
    assert cli.main([*url, "logs", str(run_id), "build/npm-build#2"]) == 2
    assert "it kept: build/npm-build#1" in capsys.readouterr().err
    assert cli.main([*url, "logs", str(run_id), "build"]) == 2
    assert "is not PHASE/STEP" in capsys.readouterr().err
    assert cli.main([*url, "logs", "999"]) == 2
    assert "there is no run #999" in capsys.readouterr().err


def test_the_checkpoint_quotes_the_last_lines_of_the_failing_step(
    db: Database, tmp_path: Path
) -> None:
    engine, run_id, gate_id, password = failed_build(db, tmp_path)
    view = gate_view(db, engine.runbook, gate_id)
    engine.shutdown()
    assert view is not None
    console = checkpoint_text(view)
    assert (
        "      | npm ERR! DATABASE_PASSWORD=[redacted]\n"
        "      | npm ERR! build failed with exit code 1\n"
        f"      (more: cutover logs {run_id} build/npm-build#1)"
    ) in console
    assert console.count("      | ") == 5
    _, blocks = gate_message(view, engine.masker.mask)
    slack = json.dumps(blocks)
    assert "npm ERR! DATABASE_PASSWORD=[redacted]\\nnpm ERR! build failed with exit code 1```" in (
        slack
    )
    assert_no_secret(password, console=console, slack=slack)


def test_show_output_opens_a_modal_slack_accepts_with_the_last_lines(
    db: Database, tmp_path: Path
) -> None:
    rb, password = build_runbook(tmp_path)
    with running_bot(db, rb) as bot:
        _, key = bot.command("start staging", user="U1")
        bot.reply(key)
        run_id = bot.latest_run()
        checkpoint = bot.checkpoint(run_id, 1)
        shown = bot.wait_text(checkpoint, "npm ERR! build failed with exit code 1")
        assert "npm ERR! DATABASE_PASSWORD=[redacted]" in shown.all_text()
        assert "step_output:0" in shown.action_ids()

        bot.click(shown, "step_output:0", user="U9")  # anyone who sees the channel
        modal = bot.modal("U9")
        text = modal.text()
        assert "npm ERR! build failed with exit code 1```" in text
        assert "DATABASE_PASSWORD=[redacted]" in text
        assert f"cutover logs {run_id} build/npm-build#1" in text
        assert bot.standin.api_calls("views.open", ok=False) == []
        assert len(modal.view["blocks"]) <= 100

        _, key = bot.command(f"logs {run_id} build/npm-build", user="U9")
        answer = bot.reply(key)
        assert "npm ERR! build failed with exit code 1```" in answer
        assert "DATABASE_PASSWORD=[redacted]" in answer
        _, key = bot.command(f"logs {run_id}", user="U9")
        assert "build/npm-build#1 (npm run build): fail" in bot.reply(key)
        sent = bot.standin.everything_sent()
    assert bot.standin.problems == []
    assert_no_secret(password, slack=sent, modal=json.dumps(modal.view))


def test_a_step_printing_binary_output_keeps_it_and_its_result(
    db: Database, tmp_path: Path
) -> None:
    """NUL bytes (a binary printed by mistake) are shown as U+FFFD: PostgreSQL's text type
    refuses them, and the step's result must still be recorded."""
    phases = [
        {
            "id": "build",
            "name": "Build",
            "estimate_minutes": 1,
            "checkpoint": "built",
            "actions": [
                {
                    "id": "cat",
                    "name": "cat a binary",
                    "kind": "run",
                    "params": {"argv": ["printf", "ELF\\000\\001\\nok\\n"]},
                }
            ],
        }
    ]
    engine = Engine(db, small_runbook(tmp_path, phases=phases), background=False)
    run = engine.start_run("staging", ALICE)
    engine.shutdown()
    with db.session() as s:
        step, kept = s.exec(
            select(StepRun, StepOutput).join(
                StepOutput, col(StepOutput.step_run_id) == col(StepRun.id)
            )
        ).one()
    assert (step.status, kept.run_id) == ("pass", run.id)
    assert kept.text == "ELF\ufffd\x01\nok\n"
