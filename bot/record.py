"""The cutover record: the runbook's Notes section and success criteria, filled in from
the audit trail of a run when it completes or rolls back; and the post-cutover tasks.

Everything here is read from `audit_event` (and the run row): what a person did is
in it (ticks, decisions), so is what the bot saw (step results, monitoring rounds).
A criterion nothing in the trail can show is reported as "needs a person".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bot import audit
from bot.db import Database
from bot.domain.audit_kinds import AuditKind
from bot.models import Run
from bot.notices import aware, checklist, duration, when
from phases.runbook import Runbook, RunbookError

Verdict = Literal["yes", "no", "needs a person"]
VERDICT_ICONS = {"yes": "✅", "no": "❌", "needs a person": "❔"}

DEFAULT_NOTES = [
    "Date",
    "Start Time",
    "End Time",
    "Total Duration",
    "Issues Encountered",
    "Deviations from Runbook",
    "Rollback Triggered",
    "Reason",
    "Production URL",
    "Admin Login Verified",
    "Payment Test Completed",
    "Sign-Off",
]

# Success criteria a person confirms with a manual step: criterion words → manual step words.
MANUAL_MAP = [
    (r"registration|sign.?up", r"sign.?up|regist"),
    (r"nip-?05 claim|\bclaim", r"claim"),
    (r"payment|webhook", r"payment|webhook"),
    (r"admin", r"admin"),
]


@dataclass(frozen=True)
class Criterion:
    text: str
    verdict: Verdict
    evidence: str


@dataclass
class Trail:
    """The run's audit trail, digested."""

    steps: list[dict[str, Any]] = field(default_factory=list)  # step.result + "phase"
    gates: dict[int, str] = field(default_factory=dict)  # gate id → phase id
    decisions: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)  # + "phase", "actor", "at"
    refused: list[dict[str, Any]] = field(default_factory=list)
    interrupted: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    reminders: list[dict[str, Any]] = field(default_factory=list)
    phase_starts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CutoverRecord:
    run_id: int
    environment: str
    status: str
    dry_run: bool
    notes: list[tuple[str, str | list[str]]]
    criteria: list[Criterion]

    def note(self, name: str) -> str | list[str]:
        for key, value in self.notes:
            if key.lower() == name.lower():
                return value
        raise KeyError(name)


def _trail(db: Database, run_id: int) -> Trail:
    t = Trail()
    phase: str | None = None
    for ev in audit.events(db, run_id):
        data = json.loads(ev.data)
        if ev.kind == "phase.started":
            phase = data.get("phase")
            t.phase_starts.append(data)
        elif ev.kind == "step.result":
            section = data.get("section")
            t.steps.append({**data, "phase": phase if section in ("actions", "checks") else None})
        elif ev.kind == "gate.opened":
            t.gates[int(data["gate"])] = str(data["phase"])
        elif ev.kind == "gate.decided":
            t.decisions.append({**data, "actor": ev.actor, "at": ev.at})
        elif ev.kind == "manual.ticked":
            t.ticks.append(
                {**data, "phase": t.gates.get(int(data["gate"])), "actor": ev.actor, "at": ev.at}
            )
        elif ev.kind == AuditKind.ACTION_REFUSED:
            t.refused.append({**data, "actor": ev.actor})
        elif ev.kind == "phase.interrupted":
            t.interrupted.append(data)
        elif ev.kind == "monitor.round":
            t.rounds.append(data)
        elif ev.kind == "monitor.missed":
            t.missed += list(data.get("rounds") or [])
        elif ev.kind in ("gate.reminded", "gate.escalated"):
            t.reminders.append({**data, "kind": ev.kind})
    return t


def _spec_of(runbook: Runbook, phase_id: str | None, step_id: str) -> Any:
    if phase_id is None:
        return None
    try:
        phase = runbook.phase(phase_id)
    except KeyError:
        return None
    return next((st for st in [*phase.actions, *phase.checks] if st.id == step_id), None)


# --------------------------------------------------------------------------- criteria


def _latest_of_kind(
    runbook: Runbook, t: Trail, kind: str, want: Callable[[Any], bool] = lambda _s: True
) -> dict[str, Any] | None:
    for st in reversed(t.steps):
        spec = _spec_of(runbook, st.get("phase"), st["step"])
        if spec is not None and spec.kind == kind and want(spec):
            return st
    return None


