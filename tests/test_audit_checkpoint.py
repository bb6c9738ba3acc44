"""A cut at the end of the audit trail is found: by `cutover audit verify --expect-head` with the
head posted in Slack, and by the bot itself, which keeps the last head it signed and posted in
a checkpoint file next to its key and refuses to start on a shorter or different chain.

The attacker is a DBA: the last 11 rows deleted and `audit_head` reset to the row before
them. The chain alone still verifies (and so do the signatures of the rows left)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import audit
from bot.app import open_database
from bot.audit_guard import AuditTrailRefused, CheckpointFile
from bot.cli import main
from bot.engine import Engine
from bot.settings import Settings
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from phases.secrets import Masker
from tests.conftest import STEP_USER
from tests.small_runbook import small_runbook
from tests.test_audit import tampering
from tests.test_audit_signing import Notices

BOB, CAROL = Actor("T1:U2", "bob"), Actor("T1:U3", "carol")
CUT = 11


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "keys" / "audit.key", tmp_path / "audit.pub"
    private.parent.mkdir()
    audit.keygen(private, public)
    return private, public


def finished_run(db: Database, tmp_path: Path, surface: Notices) -> str:
    """A run approved to its end; returns the chain head posted in its thread (ROW:HASH)."""
    engine = Engine(db, small_runbook(tmp_path), background=False, surface=surface, masker=Masker())
    run = engine.start_run("staging", BOB)
    assert run.id is not None
    while (gate := open_gate_id(db, run.id)) is not None:
        decision = engine.decide(gate, CAROL, "continue")
        if decision.outcome == "refused" and "tick" in decision.message:
            engine.tick(gate, "browser", CAROL)
            decision = engine.decide(gate, CAROL, "continue")
        assert decision.changed, decision.message
    posted = [t for rid, t in surface.notices if rid == run.id and "chain head" in t]
    found = re.search(r"--expect-head (\d+:[0-9a-f]{64})", posted[-1])
    assert found is not None, posted
    return found[1]


def cut_the_end(db: Database, rows: int = CUT) -> int:
    """What the DBA did: the last `rows` rows (and their signatures) deleted, the head reset
    to the row before them. Returns the new last row."""
    top, _ = audit.head(db)
    keep = top - rows
    with tampering(db) as conn:
        prev = conn.execute(text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": keep})
        digest = prev.scalar_one()
        conn.execute(text("DELETE FROM audit_event WHERE seq > :s"), {"s": keep})
        conn.execute(text("DELETE FROM audit_signature WHERE seq > :s"), {"s": keep})
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"), {"s": keep, "h": digest}
        )
    return keep


def test_verify_with_the_head_posted_in_slack_names_the_rows_cut_from_the_end(
    db: Database, tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    db.audit_signer = audit.Signer.from_file(private)
    first = finished_run(db, tmp_path, Notices())
    last = finished_run(db, tmp_path, Notices())
    last_row = int(last.split(":")[0])
    keep = cut_the_end(db)
    url, pub = db.url, str(public)
    capsys.readouterr()

    assert main(["--database-url", url, "audit", "verify", "--public-key", pub]) == 0  # blind
    capsys.readouterr()
    assert main(["--database-url", url, "audit", "verify", "--expect-head", last]) == 1
    out = capsys.readouterr().out
    assert (
        f"the chain ends at row {keep}, short of the expected head {last}: "
        f"rows {keep + 1}-{last_row} are missing (cut from the end of the trail)"
    ) in out
    assert f"read rows 1..{keep}, head {keep}:{audit.head(db)[1]}" in out

    # The head of the first run is still there: verify says which head it verified.
    assert main(["--database-url", url, "audit", "verify", "--expect-head", first]) == 0
    out = capsys.readouterr().out
    assert f"verified rows 1..{keep}, head {keep}:{audit.head(db)[1]}" in out
    assert f"it holds the expected head {first}" in out


def test_verify_names_a_row_whose_hash_differs_from_the_expected_head(
    sqlite_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    posted = finished_run(sqlite_db, tmp_path, Notices())
    seq = int(posted.split(":")[0])
    other = f"{seq}:{'0' * 63}1"
    assert main(["--database-url", sqlite_db.url, "audit", "verify", "--expect-head", other]) == 1
    assert f"row {seq}: has hash {posted.split(':')[1]}, not the expected head's" in (
        capsys.readouterr().out
    )


def test_a_malformed_expected_head_is_bad_usage(
    sqlite_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as code:
        main(["--database-url", sqlite_db.url, "audit", "verify", "--expect-head", "12:abc"])
    assert code.value.code == 2
    assert "write ROW:HASH" in capsys.readouterr().err


def settings(url: str, key: Path | None, **more: object) -> Settings:
    return Settings(database_url=url, audit_key_file=key, **more)  # type: ignore[arg-type]


def test_the_bot_refuses_to_start_on_a_trail_cut_shorter_than_the_head_it_posted(
    db: Database, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    """A real `cutover console` after the cut: exit 1, what is missing and how to look,
    nothing appended (the restarted bot does not post a new head that hides the cut)."""
    private, _ = keys
    bot = open_database(settings(db.url, private))
    posted = finished_run(bot, tmp_path, Notices())
    checkpoint = json.loads((private.parent / "audit.key.head").read_text())
    assert f"{checkpoint['seq']}:{checkpoint['hash']}" == posted  # kept when it was posted
    bot.dispose()
    keep = cut_the_end(db)
    before = audit.head(db)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "SLACK_"))}
    env |= {
        "CUTOVER_DATABASE_URL": db.url,
        "CUTOVER_AUDIT_KEY_FILE": str(private),
        "CUTOVER_STEP_USER": STEP_USER,  # a root bot runs its steps as an unprivileged user
    }
    started = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--runbook", str(tmp_path / "small.yml")],
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 1, started.stderr
    err = started.stderr
    assert f"the audit trail ends at row {keep}, but this bot signed and posted chain head " in err
    assert f"{posted}" in err and f"rows {keep + 1}-{posted.split(':')[0]} are missing" in err
    assert f"cutover audit verify --public-key PUBLIC.pem --expect-head {posted}" in err
    assert "Nothing was appended" in err
    assert audit.head(db) == before


def test_the_bot_refuses_a_trail_rewritten_at_the_checkpoints_row(
    sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, _ = keys
    bot = open_database(settings(sqlite_db.url, private))
    posted = finished_run(bot, tmp_path, Notices())
    seq = int(posted.split(":")[0])
    with tampering(sqlite_db) as conn:
        conn.execute(
            text("UPDATE audit_event SET hash = :h WHERE seq = :s"), {"h": "f" * 64, "s": seq}
        )
    with pytest.raises(AuditTrailRefused, match=f"audit row {seq} has hash f{{64}}, but this bot"):
        open_database(settings(sqlite_db.url, private))
    bot.dispose()


def test_the_checkpoint_never_moves_back_nor_over_a_cut_trail(
    sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, _ = keys
    signer = audit.Signer.from_file(private)
    sqlite_db.audit_signer = signer
    finished_run(sqlite_db, tmp_path, Notices())
    file = CheckpointFile(tmp_path / "cp.head", signer, sqlite_db.safe_url)
    seq, digest = audit.head(sqlite_db)
    assert file.advance(sqlite_db, seq, digest)
    assert file.advance(sqlite_db, seq - 1, audit.hash_at(sqlite_db, seq - 1) or "")
    cp = file.read()  # an older head (another process's) leaves it where it is
    assert cp is not None and (cp.seq, cp.hash) == (seq, digest)
    keep = cut_the_end(sqlite_db, 2)
    assert not file.advance(sqlite_db, *audit.head(sqlite_db))  # the periodic write, after a cut
    cp = file.read()
    assert cp is not None and (cp.seq, cp.hash) == (seq, digest) and keep < seq
    assert oct((tmp_path / "cp.head").stat().st_mode & 0o777) == "0o600"


def test_an_edited_checkpoint_is_refused(
    sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    """Lowering the checkpoint's row to hide a cut breaks its signature."""
    private, _ = keys
    open_database(settings(sqlite_db.url, private)).dispose()
    path = private.parent / "audit.key.head"
    data = json.loads(path.read_text())
    data["seq"] = 0
    path.write_text(json.dumps(data))
    with pytest.raises(AuditTrailRefused, match="its signature does not verify"):
        open_database(settings(sqlite_db.url, private))


def test_a_checkpoint_from_before_a_key_rotated_in_place_is_checked_with_that_key(
    sqlite_db: Database, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    """The key file replaced by a new key: the checkpoint the old key signed still counts (its
    key signed rows of this trail); one re-signed by a stranger's key to hide a cut does not."""
    private, _ = keys
    bot = open_database(settings(sqlite_db.url, private))
    finished_run(bot, tmp_path, Notices())
    bot.dispose()
    private.unlink()
    audit.keygen(private, tmp_path / "new.pub")  # rotated in place: same file name
    open_database(settings(sqlite_db.url, private)).dispose()  # the old checkpoint vouched

    stranger = tmp_path / "stranger.key"
    audit.keygen(stranger, tmp_path / "stranger.pub")
    forged = CheckpointFile(
        private.parent / "audit.key.head", audit.Signer.from_file(stranger), sqlite_db.safe_url
    )
    forged._write(0, audit.GENESIS)  # "the trail was empty": a cut would pass
    with pytest.raises(AuditTrailRefused, match="which this trail cannot vouch for"):
        open_database(settings(sqlite_db.url, private))
