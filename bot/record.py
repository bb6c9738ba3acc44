"""The cutover record: the runbook's Notes section and success criteria, filled in from
the audit trail of a run when it completes or rolls back; and the post-cutover tasks.

Everything here is read from `audit_event` (and the run row): what a person did is
in it (ticks, decisions), so is what the bot saw (step results, monitoring rounds).
A criterion is judged only by what the runbook binds it to (a check, monitoring rounds,
a manual step, a sign-off); one bound to nothing, or with no result, is "not verified".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bot import audit
from bot.db import Database
from bot.domain.audit_kinds import AuditKind
from bot.models import Run
from bot.notices import aware, checklist, duration, when
from phases.checks.deployed import image_line
from phases.runbook import CriterionSpec, NotesField, Runbook, RunbookError

Verdict = Literal["yes", "no", "not verified"]
VERDICT_ICONS = {"yes": "✅", "no": "❌", "not verified": "❔"}

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


@dataclass(frozen=True)
class Criterion:
    text: str
    verdict: Verdict
    evidence: str
    id: str = ""


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
    signoffs: list[dict[str, Any]] = field(default_factory=list)  # + "actor", "at"
    rollback: dict[str, Any] | None = None  # the run.rolled_back event's data
    people_notes: list[dict[str, Any]] = field(default_factory=list)  # /cutover note


@dataclass(frozen=True)
class CutoverRecord:
    run_id: int
    environment: str
    status: str
    dry_run: bool
    notes: list[tuple[str, str | list[str]]]
    criteria: list[Criterion]
    people_notes: list[str] = field(default_factory=list)
    # What was deployed (the `deployed` step's artifact: commit, images), if it ran; and
    # whether the runbook has such a step (then its absence is said, not hidden).
    deployed: dict[str, Any] | None = None
    deployed_expected: bool = False

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
        elif ev.kind == AuditKind.GATE_VOTE and data.get("comment"):  # Continue with comment
            where = t.gates.get(int(data["gate"]), data.get("phase"))
            text = f"continued at {where}: {data['comment']}"
            t.people_notes.append({"text": text, "actor": ev.actor, "at": ev.at})
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
        elif ev.kind == AuditKind.CRITERION_SIGNED_OFF:
            t.signoffs.append({**data, "actor": ev.actor, "at": ev.at})
        elif ev.kind == AuditKind.RUN_ROLLED_BACK:
            t.rollback = data
        elif ev.kind == AuditKind.RECORD_NOTE:
            t.people_notes.append({**data, "actor": ev.actor, "at": ev.at})
    return t


# --------------------------------------------------------------------------- criteria


def _step_verdict(t: Trail, ref: str) -> Criterion:
    phase_id, step_id = ref.split("/")
    st = next(
        (x for x in reversed(t.steps) if x.get("phase") == phase_id and x["step"] == step_id),
        None,
    )
    if st is None:
        return Criterion("", "not verified", f"{ref} did not run in this run")
    ok = st["status"] == "pass"
    return Criterion("", "yes" if ok else "no", f"{ref} {st['status']}: {st['evidence']}")


def _monitor_verdict(t: Trail, spec: CriterionSpec) -> Criterion:
    assert spec.monitoring is not None
    phase_id, step_id = spec.monitoring.split("/")
    rounds = [r for r in t.rounds if r.get("phase") == phase_id]
    seen = [(r, s) for r in rounds for s in r.get("steps", []) if s.get("step") == step_id]
    if not seen:
        return Criterion("", "not verified", f"no monitoring round ran {spec.monitoring}")
    failed = [r["round"] for r, s in seen if s["status"] in ("fail", "error")]
    covered = max(int(r.get("minute") or 0) for r, _ in seen)
    of = max(int(r.get("of") or 0) for r, _ in seen)
    text = f"{len(seen) - len(failed)}/{len(seen)} monitoring rounds of {step_id} passed"
    text += f" over {covered} min"
    if failed:
        first = next(s for r, s in seen if r["round"] == failed[0])
        return Criterion(
            "",
            "no",
            f"{text}; failed in round(s) {', '.join(map(str, failed))}: {first['evidence']}"[:300],
        )
    if spec.average_ms_below is not None:
        timings = [s["elapsed_ms"] for _, s in seen if isinstance(s.get("elapsed_ms"), int)]
        if not timings:
            return Criterion("", "not verified", f"{text}; no response times were recorded")
        avg = sum(timings) / len(timings)
        limit = spec.average_ms_below
        return Criterion(
            "",
            "yes" if avg < limit else "no",
            f"average {avg:.0f} ms over {len(timings)} monitoring rounds (limit {limit} ms)",
        )
    if t.missed:
        return Criterion("", "no", f"{text}; round(s) {', '.join(map(str, t.missed))} missed")
    if len(seen) < of:
        return Criterion("", "no", f"{text}; monitoring stopped before its last round")
    if spec.minutes is not None and covered < spec.minutes:
        return Criterion("", "no", f"{text} (< {spec.minutes} min)")
    return Criterion("", "yes", text)


def _manual_verdict(t: Trail, ref: str) -> Criterion:
    phase_id, item_id = ref.split("/")
    tick = next(
        (k for k in t.ticks if k.get("item") == item_id and k.get("phase") == phase_id), None
    )
    if tick is None:
        return Criterion("", "no", f"manual step {ref} was not ticked")
    return Criterion(
        "",
        "yes",
        f"manual step {ref} ticked by {tick['actor']} at {tick['at'][11:16]} UTC",
    )


def _signoff_verdict(t: Trail, criterion_id: str) -> Criterion:
    sign = next((x for x in reversed(t.signoffs) if x.get("criterion") == criterion_id), None)
    if sign is None:
        return Criterion("", "not verified", "nobody signed it off")
    note = f": {sign['note']}" if sign.get("note") else ""
    return Criterion("", "yes", f"signed off by {sign['actor']} at {sign['at'][11:16]} UTC{note}")


def evaluate(spec: CriterionSpec, t: Trail) -> Criterion:
    """The criterion's verdict from exactly what the runbook binds it to."""
    if spec.check:
        found = _step_verdict(t, spec.check)
    elif spec.monitoring:
        found = _monitor_verdict(t, spec)
    elif spec.manual:
        found = _manual_verdict(t, spec.manual)
    elif spec.signoff:
        found = _signoff_verdict(t, spec.id)
    else:
        found = Criterion("", "not verified", "the runbook binds it to no check or sign-off")
    return Criterion(spec.text, found.verdict, found.evidence, spec.id)


