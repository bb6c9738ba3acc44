"""The cutover record: the runbook's Notes section and success criteria, filled in from
the audit trail of a run when it completes or rolls back; and the post-cutover tasks.

Everything here is read from the run's typed `audit_event` rows (the run row gives only
its status and environment): what a person did is in them (ticks, decisions, refusals), so
is what the bot saw (step results, monitoring rounds), each with who and when, so every
line of the record maps to the rows that justify it (`tests/trail_checker.py` checks
that). Issues are what went wrong (failed or erroring steps, retries, interruptions,
aborts, timeouts, overrides); a refusal is the bot's rules working and gets its own line.
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
from bot.domain.audit_kinds import AuditKind, read_data, read_kind
from bot.models import Run
from bot.notices import checklist, duration, when
from bot.post_task_view import task_lines, tasks_view
from bot.record_signoff import sign_off_line, state_from_rows
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
    """The run's audit trail, digested by typed kind. Every entry keeps its row's "seq",
    "actor" and "at", so each line of the record can name the row that justifies it."""

    started: dict[str, Any] | None = None  # the run.started row
    ended: dict[str, Any] | None = None  # run.completed / run.rolled_back / run.cancelled
    steps: list[dict[str, Any]] = field(default_factory=list)  # step.result + "phase", "attempt"
    gates: dict[int, str] = field(default_factory=dict)  # gate id → phase id
    opened: list[dict[str, Any]] = field(default_factory=list)  # gate.opened rows
    decisions: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)  # + "phase", "attempt"
    refused: list[dict[str, Any]] = field(default_factory=list)
    interrupted: list[dict[str, Any]] = field(default_factory=list)
    aborted: list[dict[str, Any]] = field(default_factory=list)  # run.aborted mid-phase
    revert: dict[str, Any] | None = None  # revert.requested: this run undoes a completed one
    revert_started: dict[str, Any] | None = None  # revert.started: its quorum was reached
    reverted: list[dict[str, Any]] = field(default_factory=list)  # run.reverted: undone by
    rounds: list[dict[str, Any]] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    missed_rows: list[dict[str, Any]] = field(default_factory=list)  # monitor.missed + "attempt"
    reminders: list[dict[str, Any]] = field(default_factory=list)
    phase_starts: list[dict[str, Any]] = field(default_factory=list)
    signoffs: list[dict[str, Any]] = field(default_factory=list)  # + "actor", "at"
    run_signoff_asked: dict[str, Any] | None = None  # run.signoff_requested (bot.record_signoff)
    run_signed: list[dict[str, Any]] = field(default_factory=list)  # run.signed_off rows
    rollback: dict[str, Any] | None = None  # the run.rolled_back event's data
    people_notes: list[dict[str, Any]] = field(default_factory=list)  # /cutover note
    overrides: list[dict[str, Any]] = field(default_factory=list)  # gate.overridden (break-glass)
    deviations: list[dict[str, Any]] = field(default_factory=list)  # /cutover deviation

    def attempt_of(self, gate: int) -> int:
        return next((int(g.get("attempt") or 1) for g in self.opened if g["gate"] == gate), 1)


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
    # Every manual step of every checkpoint that opened, with who ticked it and when.
    manual: list[str] = field(default_factory=list)
    # A revert run: what it undoes, who asked, who approved; a reverted run: by which run.
    revert_lines: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # post-cutover tasks (bot/post_task_view.py)
    sign_off: str = ""  # the Sign-Off line, whether or not notes_fields shows it

    def note(self, name: str) -> str | list[str]:
        for key, value in self.notes:
            if key.lower() == name.lower():
                return value
        raise KeyError(name)


ENDED = (AuditKind.RUN_COMPLETED, AuditKind.RUN_ROLLED_BACK, AuditKind.RUN_CANCELLED)


def _trail(db: Database, run_id: int, events: list[Any] | None = None) -> Trail:
    """`events`: the run's rows, when the caller read them already (the run page)."""
    t = Trail()
    phase: str | None = None
    attempt = 1
    for ev in audit.events(db, run_id) if events is None else events:
        kind = read_kind(ev.kind)  # a row an older bot wrote, under the name it used then
        data = read_data(ev.kind, json.loads(ev.data))
        row = {**data, "seq": ev.seq, "actor": ev.actor, "at": ev.at}
        if kind == AuditKind.RUN_STARTED:
            t.started = row
        elif kind in ENDED:
            t.ended = {**row, "kind": kind}
            if kind == AuditKind.RUN_ROLLED_BACK:
                t.rollback = data
        elif kind == AuditKind.PHASE_STARTED:
            phase, attempt = data.get("phase"), int(data.get("attempt") or 1)
            t.phase_starts.append(row)
        elif kind == AuditKind.STEP_RESULT:
            section = data.get("section")
            phased = section in ("actions", "checks")
            t.steps.append(
                {**row, "phase": phase if phased else None, "attempt": attempt if phased else None}
            )
        elif kind == AuditKind.GATE_OPENED:
            t.gates[int(data["gate"])] = str(data["phase"])
            t.opened.append({**row, "gate": int(data["gate"])})
        elif kind == AuditKind.GATE_DECIDED:
            t.decisions.append(row)
        elif kind == AuditKind.GATE_RECHECKED:  # a check run after a tick failed
            for g in t.opened:
                if g["gate"] == data["gate"]:
                    g["checks_passed"] = False
        elif kind in (AuditKind.GATE_OVERRIDDEN, AuditKind.FREEZE_OVERRIDDEN):
            t.overrides.append({**row, "kind": kind})
        elif kind == AuditKind.GATE_VOTE and data.get("comment"):  # Continue with comment
            where = t.gates.get(int(data["gate"]), data.get("phase"))
            t.people_notes.append({**row, "text": f"continued at {where}: {data['comment']}"})
        elif kind == AuditKind.MANUAL_TICKED:
            gate = int(data["gate"])
            t.ticks.append({**row, "phase": t.gates.get(gate), "attempt": t.attempt_of(gate)})
        elif kind == AuditKind.ACTION_REFUSED:
            t.refused.append(row)
        elif kind == AuditKind.PHASE_INTERRUPTED:
            t.interrupted.append(row)
        elif kind == AuditKind.RUN_ABORTED:
            t.aborted.append(row)
        elif kind == AuditKind.REVERT_REQUESTED:
            t.revert = row
        elif kind == AuditKind.REVERT_STARTED:
            t.revert_started = row
        elif kind == AuditKind.RUN_REVERTED:
            t.reverted.append(row)
        elif kind == AuditKind.MONITOR_ROUND:
            t.rounds.append({**row, "attempt": attempt})
        elif kind == AuditKind.MONITOR_MISSED:
            t.missed += list(data.get("rounds") or [])
            t.missed_rows.append({**row, "attempt": attempt})
        elif kind in (
            AuditKind.GATE_REMINDED,
            AuditKind.GATE_ESCALATED,
            AuditKind.REVERT_REMINDED,
            AuditKind.REVERT_ESCALATED,
        ):
            t.reminders.append({**row, "kind": kind})
        elif kind == AuditKind.CRITERION_SIGNED_OFF:
            t.signoffs.append(row)
        elif kind == AuditKind.RUN_SIGNOFF_REQUESTED:
            t.run_signoff_asked = row
        elif kind == AuditKind.RUN_SIGNED_OFF:
            t.run_signed.append(row)
        elif kind == AuditKind.RECORD_NOTE:
            t.people_notes.append(row)
        elif kind == AuditKind.RECORD_DEVIATION:
            t.deviations.append(row)
    return t