def _monitor_verdict(t: Trail, minutes: int | None, only: str | None = None) -> Criterion | None:
    if not t.rounds:
        return None
    rounds = t.rounds
    steps = [
        s for r in rounds for s in r.get("steps", []) if only is None or only in str(s["step"])
    ]
    if only is not None and not steps:
        return None
    failed = (
        [r["round"] for r in rounds if r.get("status") != "passed"]
        if only is None
        else sorted(
            {
                r["round"]
                for r in rounds
                for s in r.get("steps", [])
                if only in str(s["step"]) and s["status"] in ("fail", "error")
            }
        )
    )
    covered = max(int(r.get("minute") or 0) for r in rounds)
    of = max(int(r.get("of") or 0) for r in rounds)
    text = f"{len(rounds) - len(failed)}/{len(rounds)} monitoring rounds passed over {covered} min"
    if failed:
        return Criterion("", "no", f"{text}; failed in round(s) {', '.join(map(str, failed))}")
    if t.missed:
        return Criterion("", "no", f"{text}; round(s) {', '.join(map(str, t.missed))} missed")
    if len(rounds) < of:
        return Criterion("", "no", f"{text}; monitoring stopped before its last round")
    if minutes is not None and covered < minutes:
        return Criterion("", "no", f"{text} (< {minutes} min)")
    return Criterion("", "yes", text)


def _evaluate(text: str, runbook: Runbook, t: Trail) -> Criterion:
    low = text.lower()
    found: Criterion | None = None
    m = re.search(r"(\d+)\+?\s*min", low)
    if "healthy" in low and m and ("running" in low or "services" in low):
        found = _monitor_verdict(t, int(m.group(1)))
    elif "health check" in low:
        found = _monitor_verdict(t, None, only="health")
    elif (rt := re.search(r"response times?\s*<\s*(\d+)\s*ms", low)) is not None:
        limit = int(rt.group(1))
        timings = [
            s["elapsed_ms"]
            for r in t.rounds
            for s in r.get("steps", [])
            if isinstance(s.get("elapsed_ms"), int)
        ]
        if timings:
            avg = sum(timings) / len(timings)
            found = Criterion(
                "",
                "yes" if avg < limit else "no",
                f"average {avg:.0f} ms over {len(timings)} monitoring rounds (limit {limit} ms)",
            )
    elif "dns" in low:
        st = _latest_of_kind(runbook, t, "dns")
        if st is not None:
            found = Criterion(
                "",
                "yes" if st["status"] == "pass" else "no",
                f"{st['phase']}/{st['step']} {st['status']}: {st['evidence']}",
            )
    elif "https" in low:
        st = _latest_of_kind(runbook, t, "tls", lambda spec: "host" in spec.params)
        if st is not None:
            found = Criterion(
                "",
                "yes" if st["status"] == "pass" else "no",
                f"{st['phase']}/{st['step']} {st['status']}: {st['evidence']}",
            )
    else:
        for crit, item in MANUAL_MAP:
            if re.search(crit, low):
                found = _manual_verdict(runbook, t, item)
                break
    if found is None:
        return Criterion(text, "needs a person", "nothing in the audit trail shows it")
    return Criterion(text, found.verdict, found.evidence)


def _manual_items(runbook: Runbook, pattern: str) -> list[tuple[str, str]]:
    """(phase id, manual step id) whose id matches; failing that, whose text does."""
    items = [(p, m) for p in runbook.phases for m in p.manual]
    by_id = [(p.id, m.id) for p, m in items if re.search(pattern, m.id.lower())]
    return by_id or [(p.id, m.id) for p, m in items if re.search(pattern, m.text.lower())]


def _manual_verdict(runbook: Runbook, t: Trail, pattern: str) -> Criterion | None:
    items = _manual_items(runbook, pattern)
    if not items:
        return None
    for phase_id, item_id in items:
        tick = next(
            (k for k in t.ticks if k.get("item") == item_id and k.get("phase") == phase_id), None
        )
        if tick is not None:
            return Criterion(
                "",
                "yes",
                f"manual step {phase_id}/{item_id} ticked by {tick['actor']} at {tick['at'][11:16]}"
                " UTC",
            )
    names = ", ".join(f"{p}/{i}" for p, i in items)
    return Criterion("", "no", f"manual step {names} was not ticked")


# --------------------------------------------------------------------------- notes


def _yes_no_manual(runbook: Runbook, t: Trail, pattern: str) -> str:
    verdict = _manual_verdict(runbook, t, pattern)
    if verdict is None:
        return "needs a person (no manual step for it)"
    return ("YES — " if verdict.verdict == "yes" else "NO — ") + verdict.evidence


def _issues(t: Trail) -> list[str]:
    out: list[str] = []
    for st in t.steps:
        if st["status"] in ("fail", "error"):
            where = st.get("phase") or st.get("section")
            out.append(f"{where}/{st['step']} {st['status'].upper()}: {st['evidence']}")
    for r in t.refused:
        what = r.get("action") or "click"
        out.append(f"{what} by {r['actor']} refused: {r.get('reason', '')}")
    summarized = {st.get("phase") for st in t.steps}  # a finished window has one line per check
    for r in t.rounds:
        if r.get("phase") in summarized:
            continue
        for s in r.get("steps", []):
            if s["status"] in ("fail", "error"):
                out.append(
                    f"monitoring round {r['round']}/{r.get('of')} {s['step']} "
                    f"{s['status'].upper()}: {s['evidence']}"
                )
    for r in t.reminders:
        verb = "escalated" if r["kind"] == "gate.escalated" else "reminded"
        out.append(f"checkpoint of {r.get('phase')} waited past its timeout ({verb})")
    return out


