"""Verification of the rows' signatures: every row up to the head signed by a known key
that was not retired when it signed (key rotations and dropped keys are rows of the trail)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot.audit.verify import Problem, head
from bot.domain.audit_kinds import AuditKind
from bot.store import audit_rows
from bot.store.unit import Database, Store


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
    with Store(db).tx() as tx:
        rows = audit_rows.key_event_rows(tx, [str(k) for k in KEY_EVENTS], upto)
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
    last, batch = 0, 10000  # a range of rows a read: a row's signatures are never split
    while last < top:
        upto = min(last + batch, top)
        with Store(db).tx() as tx:
            rows = audit_rows.signed_rows(tx, last, upto)
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
    with Store(db).tx() as tx:
        stray = audit_rows.stray_signatures(tx)
    if stray:
        problems.append(
            Problem(None, f"{stray} signature row(s) sign no audit row: inserted directly")
        )
    return sorted(problems, key=lambda p: p.seq or 0)