def hm(at: str) -> str:
    """An audit row's time as the record prints it ("14:10 UTC")."""
    return f"{at[11:16]} UTC"


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
    """Judged on the window's last attempt (a Retry re-runs the whole window); a missed
    round fails it like a failed one: monitoring was not continuous."""
    assert spec.monitoring is not None
    phase_id, step_id = spec.monitoring.split("/")
    rounds = [r for r in t.rounds if r.get("phase") == phase_id]
    last = max((int(r.get("attempt") or 1) for r in rounds), default=1)
    rounds = [r for r in rounds if int(r.get("attempt") or 1) == last]
    missed = [
        n
        for m in t.missed_rows
        if m.get("phase") == phase_id and int(m.get("attempt") or 1) == last
        for n in m.get("rounds") or []
    ]
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
    if missed:
        return Criterion("", "no", f"{text}; round(s) {', '.join(map(str, missed))} missed")
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
    if len(seen) < of:
        return Criterion("", "no", f"{text}; monitoring stopped before its last round")
    if spec.minutes is not None and covered < spec.minutes:
        return Criterion("", "no", f"{text} (< {spec.minutes} min)")
    return Criterion("", "yes", text)


def _manual_verdict(t: Trail, ref: str) -> Criterion:
    """Judged at the phase's last checkpoint: a Retry re-runs the phase, so a tick given
    before it vouches for the state that was re-done, not for the one that stands."""
    phase_id, item_id = ref.split("/")
    gates = [g for g in t.opened if g.get("phase") == phase_id]
    if not gates:
        return Criterion("", "no", f"manual step {ref} was not ticked")
    last = gates[-1]
    tick = next(
        (k for k in reversed(t.ticks) if k.get("item") == item_id and k["gate"] == last["gate"]),
        None,
    )
    if tick is None:
        earlier = any(k.get("item") == item_id and k.get("phase") == phase_id for k in t.ticks)
        at_last = f" at its last checkpoint (attempt {t.attempt_of(last['gate'])})"
        return Criterion("", "no", f"manual step {ref} was not ticked{at_last if earlier else ''}")
    return Criterion("", "yes", f"manual step {ref} ticked by {tick['actor']} at {hm(tick['at'])}")


