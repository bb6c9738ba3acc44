"""Forged audit rows do not pass: every row is signed with an Ed25519 key the database never
holds, and `cutover audit verify --public-key` names each unsigned or badly signed row.

The forger is the bot's own locked-down role: it may INSERT audit rows and move the head, so
it can append a fabricated `gate.decided` with a correct hash. The chain alone says OK; the
signatures do not. Each run's end also posts the chain head in the run's thread."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from bot import audit
from bot.cli import main
from bot.domain.audit_kinds import AuditKind
from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from phases.secrets import Masker
from tests.db_fixtures import libpq
from tests.small_runbook import small_runbook

BOB, CAROL = Actor("T1:U2", "bob"), Actor("T1:U3", "carol")


class Notices:
    def __init__(self) -> None:
        self.notices: list[tuple[int | None, str]] = []

    def run_changed(self, run_id: int) -> None: ...
    def checkpoint(self, gate_id: int, opened: object = None) -> None: ...
    def gate_changed(self, gate_id: int) -> None: ...

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        self.notices.append((run_id, text))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "audit.key", tmp_path / "audit.pub"
    assert (
        main(["audit", "keygen", "--private-key", str(private), "--public-key", str(public)]) == 0
    )
    assert private.stat().st_mode & 0o077 == 0  # the owner's alone
    return private, public


def signed(db: Database, private: Path) -> Database:
    db.audit_signer = audit.Signer.from_file(private)
    return db


def finished_run(db: Database, tmp_path: Path, surface: Notices | None = None) -> int:
    engine = Engine(db, small_runbook(tmp_path), background=False, surface=surface, masker=Masker())
    run = engine.start_run("staging", BOB)
    assert run.id is not None
    while (gate := open_gate_id(db, run.id)) is not None:  # every phase approved: the run ends
        decision = engine.decide(gate, CAROL, "continue")
        if decision.outcome == "refused" and "tick" in decision.message:
            engine.tick(gate, "browser", CAROL)  # the small runbook's one manual step
            decision = engine.decide(gate, CAROL, "continue")
        assert decision.changed, decision.message
    return run.id


def test_every_row_of_a_signing_bot_verifies_with_its_public_key(
    db: Database, tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    finished_run(signed(db, private), tmp_path)
    assert audit.verify_signatures(db, audit.load_public_keys([public])) == []
    assert main(["--database-url", db.url, "audit", "verify", "--public-key", str(public)]) == 0
    assert "every row signed" in capsys.readouterr().out


def test_rows_written_without_the_key_are_named_as_unsigned(
    db: Database, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    finished_run(db, tmp_path)  # no key configured: rows 1..n unsigned
    unsigned_to = audit.head(db)[0]
    finished_run(signed(db, private), tmp_path)
    problems = audit.verify_signatures(db, audit.load_public_keys([public]))
    assert [str(p) for p in problems] == [
        f"row 1: unsigned, and so are rows 2-{unsigned_to} (appended without the signing key)"
    ]


def test_a_row_signed_by_another_key_is_named(
    db: Database, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    other_private, _ = tmp_path / "other.key", tmp_path / "other.pub"
    audit.keygen(other_private, tmp_path / "other.pub")
    finished_run(signed(db, other_private), tmp_path)
    problems = audit.verify_signatures(db, audit.load_public_keys([public]))
    assert problems and all("signed by unknown key" in p.what for p in problems)
    # both public keys (a rotation): every row verifies
    both = audit.load_public_keys([public, tmp_path / "other.pub"])
    assert audit.verify_signatures(db, both) == []


@pytest.mark.postgres
def test_a_row_fabricated_by_the_locked_down_role_is_reported_at_its_sequence_number(
    pg_db: Database,
    tmp_path: Path,
    keys: tuple[Path, Path],
    app_role: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keys
    assert main(["--database-url", pg_db.url, "audit", "lockdown", "--app-role", app_role]) == 0
    run_id = finished_run(signed(pg_db, private), tmp_path)
    capsys.readouterr()

    # The bot's own role appends a fabricated approval: correct hash, head moved, no key.
    with psycopg.connect(libpq(pg_db.url, app_role)) as conn:
        row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE").fetchone()
        assert row is not None
        seq, prev = row
        forged_seq, at = seq + 1, audit.now_iso()
        data = audit.canonical({"decision": "continue", "approvers": ["T1:U666"]})
        digest = audit.event_hash(
            prev, forged_seq, at, run_id, "T1:U666", AuditKind.GATE_DECIDED, data
        )
        conn.execute(
            "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (forged_seq, at, run_id, "T1:U666", AuditKind.GATE_DECIDED, data, prev, digest),
        )
        conn.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (forged_seq, digest))
        # and a signature it made up, for a second forged row
        prev, second = digest, forged_seq + 1
        digest2 = audit.event_hash(prev, second, at, run_id, "T1:U666", "run.completed", "{}")
        conn.execute(
            "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (second, at, run_id, "T1:U666", "run.completed", "{}", prev, digest2),
        )
        conn.execute(
            "INSERT INTO audit_signature (seq, key_id, signature) VALUES (%s, %s, %s)",
            (second, audit.Signer.from_file(private).key_id, "ab" * 64),
        )
        conn.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (second, digest2))
        conn.commit()

    assert main(["--database-url", pg_db.url, "audit", "verify"]) == 0  # the chain alone: OK
    capsys.readouterr()
    assert main(["--database-url", pg_db.url, "audit", "verify", "--public-key", str(public)]) == 1
    out = capsys.readouterr().out
    assert f"row {forged_seq}: unsigned (appended without the signing key)" in out
    assert f"row {second}: bad signature" in out
    assert out.count("row ") == 2, out


def test_the_chain_head_is_posted_in_the_thread_when_a_run_ends(
    db: Database, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, _ = keys
    surface = Notices()
    run_id = finished_run(signed(db, private), tmp_path, surface)
    seq, digest = audit.head(db)
    posted = [text for rid, text in surface.notices if rid == run_id and "chain head" in text]
    assert len(posted) == 1
    assert f"row {seq}, sha256 {digest}" in posted[0]
    assert audit.Signer.from_file(private).key_id in posted[0]


def test_a_secret_in_audit_data_is_masked_when_written(db: Database) -> None:
    secret = "tok-" + uuid.uuid4().hex
    masker = Masker([secret])
    with db.session() as s:
        audit.append(
            s,
            AuditKind.ACTION_REFUSED,
            actor="T1:U1",
            data={"reason": f"bad {secret}", "nested": [secret]},
        )
    assert secret not in audit.export(db, None, "jsonl")
    del masker


def test_keygen_never_overwrites_a_key(keys: tuple[Path, Path]) -> None:
    private, public = keys
    before = private.read_bytes()
    assert (
        main(["audit", "keygen", "--private-key", str(private), "--public-key", str(public)]) != 0
    )
    assert private.read_bytes() == before


def test_an_unusable_key_file_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    monkeypatch.setenv("CUTOVER_AUDIT_KEY_FILE", str(bad))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["--database-url", url, "audit", "verify"]) == 4
    assert "not an unencrypted Ed25519 private key" in capsys.readouterr().err


@pytest.mark.postgres
def test_a_signature_row_planted_by_the_app_role_neither_stops_an_abort_nor_hides(
    pg_db: Database,
    tmp_path: Path,
    keys: tuple[Path, Path],
    app_role: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The locked-down role inserts one made-up signature for the next row: the bot, running
    as that role, still aborts the run (and starts the next); verify names the planted row."""
    private, public = keys
    assert main(["--database-url", pg_db.url, "audit", "lockdown", "--app-role", app_role]) == 0
    as_app = signed(
        Database(libpq(pg_db.url, app_role).replace("postgresql://", "postgresql+psycopg://")),
        private,
    )
    try:
        engine = Engine(as_app, small_runbook(tmp_path), background=False, masker=Masker())
        run = engine.start_run("staging", BOB)
        planted = audit.head(as_app)[0] + 1
        with psycopg.connect(libpq(pg_db.url, app_role)) as conn:
            conn.execute(
                "INSERT INTO audit_signature (seq, key_id, signature) VALUES (%s, %s, %s)",
                (planted, audit.Signer.from_file(private).key_id, "cd" * 64),
            )
        aborted = engine.abort("staging", CAROL, "planted signature")
        assert aborted.changed, aborted.message
        assert engine.start_run("staging", BOB).id != run.id  # later state changes too
    finally:
        as_app.dispose()
    capsys.readouterr()
    assert main(["--database-url", pg_db.url, "audit", "verify", "--public-key", str(public)]) == 1
    out = capsys.readouterr().out
    assert f"row {planted}: an extra signature by key" in out
    assert "does not verify (inserted into audit_signature" in out
    assert out.count("row ") == 1, out


