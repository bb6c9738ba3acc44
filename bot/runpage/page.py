"""What the run page shows, read from the run's audit rows: the trail is the page's source,
so every decider, time and status on it is one a row vouches for (the tests compare the page
with `cutover audit export`). The run row gives only what the trail does not repeat (who
started it is in run.started too); kept step output comes from step_output, matched to its
step.result row by the SHA-256 that row recorded of it, so the page shows only output the
trail vouches for.

A kind this module does not know (a newer bot's, an override or lock) is not dropped: it is
shown generically, under its phase attempt when it names a gate, and in the run's list of
rows either way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.record import build_record
from bot.store import read_trail_rows, step_outputs
from bot.store.db import Database
from bot.store.reads import run_view
from bot.views import RunView
from phases.runbook import Runbook, RunbookError

ENDED = (AuditKind.RUN_COMPLETED, AuditKind.RUN_ROLLED_BACK, AuditKind.RUN_CANCELLED)


@dataclass
class Row:
    """One audit row as the page reads it (data parsed)."""

    seq: int
    at: datetime
    actor: str
    kind: str
    data: dict[str, Any]

    @cached_property
    def summary(self) -> str:
        """The row's data as key=value pairs: how an unknown kind is shown."""
        parts = []
        for key, value in self.data.items():
            text = (
                value
                if isinstance(value, str)
                else json.dumps(value, ensure_ascii=False)
                if isinstance(value, dict | list)
                else str(value)
            )
            parts.append(f"{key}={text}")
        out = ", ".join(parts)
        return out if len(out) <= 400 else out[:399] + "…"


@dataclass
class Step:
    row: Row
    section: str
    step: str
    status: str
    evidence: str
    duration_ms: int
    output: str | None = None  # the kept output (masked when kept), None: none kept
    output_note: str = ""  # "3.1 KB printed, all kept"


@dataclass
class Attempt:
    """One attempt of a phase: from its phase.started row to its gate's decision."""

    phase: str
    name: str
    number: str
    attempt: int
    started: Row
    opened: Row | None = None  # gate.opened
    decided: Row | None = None  # gate.decided
    steps: list[Step] = field(default_factory=list)
    votes: list[Row] = field(default_factory=list)
    ticks: list[Row] = field(default_factory=list)
    refusals: list[Row] = field(default_factory=list)
    reminders: list[Row] = field(default_factory=list)
    others: list[Row] = field(default_factory=list)  # kinds shown generically
    interrupted: Row | None = None
    ended_at: datetime | None = None  # the last row of the attempt, if it never decided

    @property
    def gate(self) -> int | None:
        return int(self.opened.data["gate"]) if self.opened is not None else None

    @property
    def decision(self) -> str:
        if self.decided is not None:
            return str(self.decided.data.get("decision") or "decided")
        if self.interrupted is not None:
            return "interrupted"
        return "waiting" if self.opened is not None else "running"

    @property
    def deciders(self) -> list[str]:
        if self.decided is None:
            return []
        approvers = self.decided.data.get("approvers")
        if isinstance(approvers, list) and approvers:
            return [str(a) for a in approvers]
        return [self.decided.actor]

    @property
    def running_s(self) -> float | None:
        end = self.opened.at if self.opened is not None else self.ended_at
        return (end - self.started.at).total_seconds() if end is not None else None

    @property
    def waiting_s(self) -> float | None:
        if self.opened is None:
            return None
        end = self.decided.at if self.decided is not None else self.ended_at
        return (end - self.opened.at).total_seconds() if end is not None else None

    @property
    def total_s(self) -> float | None:
        end = self.decided.at if self.decided is not None else self.ended_at
        return (end - self.started.at).total_seconds() if end is not None else None


@dataclass(frozen=True)
class PhaseSummary:
    number: str
    id: str
    name: str
    estimate_min: int
    estimate_max: int
    actual_s: float | None  # every attempt's time, from start to decision
    attempts: int
    status: str

    @property
    def over(self) -> bool:
        return self.actual_s is not None and self.actual_s > self.estimate_max * 60


@dataclass(frozen=True)
class Verification:
    """The run's rows checked when the page was made: each row's hash recomputed, its link
    to the row before it (another run's, maybe) and that row's own hash; each signature
    against the bot's public key. `problems` names the rows that fail."""

    rows: int
    first: int | None
    last: int | None
    key_ids: list[str]
    signatures_checked: bool
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def line(self) -> str:
        if self.problems:
            return f"audit chain BROKEN: {len(self.problems)} problem(s); first: {self.problems[0]}"
        span = f" (#{self.first}–#{self.last})" if self.first is not None else ""
        signed = (
            f", signed by key {', '.join(self.key_ids)}"
            if self.signatures_checked and self.key_ids
            else ", signatures not checked (the bot has no audit key configured here)"
            if not self.signatures_checked
            else ""
        )
        return f"audit chain OK: {self.rows} rows{span}{signed}"