def _signoff_verdict(t: Trail, criterion_id: str) -> Criterion:
    sign = next((x for x in reversed(t.signoffs) if x.get("criterion") == criterion_id), None)
    if sign is None:
        return Criterion("", "not verified", "nobody signed it off")
    note = f": {sign['note']}" if sign.get("note") else ""
    return Criterion("", "yes", f"signed off by {sign['actor']} at {hm(sign['at'])}{note}")


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


def rollback_reason(t: Trail) -> str | None:
    """Why the run rolled back, as the row that decided it says: a Rollback at a gate (an
    abort at a gate is one, "aborted: …"), an abort while a phase was executing, or the
    request that reverts a completed run (this run's whole purpose)."""
    decided = next((d for d in reversed(t.decisions) if d.get("decision") == "rollback"), None)
    if decided is not None:
        return str(decided.get("reason") or f"rolled back at phase {decided.get('phase')}")
    if t.aborted:
        return f"aborted: {t.aborted[-1].get('reason')}"
    if t.revert is not None:
        return f"revert of run #{t.revert.get('reverts')}: {t.revert.get('reason')}"
    return None


def _issues(run: Run, t: Trail) -> list[str]:
    """What went wrong, in the order it happened: failed or erroring steps, retries,
    interruptions, aborts, checkpoints past their timeout, overrides (a Continue past
    checks that had not passed, in a dry run), monitoring failures; then how the rollback
    went. A refusal is the bot working as meant: it is not an issue (see `refusals`)."""
    out: list[tuple[int, str]] = []
    reason = rollback_reason(t)
    if t.revert is not None and t.revert_started is None and not t.decisions and not t.aborted:
        reason = None  # a revert cancelled before its quorum: nothing was rolled back
    if reason is not None or run.status in ("rolled_back", "rolling_back"):
        out.append((0, f"rolled back: {reason or run.rollback_reason or 'no reason given'}"))
    for st in t.steps:
        if st["status"] in ("fail", "error"):
            where = st.get("phase") or st.get("section")
            tried = f", attempt {st['attempt']}" if st.get("attempt") else ""
            said = f"{where}/{st['step']} {st['status'].upper()}: {st['evidence']}"
            out.append((st["seq"], f"{said} ({hm(st['at'])}{tried})"))
    unpassed = {g["gate"] for g in t.opened if g.get("checks_passed") is False}
    for d in t.decisions:
        who, at = d["actor"], hm(d["at"])
        if d.get("decision") == "retry":
            out.append((d["seq"], f"phase {d.get('phase')} retried by {who} at {at}"))
        elif d.get("decision") == "continue" and d.get("gate") in unpassed:
            out.append(
                (
                    d["seq"],
                    f"phase {d.get('phase')} continued by {', '.join(d.get('approvers') or [who])}"
                    f" at {at} although its checks had not passed (override, dry run)",
                )
            )
    for i in t.interrupted:
        out.append(
            (
                i["seq"],
                f"phase {i.get('phase')} interrupted at {hm(i['at'])} (attempt "
                f"{i.get('attempt') or 1}): the bot stopped while it ran",
            )
        )
    if t.ended and t.ended["kind"] == AuditKind.RUN_CANCELLED:
        e = t.ended
        out.append(
            (
                e["seq"],
                f"cancelled by {e['actor']} at {hm(e['at'])}: {e.get('reason')} "
                "(no action had run: nothing to roll back)",
            )
        )
    for a in t.aborted:
        out.append(
            (a["seq"], f"aborted by {a['actor']} at {hm(a['at'])} while a phase was executing")
        )
    summarized = {st.get("phase") for st in t.steps}  # a finished window has one line per check
    for r in t.rounds:
        if r.get("phase") in summarized:
            continue
        for step in r.get("steps", []):
            if step["status"] in ("fail", "error"):
                out.append(
                    (
                        r["seq"],
                        f"monitoring round {r['round']}/{r.get('of')} {step['step']} "
                        f"{step['status'].upper()}: {step['evidence']}",
                    )
                )
    for r in t.reminders:
        escalated = r["kind"] in (AuditKind.GATE_ESCALATED, AuditKind.REVERT_ESCALATED)
        verb = "escalated" if escalated else "reminded"
        if r["kind"] in (AuditKind.REVERT_REMINDED, AuditKind.REVERT_ESCALATED):
            out.append(
                (
                    r["seq"],
                    f"the revert waited for its approvers past the gate timeout ({verb} at "
                    f"{hm(r['at'])}, {r.get('votes')}/{r.get('quorum')} approvals)",
                )
            )
            continue
        out.append(
            (
                r["seq"],
                f"checkpoint of {r.get('phase')} waited past its timeout ({verb} at {hm(r['at'])})",
            )
        )
    rb = t.rollback or {}
    end = 1 << 62
    if rb and not rb.get("verified"):
        checks = list(rb.get("checks") or [])
        bad = [c for c in checks if c in (rb.get("failed_steps") or [])]
        why = (
            "the runbook has no rollback_checks"
            if not checks
            else f"rollback check(s) {', '.join(bad or checks)} did not pass"
        )
        out.append((end, f"the rollback was not verified: {why}"))
    if rb and rb.get("within_target") is False:
        out.append(
            (
                end,
                f"the rollback took {rb.get('duration_s')} s, over its "
                f"{rb.get('target_minutes')}-minute target",
            )
        )
    if rb and rb.get("schema"):
        out.append((end, str(rb["schema"])))
    return [text for _, text in sorted(out, key=lambda x: x[0])]


