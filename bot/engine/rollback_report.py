"""The rollback report: every sentence built from what the rollback recorded, nothing assumed.

One function turns the rollback's outcomes (restore, rollback steps, rollback checks), its
restore point and its timing into the run thread's report, the stakeholders' line and the
facts the `run.rolled_back` audit row keeps, so the three cannot disagree: the health
sentence is the same text in all of them, and it says "verified healthy" only when every
rollback check verified health (phases/claims.py), never because a container runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.engine.restore_point import RestorePoint
from bot.text import ICONS, hhmm, plural
from phases import claims
from phases.checks.base import Status
from phases.runbook import Runbook, Value
from phases.runner import StepOutcome

RestoreState = Literal["restored", "restore_failed", "not_needed", "no_restore_point", "dry_run"]


@dataclass(frozen=True)
class Restore:
    """What the restore did: its outcomes, the restore point it used, in one word."""

    state: RestoreState
    outcomes: list[StepOutcome] = field(default_factory=list)
    point: RestorePoint | None = None
    # Verified backups the run took after the restore point's (a Retry's): never used.
    later_backups: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    notice: str  # the run thread's report
    health: str  # the one sentence on the old service (also in the feed and the audit row)
    timing: str
    restore: str | None  # the sentence on the database restore (None: no restore declared)
    facts: dict[str, Any]  # for the run.rolled_back audit row


def build(
    runbook: Runbook,
    values: dict[str, Value],
    outcomes: Sequence[StepOutcome],
    checks: Sequence[StepOutcome],
    restore: Restore | None,
    took_s: float,
    schema: str | None,
) -> Report:
    failed = [o.step.id for o in outcomes if o.result.status.blocks_gate]
    verdict = claims.verdict(
        "old service",
        [claims.claim(o.step, o.result, values) for o in checks],
        none_because="the runbook has no rollback_checks",
    )
    took_s = round(took_s, 1)  # the audited figure: the sentence says what the row records
    target = runbook.rollback_time_minutes
    within = None if target is None else took_s <= target * 60
    timing = f"Rollback took {_mmss(took_s)}" + (
        ""
        if target is None
        else f" (target {target} min: {'within target' if within else 'OVER the target'})"
    )
    summary = (
        "Rollback finished with failures in: " + ", ".join(failed) + ". Check them by hand."
        if failed
        else "Rollback finished; every step passed."
    )
    said = restore_sentence(runbook, restore) if restore is not None else None
    lines = [
        f"{ICONS.get(o.result.status, '•')} {o.section} {o.step.name}: {o.result.evidence}"
        for o in outcomes
    ]
    tail = [s for s in (said, verdict.sentence, timing + ".", schema) if s]
    point = restore.point if restore is not None else None
    facts: dict[str, Any] = {
        "failed_steps": failed,
        "steps": len(outcomes),
        "verified": verdict.verified,
        "health": verdict.sentence,
        "old_service": verdict.word,
        "claims": [{"step": c.step, "claim": c.text} for c in verdict.claims],
        "checks": [o.step.id for o in checks],
        "duration_s": round(took_s, 1),
        "target_minutes": target,
        "within_target": within,
        "restored": restore is not None and restore.state == "restored",
        "restore": restore.state if restore is not None else None,
        "restore_point": (
            {"path": point.path, "sha256": point.sha256} if point and point.found else None
        ),
        "schema": schema,
    }
    return Report("\n".join([summary, *tail, *lines]), verdict.sentence, timing, said, facts)


def restore_sentence(runbook: Runbook, restore: Restore) -> str:
    """Which backup the database was restored from, when it was taken and why that one."""
    point = restore.point
    if restore.state == "dry_run":
        return "Dry run: the database was not restored (a dry run changes nothing)."
    if restore.state == "not_needed":
        return (
            "The database was not restored: no state-changing step of a restore-protected "
            "phase began in this run, so it holds no change of theirs to undo."
        )
    if point is None or not point.found:
        where = _protects(point.data) if point is not None else "a restore-protected phase"
        return (
            f"The database was NOT restored: {where} began with no verified backup taken "
            "before it, so this run has no restore point; restore it by hand from a backup "
            "you trust."
        )
    ok = restore.state == "restored"
    lead = "Database restored from" if ok else "The database restore FAILED; it was to use"
    d = point.data
    by = d.get("taken_by") or {}
    number = by.get("phase_number") or by.get("phase")
    sha = point.sha256
    taken = f"at {hhmm(_when(d.get('taken_at')))}"
    said = (
        f"{lead} the restore point: the backup taken by Phase {number} step "
        f"{by.get('step')} (attempt {by.get('attempt')}) {taken} ({_file(point.path)}, "
        f"sha256 {sha[:12]}…), the newest verified backup before {_protects(d)} began "
        "changing the database."
    )
    later = restore.later_backups
    if later:
        which = "; ".join(
            f"Phase {_phase_no(runbook, b['taken_by'])} step "
            f"{b['taken_by'].get('step')} (attempt {b['taken_by'].get('attempt')}) at "
            f"{hhmm(_when(b.get('taken_at')))}"
            for b in later
        )
        one = len(later) == 1
        said += (
            f" {plural(len(later), 'later backup')} of this run ({which}) "
            f"{'was' if one else 'were'} kept but not used: "
            f"{'it' if one else 'they'} may hold the state the rollback undoes."
        )
    return said


def _phase_no(runbook: Runbook, taken_by: dict[str, Any]) -> str:
    index = taken_by.get("phase_index")
    if isinstance(index, int) and 0 <= index < len(runbook.phases):
        return runbook.phase_number(index)
    return str(taken_by.get("phase"))


def _protects(data: dict[str, Any]) -> str:
    p = data.get("protects") or {}
    return (
        f"Phase {p.get('phase_number') or p.get('phase')} step {p.get('step')} "
        f"(attempt {p.get('attempt')})"
    )


def _file(path: str) -> str:
    return path.rsplit("/", 1)[-1] or path


def _when(at: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(at))
    except ValueError:
        return None


def restore_state(outcomes: Sequence[StepOutcome]) -> RestoreState:
    return (
        "restored"
        if outcomes and all(o.result.status is Status.PASS for o in outcomes)
        else "restore_failed"
    )


def _mmss(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"
