"""Success criteria judged by exactly what the runbook binds each to, from the trail."""

from __future__ import annotations

from bot.record.trail import Criterion, Trail, hm
from phases.runbook import CriterionSpec


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


def manual_verdict(t: Trail, ref: str) -> Criterion:
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
        found = manual_verdict(t, spec.manual)
    elif spec.signoff:
        found = _signoff_verdict(t, spec.id)
    else:
        found = Criterion("", "not verified", "the runbook binds it to no check or sign-off")
    return Criterion(spec.text, found.verdict, found.evidence, spec.id)