def refusals(t: Trail) -> str | None:
    """One short line for every refused request: how many, and who asked for what and why
    the bot said no, grouped (in first-seen order). None when nothing was refused."""
    if not t.refused:
        return None
    groups: dict[tuple[str, str, str], int] = {}
    for r in t.refused:
        key = (str(r.get("action") or "click"), str(r["actor"]), str(r.get("reason", "")))
        groups[key] = groups.get(key, 0) + 1
    parts = [f"{n}× {action} by {who} ({why})" for (action, who, why), n in groups.items()]
    n = len(t.refused)
    return f"{n} (the bot's rules said no; not issues) — " + "; ".join(parts)


def manual_lines(runbook: Runbook, t: Trail) -> list[str]:
    """Every manual step of every checkpoint that opened: who ticked it and when (the
    tick's audit row), or that nobody did."""
    out: list[str] = []
    for g in t.opened:
        try:
            items = runbook.phase(str(g.get("phase"))).manual
        except KeyError:
            continue
        for item in items:
            ref = f"{g.get('phase')}/{item.id}"
            where = f"attempt {g.get('attempt') or 1}"
            ticks = [k for k in t.ticks if k["gate"] == g["gate"] and k.get("item") == item.id]
            if not ticks:
                out.append(f"{ref} ({where}): not ticked")
            for k in ticks:
                given = "".join(f", {n} {v}" for n, v in (k.get("value") or {}).items())
                out.append(f"{ref} ({where}): ticked by {k['actor']} at {hm(k['at'])}{given}")
    return out


