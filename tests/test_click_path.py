"""What one Continue click costs the database, counted on PostgreSQL with SQLAlchemy's events.

The click's own work is what the bot does for it on the thread that handles it (the
`slack-work` pool): the replay guard, the permission check, the decision. The next phase
(the engine's `cutover-run` pool) and the redraws (the outbox) are counted apart: they are
the phase's and the messages' work, not the click's (issue 19)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.store.db import Database
from bot.store.models import PhaseRun, Run
from tests.slack_harness import running_bot
from tests.small_runbook import small_runbook

GATE_READ = re.compile(r"^\s*SELECT\b.*\b(FROM|JOIN)\s+gate\b", re.IGNORECASE | re.DOTALL)
DECISION = re.compile(r"^\s*UPDATE gate SET status=", re.IGNORECASE)


@dataclass(frozen=True)
class Seen:
    thread: str
    what: str  # "commit", "checkout" or "sql"
    statement: str = ""


@contextmanager
def counting(engine: Engine) -> Iterator[list[Seen]]:
    """Every commit, pool checkout and statement sent through `engine`, with its thread.
    Checkouts count the transactions that bypass the ORM (`Database.dbapi_transaction`)."""
    seen: list[Seen] = []
    lock = threading.Lock()

    def note(what: str, statement: str = "") -> None:
        with lock:
            seen.append(Seen(threading.current_thread().name, what, statement))

    def on_commit(_conn: Any) -> None:
        note("commit")

    def on_checkout(*_args: Any) -> None:
        note("checkout")

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        note("sql", statement)

    hooks = [
        (engine, "commit", on_commit),
        (engine.pool, "checkout", on_checkout),
        (engine, "before_cursor_execute", on_statement),
    ]
    for target, name, fn in hooks:
        event.listen(target, name, fn)
    try:
        yield seen
    finally:
        for target, name, fn in hooks:
            event.remove(target, name, fn)


def one_continue_click(pg_db: Database, tmp_path: Path) -> list[Seen]:
    """What the bot sends to the database from a Continue click at phase 1 until phase 2's
    checkpoint is posted and every redraw is done (the start and phase 1 not counted)."""
    with running_bot(pg_db, small_runbook(tmp_path)) as bot:
        bot.command("start staging", user="U1")
        run_id = bot.latest_run()
        one = bot.checkpoint(run_id, 1)
        assert bot.service.surface.outbox.settle(timeout=10)
        with counting(pg_db.engine) as seen:
            bot.click(one, "gate_continue", user="U2")
            bot.wait_text(one, "*Approved* by <@U2>")
            bot.checkpoint(run_id, 2)
            assert bot.service.surface.outbox.settle(timeout=10)
        return seen


def test_a_continue_click_reads_the_gate_once_and_commits_twice(
    pg_db: Database, tmp_path: Path
) -> None:
    seen = one_continue_click(pg_db, tmp_path)
    click = [s for s in seen if s.thread.startswith("slack-work")]
    sql = [s.statement for s in click if s.what == "sql"]
    # The counted thread is the one that decided (else this test would count nothing).
    assert [q for q in sql if DECISION.match(q)], sql
    gate_reads = [q for q in sql if GATE_READ.match(q)]
    assert len(gate_reads) == 1, gate_reads
    assert "FOR UPDATE" in gate_reads[0]  # the one read is the decision's, under its lock
    commits = sum(1 for s in click if s.what == "commit")
    checkouts = sum(1 for s in click if s.what == "checkout")
    assert commits <= 2 and checkouts <= 2, (commits, checkouts, sql)


def test_the_next_phase_posts_its_checkpoint_without_reading_its_gate_back(
    pg_db: Database, tmp_path: Path
) -> None:
    """The phase's thread draws the checkpoint from what the gate-opening transaction wrote
    (tests/test_opened_checkpoint.py checks that it is what a read would show): its only
    read of the gate is the one after the post, recording the message (`set_surface_ref`)."""
    seen = one_continue_click(pg_db, tmp_path)
    phase = [s.statement for s in seen if s.thread.startswith("cutover-run") and s.what == "sql"]
    opened = [i for i, q in enumerate(phase) if q.lstrip().upper().startswith("INSERT INTO GATE")]
    posted = [i for i, q in enumerate(phase) if "SET surface_ref" in q]
    assert len(opened) == 1 and len(posted) == 1, phase  # this thread opened and posted it
    between = phase[opened[0] : posted[0]]
    assert not [q for q in between if GATE_READ.match(q)], between


def test_a_continue_claims_the_next_phase_in_its_own_transaction(
    pg_db: Database, tmp_path: Path
) -> None:
    """One commit for the decision and the next phase's claim: the phase's thread begins
    with its claim made (no transaction of its own to claim it)."""
    seen = one_continue_click(pg_db, tmp_path)
    click = [s for s in seen if s.thread.startswith("slack-work") and s.what != "checkout"]
    decided = next(i for i, s in enumerate(click) if DECISION.match(s.statement))
    committed = next(i for i, s in enumerate(click) if i > decided and s.what == "commit")
    claimed = [
        s.statement
        for s in click[decided:committed]
        if s.statement.lstrip().upper().startswith("INSERT INTO PHASERUN")
    ]
    assert len(claimed) == 1, [s.statement for s in click]
    phase = [s.statement for s in seen if s.thread.startswith("cutover-run") and s.what == "sql"]
    assert not [q for q in phase if q.lstrip().upper().startswith("INSERT INTO PHASERUN")], phase


def test_a_continue_does_not_look_for_earlier_attempts_of_the_phase_it_moved_to(
    pg_db: Database, tmp_path: Path
) -> None:
    """The decision moved the run's phase index forward under its lock, and attempts are only
    made at the run's index: the claim knows the phase has none (attempt 1) without a read."""
    seen = one_continue_click(pg_db, tmp_path)
    click = [s for s in seen if s.thread.startswith("slack-work") and s.what == "sql"]
    decided = next(i for i, s in enumerate(click) if DECISION.match(s.statement))
    attempt_reads = [
        s.statement
        for s in click[decided:]
        if re.match(r"^\s*SELECT\b.*\bFROM\s+phaserun\b", s.statement, re.I | re.S)
    ]
    assert not attempt_reads, attempt_reads
    with pg_db.session() as s:  # and the phase it claimed is that phase's one attempt: 1
        rows = s.exec(select(PhaseRun.phase_index, PhaseRun.attempt)).all()
    assert sorted(rows) == [(0, 1), (1, 1)], rows


