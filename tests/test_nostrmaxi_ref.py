"""Phase 2 "ensure on correct branch/commit": the ref to deploy is given at start
(`/cutover start prod ref=v2`) or is the environment's default (the runbook's `ref` var); the
deploy phase checks it out and its gate shows whether HEAD is that commit (a real git origin
and checkout made by the stand-in, the shipped runbook, the real engine)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.store.db import Database
from bot.store.reads import Reads
from commands.handlers import CommandService
from commands.parser import Start, UsageError, parse
from tests.standin_env import Standin, _git
from tests.test_runs import ALICE, BOB, approve_until, make_engine

pytestmark = pytest.mark.docker


def head(repo: Path, rev: str = "HEAD") -> str:
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", rev], capture_output=True, text=True)
    return out.stdout.strip()


def commit(repo: Path, subject: str) -> str:
    (repo / "CHANGELOG").write_text(subject + "\n", encoding="utf-8")
    _git("add", "CHANGELOG", cwd=repo)
    _git("commit", "-q", "-m", subject, cwd=repo)
    return head(repo)


def release(standin: Standin, tmp_path: Path) -> tuple[str, str]:
    """origin gets "release 2" tagged v2, then "work after 2" on main: (v2's sha, main's)."""
    work = tmp_path / "dev"
    _git("clone", "-q", str(tmp_path / "origin.git"), str(work), cwd=tmp_path)
    v2 = commit(work, "release 2")
    _git("tag", "v2", cwd=work)
    tip = commit(work, "work after 2")
    _git("push", "-q", "origin", "main", "v2", cwd=work)
    return v2, tip


def start(engine: Any, standin: Standin, text: str) -> int:
    """`text` as typed, after the items that gate Start (preflight restores the newest backup's
    listing: the stand-in's placeholder file is replaced by a real dump of the target)."""
    backups = Path(str(engine.runbook.values_for("standin")["backup_dir"]))
    (backups / "nostrmaxi-latest.sql.gz").unlink()
    dump = backups / "nostrmaxi-latest.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), standin.target_db_url], check=True)
    service = CommandService(engine, Reads(engine.db, engine.runbook))
    for item in ("maintenance-page", "no-users", "final-backup"):
        reply = service.execute(parse(f"/cutover tick standin {item}"), BOB)
        assert reply.text.startswith("✅"), reply.text
    reply = service.execute(parse(text), ALICE)
    assert reply.run_id is not None, reply.text
    return reply.run_id


def started(db: Database, run_id: int) -> dict[str, Any]:
    return next(json.loads(e.data) for e in audit.events(db, run_id) if e.kind == "run.started")


def test_start_takes_a_ref_that_git_cannot_read_as_an_option() -> None:
    assert parse("/cutover start prod ref=v1.4.2") == Start("prod", ref="v1.4.2")
    assert parse("/cutover start prod --dry-run ref=release/2026-02") == Start(
        "prod", dry_run=True, ref="release/2026-02"
    )
    assert parse("/cutover start prod") == Start("prod")
    for bad in ("ref=-c", "ref=a..b", "ref=x.lock", "ref=", "ref=a b"):
        with pytest.raises(UsageError, match="is not a git branch, tag or commit name"):
            parse(f"/cutover start prod '{bad}'")
    with pytest.raises(UsageError, match="give ref= once"):
        parse("/cutover start prod ref=a ref=b")


def test_the_ref_given_at_start_is_checked_out_and_shown_at_the_phase_2_gate(
    db: Database, standin: Standin, tmp_path: Path
) -> None:
    v2, _tip = release(standin, tmp_path)
    engine = make_engine(db, standin)
    run_id = start(engine, standin, "/cutover start standin ref=v2")
    data = started(db, run_id)
    assert (data["ref"], data["ref_from"]) == ("v2", "start")
    gate = approve_until(engine, run_id, stop_at="deploy-config")
    steps = {s.step_id: s for s in gate.steps}
    assert steps["correct-commit"].status == "pass"
    assert steps["correct-commit"].evidence == f"HEAD {v2[:12]} is tag v2 (release 2)"
    assert head(standin.app_dir) == v2


def test_without_a_ref_the_environment_default_branch_tip_is_deployed(
    db: Database, standin: Standin, tmp_path: Path
) -> None:
    _v2, tip = release(standin, tmp_path)
    engine = make_engine(db, standin)
    run_id = start(engine, standin, "/cutover start standin")
    assert started(db, run_id)["ref"] == "main" and started(db, run_id)["ref_from"] == "runbook"
    gate = approve_until(engine, run_id, stop_at="deploy-config")
    steps = {s.step_id: s for s in gate.steps}
    assert steps["correct-commit"].evidence == f"HEAD {tip[:12]} is origin/main (work after 2)"


def test_a_checkout_ahead_of_the_ref_fails_the_gate_naming_both_commits(
    db: Database, standin: Standin, tmp_path: Path
) -> None:
    _v2, tip = release(standin, tmp_path)
    _git("pull", "-q", "origin", "main", cwd=standin.app_dir)
    local = commit(standin.app_dir, "hotfix typed on the server")
    engine = make_engine(db, standin)
    run_id = start(engine, standin, "/cutover start standin")
    gate = approve_until(engine, run_id, stop_at="deploy-config")
    assert not gate.checks_passed
    steps = {s.step_id: s for s in gate.steps}
    assert steps["correct-commit"].status == "fail"
    assert steps["correct-commit"].evidence == (
        f"HEAD {local[:12]} (hotfix typed on the server) is not origin/main ({tip[:12]})"
    )


def test_a_ref_for_a_runbook_without_one_is_refused_before_any_run(
    db: Database, standin: Standin
) -> None:
    engine = make_engine(db, standin)
    object.__setattr__(
        engine.runbook, "vars", {k: v for k, v in engine.runbook.vars.items() if k != "ref"}
    )
    reply = CommandService(engine, Reads(engine.db, engine.runbook)).execute(
        parse("/cutover start standin --dry-run ref=v2"), ALICE
    )
    assert reply.run_id is None
    assert "ref=v2 given, but this runbook deploys no ref" in reply.text
