"""The audit trail: append-only, each row hash-chained to the one before, each row signed.

An append happens inside the caller's transaction, so a state change and its
audit row commit together or not at all; an event that changes no state is
`record`ed in a transaction of its own. The chain's tip lives in audit_head,
locked for the append: rows get gap-free sequence numbers in commit order.

The chain proves order and integrity, not authorship: anyone who may INSERT can append
a row with a correct hash. So each row's hash is also signed with an Ed25519 key the
bot reads from a file (CUTOVER_AUDIT_KEY_FILE) and the database never holds;
`verify_signatures` with the public key names every unsigned or badly signed row.
Every string in a row's data is masked before it is written: a row cannot be scrubbed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import bindparam, func, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel, col, select

from bot import metrics, migrate
from bot.db import Database, dbapi_error, pooled_cursor
from bot.domain.audit_kinds import AuditKind
from bot.models import AuditEvent, AuditHead, AuditSignature
from phases.secrets import mask_everywhere

GENESIS = "0" * 64


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(
    prev_hash: str, seq: int, at: str, run_id: int | None, actor: str, kind: str, data: str
) -> str:
    body = canonical(
        {"seq": seq, "at": at, "run_id": run_id, "actor": actor, "kind": kind, "data": data}
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


# ---------------------------------------------------------------------------- signing


class AuditKeyError(ValueError):
    """A signing or public key file that cannot be used; the message says how to fix it."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """Signs audit row hashes with an Ed25519 private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_key = private.public_key()
        self.key_id = key_id(self.public_key)

    def secrets(self) -> list[str]:
        """The private key as anything may print it (its PEM, the PEM's base64 body, the raw
        32 bytes in hex), for the masker: a step or a traceback that prints the key file
        shows none of it."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        raw = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        body = [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]
        return [pem, "".join(body), *body, raw.hex(), raw.hex().upper()]

    def sign(self, row_hash: str) -> str:
        return self._private.sign(row_hash.encode()).hex()

    def sign_bytes(self, body: bytes) -> str:
        return self._private.sign(body).hex()

    @classmethod
    def from_file(cls, path: str | Path) -> Signer:
        """The key in `path`, refused (AuditKeyError) when group or others may read or write
        the file: a key others can read signs for them too."""
        p = Path(path)
        try:
            mode = p.stat().st_mode
            data = p.read_bytes()
        except OSError as exc:
            raise AuditKeyError(
                f"audit signing key {p}: {exc.strerror or exc}; create one with "
                "`cutover audit keygen --private-key FILE --public-key FILE`"
            ) from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditKeyError(
                f"audit signing key {p} is not an unencrypted Ed25519 private key in PEM; "
                "create one with `cutover audit keygen`"
            )
        if mode & 0o077:
            raise AuditKeyError(
                f"audit signing key {p} is open to group or others (mode {mode & 0o777:o}): "
                f"whoever reads it can sign audit rows. Run `chmod 600 {p}` (owned by the "
                "bot's user), and make a new key if others may have read it"
            )
        return cls(key)


def load_public_keys(paths: Iterable[str | Path]) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id (several: keys rotated over the trail's life)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        p = Path(path)
        try:
            key = serialization.load_pem_public_key(p.read_bytes())
        except OSError as exc:
            raise AuditKeyError(f"public key {p}: {exc.strerror or exc}") from None
        except ValueError:
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise AuditKeyError(f"public key {p} is not an Ed25519 public key in PEM")
        keys[key_id(key)] = key
    return keys


def keygen(private_path: str | Path, public_path: str | Path) -> str:
    """Writes a new key pair (the private key readable by its owner only); returns its id.
    Refuses to overwrite an existing file: a lost private key cannot sign again."""
    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if p.exists():
            raise AuditKeyError(f"{p} exists; keygen never overwrites a key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id(private.public_key())


def _masked(value: Any) -> Any:
    """Every string in a row's data, masked: an audit row can never be scrubbed later."""
    if isinstance(value, str):
        return mask_everywhere(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


_EVENT = AuditEvent.__table__  # type: ignore[attr-defined]
_SIGNATURE = AuditSignature.__table__  # type: ignore[attr-defined]
_INSERT_SIGNATURE = _SIGNATURE.insert()
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_HEAD_FOR_UPDATE = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_INSERT_EVENT = _EVENT.insert()
_UPDATE_HEAD = (
    _HEAD.update().where(_HEAD.c.id == 1).values(seq=bindparam("seq"), hash=bindparam("hash"))
)
# PostgreSQL: the row and the new tip in one statement (one round trip less under the lock),
# sent on the DBAPI cursor: SQLAlchemy's execution context cost about 0.1 ms of CPU per
# statement, a third of the floor's whole append (docs/benchmarks.md, issue 9).
_PG_HEAD_FOR_UPDATE = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
_PG_APPEND = (
    "WITH tip AS (UPDATE audit_head SET seq = %(seq)s, hash = %(hash)s WHERE id = 1) "
    "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
    "VALUES (%(seq)s, %(at)s, %(run_id)s, %(actor)s, %(kind)s, %(data)s, %(prev_hash)s, "
    "%(hash)s)"
)
_PG_APPEND_SIGNED = (
    "WITH tip AS (UPDATE audit_head SET seq = %(seq)s, hash = %(hash)s WHERE id = 1), "
    "sig AS (INSERT INTO audit_signature (seq, key_id, signature) "
    "VALUES (%(seq)s, %(key_id)s, %(signature)s)) "
    "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
    "VALUES (%(seq)s, %(at)s, %(run_id)s, %(actor)s, %(kind)s, %(data)s, %(prev_hash)s, "
    "%(hash)s)"
)
_TIP = "audit_tip"  # session.info: (transaction, seq, hash) of this transaction's last append


def _pg_execute(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> Any:
    """One statement on the transaction's DBAPI cursor; a failure is raised as SQLAlchemy
    raises it (a dropped connection invalidated, as `Database.session` expects)."""
    pooled = conn.connection
    cursor = pooled_cursor(pooled)
    try:
        cursor.execute(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        wrapped = dbapi_error(conn.dialect, exc, pooled.dbapi_connection, cursor, sql, params)
        if wrapped.connection_invalidated:
            conn.invalidate(exc)
        raise wrapped from exc
    return cursor


def _tip(session: Session, conn: Connection) -> tuple[int, str]:
    """The chain's tip, locked until the commit. A second append in one transaction holds
    the lock already and knows the tip it wrote: no second SELECT … FOR UPDATE. (With a
    savepoint open the tip is read again: a savepoint rolled back would undo an append.)"""
    cached = session.info.get(_TIP)
    txn = conn.get_transaction()
    if cached is not None and cached[0] is txn and conn.get_nested_transaction() is None:
        return cached[1], cached[2]
    if conn.dialect.name == "postgresql":
        row = _pg_execute(conn, _PG_HEAD_FOR_UPDATE).fetchone()
    else:
        row = conn.execute(_HEAD_FOR_UPDATE).one()
    return int(row[0]), str(row[1])


@dataclass(frozen=True)
class Appended:
    """What an append wrote: its sequence number and hash (the chain's new head)."""

    seq: int
    hash: str


def _next_row(
    tip: tuple[int, str],
    signer: Signer | None,
    kind: str,
    actor: str,
    run_id: int | None,
    data: dict[str, Any] | None,
    at: datetime | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The row after `tip` (masked, hashed) and its signature row, if there is a signer."""
    seq, prev_hash = tip[0] + 1, tip[1]
    stamp = now_iso(at)
    payload = canonical(_masked(data or {}))
    digest = event_hash(prev_hash, seq, stamp, run_id, actor, kind, payload)
    row = {
        "seq": seq,
        "at": stamp,
        "run_id": run_id,
        "actor": actor,
        "kind": kind,
        "data": payload,
        "prev_hash": prev_hash,
        "hash": digest,
    }
    if signer is None:
        return row, None
    return row, {"seq": seq, "key_id": signer.key_id, "signature": signer.sign(digest)}


def append(
    session: Session,
    kind: str,
    *,
    actor: str,
    run_id: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Appended:
    """Appends one event inside the session's transaction; returns its number and hash.

    Core statements, not the ORM: the head row is locked from the SELECT … FOR UPDATE
    to the commit, so every statement under that lock is kept short.
    """
    session.flush()  # the caller's pending rows go first, as they did with the ORM
    conn = session.connection()
    row, sig = _next_row(
        _tip(session, conn), session.info.get("audit_signer"), kind, actor, run_id, data, at
    )
    if conn.dialect.name == "postgresql":
        _pg_execute(conn, _PG_APPEND if sig is None else _PG_APPEND_SIGNED, {**row, **(sig or {})})
    else:
        conn.execute(_INSERT_EVENT, row)
        conn.execute(_UPDATE_HEAD, {"seq": row["seq"], "hash": row["hash"]})
        if sig is not None:
            conn.execute(_INSERT_SIGNATURE, sig)
    if conn.get_nested_transaction() is None:
        session.info[_TIP] = (conn.get_transaction(), row["seq"], row["hash"])
    metrics.audit_appended(kind)
    return Appended(row["seq"], row["hash"])


def record(
    db: Database,
    kind: str,
    *,
    actor: str,
    run_id: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Appended:
    """Appends one event in a transaction of its own, for an event that changes no state
    (a note, a tick, a readiness check, a chat post that failed).

    On PostgreSQL the transaction runs on a pooled DBAPI cursor (`Database.dbapi_transaction`)
    instead of an ORM session, whose begin, commit and close cost about as much Python as
    the append itself; the row, its hash, its signature and the lock on the tip are the
    same as `append` writes. An event that goes with a state change uses `append`, inside
    the state change's own transaction.
    """
    if db.is_sqlite:
        with db.session() as s:
            return append(s, kind, actor=actor, run_id=run_id, data=data, at=at)
    with db.dbapi_transaction() as cursor:
        tip = cursor.execute(_PG_HEAD_FOR_UPDATE).fetchone()
        row, sig = _next_row(tip, db.audit_signer, kind, actor, run_id, data, at)
        cursor.execute(_PG_APPEND if sig is None else _PG_APPEND_SIGNED, {**row, **(sig or {})})
    metrics.audit_appended(kind)
    return Appended(row["seq"], row["hash"])


def head(db: Database) -> tuple[int, str]:
    """The chain's tip: its last row's sequence number and hash."""
    with db.session() as s:
        tip = s.get(AuditHead, 1)
        return (tip.seq, tip.hash) if tip is not None else (0, GENESIS)


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7] → [(1, 3), (7, 7)]"""
    runs: list[tuple[int, int]] = []
    for n in seqs:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


KEY_EVENTS = (AuditKind.AUDIT_KEY_ROTATED, AuditKind.AUDIT_KEY_DROPPED)


@dataclass(frozen=True)
class KeyEvent:
    """A row that retires a signing key: a rotation (to `key_id`) or a dropped key (None)."""

    seq: int
    retired: str | None
    key_id: str | None


def key_events(db: Database, upto: int | None = None) -> list[KeyEvent]:
    """The trail's key rotations and dropped keys, in order (few rows; kind is indexed)."""
    query = select(_EVENT.c.seq, _EVENT.c.kind, _EVENT.c.data).where(
        _EVENT.c.kind.in_([str(k) for k in KEY_EVENTS])
    )
    if upto is not None:
        query = query.where(_EVENT.c.seq <= upto)
    with db.session() as s:
        rows = s.connection().execute(query.order_by(_EVENT.c.seq)).all()
    found = []
    for row in rows:
        try:
            data = json.loads(row.data)
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        new = data.get("key_id") if row.kind == AuditKind.AUDIT_KEY_ROTATED else None
        found.append(KeyEvent(row.seq, data.get("retired_key"), new))
    return found


def retirements(events: Iterable[KeyEvent]) -> dict[str, int]:
    """Each retired key and the row from which it may no longer sign."""
    retired: dict[str, int] = {}
    for event in events:
        if event.retired is not None:
            retired.setdefault(event.retired, event.seq)
    return retired


def check_signature(
    seq: int,
    row_hash: str,
    kid: str,
    signature: str,
    public_keys: dict[str, Ed25519PublicKey],
    retired: dict[str, int],
) -> str | None:
    """Why one signature of a row does not count (None: it does). Public: the run page
    (bot/runpage) checks the rows it shows by this same rule, not a copy of it."""
    key = public_keys.get(kid)
    if key is None:
        return f"signed by unknown key {kid}"
    try:
        key.verify(bytes.fromhex(signature), row_hash.encode())
    except (InvalidSignature, ValueError):
        return "bad signature (forged or re-hashed row)"
    if kid in retired and seq >= retired[kid]:
        return f"signed by key {kid}, retired at row {retired[kid]}: a retired key may not sign"
    return None


def verify_signatures(db: Database, public_keys: dict[str, Ed25519PublicKey]) -> list[Problem]:
    """Names every row up to the head that is unsigned, signed by an unknown key, signed by
    a key after the row that retired it (a rotation or a dropped key), or whose signature
    does not match its hash (a row appended without the key, or re-hashed). A row may have
    several signature rows: one that verifies makes it signed, and each other is named (a
    signature row inserted by someone without the key), as are signatures of no row."""
    top, _ = head(db)
    events = key_events(db, top)
    retired = retirements(events)
    rotated_to = {e.seq: e.key_id for e in events if e.key_id is not None}
    unsigned: list[int] = []
    problems: list[Problem] = []
    query = (
        select(_EVENT.c.seq, _EVENT.c.hash, _SIGNATURE.c.key_id, _SIGNATURE.c.signature)
        .select_from(_EVENT.outerjoin(_SIGNATURE, _SIGNATURE.c.seq == _EVENT.c.seq))
        .where(_EVENT.c.seq > bindparam("last"), _EVENT.c.seq <= bindparam("upto"))
        .order_by(_EVENT.c.seq, _SIGNATURE.c.key_id, _SIGNATURE.c.signature)
    )
    last, batch = 0, 10000  # a range of rows a read: a row's signatures are never split
    while last < top:
        upto = min(last + batch, top)
        with db.session() as s:
            rows = s.connection().execute(query, {"last": last, "upto": upto}).all()
        for seq, group in groupby(rows, key=lambda r: r.seq):
            sigs = [r for r in group if r.signature is not None]
            if not sigs:
                unsigned.append(seq)
                continue
            verdicts = [
                (r, check_signature(seq, r.hash, r.key_id, r.signature, public_keys, retired))
                for r in sigs
            ]
            good = [r for r, why in verdicts if why is None]
            if not good:
                problems += [Problem(seq, why) for _, why in verdicts if why is not None]
                continue
            for r, why in verdicts:
                if why is not None:
                    problems.append(
                        Problem(
                            seq,
                            f"an extra signature by key {r.key_id} does not verify (inserted "
                            f"into audit_signature by someone without the key: {why})",
                        )
                    )
            if seq in rotated_to and all(r.key_id != rotated_to[seq] for r in good):
                problems.append(
                    Problem(seq, f"a key rotation to {rotated_to[seq]} not signed by that key")
                )
        last = upto
    for first, end in _ranges(unsigned):
        also = f", and so are rows {first + 1}-{end}" if end > first else ""
        dropped = [e.seq for e in events if e.key_id is None and e.seq <= first]
        why = (
            f"after the signing key was dropped at row {dropped[-1]}"
            if dropped
            else "appended without the signing key"
        )
        problems.append(Problem(first, f"unsigned{also} ({why})"))
    orphans = (
        select(func.count())
        .select_from(_SIGNATURE.outerjoin(_EVENT, _SIGNATURE.c.seq == _EVENT.c.seq))
        .where(_EVENT.c.seq.is_(None))
    )
    with db.session() as s:
        stray = s.connection().execute(orphans).scalar_one()
    if stray:
        problems.append(
            Problem(None, f"{stray} signature row(s) sign no audit row: inserted directly")
        )
    return sorted(problems, key=lambda p: p.seq or 0)


@dataclass(frozen=True)
class Problem:
    seq: int | None
    what: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.what}" if self.seq is not None else self.what


def _rows(db: Database, upto: int, batch: int = 10000) -> Iterator[Any]:
    """Events up to seq `upto` in order, as plain rows (no ORM objects), a short read a batch."""
    query = select(*_EVENT.c).where(_EVENT.c.seq > bindparam("last"), _EVENT.c.seq <= upto)
    query = query.order_by(_EVENT.c.seq).limit(batch)
    last = 0
    while True:
        with db.session() as s:
            rows = s.connection().execute(query, {"last": last}).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


@dataclass(frozen=True)
class Verified:
    """What `verify_chain` checked: rows 1..seq, the head's hash, and what it found."""

    seq: int
    hash: str
    problems: list[Problem]


def verify(db: Database) -> list[Problem]:
    """Recomputes the chain; names each edited, deleted, inserted or reordered row."""
    return verify_chain(db).problems


def verify_chain(db: Database) -> Verified:
    """Recomputes the chain up to its head; names each edited, deleted, inserted or
    reordered row. A chain cut at its end and its head reset verifies: only a head kept
    elsewhere finds that (`check_expected_head`, the checkpoint of bot/audit_guard.py).

    The head is read first: rows a live bot appends meanwhile lie beyond it and are
    left for the next verify, instead of looking like a chain that outgrew its head.
    """
    with db.session() as s:
        head = s.get(AuditHead, 1)
        head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    problems: list[Problem] = []
    prev_hash, expected_seq = GENESIS, 1
    for row in _rows(db, head_seq):
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                missing = (
                    f"{expected_seq}"
                    if row.seq == expected_seq + 1
                    else (f"{expected_seq}-{row.seq - 1}")
                )
                problems.append(Problem(row.seq, f"rows {missing} are missing (deleted)"))
            expected_seq = row.seq
        if row.prev_hash != prev_hash:
            problems.append(
                Problem(
                    row.seq,
                    "does not link to the row before it "
                    "(a row before it was deleted, inserted or reordered)",
                )
            )
        recomputed = event_hash(
            row.prev_hash, row.seq, row.at, row.run_id, row.actor, row.kind, row.data
        )
        if recomputed != row.hash:
            problems.append(
                Problem(
                    row.seq,
                    f"content does not match its hash (edited; kind {row.kind!r}, at {row.at})",
                )
            )
        prev_hash, expected_seq = row.hash, row.seq + 1
    # One statement, one snapshot: rows past the head as it stands now were not appended
    # through it (a live append moves row and head in one transaction).
    beyond = (
        select(func.count())
        .select_from(_EVENT)
        .where(_EVENT.c.seq > select(_HEAD.c.seq).where(_HEAD.c.id == 1).scalar_subquery())
    )
    with db.session() as s:
        stray = s.connection().execute(beyond).scalar_one()
    if stray:
        problems.append(
            Problem(
                None,
                f"{stray} row(s) lie past the chain's head: inserted "
                "without going through the audit log",
            )
        )
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        problems.append(
            Problem(
                None,
                f"chain ends at row {expected_seq - 1} but the head records "
                f"row {head_seq}: rows at the end were deleted",
            )
        )
    return Verified(head_seq, head_hash, problems)


def hash_at(db: Database, seq: int) -> str | None:
    """The hash of audit row `seq`, None when there is no such row."""
    with db.session() as s:
        row = s.connection().execute(select(_EVENT.c.hash).where(_EVENT.c.seq == seq)).first()
    return None if row is None else str(row[0])


HEAD_FORM = re.compile(r"(\d+):(?:sha256:)?([0-9a-f]{64})")


def parse_head(value: str) -> tuple[int, str]:
    """ROW:HASH (as `verify` prints it and the bot posts it) → (row, hash); ValueError."""
    found = HEAD_FORM.fullmatch(value.strip().lower())
    if found is None:
        raise ValueError(
            f"{value!r} is not a chain head: write ROW:HASH, the row number and its 64 hex "
            "digit SHA-256, e.g. 42:9f86d081884c7d65…"
        )
    return int(found[1]), found[2]


def check_expected_head(db: Database, verified: Verified, seq: int, digest: str) -> list[Problem]:
    """An expected head (posted in Slack, kept in a checkpoint) against the chain verified:
    the chain must reach its row, with its hash there."""
    if seq > verified.seq:
        missing = f"row {seq}" if seq == verified.seq + 1 else f"rows {verified.seq + 1}-{seq}"
        return [
            Problem(
                None,
                f"the chain ends at row {verified.seq}, short of the expected head {seq}:"
                f"{digest}: {missing} are missing (cut from the end of the trail)",
            )
        ]
    found = GENESIS if seq == 0 else hash_at(db, seq)
    if found != digest:
        return [
            Problem(
                seq,
                f"has hash {found}, not the expected head's {digest}: the trail was rewritten "
                f"at or before row {seq}",
            )
        ]
    return []


EXPORT_FIELDS = ["seq", "at", "run_id", "actor", "kind", "data", "prev_hash", "hash"]


def export(db: Database, run_id: int | None, fmt: str) -> str:
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}; use jsonl or csv")
    with db.session() as s:
        query = select(AuditEvent).order_by(col(AuditEvent.seq))
        if run_id is not None:
            query = query.where(AuditEvent.run_id == run_id)
        rows = list(s.exec(query))
    if fmt == "jsonl":
        return "".join(
            json.dumps({**r.model_dump(), "data": json.loads(r.data)}, sort_keys=True) + "\n"
            for r in rows
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: getattr(r, k) for k in EXPORT_FIELDS})
    return buf.getvalue()


def events_containing(db: Database, run_id: int, kind: str, text: str) -> list[AuditEvent]:
    """A run's events of one kind whose data holds `text` (a cheap filter in the database
    for a few rows among many, e.g. the step results that carry an artifact)."""
    with db.session() as s:
        return list(
            s.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.run_id == run_id,
                    AuditEvent.kind == kind,
                    col(AuditEvent.data).contains(text),
                )
                .order_by(col(AuditEvent.seq))
            )
        )


