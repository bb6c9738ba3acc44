"""The record as chat text, and the post-cutover task list posted when a cutover completes."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.notices import checklist, when
from bot.record.deployed import deployed_lines
from bot.record.trail import VERDICT_ICONS, CutoverRecord
from phases.runbook import Runbook


def record_text(rec: CutoverRecord, runbook: Runbook) -> str:
    state = {"completed": "completed", "rolled_back": "rolled back"}.get(rec.status, rec.status)
    unmet = sum(c.verdict == "no" for c in rec.criteria)
    if rec.status == "completed" and unmet:  # never a plain "completed" past a ❌
        state += f" with {unmet} success criteri{'on' if unmet == 1 else 'a'} not met"
    lines = [
        f"📋 Cutover record — run #{rec.run_id}, {rec.environment}"
        f"{' (DRY RUN)' if rec.dry_run else ''}: {state} · {runbook.name} v{runbook.version}"
    ]
    lines += rec.revert_lines
    for name, value in rec.notes:
        if isinstance(value, list):
            lines.append(f"{name}:")
            lines += [f"- {v}" for v in value]
        else:
            lines.append(f"{name}: {value}")
    if rec.manual:
        lines.append("Manual steps:")
        lines += [f"- {m}" for m in rec.manual]
    lines += deployed_lines(rec.deployed, rec.deployed_expected)
    if rec.tasks:
        lines += ["Post-cutover tasks:", *[f"- {x}" for x in rec.tasks]]
    if rec.people_notes:
        lines.append("Notes:")
        lines += [f"- {n}" for n in rec.people_notes]
    if rec.criteria:
        met = sum(c.verdict == "yes" for c in rec.criteria)
        unmet = sum(c.verdict == "no" for c in rec.criteria)
        unknown = [c for c in rec.criteria if c.verdict == "not verified"]
        lines.append(f"Success criteria: {met} met, {unmet} not met, {len(unknown)} not verified")
        lines += [f"{VERDICT_ICONS[c.verdict]} {c.text} — {c.evidence}" for c in rec.criteria]
        if unknown:
            lines.append(
                "Not verified by anyone or anything: " + "; ".join(c.text for c in unknown)
            )
    return "\n".join(lines)


def tasks_text(runbook: Runbook, run_id: int, ended_at: datetime | None) -> str:
    by = f", by {when(ended_at + timedelta(hours=24))}" if ended_at else ""
    return checklist(
        f"📝 Post-cutover tasks for run #{run_id} (within 24 h{by}):",
        [t.text for t in runbook.post_cutover_tasks],
    )
