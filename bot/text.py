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
    "overridden": "🟥",  # continued past failed checks (break-glass)
}


STATUS_IN_WORDS = {
    "rolled_back": "rolled back",
    "rolling_back": "rolling back",
    "waiting": "waiting for a decision",
    "approved": "approved",
    "retried": "retried",
    "cancelled": "cancelled",
    "overridden": "overridden past its failed checks (break-glass)",
}


def in_words(status: str) -> str:
    """A status as a person says it: `rolled back`, never `rolled_back`."""
    return STATUS_IN_WORDS.get(status, status.replace("_", " "))


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 action`, `2 actions`, `0 checks`."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def duration(seconds: float) -> str:
    """A duration as a person says it: `45 s` under two minutes, else `12 min`."""
    if seconds < 1:
        return "under a second"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def minutes_range(low: int, high: int) -> str:
    """`45 min`, or `45-60 min` only when the two differ."""
    return f"{low} min" if low == high else f"{low}-{high} min"


def who(actor: str | None) -> str:
    """A person as people call them: `alice`, not `console:alice`; the bot as `the bot`."""
    if not actor:
        return "?"
    if actor == "system":
        return "the bot"
    return actor.removeprefix("console:")


def duration_ms(ms: int) -> str:
    """A step's own time: `76 ms` under a second, else as duration()."""
    return f"{ms} ms" if ms < 1000 else duration(ms / 1000)


def hhmm(dt: datetime | None) -> str:
    if dt is None:
        return "?"
    return dt.astimezone(UTC).strftime("%H:%M UTC")


def status_text(view: RunView, now: datetime | None = None) -> str:
    state = STATUS_WORDS.get(view.status, in_words(view.status))  # type: ignore[call-overload]
    elapsed = duration(view.elapsed_minutes(now) * 60)
    head = (
        f"Run #{view.id} · {view.environment}{' (dry run)' if view.dry_run else ''} · {state}"
        f" · {'took' if view.ended_at else 'elapsed'} {elapsed}"
        + (
            f" of an estimated {minutes_range(view.estimate_min, view.estimate_max)}"
            if view.reverts is None
            else ""
        )
        + f" · started by {who(view.requested_by)}"
    )
    if view.reverts is not None:
        return "\n".join([head, *revert_lines(view)])
    lines = [head]
    for p in view.phases:
        extra = ""
        if p.status == "passed" and p.decided_by:
            extra = f" — approved by {who(p.decided_by)} at {hhmm(p.decided_at)}"
        elif p.status == "failed" and p.decided_by:
            extra = f" — rolled back by {who(p.decided_by)} at {hhmm(p.decided_at)}"
        elif p.status == "overridden" and p.decided_by:
            extra = (
                f" — FAILED CHECKS OVERRIDDEN (break-glass) by {who(p.decided_by)} at "
                f"{hhmm(p.decided_at)}"
            )
        elif p.status == "monitoring":
            extra = " — monitoring: checks run in rounds, the checkpoint opens after the last"
        took = f", took {duration(p.minutes * 60)}" if p.minutes is not None else ""
        attempt = f" (attempt {p.attempt})" if p.attempt > 1 else ""
        lines.append(
            f"{ICONS.get(p.status, '•')} {p.number}. {p.name} [{p.estimate}{took}]{attempt}{extra}"
        )
    if view.rollback_reason:
        lines.append(f"Rollback: {view.rollback_reason} (by {who(view.rolled_back_by)})")
    return "\n".join(lines)


def revert_lines(view: RunView) -> list[str]:
    """A revert run's own steps (its restore, rollback and rollback checks), not the
    runbook's phases, which it does not run."""
    lines = [f"⏪ Revert of run #{view.reverts}: its restore and rollback steps"]
    for st in view.revert_steps:
        said = st.evidence or ("not run yet" if st.status == "pending" else st.status)
        lines.append(f"{ICONS.get(st.status, '•')} {st.section}/{st.id} {st.name}: {said}")
    if not view.revert_steps:
        lines.append("(the runbook has no restore or rollback steps)")
    if view.rollback_reason:
        lines.append(f"Why: {view.rollback_reason} (asked for by {who(view.rolled_back_by)})")
    return lines


def logs_command(g: GateView, step_id: str) -> str:
    """The command that prints a checkpoint step's kept output (this attempt's)."""
    return f"cutover logs {g.run_id} {g.phase_id}/{step_id}#{g.attempt}"


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
            f"  {ICONS.get(st.status, '•')} {st.name}: {st.evidence}"
            f" · step took {duration_ms(st.duration_ms)}"
        )
        if st.quote:  # a failing step: the last lines it printed, as kept
            lines += [f"      | {ln}" for ln in st.quote.splitlines()]
            lines.append(f"      (more: {logs_command(g, st.step_id)})")
    for m in g.manual:
        box = f"[x] (by {who(m.ticked_by)})" if m.ticked_by else "[ ]"
        lines.append(f"  {box} {m.id}: {m.text}")
    unticked = [m.id for m in g.manual if not m.ticked_by]
    waiting = [st.step_id for st in g.steps if st.status == "pending"]  # run after a tick
    # checks bound to a tick whose process died: what their audit row says (bot/views.py)
    stopped = [f"{st.step_id} {st.evidence}" for st in g.steps if st.status == "interrupted"]
    verdict = (
        "; ".join(
            ["checks PASS so far", *stopped]
            + ([f"waiting for {', '.join(waiting)}"] if waiting else [])
            + ([f"tick {', '.join(unticked)}"] if unticked else [])
        )
        if g.checks_passed and stopped
        else (
            f"checks PASS so far → tick {', '.join(unticked)}; the bot then checks "
            f"{', '.join(waiting)}"
            if unticked
            else f"checks PASS so far; waiting for {', '.join(waiting)}"
        )
        if g.checks_passed and waiting
        else (
            f"checks PASS → tick {', '.join(unticked)}, then Continue"
            if unticked
            else "PASS → Continue"
        )
        if g.checks_passed
        else (
            "FAIL → "
            + ("RESTORE & ROLLBACK" if g.on_fail == "restore_and_rollback" else "ROLLBACK")
        )
    )
    if g.dry_run and not g.checks_passed:
        verdict += " (dry run: nothing was changed, so Continue is allowed)"
    if g.overridable and g.status == "open":
        verdict += (
            f", or OVERRIDE (break-glass): o JUSTIFICATION, by {g.override_quorum} override "
            "approvers"
        )
    lines.append(f"Decision point: {verdict}")
    if g.overrides:
        lines.append(
            f"🟥 Override votes: {len(g.overrides)}/{g.override_quorum} to continue past failed "
            f"{', '.join(g.failed)}"
        )
        lines += [f"   🟥 {who(a)}: {why}" for a, why in g.overrides]
    if g.status == "open":
        if g.quorum > 1:
            lines.append(
                f"Approvals: {len(g.votes)}/{g.quorum}"
                + (f" ({', '.join(who(v) for v in g.votes)})" if g.votes else "")
            )
    else:
        lines.append(
            f"Decided: {in_words(g.status)} by {who(g.decided_by)} at {hhmm(g.decided_at)}"
        )
    return "\n".join(lines)