def test_a_continue_at_a_gate_of_quorum_one_reads_no_votes(pg_db: Database, tmp_path: Path) -> None:
    """Such a gate is decided by its first vote, in that vote's transaction: open, it has none."""
    seen = one_continue_click(pg_db, tmp_path)
    click = [s.statement for s in seen if s.thread.startswith("slack-work") and s.what == "sql"]
    vote_reads = [q for q in click if re.match(r"^\s*SELECT\b.*\bFROM\s+vote\b", q, re.I | re.S)]
    assert not vote_reads, vote_reads
    assert [q for q in click if q.upper().startswith("INSERT INTO VOTE")]  # the vote is kept


def test_a_continue_writes_the_run_once_its_move_and_the_next_phases_lease_together(
    pg_db: Database, tmp_path: Path
) -> None:
    """The run's move to its next phase goes in the lease's conditional UPDATE (one round
    trip, not an UPDATE of its own at the flush), and the row says both."""
    seen = one_continue_click(pg_db, tmp_path)
    click = [s.statement for s in seen if s.thread.startswith("slack-work") and s.what == "sql"]
    run_writes = [q for q in click if re.match(r"^\s*UPDATE run\b", q, re.I)]
    assert len(run_writes) == 1, run_writes
    assert "phase_index" in run_writes[0] and "lease_epoch" in run_writes[0], run_writes
    with pg_db.session() as s:
        run = s.exec(select(Run)).one()
    assert (run.phase_index, run.lease_epoch) == (1, 2), (run.phase_index, run.lease_epoch)