def events(db: Database, run_id: int) -> list[AuditEvent]:
    with db.session() as s:
        return list(
            s.exec(
                select(AuditEvent).where(AuditEvent.run_id == run_id).order_by(col(AuditEvent.seq))
            )
        )


# ---------------------------------------------------------------------------- lockdown


ROLE_NAME = migrate.ROLE_NAME


class LockdownError(ValueError):
    """Lockdown cannot protect the table for this role; the message says why."""


def lockdown_statements(db: Database, app_role: str) -> list[str]:
    """SQL that lets `app_role` run the bot but never change or remove an audit row.

    The role keeps SELECT/INSERT/UPDATE/DELETE on the state tables and SELECT/INSERT on
    audit_event; UPDATE, DELETE and TRUNCATE on audit_event are revoked. A REVOKE does
    not bind the table's owner or a superuser, so the bot must run as another role.
    Every later `cutover db upgrade` re-applies it (bot/migrate.py: regrant).
    """
    if db.is_sqlite:
        raise LockdownError("lockdown is for PostgreSQL; an SQLite file has no roles")
    if not ROLE_NAME.fullmatch(app_role):
        raise LockdownError(
            f"{app_role!r} is not a plain role name (letters, digits, _ and -, up to 63)"
        )
    tables = [t.name for t in SQLModel.metadata.sorted_tables]
    return migrate.grant_statements(db.engine.dialect.identifier_preparer.quote, app_role, tables)


def lockdown(db: Database, app_role: str) -> list[str]:
    """Applies `lockdown_statements` in one transaction; returns them."""
    statements = lockdown_statements(db, app_role)
    with db.engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT r.rolsuper, pg_has_role(r.rolname, t.tableowner, 'USAGE') "
                "FROM pg_roles r, pg_tables t WHERE r.rolname = :role "
                "AND t.schemaname = current_schema() AND t.tablename = 'audit_event'"
            ),
            {"role": app_role},
        ).one_or_none()
        if row is None:
            raise LockdownError(f"no role {app_role!r}, or no audit_event table: nothing changed")
        if row[0] or row[1]:
            raise LockdownError(
                f"role {app_role!r} is a superuser or owns audit_event: a REVOKE cannot bind it. "
                "Create the tables as another role and run the bot as this one; nothing changed"
            )
        for statement in statements:
            conn.execute(text(statement))
    return statements
