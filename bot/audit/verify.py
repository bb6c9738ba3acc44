"""Verification of the hash chain: each edited, deleted, inserted or reordered row named,
and an expected head (kept outside the database) checked against the chain."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bot.store import audit_rows
from bot.store.audit_chain import GENESIS, event_hash
from bot.store.unit import Database, Store


def head(db: Database) -> tuple[int, str]:
    """The chain's tip: its last row's sequence number and hash."""
    with Store(db).tx() as tx:
        return audit_rows.head(tx)


@dataclass(frozen=True)
class Problem:
    seq: int | None
    what: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.what}" if self.seq is not None else self.what


def _rows(db: Database, upto: int, batch: int = 10000) -> Iterator[Any]:
    """Events up to seq `upto` in order, as plain rows (no ORM objects), a short read a batch."""
    last = 0
    while True:
        with Store(db).tx() as tx:
            rows = audit_rows.event_rows(tx, last, upto, batch)
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
    head_seq, head_hash = head(db)
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
    with Store(db).tx() as tx:
        stray = audit_rows.rows_past_head(tx)
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
    with Store(db).tx() as tx:
        return audit_rows.hash_at(tx, seq)


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