def _deviations(t: Trail) -> list[str]:
    out: list[str] = []
    for o in t.overrides:  # break-glass: in red, with who and why
        if o["kind"] == AuditKind.FREEZE_OVERRIDDEN:
            out.append(
                f"🟥 started during the change freeze {o.get('freeze')} ({o.get('reason')}) by "
                f"emergency override of {', '.join(o.get('approvers') or [])} at {hm(o['at'])}"
                f" — why: {'; '.join(o.get('justifications') or [])}"
            )
            continue
        out.append(
            f"🟥 phase {o.get('phase')}: failed {', '.join(o.get('steps') or [])} overridden "
            f"(break-glass) by {', '.join(o.get('approvers') or [o['actor']])} at {hm(o['at'])}"
            f" — why: {'; '.join(o.get('justifications') or [])}"
        )
    for d in t.decisions:
        if d.get("decision") == "retry":  # the runbook says FAIL → ROLLBACK
            out.append(f"phase {d.get('phase')} retried (by {d['actor']})")
    for i in t.interrupted:
        out.append(f"phase {i.get('phase')} interrupted (the bot stopped while it ran)")
    for st in t.steps:
        if st["status"] == "skipped":
            out.append(f"{st.get('phase') or st.get('section')}/{st['step']} skipped")
    if t.missed:
        out.append(f"monitoring rounds {', '.join(map(str, t.missed))} missed")
    for d in t.deviations:  # what people say they did differently, as they said it
        out.append(f"{d['text']} (added by {d['actor']} at {hm(d['at'])})")
    return out


def went_on(t: Trail, spec: CriterionSpec) -> dict[str, Any] | None:
    """The Continue that went on past a criterion: the decision at the last checkpoint of
    the phase its binding names (a check, monitoring or manual step of that phase)."""
    ref = spec.check or spec.monitoring or spec.manual
    if ref is None:
        return None
    phase = ref.split("/")[0]
    gates = [g for g in t.opened if g.get("phase") == phase]
    if not gates:
        return None
    last = gates[-1]["gate"]
    overridden = [o for o in t.overrides if o["kind"] == AuditKind.GATE_OVERRIDDEN]
    return next(
        (d for d in t.decisions if d.get("gate") == last and d.get("decision") == "continue"),
        next((o for o in overridden if o.get("gate") == last), None),
    )


def _past(t: Trail, spec: CriterionSpec) -> str:
    d = went_on(t, spec)
    if d is None:
        return f"{spec.id} (nobody decided to go on past it)"
    who = ", ".join(d.get("approvers") or [d["actor"]])
    how = (
        "overridden (break-glass)"
        if d.get("kind") == AuditKind.GATE_OVERRIDDEN
        else "continued past"
    )
    return f"{spec.id} ({how} by {who} at {hm(d['at'])}, checkpoint {d.get('phase')})"


def revert_lines(t: Trail) -> list[str]:
    """Who asked for a revert and who approved it (revert.requested, revert.started), on
    the revert run's record; on the reverted run's record, by which run (run.reverted)."""
    out: list[str] = []
    req = t.revert
    if req is not None:
        started = t.revert_started
        approved = (
            f"approved by {', '.join(started.get('approvers') or [])} at {hm(started['at'])}"
            if started is not None
            else f"not approved (it never reached its quorum of {req.get('quorum')})"
        )
        out.append(
            f"Revert of run #{req.get('reverts')}: asked for by {req['actor']} at "
            f"{hm(req['at'])}, {approved} — why: {req.get('reason')}"
        )
    for r in t.reverted:
        out.append(
            f"Reverted by run #{r.get('by_run')}: asked for by {r.get('requested_by')}, "
            f"approved by {', '.join(r.get('approvers') or [])} at {hm(r['at'])} — why: "
            f"{r.get('reason')}"
        )
    return out


