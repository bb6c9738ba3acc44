"""What the bot checks about its audit trail before it appends to it, and what it keeps outside.

The chain proves each row follows the one before; nothing in the database proves where it
ends: someone who deletes the last rows and resets `audit_head` leaves a chain that verifies.
So the bot keeps the last head it signed and posted in a file outside the database (the
checkpoint, next to its key; anchor: Rekor's and Certificate Transparency's signed tree
heads) and refuses to start on a chain shorter than that head, or with another hash at its
row. The checkpoint moves forward when a run's end posts the head, at start, and every
CUTOVER_AUDIT_CHECKPOINT_SECONDS; never backwards.

The signing key's life is in the trail too: a start with another key than the trail's last
records the rotation (signed by the new key; the old one is retired from that row on: `audit
verify` refuses its signatures there), a retired key is refused, and a start with no key
where the trail was signed is refused unless CUTOVER_AUDIT_ALLOW_UNSIGNED says so (then it is
recorded).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.store import audit_rows
from bot.store.db import Database
from bot.store.unit import Store

log = logging.getLogger(__name__)

SYSTEM = "system"


class AuditTrailRefused(Exception):
    """The trail in the database is shorter than, or differs from, the head this bot signed
    and posted: nothing is appended until someone has looked. The message says how."""


# ---------------------------------------------------------------------------- checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """The last chain head this bot signed: row number, hash, when, which database."""

    seq: int
    hash: str
    written_at: str
    database: str
    key_id: str | None = None
    signature: str | None = None
    public_key: str | None = None  # raw Ed25519, hex: a rotated-out key can still vouch

    def body(self) -> bytes:
        return audit.canonical(
            {
                "seq": self.seq,
                "hash": self.hash,
                "written_at": self.written_at,
                "database": self.database,
                "key_id": self.key_id,
                "public_key": self.public_key,
            }
        ).encode()

    @property
    def head(self) -> str:
        return f"{self.seq}:{self.hash}"


class CheckpointFile:
    """The checkpoint file: read, checked against the database, and moved forward
    atomically (a temporary file in the same folder, fsynced, renamed over it)."""

    def __init__(self, path: Path, signer: audit.Signer | None, database: str) -> None:
        self.path = path
        self.signer = signer
        self.database = database
        self._lock = threading.Lock()

    def read(self) -> Checkpoint | None:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditTrailRefused(
                f"audit checkpoint {self.path}: {exc.strerror or exc}; let the bot's user read "
                "and write it (CUTOVER_AUDIT_CHECKPOINT_FILE)"
            ) from None
        try:
            data = json.loads(raw)
            cp = Checkpoint(
                int(data["seq"]),
                str(data["hash"]),
                str(data["written_at"]),
                str(data.get("database", "")),
                data.get("key_id"),
                data.get("signature"),
                data.get("public_key"),
            )
        except (ValueError, KeyError, TypeError):
            raise AuditTrailRefused(
                f"audit checkpoint {self.path} is not a checkpoint the bot wrote (edited or "
                "damaged). Find the last chain head posted in Slack and check it with "
                "`cutover audit verify --expect-head ROW:HASH`; then move the file aside"
            ) from None
        if self.signer is not None and cp.key_id == self.signer.key_id:
            try:
                self.signer.public_key.verify(bytes.fromhex(cp.signature or ""), cp.body())
            except (InvalidSignature, ValueError):
                raise AuditTrailRefused(
                    f"audit checkpoint {self.path}: its signature does not verify with key "
                    f"{cp.key_id} (the file was edited). Find the last chain head posted in "
                    "Slack and check it with `cutover audit verify --expect-head ROW:HASH`"
                ) from None
        return cp

    def _vouch(self, db: Database, cp: Checkpoint) -> None:
        """A checkpoint signed by another key (the key was rotated in place): its own public
        key must make its signature and a signature of a row of this trail."""
        refused = AuditTrailRefused(
            f"audit checkpoint {self.path} is signed by key {cp.key_id}, which this trail "
            "cannot vouch for (edited?). Find the last chain head posted in Slack and check it "
            "with `cutover audit verify --expect-head ROW:HASH`; then move the file aside"
        )
        try:
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(cp.public_key or ""))
            public.verify(bytes.fromhex(cp.signature or ""), cp.body())
        except (InvalidSignature, ValueError):
            raise refused from None
        if audit.key_id(public) != cp.key_id:
            raise refused
        with Store(db).tx() as tx:
            rows = audit_rows.signed_by(tx, cp.key_id, cp.seq, 5)
        for row in rows:
            try:
                public.verify(bytes.fromhex(row.signature), row.hash.encode())
                return
            except (InvalidSignature, ValueError):
                continue
        raise refused

    def check(self, db: Database) -> Checkpoint | None:
        """Refuses (AuditTrailRefused) a chain shorter than the checkpoint, or with another
        hash at its row; returns the checkpoint (None when there is none yet)."""
        cp = self.read()
        if cp is None:
            return None
        if self.signer is not None and cp.key_id not in (None, self.signer.key_id):
            self._vouch(db, cp)
        top, _ = audit.head(db)
        found = audit.hash_at(db, cp.seq) if cp.seq > 0 else audit.GENESIS
        how = (
            f"Nothing was appended. Investigate before the bot writes again: `cutover audit "
            f"verify --public-key PUBLIC.pem --expect-head {cp.head}`, compare the chain heads "
            "posted in Slack at each run's end, and restore the rows from a backup "
            "(docs/deploy.md). Only if this database is meant to be another one (a restore "
            f"you verified, a new database) move {self.path} aside and start again"
        )
        where = (
            f"this bot signed and posted chain head {cp.head} at {cp.written_at} "
            f"(database {cp.database or '?'}; {self.path})"
        )
        if found is None or top < cp.seq:
            ends = top
            missing = f"row {cp.seq}" if ends + 1 == cp.seq else f"rows {ends + 1}-{cp.seq}"
            raise AuditTrailRefused(
                f"the audit trail ends at row {ends}, but {where}: {missing} are missing "
                f"(cut from the end of the trail). {how}"
            )
        if found != cp.hash:
            raise AuditTrailRefused(
                f"audit row {cp.seq} has hash {found}, but {where}: the trail was rewritten "
                f"at or before row {cp.seq}. {how}"
            )
        return cp

    def advance(self, db: Database, seq: int, digest: str) -> bool:
        """Writes head (seq, digest) when it extends the checkpoint; never moves it back (a
        checkpoint another process moved further stays) nor over a chain that no longer
        holds the checkpoint's row (logged; False). Never raises."""
        try:
            with self._lock:
                cp = self.read()
                if cp is not None and (seq, digest) == (cp.seq, cp.hash):
                    return True
                held = cp is None or cp.hash == (
                    audit.hash_at(db, cp.seq) if cp.seq > 0 else audit.GENESIS
                )
                if cp is not None and held and seq <= cp.seq:
                    return True  # as far already: another process posted a later head
                if cp is not None and not held:
                    log.error(
                        "audit chain head %s:%s does not extend checkpoint %s in %s: the trail "
                        "was cut or rewritten; the checkpoint is kept",
                        seq,
                        digest,
                        cp.head,
                        self.path,
                    )
                    return False
                self._write(seq, digest)
                return True
        except Exception as exc:  # noqa: BLE001 - reported; the head post is not undone
            log.error("audit checkpoint %s not written: %s", self.path, exc)
            return False

    def _write(self, seq: int, digest: str) -> None:
        signer = self.signer
        cp = Checkpoint(
            seq, digest, audit.now_iso(), self.database, signer.key_id if signer else None
        )
        if signer is not None:
            raw = signer.public_key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            cp = replace(cp, public_key=raw.hex())
        if signer is not None:
            cp = replace(cp, signature=signer.sign_bytes(cp.body()))
        text = json.dumps(asdict(cp), indent=1, sort_keys=True) + "\n"
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def write_now(self, db: Database) -> None:
        """At start, once checked: the checkpoint is the head as it stands. A file that cannot
        be written is a configuration error: the bot would run without the check."""
        seq, digest = audit.head(db)
        with self._lock:
            try:
                self._write(seq, digest)
            except OSError as exc:
                raise audit.AuditKeyError(
                    f"audit checkpoint {self.path} cannot be written ({exc.strerror or exc}): "
                    "set CUTOVER_AUDIT_CHECKPOINT_FILE to a file in a folder the bot's user "
                    "may write, e.g. /var/lib/cutover/audit.head"
                ) from None


