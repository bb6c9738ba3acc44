"""Plain-text renderings of runs and checkpoints, shared by the console and chat fallbacks."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.views import STATUS_WORDS, GateView, RunView

ICONS = {
    "pass": "✅",
    "fail": "❌",
    "error": "⛔",
    "warn": "⚠️",
    "skipped": "⏭️",
    "pending": "○",
    "running": "⏳",
    "waiting": "✋",
    "passed": "✅",
    "failed": "❌",
    "interrupted": "⚠️",
    "monitoring": "📈",
    "cancelled": "🚫",
}


def hhmm(dt: datetime | None) -> str:
    if dt is None:
        return "?"
    aware = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%H:%M UTC")


def status_text(view: RunView, now: datetime | None = None) -> str:
    state = STATUS_WORDS.get(view.status, view.status)  # type: ignore[call-overload]
    elapsed = view.elapsed_minutes(now)
    head = (
        f"Run #{view.id} · {view.environment}{' (dry run)' if view.dry_run else ''} · {state}"
        f" · elapsed {elapsed:.0f} min of an estimated {view.estimate_min}-{view.estimate_max}"
        f" min · started by {view.requested_by}"
    )
    lines = [head]
    for p in view.phases:
        extra = ""
        if p.status == "passed" and p.decided_by:
            extra = f" — approved by {p.decided_by} at {hhmm(p.decided_at)}"
        elif p.status == "failed" and p.decided_by:
            extra = f" — rolled back by {p.decided_by} at {hhmm(p.decided_at)}"
        elif p.status == "monitoring":
            extra = " — monitoring: checks run in rounds, the checkpoint opens after the last"
        took = f", took {p.minutes:.0f} min" if p.minutes is not None else ""
        attempt = f" (attempt {p.attempt})" if p.attempt > 1 else ""
        lines.append(
            f"{ICONS.get(p.status, '•')} {p.number}. {p.name} [{p.estimate}{took}]{attempt}{extra}"
        )
    if view.rollback_reason:
        lines.append(f"Rollback: {view.rollback_reason} (by {view.rolled_back_by})")
    return "\n".join(lines)


def checkpoint_text(g: GateView) -> str:
    lines = [
        f"Phase {g.phase_number}: {g.phase_name}"
        f"{' (attempt ' + str(g.attempt) + ')' if g.attempt > 1 else ''}"
        f"{' — DRY RUN' if g.dry_run else ''}",
        f"Checkpoint: {g.checkpoint}",
    ]
    if g.note:
        lines.append(f"⚠️ {g.note}")
    for st in g.steps:
        lines.append(
            f"  {ICONS.get(st.status, '•')} {st.name}: {st.evidence} ({st.duration_ms} ms)"
        )
    for m in g.manual:
        box = f"[x] (by {m.ticked_by})" if m.ticked_by else "[ ]"
        lines.append(f"  {box} {m.id}: {m.text}")
    verdict = (
        "PASS → Continue"
        if g.checks_passed
        else (
            "FAIL → "
            + ("RESTORE & ROLLBACK" if g.on_fail == "restore_and_rollback" else "ROLLBACK")
        )
    )
    if g.dry_run and not g.checks_passed:
        verdict += " (dry run: nothing was changed, so Continue is allowed)"
    lines.append(f"Decision point: {verdict}")
    if g.status == "open":
        if g.quorum > 1:
            lines.append(
                f"Approvals: {len(g.votes)}/{g.quorum}"
                + (f" ({', '.join(g.votes)})" if g.votes else "")
            )
    else:
        lines.append(f"Decided: {g.status} by {g.decided_by} at {hhmm(g.decided_at)}")
    return "\n".join(lines)
