"""What each step printed: kept with its result (table step_output), read back by `cutover
logs`, `/cutover logs`, the checkpoint's Show output and the quote under a failing step.

The text is the step's own tail (at most TAIL_BYTES of stdout and stderr as they came),
masked by the step, and masked again here with the engine's masker before it is written, in
the transaction of its step_run row: a result is never kept without its output, nor the
reverse. It is stored as printed (masked, not defused): whoever shows it in chat defuses
mentions and links (`Masker.untrusted`) and escapes it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from sqlmodel import Session, col, select

from bot.store.db import Database
from bot.store.models import PhaseRun, Run, StepOutput, StepRun
from bot.store.unit import Tx, session_of
from bot.views import Kept  # the plain data (surfaces read it through bot.ports)
from phases.checks.base import OUTPUT, KeptOutput, StepResult

QUOTE_LINES = 5  # of a failing step, quoted on its checkpoint
QUOTE_LINE_CHARS = 160


def last_lines(text: str, n: int = QUOTE_LINES, width: int = QUOTE_LINE_CHARS) -> str:
    """The last `n` non-blank lines, each cut to `width` characters."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-n:]
    return "\n".join(ln if len(ln) <= width else ln[: width - 1] + "…" for ln in lines)


def keep(
    tx: Tx | Session, step: StepRun, result: StepResult, mask: Callable[[str], str]
) -> dict[str, int | str] | None:
    """Adds the output of `result` (if it kept any) for `step`, added to `s` already and not
    yet flushed: flushes it for its id. The caller's transaction commits both. Returns what
    the step's audit row says of it (bytes printed, bytes kept, the kept text's SHA-256), so
    the audit trail vouches for the output shown later."""
    kept = result.details.get(OUTPUT)
    if not isinstance(kept, KeptOutput) or not kept.text:
        return None
    s = session_of(tx)
    text = mask(kept.text).replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
    s.flush()
    assert step.id is not None
    s.add(
        StepOutput(
            step_run_id=step.id,
            run_id=step.run_id,
            section=step.section,
            step_id=step.step_id,
            text=text,
            truncated=kept.truncated,
            bytes=kept.total_bytes,
            last_lines=last_lines(text),
        )
    )
    data = text.encode()
    return {
        "bytes": kept.total_bytes,
        "kept": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


_ADDRESS = re.compile(r"([a-z0-9][a-z0-9_-]{0,39})/([a-z0-9][a-z0-9_-]{0,39})(?:#(\d{1,6}))?")


def parse_address(value: str) -> tuple[str, str, int | None] | None:
    """'build/npm-build' → ('build', 'npm-build', None); 'build/npm-build#2' → attempt 2."""
    m = _ADDRESS.fullmatch(value.strip())
    return (m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None) if m else None


def _rows(db: Database, run_id: int, with_text: bool, step_run_id: int | None = None) -> list[Kept]:
    with db.session() as s:
        q = (
            select(StepRun, PhaseRun, StepOutput.truncated, StepOutput.bytes)
            .join(StepOutput, col(StepOutput.step_run_id) == col(StepRun.id))
            .outerjoin(PhaseRun, col(PhaseRun.id) == col(StepRun.phase_run_id))
            .where(StepOutput.run_id == run_id)
            .order_by(col(StepRun.id))
        )
        if step_run_id is not None:
            q = q.where(StepOutput.step_run_id == step_run_id)
        rows = list(s.exec(q))
        texts: dict[int, str] = {}
        if with_text and rows:
            ids = [r[0].id for r in rows]
            texts = dict(
                s.exec(
                    select(StepOutput.step_run_id, StepOutput.text).where(
                        col(StepOutput.step_run_id).in_(ids)
                    )
                ).all()
            )
    return [
        Kept(
            step_run_id=step.id or 0,
            run_id=run_id,
            phase=phase.phase_id if phase is not None else step.section,
            attempt=phase.attempt if phase is not None else 1,
            section=step.section,
            step_id=step.step_id,
            name=step.name,
            status=step.status,
            at=step.at,
            truncated=truncated,
            bytes=printed,
            text=texts.get(step.id or 0, ""),
        )
        for step, phase, truncated, printed in rows
    ]


def listing(db: Database, run_id: int) -> list[Kept]:
    """Every step of the run that kept output, in the order they ran (no text)."""
    return _rows(db, run_id, with_text=False)


def with_text(db: Database, run_id: int) -> list[Kept]:
    """Every step of the run that kept output, with its text (the run page shows them all)."""
    return _rows(db, run_id, with_text=True)


def find(db: Database, run_id: int, address: str) -> Kept | str:
    """The kept output at `address` (PHASE/STEP, newest attempt, or PHASE/STEP#ATTEMPT); or
    why there is none, saying what to type instead."""
    parsed = parse_address(address)
    if parsed is None:
        return (
            f"{address!r} is not PHASE/STEP; write e.g. build/npm-build, or build/npm-build#2 "
            "for the second attempt of the phase"
        )
    phase, step_id, attempt = parsed
    found = [
        k
        for k in listing(db, run_id)
        if k.phase == phase and k.step_id == step_id and attempt in (None, k.attempt)
    ]
    if not found:
        kept = ", ".join(dict.fromkeys(k.address for k in listing(db, run_id)))
        return f"run #{run_id} kept no output of {address}" + (
            f"; it kept: {kept}" if kept else "; it kept no step output at all"
        )
    return by_step_run(db, run_id, found[-1].step_run_id) or "gone"


def by_step_run(db: Database, run_id: int | None, step_run_id: int) -> Kept | None:
    """One step's kept output with its text (`run_id` None: whichever run it belongs to)."""
    if run_id is None:
        with db.session() as s:
            run_id = s.exec(
                select(StepOutput.run_id).where(StepOutput.step_run_id == step_run_id)
            ).first()
        if run_id is None:
            return None
    rows = _rows(db, run_id, with_text=True, step_run_id=step_run_id)
    return rows[0] if rows else None


def size(n: int) -> str:
    """Bytes as people read them: 812 B, 12.3 KB, 3.1 MB."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def describe(k: Kept) -> str:
    """'run #3 · build/npm-build#1 (npm run build) · fail · 3.1 MB printed, the last 64.0 KB
    kept'."""
    kept = len(k.text.encode()) if k.text else None
    amount = (
        f"{size(k.bytes)} printed, the last {size(kept)} kept"
        if k.truncated and kept is not None
        else f"{size(k.bytes)} printed, earlier output not kept"
        if k.truncated
        else f"{size(k.bytes)} printed, all kept"
    )
    return f"run #{k.run_id} · {k.address} ({k.name}) · {k.status} · {amount}"


def run_known(db: Database, run_id: int) -> bool:
    with db.session() as s:
        return s.get(Run, run_id) is not None