def default_checkpoint_path(key_file: Path | None) -> Path | None:
    """Next to the key: audit.key → audit.key.head."""
    return None if key_file is None else key_file.with_name(key_file.name + ".head")


# ---------------------------------------------------------------------------- the key's life


def last_key(db: Database, signer: audit.Signer | None, upto: int) -> tuple[str | None, int]:
    """The key id that signed the trail's last signed row up to `upto`, and that row (None, 0
    when no row is signed). Of several signatures of one row, the one that verifies with this
    bot's key wins: a planted signature row cannot pass for the bot's."""
    with Store(db).tx() as tx:
        rows = audit_rows.last_signed(tx, upto)
    if not rows:
        return None, 0
    for row in rows:
        if signer is not None and row.key_id == signer.key_id:
            try:
                signer.public_key.verify(bytes.fromhex(row.signature), row.hash.encode())
                return row.key_id, row.seq
            except (InvalidSignature, ValueError):
                continue
    return str(rows[0].key_id), int(rows[0].seq)


def check_key(db: Database, signer: audit.Signer | None, allow_unsigned: bool) -> str | None:
    """Records a key rotation or an allowed dropped key; refuses a retired key and an
    unallowed dropped one (AuditKeyError). Returns what was recorded, for the log."""
    top, _ = audit.head(db)
    events = audit.key_events(db, top)
    retired = audit.retirements(events)
    used, used_at = last_key(db, signer, top)
    dropped = [e.seq for e in events if e.key_id is None]
    if dropped and dropped[-1] > used_at:
        used = None  # the key was dropped after the last signed row
    if signer is not None:
        if signer.key_id in retired:
            raise audit.AuditKeyError(
                f"audit signing key {signer.key_id} was retired at audit row "
                f"{retired[signer.key_id]} (rotated or dropped): a retired key never signs "
                "again. Make a new pair with `cutover audit keygen` and point "
                "CUTOVER_AUDIT_KEY_FILE at the new private key"
            )
        if used == signer.key_id:
            return None
        data: dict[str, Any] = {"key_id": signer.key_id, "retired_key": used}
        audit.record(db, AuditKind.AUDIT_KEY_ROTATED, actor=SYSTEM, data=data)
        return f"audit signing key {used or 'none'} → {signer.key_id} (recorded in the trail)"
    if used is None:
        return None
    if not allow_unsigned:
        raise audit.AuditKeyError(
            f"the audit trail is signed (row {used_at} with key {used}) but this bot has no "
            "signing key: set CUTOVER_AUDIT_KEY_FILE to its private key. To go on unsigned on "
            "purpose, set CUTOVER_AUDIT_ALLOW_UNSIGNED=true: the dropped key is recorded in "
            "the trail and every row after it is reported unsigned"
        )
    audit.record(db, AuditKind.AUDIT_KEY_DROPPED, actor=SYSTEM, data={"retired_key": used})
    return f"audit signing key {used} dropped: rows are unsigned from here (recorded)"


def at_start(
    db: Database,
    signer: audit.Signer | None,
    checkpoint: CheckpointFile | None,
    *,
    allow_unsigned: bool,
) -> None:
    """Before `serve` or `console` appends anything: the chain against the checkpoint, then
    the key's life; then the checkpoint is the head as it stands."""
    if checkpoint is not None:
        checkpoint.check(db)
    recorded = check_key(db, signer, allow_unsigned)
    if recorded:
        log.warning("%s", recorded)
    if checkpoint is not None:
        checkpoint.write_now(db)


def start_checkpointer(db: Database, checkpoint: CheckpointFile, every: float) -> threading.Event:
    """Moves the checkpoint forward every `every` seconds; set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                checkpoint.advance(db, *audit.head(db))
            except Exception as exc:  # noqa: BLE001 - the database may be down for a while
                log.warning("audit checkpoint not moved: %s", exc)

    threading.Thread(target=loop, name="cutover-audit-checkpoint", daemon=True).start()
    return stop