def start(db: Database, key: Path | None, **more: object) -> Database:
    """The bot's start (`serve`, `console`): its database opened with these settings."""
    from bot.app import open_database
    from bot.settings import Settings

    return open_database(Settings(database_url=db.url, audit_key_file=key, **more))  # type: ignore[arg-type]


def kinds_and_data(db: Database, kind: str) -> list[tuple[int, dict[str, object]]]:
    import json

    rows = [json.loads(line) for line in audit.export(db, None, "jsonl").splitlines()]
    return [(r["seq"], r["data"]) for r in rows if r["kind"] == kind]


def test_a_key_rotation_is_recorded_and_the_retired_key_verifies_only_before_it(
    db: Database, tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old_private, old_public = keys
    new_private, new_public = tmp_path / "new.key", tmp_path / "new.pub"
    audit.keygen(new_private, new_public)
    old_id = audit.Signer.from_file(old_private).key_id
    new_id = audit.Signer.from_file(new_private).key_id
    bot = start(db, old_private)
    finished_run(bot, tmp_path)
    bot.dispose()

    bot = start(db, new_private)  # restarted with the new key
    [(rotated_at, data)] = kinds_and_data(db, AuditKind.AUDIT_KEY_ROTATED)[-1:]
    assert data == {"key_id": new_id, "retired_key": old_id}
    finished_run(bot, tmp_path)
    both = ["--public-key", str(old_public), "--public-key", str(new_public)]
    assert main(["--database-url", db.url, "audit", "verify", *both]) == 0
    capsys.readouterr()

    # The old key, stolen or left on a replica, still signs a row: verify refuses it there.
    bot.audit_signer = audit.Signer.from_file(old_private)
    late = audit.record(bot, AuditKind.RECORD_NOTE, actor="T1:U666", data={"note": "late"})
    bot.dispose()
    assert main(["--database-url", db.url, "audit", "verify", *both]) == 1
    out = capsys.readouterr().out
    assert (
        f"row {late.seq}: signed by key {old_id}, retired at row {rotated_at}: "
        "a retired key may not sign"
    ) in out
    assert out.count("  row ") == 1, out

    with pytest.raises(
        audit.AuditKeyError, match=f"{old_id} was retired at audit row {rotated_at}"
    ):
        start(db, old_private)  # and the bot will not start with it again


def test_a_key_file_others_may_read_is_refused_with_the_chmod_to_run(
    tmp_path: Path,
    keys: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private, _ = keys
    for mode in (0o644, 0o640, 0o604):
        private.chmod(mode)
        monkeypatch.setenv("CUTOVER_AUDIT_KEY_FILE", str(private))
        assert main(["--database-url", f"sqlite:///{tmp_path / 'x.db'}", "audit", "verify"]) == 4
        err = capsys.readouterr().err
        assert f"is open to group or others (mode {mode:o})" in err
        assert f"Run `chmod 600 {private}`" in err
    private.chmod(0o600)
    assert audit.Signer.from_file(private).key_id


def test_a_dropped_key_is_refused_at_start_unless_allowed_and_then_recorded(
    db: Database, tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    key_id = audit.Signer.from_file(private).key_id
    bot = start(db, private)
    finished_run(bot, tmp_path)
    bot.dispose()
    before = audit.head(db)
    with pytest.raises(audit.AuditKeyError, match="this bot has no signing key"):
        start(db, None)
    assert audit.head(db) == before  # refused: nothing written

    bot = start(db, None, audit_allow_unsigned=True)
    [(dropped_at, data)] = kinds_and_data(db, AuditKind.AUDIT_KEY_DROPPED)
    assert data == {"retired_key": key_id} and dropped_at == before[0] + 1
    finished_run(bot, tmp_path)
    bot.dispose()
    start(db, None, audit_allow_unsigned=True).dispose()  # recorded once, not at every start
    assert len(kinds_and_data(db, AuditKind.AUDIT_KEY_DROPPED)) == 1
    capsys.readouterr()
    assert main(["--database-url", db.url, "audit", "verify", "--public-key", str(public)]) == 1
    out = capsys.readouterr().out
    assert f"row {dropped_at}: unsigned, and so are rows {dropped_at + 1}-" in out
    assert f"(after the signing key was dropped at row {dropped_at})" in out
    with pytest.raises(audit.AuditKeyError, match="retired at audit row"):
        start(db, private)  # the dropped key is retired too