def _deviations(t: Trail) -> list[str]:
    out: list[str] = []
    for d in t.decisions:
        if d.get("decision") == "retry":
            out.append(f"phase {d.get('phase')} retried (by {d['actor']})")
    for i in t.interrupted:
        out.append(f"phase {i.get('phase')} interrupted (the bot stopped while it ran)")
    for st in t.steps:
        if st["status"] == "skipped":
            out.append(f"{st.get('phase') or st.get('section')}/{st['step']} skipped")
    if t.missed:
        out.append(f"monitoring rounds {', '.join(map(str, t.missed))} missed")
    return out


def _sign_off(run: Run, t: Trail) -> str:
    if run.status != "completed":
        return f"— (not signed off: run {run.status.replace('_', ' ')})"
    approved = [d for d in t.decisions if d.get("decision") == "continue"]
    if not approved:
        return "—"
    last = approved[-1]
    who = ", ".join(last.get("approvers") or [last["actor"]])
    return f"{who} (approved the last checkpoint, {last.get('phase')}, at {last['at'][11:16]} UTC)"


def build_record(db: Database, runbook: Runbook, run_id: int) -> CutoverRecord:
    with db.session() as s:
        run = s.get(Run, run_id)
    if run is None:
        raise KeyError(run_id)
    t = _trail(db, run_id)
    start = aware(run.started_at)
    end = aware(run.ended_at) if run.ended_at else None
    try:
        url = str(runbook.values_for(run.environment).get("base_url", "?"))
    except RunbookError:
        url = runbook.environments[run.environment].base_url
    except KeyError:
        url = "?"
    rolled_back = run.status in ("rolled_back", "rolling_back")
    values: dict[str, str | list[str]] = {
        "date": start.strftime("%Y-%m-%d"),
        "start time": start.strftime("%H:%M UTC"),
        "end time": end.strftime("%H:%M UTC") if end else "— (still running)",
        "total duration": duration((end - start).total_seconds()) if end else "—",
        "issues encountered": _issues(t) or ["none"],
        "deviations from runbook": _deviations(t) or ["none"],
        "rollback triggered": "YES" if rolled_back else "NO",
        "reason": (run.rollback_reason or "—") if rolled_back else "—",
        "production url": url,
        "admin login verified": _yes_no_manual(runbook, t, r"admin"),
        "payment test completed": _yes_no_manual(runbook, t, r"payment"),
        "sign-off": _sign_off(run, t),
    }
    aliases = {
        "deviations": "deviations from runbook",
        "signoff": "sign-off",
        "url": "production url",
    }
    notes: list[tuple[str, str | list[str]]] = []
    for name in runbook.notes_fields or DEFAULT_NOTES:
        key = aliases.get(name.lower(), name.lower())
        notes.append((name, values.get(key, "needs a person")))
    criteria = [_evaluate(c, runbook, t) for c in runbook.success_criteria]
    return CutoverRecord(run_id, run.environment, str(run.status), run.dry_run, notes, criteria)


def record_text(rec: CutoverRecord, runbook: Runbook) -> str:
    state = {"completed": "completed", "rolled_back": "rolled back"}.get(rec.status, rec.status)
    lines = [
        f"📋 Cutover record — run #{rec.run_id}, {rec.environment}"
        f"{' (DRY RUN)' if rec.dry_run else ''}: {state} · {runbook.name} v{runbook.version}"
    ]
    for name, value in rec.notes:
        if isinstance(value, list):
            lines.append(f"{name}:")
            lines += [f"- {v}" for v in value]
        else:
            lines.append(f"{name}: {value}")
    if rec.criteria:
        met = sum(c.verdict == "yes" for c in rec.criteria)
        unmet = sum(c.verdict == "no" for c in rec.criteria)
        ask = sum(c.verdict == "needs a person" for c in rec.criteria)
        lines.append(f"Success criteria: {met} met, {unmet} not met, {ask} need a person")
        lines += [f"{VERDICT_ICONS[c.verdict]} {c.text} — {c.evidence}" for c in rec.criteria]
    return "\n".join(lines)


def tasks_text(runbook: Runbook, run_id: int, ended_at: datetime | None) -> str:
    by = f", by {when(aware(ended_at) + timedelta(hours=24))}" if ended_at else ""
    return checklist(
        f"📝 Post-cutover tasks for run #{run_id} (within 24 h{by}):", runbook.post_cutover_tasks
    )
