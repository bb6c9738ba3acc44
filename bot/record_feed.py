"""What the stakeholders hear when a run completes, from the same facts as its record
(`bot.record.build_record`): "completed" only when no success criterion is ❌; a run that
went on past a ❌ criterion "ended with N success criteria not met". Then every criterion's
verdict as the record gives it, and the record's Sign-Off line (who signed off and when,
who is awaited, or that nobody was asked). Posted with the record, by the scheduler.
"""

from __future__ import annotations

from bot.record import VERDICT_ICONS, CutoverRecord


def ended_feed(rec: CutoverRecord) -> str | None:
    """The stakeholders' message for a completed run; None for any other end (a rollback
    tells its own, `bot.engine.rollback`)."""
    if rec.status != "completed":
        return None
    run = f"run #{rec.run_id}{', DRY RUN' if rec.dry_run else ''}"
    unmet = sum(c.verdict == "no" for c in rec.criteria)
    if unmet:
        word = "criterion" if unmet == 1 else "criteria"
        lines = [f"⚠️ {rec.environment}: cutover ended with {unmet} success {word} not met ({run})."]
    else:
        deployed = rec.deployed
        what = (
            f": commit {str(deployed.get('commit'))[:12]}, "
            f"{len(deployed.get('images') or [])} image(s) running"
            if deployed
            else ""
        )
        lines = [f"🎉 {rec.environment}: cutover completed ({run}){what}."]
    if rec.criteria:
        met = sum(c.verdict == "yes" for c in rec.criteria)
        unknown = sum(c.verdict == "not verified" for c in rec.criteria)
        lines.append(f"Success criteria: {met} met, {unmet} not met, {unknown} not verified")
        lines += [f"{VERDICT_ICONS[c.verdict]} {c.text} — {c.evidence}" for c in rec.criteria]
    lines.append(f"Sign-Off: {rec.sign_off}")
    return "\n".join(lines)