# --------------------------------------------------------------------------- notes


def _issues(run: Run, t: Trail) -> list[str]:
    out: list[str] = []
    if run.status in ("rolled_back", "rolling_back"):
        out.append(f"rolled back: {run.rollback_reason or 'no reason given'}")
    rb = t.rollback or {}
    if rb and not rb.get("verified"):
        out.append("the rollback was not verified: the old service's health was not confirmed")
    if rb and rb.get("within_target") is False:
        out.append(
            f"the rollback took {rb.get('duration_s')} s, over its "
            f"{rb.get('target_minutes')}-minute target"
        )
    if rb and rb.get("schema"):
        out.append(str(rb["schema"]))
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
        "issues encountered": _issues(run, t) or ["none"],
        "deviations from runbook": _deviations(t) or ["none"],
        "rollback triggered": "YES" if rolled_back else "NO",
        "reason": (run.rollback_reason or "—") if rolled_back else "—",
        "production url": url,
        "sign-off": _sign_off(run, t),
    }
    aliases = {
        "deviations": "deviations from runbook",
        "signoff": "sign-off",
        "url": "production url",
    }
    criteria = [evaluate(c, t) for c in runbook.success_criteria]
    by_id = {c.id: c for c in criteria}
    notes: list[tuple[str, str | list[str]]] = []
    for f in runbook.notes_fields or [NotesField(name=n) for n in DEFAULT_NOTES]:
        if f.criterion is not None:
            c = by_id[f.criterion]
            word = {"yes": "YES", "no": "NO", "not verified": "NOT VERIFIED"}[c.verdict]
            notes.append((f.name, f"{word} — {c.evidence}"))
            continue
        key = aliases.get(f.name.lower(), f.name.lower())
        notes.append((f.name, values.get(key, "not recorded by the bot: fill in by hand")))
    people = [f"{n['actor']} at {n['at'][11:16]} UTC: {n['text']}" for n in t.people_notes]
    return CutoverRecord(
        run_id,
        run.environment,
        str(run.status),
        run.dry_run,
        notes,
        criteria,
        people,
        deployed=deployed_artifact(t),
        deployed_expected=any(st.kind == "deployed" for _, _, st in runbook.all_steps()),
    )


def deployed_artifact(t: Trail) -> dict[str, Any] | None:
    """The last `deployed` step's artifact in the run's trail (a retried phase: its last)."""
    found = [
        st["artifact"]
        for st in t.steps
        if isinstance(st.get("artifact"), dict) and st["artifact"].get("type") == "deployed"
    ]
    return found[-1] if found else None


def deployed_lines(deployed: dict[str, Any] | None, expected: bool) -> list[str]:
    """The record's "Deployed" lines: the commit, then one line per running image."""
    if deployed is None:
        return (
            ["Deployed: not captured (the run never reached its deployed step)"] if expected else []
        )
    commit = deployed.get("commit") or "unknown (no git commit found)"
    lines = [f"Deployed: commit {commit} of {deployed.get('repo', '?')}"]
    images = deployed.get("images") or []
    if not images:
        lines.append(f"- no running container of {deployed.get('project', '?')} was seen")
    lines += [f"- {image_line(img)}" for img in images]
    return lines


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
    lines += deployed_lines(rec.deployed, rec.deployed_expected)
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
    by = f", by {when(aware(ended_at) + timedelta(hours=24))}" if ended_at else ""
    return checklist(
        f"📝 Post-cutover tasks for run #{run_id} (within 24 h{by}):", runbook.post_cutover_tasks
    )