@dataclass
class RunPage:
    run: RunView
    runbook_name: str
    runbook_version: str
    rows: list[Row]
    attempts: list[Attempt]
    phases: list[PhaseSummary]
    rollback: Row | None
    rollback_started: Row | None
    rollback_steps: list[Step]
    ended: Row | None
    refusals: list[Row]
    signoffs: list[Row]
    notes: list[Row]
    aborted: list[Row]
    others: list[Row]  # run-level rows of kinds shown generically
    verification: Verification
    criteria: list[tuple[str, str, str]]  # (text, verdict, evidence)
    generated_at: datetime
    start: datetime
    end: datetime

    @property
    def span_s(self) -> float:
        return max(1.0, (self.end - self.start).total_seconds())


def _at(value: str) -> datetime:
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _events(db: Database, run_id: int) -> list[Any]:
    """The run's rows as plain rows (seq, at, run_id, actor, kind, data, prev_hash, hash), no
    ORM objects: a thousand of those cost more than the rest of the page."""
    return read_trail_rows.plain_events(db, run_id)


def _row(ev: Any) -> Row:
    try:
        data = json.loads(ev.data)
    except ValueError:
        data = {"data": ev.data}
    return Row(ev.seq, _at(ev.at), ev.actor, ev.kind, data if isinstance(data, dict) else {})


def verify_run(
    db: Database, events: list[Any], public_keys: dict[str, Ed25519PublicKey] | None
) -> Verification:
    """The run's rows against the chain (audit.event_hash, as `cutover audit verify`
    recomputes it) and their signatures (audit's own signature rule, retired keys included).
    The whole trail is `cutover audit verify`'s: this checks what the page shows."""
    problems: list[str] = []
    seqs = [e.seq for e in events]
    mine = set(seqs)
    before = [n - 1 for n in seqs if n > 1 and n - 1 not in mine]
    found, sigs = read_trail_rows.rows_and_signatures(db, before, seqs, public_keys is not None)
    prev = {e.seq: e for e in found}
    by_seq = {e.seq: e for e in events} | prev
    for e in [*events, *prev.values()]:
        recomputed = audit.event_hash(e.prev_hash, e.seq, e.at, e.run_id, e.actor, e.kind, e.data)
        if recomputed != e.hash:
            problems.append(f"row {e.seq}: content does not match its hash (edited; {e.kind})")
    for e in events:
        if e.seq == 1:
            linked = e.prev_hash == audit.GENESIS
        else:
            before_row = by_seq.get(e.seq - 1)
            linked = before_row is not None and before_row.hash == e.prev_hash
        if not linked:
            problems.append(
                f"row {e.seq}: does not link to row {e.seq - 1} (a row was deleted, inserted "
                "or reordered)"
            )
    used: list[str] = []
    if public_keys is not None:
        retired = audit.retirements(audit.key_events(db))
        for e in events:
            signed = sigs.get(e.seq, [])
            if not signed:
                problems.append(f"row {e.seq}: unsigned (appended without the signing key)")
                continue
            verdicts = [
                (
                    sig.key_id,
                    audit.check_signature(  # audit's own rule, as `cutover audit verify`
                        e.seq, e.hash, sig.key_id, sig.signature, public_keys, retired
                    ),
                )
                for sig in signed
            ]
            good = [kid for kid, why in verdicts if why is None]
            if not good:
                problems += [f"row {e.seq}: {why}" for _, why in verdicts if why is not None]
            for kid in good:
                if kid not in used:
                    used.append(kid)
    return Verification(
        rows=len(events),
        first=seqs[0] if seqs else None,
        last=seqs[-1] if seqs else None,
        key_ids=used,
        signatures_checked=public_keys is not None,
        problems=sorted(problems, key=lambda p: int(p.split()[1].rstrip(":"))),
    )


def _outputs(db: Database, run_id: int) -> dict[str, tuple[str, str]]:
    """Kept output by the SHA-256 of its text (as its step.result row recorded it)."""
    found: dict[str, tuple[str, str]] = {}
    for kept in step_outputs.with_text(db, run_id):
        digest = hashlib.sha256(kept.text.encode()).hexdigest()
        found[digest] = (kept.text, step_outputs.describe(kept).split(" · ")[-1])
    return found


def _step(row: Row, outputs: dict[str, tuple[str, str]]) -> Step:
    d = row.data
    out = d.get("output") if isinstance(d.get("output"), dict) else None
    text, note = (None, "")
    if out is not None and str(out.get("sha256")) in outputs:
        text, note = outputs[str(out["sha256"])]
    elif out is not None:
        note = (
            "output not shown: no kept output matches the SHA-256 its audit row recorded "
            "(missing, or changed after it was kept)"
        )
    return Step(
        row,
        str(d.get("section") or ""),
        str(d.get("step") or "?"),
        str(d.get("status") or "?"),
        str(d.get("evidence") or ""),
        int(d.get("duration_ms") or 0),
        text,
        note,
    )


