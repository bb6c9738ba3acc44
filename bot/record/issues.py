"""What went wrong (issues), refused requests, deviations from the runbook, revert lines."""

from __future__ import annotations

from bot.domain.audit_kinds import AuditKind
from bot.record.trail import Trail, hm
from bot.store.models import Run


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


def issues(run: Run, t: Trail) -> list[str]:
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


def deviations(t: Trail) -> list[str]:
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