def _sign_off(run: Run, t: Trail, unmet: list[CriterionSpec]) -> str:
    """Who signed the run off, as their rows say (bot.record_signoff); never inferred."""
    return sign_off_line(
        status=str(run.status),
        dry_run=run.dry_run,
        environment=run.environment,
        state=state_from_rows(t.run_signoff_asked, t.run_signed),
        unmet=[_past(t, c) for c in unmet],
        undecided=any(went_on(t, c) is None for c in unmet),
    )


# The runbook template's two YES/NO lines, when the runbook lists no notes_fields: bound to
# the success criterion of that id, else to the manual step of that id (one, in any phase).
DEFAULT_BINDINGS = {"admin login verified": "admin", "payment test completed": "payment"}


def _default_field(runbook: Runbook, name: str) -> NotesField:
    ident = DEFAULT_BINDINGS.get(name.lower())
    if ident is None:
        return NotesField(name=name)
    if any(c.id == ident for c in runbook.success_criteria):
        return NotesField(name=name, criterion=ident)
    refs = [f"{p.id}/{m.id}" for p in runbook.phases for m in p.manual if m.id == ident]
    return NotesField(name=name, manual=refs[0]) if len(refs) == 1 else NotesField(name=name)


def _times(run: Run, t: Trail) -> tuple[datetime, datetime | None]:
    """Start and end as the run.started row and the row that ended the run say."""
    start = datetime.fromisoformat(t.started["at"]) if t.started else run.started_at
    end: datetime | None = None
    if t.ended:
        end = datetime.fromisoformat(t.ended["at"])
    elif run.ended_at:
        end = run.ended_at
    return start, end


def build_record(
    db: Database, runbook: Runbook, run_id: int, events: list[Any] | None = None
) -> CutoverRecord:
    with db.session() as s:
        run = s.get(Run, run_id)
    if run is None:
        raise KeyError(run_id)
    t = _trail(db, run_id, events)
    start, end = _times(run, t)
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
        "reason": (rollback_reason(t) or run.rollback_reason or "—") if rolled_back else "—",
        "production url": url,
    }
    aliases = {
        "deviations": "deviations from runbook",
        "signoff": "sign-off",
        "url": "production url",
        "reason (if yes)": "reason",
    }
    criteria = [evaluate(c, t) for c in runbook.success_criteria]
    by_id = {c.id: c for c in criteria}
    unmet = [c for c in runbook.success_criteria if by_id[c.id].verdict == "no"]
    values["sign-off"] = _sign_off(run, t, unmet)
    notes: list[tuple[str, str | list[str]]] = []
    fields = runbook.notes_fields or [_default_field(runbook, n) for n in DEFAULT_NOTES]
    word = {"yes": "YES", "no": "NO", "not verified": "NOT VERIFIED"}
    for f in fields:
        if f.criterion is not None:
            c = by_id[f.criterion]
            notes.append((f.name, f"{word[c.verdict]} — {c.evidence}"))
        elif f.manual is not None:
            m = _manual_verdict(t, f.manual)
            notes.append((f.name, f"{word[m.verdict]} — {m.evidence}"))
        else:
            key = aliases.get(f.name.lower(), f.name.lower())
            notes.append((f.name, values.get(key, _unbound(runbook, f.name))))
        if f.name.lower() == "issues encountered" and refusals(t):
            notes.append((REFUSED, refusals(t) or ""))
    if REFUSED not in (n for n, _ in notes) and refusals(t):
        notes.append((REFUSED, refusals(t) or ""))
    people = [f"{n['actor']} at {hm(n['at'])}: {n['text']}" for n in t.people_notes]
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
        manual=manual_lines(runbook, t),
        revert_lines=revert_lines(t),
        tasks=task_lines(tasks_view(db, run_id, events)),
        sign_off=str(values["sign-off"]),
    )


REFUSED = "Refused requests"


def _unbound(runbook: Runbook, name: str) -> str:
    ident = DEFAULT_BINDINGS.get(name.lower())
    if ident is not None and not runbook.notes_fields:
        return (
            f"not recorded by the bot: this runbook has no success criterion or manual step "
            f"{ident!r} (bind one in notes_fields); fill in by hand"
        )
    return "not recorded by the bot: notes_fields binds it to nothing; fill in by hand"


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