def build(
    db: Database,
    runbook: Runbook,
    run_id: int,
    public_keys: dict[str, Ed25519PublicKey] | None = None,
    now: datetime | None = None,
) -> RunPage:
    """The run's page; KeyError when there is no such run."""
    view = run_view(db, runbook, run_id)
    if view is None:
        raise KeyError(run_id)
    events = _events(db, run_id)
    rows = [_row(e) for e in events]
    outputs = _outputs(db, run_id)
    names = {p.id: (p.name, runbook.phase_number(i)) for i, p in enumerate(runbook.phases)}
    attempts: list[Attempt] = []
    by_gate: dict[int, Attempt] = {}
    current: Attempt | None = None
    rollback_steps: list[Step] = []
    refusals, signoffs, notes, aborted, others = [], [], [], [], []
    rollback = rollback_started = ended = None
    for r in rows:
        d = r.data
        gate = d.get("gate")
        target = by_gate.get(int(gate)) if isinstance(gate, int) else None
        if r.kind == AuditKind.PHASE_STARTED:
            phase = str(d.get("phase"))
            name, number = names.get(phase, (phase, "?"))
            current = Attempt(phase, name, number, int(d.get("attempt") or 1), r)
            attempts.append(current)
        elif r.kind == AuditKind.STEP_RESULT:
            step = _step(r, outputs)
            if step.section in ("actions", "checks") and current is not None:
                current.steps.append(step)
            elif step.section in ("rollback", "restore"):
                rollback_steps.append(step)
            else:
                others.append(r)
        elif r.kind == AuditKind.GATE_OPENED and current is not None:
            current.opened = r
            by_gate[int(d["gate"])] = current
        elif r.kind == AuditKind.GATE_DECIDED and target is not None:
            target.decided = r
        elif r.kind == AuditKind.GATE_VOTE and target is not None:
            target.votes.append(r)
        elif r.kind == AuditKind.MANUAL_TICKED and target is not None:
            target.ticks.append(r)
        elif r.kind in (AuditKind.GATE_REMINDED, AuditKind.GATE_ESCALATED) and target:
            target.reminders.append(r)
        elif r.kind == AuditKind.ACTION_REFUSED:
            refusals.append(r)
            if target is not None:
                target.refusals.append(r)
        elif r.kind == AuditKind.PHASE_INTERRUPTED and current is not None:
            current.interrupted = r
        elif r.kind == AuditKind.RUN_ABORTED:
            aborted.append(r)
        elif r.kind == AuditKind.CRITERION_SIGNED_OFF:
            signoffs.append(r)
        elif r.kind == AuditKind.RECORD_NOTE:
            notes.append(r)
        elif r.kind in (AuditKind.ROLLBACK_STARTED, AuditKind.ROLLBACK_RESUMED):
            rollback_started = rollback_started or r
        elif r.kind in ENDED:
            ended = r
            if r.kind == AuditKind.RUN_ROLLED_BACK:
                rollback = r
        elif r.kind == AuditKind.RUN_STARTED:
            pass
        elif target is not None:
            target.others.append(r)  # an override, a lock, a kind this page does not know
        else:
            others.append(r)
    # An attempt that never decided ends where the next thing began (or the run's end).
    for i, a in enumerate(attempts):
        if a.decided is None:
            nxt = attempts[i + 1].started.at if i + 1 < len(attempts) else None
            end_row = rollback_started or ended
            a.ended_at = nxt or (end_row.at if end_row else (rows[-1].at if rows else None))
    start = rows[0].at if rows else view.started_at
    end = rows[-1].at if rows else start
    phases = []
    for line, spec in zip(view.phases, runbook.phases, strict=True):
        mine = [a for a in attempts if a.phase == spec.id]
        totals = [a.total_s for a in mine if a.total_s is not None]
        phases.append(
            PhaseSummary(
                line.number,
                spec.id,
                spec.name,
                spec.estimate_minutes.min,
                spec.estimate_minutes.max,
                sum(totals) if totals else None,
                len(mine),
                line.status,
            )
        )
    try:
        record = build_record(db, runbook, run_id, events)
        criteria = [(c.text, str(c.verdict), c.evidence) for c in record.criteria]
    except (KeyError, RunbookError):
        criteria = []
    return RunPage(
        run=view,
        runbook_name=runbook.name,
        runbook_version=str(runbook.version),
        rows=rows,
        attempts=attempts,
        phases=phases,
        rollback=rollback,
        rollback_started=rollback_started,
        rollback_steps=rollback_steps,
        ended=ended,
        refusals=refusals,
        signoffs=signoffs,
        notes=notes,
        aborted=aborted,
        others=others,
        verification=verify_run(db, events, public_keys),
        criteria=criteria,
        generated_at=now or datetime.now(UTC),
        start=start,
        end=end,
    )
