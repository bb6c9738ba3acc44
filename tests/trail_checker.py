"""Checks a text the bot printed, line by line, against the exported audit trail.

Every line must match a rule, and the rule must find the audit rows that justify what the
line says (who, when, status) — or, for a line that claims nothing (a heading, "fill in by
hand"), say so explicitly. A line no rule knows is a failure: the checker cannot tell it
is true, so it is treated as a claim nobody checked. Rules are grouped by what printed
the text (`record_rules` for the cutover record); add a rule set for another text (the
rollback report) with `Checker.add`.

The checker reads only the rows `bot.audit.export` gives (JSON lines) and the runbook (for
configured words: the production URL, a criterion's binding); never the bot's own code
that wrote the text, so it does not repeat the bot's mistakes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot import audit
from bot.store.db import Database
from phases.runbook import Runbook
from tests.trail_checker_tasks import add_task_rules


@dataclass(frozen=True)
class Row:
    seq: int
    at: str
    actor: str
    kind: str
    data: dict[str, Any]

    @property
    def hhmm(self) -> str:
        return self.at[11:16]


def exported_rows(db: Database, run_id: int | None) -> list[Row]:
    """The run's audit rows as `cutover audit export --run N` gives them (None: every row,
    as a schedule's rows belong to no run)."""
    out = []
    for line in audit.export(db, run_id, "jsonl").splitlines():
        r = json.loads(line)
        out.append(Row(int(r["seq"]), str(r["at"]), str(r["actor"]), str(r["kind"]), r["data"]))
    return out


class Unjustified(AssertionError):
    """A line claims what no audit row shows."""


NOTHING: tuple[int, ...] = ()  # a rule's answer for a line that claims nothing


@dataclass
class Trail:
    """The rows, with the lookups rules need."""

    rows: list[Row]
    runbook: Runbook

    def of(self, kind: str, /, **data: Any) -> list[Row]:
        return [
            r
            for r in self.rows
            if r.kind == kind and all(r.data.get(k) == v for k, v in data.items())
        ]

    def one(self, why: str, found: Iterable[Row]) -> tuple[int, ...]:
        seqs = tuple(r.seq for r in found)
        if not seqs:
            raise Unjustified(f"no audit row shows it ({why})")
        return seqs

    def none(self, why: str, found: Iterable[Row], context: Iterable[Row]) -> tuple[int, ...]:
        """An absence claim ("not ticked", "none"): no row of `found`; justified by the rows
        that show where it was looked for (`context`)."""
        bad = [r.seq for r in found]
        if bad:
            raise Unjustified(f"rows {bad} contradict it ({why})")
        seqs = tuple(r.seq for r in context)
        if not seqs:
            raise Unjustified(f"no row shows where it was looked for ({why})")
        return seqs

    def phase_of(self, row: Row) -> str | None:
        """The phase a step row belongs to: the last phase.started before it."""
        if row.data.get("section") not in ("actions", "checks"):
            return str(row.data.get("section"))
        phase = None
        for r in self.rows:
            if r.seq >= row.seq:
                break
            if r.kind == "phase.started":
                phase = r.data.get("phase")
        return phase

    def started(self) -> Row:
        [row] = self.of("run.started")
        return row

    def ended(self) -> list[Row]:
        return [r for r in self.rows if r.kind in ENDED]


ENDED = ("run.completed", "run.rolled_back", "run.cancelled")
Handler = Callable[[re.Match[str], Trail], tuple[int, ...]]


@dataclass(frozen=True)
class Rule:
    section: str | None  # None: a top-level line; else a "- " item of that section
    pattern: re.Pattern[str]
    handler: Handler


@dataclass(frozen=True)
class Finding:
    line: str
    rows: tuple[int, ...]  # the audit rows (seq) that justify it; () for no claim


@dataclass
class Checker:
    rules: list[Rule] = field(default_factory=list)
    # Kinds whose every row must be cited by some line (nothing left out), with a filter.
    must_cite: list[tuple[str, Callable[[Row], bool]]] = field(default_factory=list)

    def add(self, pattern: str, section: str | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.rules.append(Rule(section, re.compile(pattern + r"\Z"), fn))
            return fn

        return register

    def check(self, text: str, rows: list[Row], runbook: Runbook) -> list[Finding]:
        """Each line with the rows that justify it; raises Unjustified naming the first
        line that claims more than the rows show (or that no rule knows)."""
        trail = Trail(rows, runbook)
        findings: list[Finding] = []
        section: str | None = None
        for line in text.splitlines():
            if line.startswith("- "):
                item, scope = line[2:], section
            else:
                item, scope = line, None
                head = re.match(r"([^:]+):", line)
                section = head.group(1) if head else None
            rule, match = self._find(scope, item)
            if rule is None or match is None:
                raise Unjustified(f"no rule knows this line (section {scope!r}): {line!r}")
            try:
                seqs = rule.handler(match, trail)
            except Unjustified as exc:
                raise Unjustified(f"{line!r}: {exc}") from None
            findings.append(Finding(line, seqs))
        cited = {s for f in findings for s in f.rows}
        for kind, wanted in self.must_cite:
            left = [
                r.seq for r in trail.rows if r.kind == kind and wanted(r) and r.seq not in cited
            ]
            if left:
                raise Unjustified(f"{kind} rows {left} are in the trail but no line says so")
        return findings

    def _find(self, scope: str | None, item: str) -> tuple[Rule | None, re.Match[str] | None]:
        for rule in self.rules:
            if rule.section == scope:
                m = rule.pattern.match(item)
                if m:
                    return rule, m
        return None, None


# ------------------------------------------------------------------------ shared pieces


def minutes_text(seconds: float) -> str:
    """How `Total Duration` reads: the checker's own rendering of whole minutes."""
    m = int(max(0.0, seconds) // 60)
    d, rest = divmod(m, 1440)
    h, mins = divmod(rest, 60)
    if d:
        return f"{d} d {h} h" if h else f"{d} d"
    if h:
        return f"{h} h {mins} min" if mins else f"{h} h"
    return f"{mins} min"


def at_of(row: Row) -> datetime:
    return datetime.fromisoformat(row.at)


def rollback_rows(t: Trail) -> list[Row]:
    """The rows that triggered a rollback: a Rollback at a gate, an abort mid-phase, the
    request to revert a completed run."""
    return (
        t.of("gate.decided", decision="rollback") + t.of("run.aborted") + t.of("revert.requested")
    )


def reason_rows(t: Trail, reason: str) -> list[Row]:
    return [
        r
        for r in rollback_rows(t)
        if (r.kind == "gate.decided" and r.data.get("reason") == reason)
        or (r.kind == "run.aborted" and f"aborted: {r.data.get('reason')}" == reason)
        or (
            r.kind == "revert.requested"
            and f"revert of run #{r.data.get('reverts')}: {r.data.get('reason')}" == reason
        )
    ]


def attempt_of(t: Trail, row: Row) -> str | None:
    """A phase step's attempt: the one of the last phase.started before it (None outside
    a phase: a rollback or restore step)."""
    if row.data.get("section") not in ("actions", "checks"):
        return None
    started = [r for r in t.of("phase.started") if r.seq < row.seq]
    return str(started[-1].data.get("attempt") or 1) if started else None


def gates_of(t: Trail, phase: str, attempt: int | None = None) -> list[Row]:
    return [
        r
        for r in t.of("gate.opened", phase=phase)
        if attempt is None or int(r.data.get("attempt") or 1) == attempt
    ]


@dataclass(frozen=True)
class Binding:
    """What the runbook binds a criterion or a notes line to: a "phase/step" ref (check,
    monitoring or manual), a sign-off of criterion `signoff`, or nothing."""

    ref: str | None = None
    signoff: str | None = None


def criterion_binding(runbook: Runbook, criterion_id: str) -> Binding:
    spec = next(c for c in runbook.success_criteria if c.id == criterion_id)
    if spec.signoff:
        return Binding(signoff=spec.id)
    return Binding(ref=spec.check or spec.monitoring or spec.manual)


def field_binding(runbook: Runbook, name: str) -> Binding:
    """A notes line's binding; with no notes_fields, the template's two YES/NO lines go to
    the criterion, else the one manual step, of id `admin` / `payment` (documented)."""
    for f in runbook.notes_fields:
        if f.name == name:
            if f.criterion:
                return criterion_binding(runbook, f.criterion)
            return Binding(ref=f.manual)
    ident = {"Admin Login Verified": "admin", "Payment Test Completed": "payment"}.get(name)
    if runbook.notes_fields or ident is None:
        return Binding()
    if any(c.id == ident for c in runbook.success_criteria):
        return criterion_binding(runbook, ident)
    refs = [f"{p.id}/{m.id}" for p in runbook.phases for m in p.manual if m.id == ident]
    return Binding(ref=refs[0]) if len(refs) == 1 else Binding()


def _bound(binding: Binding, ref: str) -> None:
    if binding.ref != ref:
        raise Unjustified(
            f"it is bound to {binding.ref or binding.signoff or 'nothing'}, not {ref}"
        )


def evidence_rows(t: Trail, evidence: str, verdict: str, binding: Binding) -> tuple[int, ...]:
    """A success criterion's evidence, as the record words it, against the rows."""
    m = re.fullmatch(r"manual step (\S+)/(\S+) ticked by (\S+) at (\d\d:\d\d) UTC", evidence)
    if m:
        phase, item, who, hhmm = m.groups()
        _bound(binding, f"{phase}/{item}")
        last = gates_of(t, phase)[-1:]  # judged at the phase's last checkpoint
        ticks = [
            r
            for r in t.of("manual.ticked", item=item)
            if last
            and r.data.get("gate") == last[0].data.get("gate")
            and r.actor == who
            and r.hhmm == hhmm
        ]
        return _verdict(verdict, "yes") + t.one(f"{phase}/{item} ticked by {who}", ticks)
    m = re.fullmatch(
        r"manual step (\S+)/(\S+) was not ticked(?: at its last checkpoint.*)?", evidence
    )
    if m:
        phase, item = m.groups()
        _bound(binding, f"{phase}/{item}")
        last = gates_of(t, phase)[-1:]
        ticks = [
            r
            for r in t.of("manual.ticked", item=item)
            if last and r.data.get("gate") == last[0].data.get("gate")
        ]
        return _verdict(verdict, "no") + t.none("a tick", ticks, last or [t.started()])
    m = re.fullmatch(r"signed off by (\S+) at (\d\d:\d\d) UTC(?:: (.*))?", evidence)
    if m:
        who, hhmm, note = m.groups()
        if binding.signoff is None:
            raise Unjustified("the runbook binds it to no sign-off")
        rows = [
            r
            for r in t.of("criterion.signed_off", criterion=binding.signoff)
            if r.actor == who and r.hhmm == hhmm and (note is None or r.data.get("note") == note)
        ]
        return _verdict(verdict, "yes") + t.one("a sign-off", rows)
    if evidence == "nobody signed it off" and binding.signoff is not None:
        return _verdict(verdict, "not verified") + t.none(
            "a sign-off", t.of("criterion.signed_off", criterion=binding.signoff), [t.started()]
        )
    if evidence == "the runbook binds it to no check or sign-off":
        if binding != Binding():
            raise Unjustified("the runbook binds it")
        return _verdict(verdict, "not verified") + NOTHING
    m = re.fullmatch(r"(\S+)/(\S+) did not run in this run", evidence)
    if m:
        _bound(binding, f"{m.group(1)}/{m.group(2)}")
        steps = [r for r in t.of("step.result", step=m.group(2)) if t.phase_of(r) == m.group(1)]
        return _verdict(verdict, "not verified") + t.none("a result", steps, [t.started()])
    m = re.fullmatch(r"(\S+)/(\S+) (pass|fail|error|warn|skipped): (.*)", evidence, re.S)
    if m:
        phase, step, status, said = m.groups()
        _bound(binding, f"{phase}/{step}")
        steps = [r for r in t.of("step.result", step=step) if t.phase_of(r) == phase]
        if not steps or steps[-1].data.get("status") != status:
            raise Unjustified(f"the latest result of {phase}/{step} is not {status}")
        if steps[-1].data.get("evidence") != said:
            raise Unjustified(f"{phase}/{step} evidence differs from its row")
        return _verdict(verdict, "yes" if status == "pass" else "no") + (steps[-1].seq,)
    m = re.fullmatch(r"no monitoring round ran (\S+)/(\S+)", evidence)
    if m:
        _bound(binding, f"{m.group(1)}/{m.group(2)}")
        ran = [
            r
            for r in t.of("monitor.round", phase=m.group(1))
            if any(st.get("step") == m.group(2) for st in r.data.get("steps") or [])
        ]
        return _verdict(verdict, "not verified") + t.none("a round", ran, [t.started()])
    m = re.fullmatch(r"(\d+)/(\d+) monitoring rounds of (\S+) passed over (\d+) min", evidence)
    if m:
        ok, seen, step, minutes = m.groups()
        rounds = _rounds(t, binding, step)
        good = [r for r, st in rounds if st.get("status") not in ("fail", "error")]
        covered = max((int(r.data.get("minute") or 0) for r, _ in rounds), default=-1)
        if (len(good), len(rounds), covered) != (int(ok), int(seen), int(minutes)):
            raise Unjustified(f"{len(good)}/{len(rounds)} rounds passed over {covered} min")
        if len(rounds) < max(int(r.data.get("of") or 0) for r, _ in rounds) or good != [
            r for r, _ in rounds
        ]:
            raise Unjustified("not every round ran and passed: the verdict cannot be yes")
        return _verdict(verdict, "yes") + tuple(r.seq for r, _ in rounds)
    m = re.fullmatch(
        r"(\d+)/(\d+) monitoring rounds of (\S+) passed over (\d+) min; failed in round\(s\) "
        r"([\d, ]+): (.*)",
        evidence,
        re.DOTALL,
    )
    if m:
        ok, seen, step, minutes, where, quoted = m.groups()
        rounds = _rounds(t, binding, step)
        failed = [(r, st) for r, st in rounds if st.get("status") in ("fail", "error")]
        covered = max((int(r.data.get("minute") or 0) for r, _ in rounds), default=-1)
        got = (len(rounds) - len(failed), len(rounds), covered)
        if got != (int(ok), int(seen), int(minutes)):
            raise Unjustified(f"{got[0]}/{got[1]} rounds passed over {covered} min")
        numbers = [int(r.data.get("round") or 0) for r, _ in failed]
        if numbers != [int(n) for n in where.split(", ")]:
            raise Unjustified(f"the trail's failed rounds are {numbers}")
        first = str(failed[0][1].get("evidence") or "")
        if not (quoted == first or (len(evidence) == 300 and first.startswith(quoted))):
            raise Unjustified("the quoted evidence is not the first failed round's")
        return _verdict(verdict, "no") + tuple(r.seq for r, _ in failed)
    m = re.fullmatch(
        r"(\d+)/(\d+) monitoring rounds of (\S+) passed over (\d+) min; round\(s\) (.+) missed",
        evidence,
    )
    if m:
        _rounds(t, binding, m.group(3))
        said = [int(n) for n in m.group(5).split(", ")]
        phase = (binding.ref or "/").split("/")[0]
        began = max(r.seq for r in t.of("phase.started", phase=phase))
        rows = [r for r in t.of("monitor.missed", phase=phase) if r.seq > began]
        if sorted(n for r in rows for n in r.data["rounds"]) != said:
            raise Unjustified(f"the trail's missed rounds are not {said}")
        return _verdict(verdict, "no") + tuple(r.seq for r in rows)
    m = re.fullmatch(r"average (\d+) ms over (\d+) monitoring rounds \(limit (\d+) ms\)", evidence)
    if m:
        avg, n, limit = map(int, m.groups())
        rounds = _rounds(t, binding, (binding.ref or "/").split("/")[1])
        ms = [st["elapsed_ms"] for _, st in rounds if isinstance(st.get("elapsed_ms"), int)]
        if len(ms) != n or f"{sum(ms) / len(ms):.0f}" != str(avg):
            raise Unjustified(f"{len(ms)} timed rounds in the trail")
        return _verdict(verdict, "yes" if sum(ms) / len(ms) < limit else "no") + tuple(
            r.seq for r, _ in rounds
        )
    raise Unjustified(f"no rule knows this evidence: {evidence!r}")


def _rounds(t: Trail, binding: Binding, step: str) -> list[tuple[Row, dict[str, Any]]]:
    """The monitoring rounds that ran the bound step, each with that step's result."""
    _bound(binding, f"{(binding.ref or '/').split('/')[0]}/{step}")
    phase = (binding.ref or "/").split("/")[0]
    out = [
        (r, st)
        for r in t.of("monitor.round", phase=phase)
        for st in r.data.get("steps") or []
        if st.get("step") == step
    ]
    if not out:
        raise Unjustified(f"no monitoring round ran {phase}/{step}")
    # The window's last attempt (a Retry re-runs it): its phase.started comes last.
    began = max(r.seq for r in t.of("phase.started", phase=phase))
    return [(r, st) for r, st in out if r.seq > began]


def _verdict(said: str, shown: str) -> tuple[int, ...]:
    if said != shown:
        raise Unjustified(f"the rows show {shown!r}, the line says {said!r}")
    return NOTHING


ICON = {"✅": "yes", "❌": "no", "❔": "not verified"}
WORD = {"YES": "yes", "NO": "no", "NOT VERIFIED": "not verified"}


# ------------------------------------------------------------------------ the record


def record_rules() -> Checker:
    """The rules for `bot.record.record_text`."""
    c = Checker()
    c.must_cite = [
        ("manual.ticked", lambda r: True),
        ("action.refused", lambda r: True),
        ("gate.decided", lambda r: r.data.get("decision") in ("retry", "rollback")),
        ("step.result", lambda r: r.data.get("status") in ("fail", "error")),
        ("phase.interrupted", lambda r: True),
        ("run.aborted", lambda r: True),
        ("gate.reminded", lambda r: True),
        ("gate.escalated", lambda r: True),
        ("record.note", lambda r: True),
        ("gate.overridden", lambda r: True),
        ("freeze.overridden", lambda r: True),
        ("record.deviation", lambda r: True),
        ("revert.requested", lambda r: True),
        ("revert.started", lambda r: True),
        ("run.reverted", lambda r: True),
        ("run.cancelled", lambda r: True),
        ("revert.reminded", lambda r: True),
        ("revert.escalated", lambda r: True),
    ]

    @c.add(r"📋 Cutover record — run #(\d+), (\S+)( \(DRY RUN\))?: (.+) · (.+) v(\S+)")
    def header(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        start = t.started()
        d = start.data
        if (m.group(2), bool(m.group(3)), m.group(5), m.group(6)) != (
            d.get("environment"),
            bool(d.get("dry_run")),
            d.get("runbook"),
            d.get("version"),
        ):
            raise Unjustified("environment, dry run or runbook differ from run.started")
        state = re.sub(r" with \d+ success criteri(on|a) not met$", "", m.group(4))
        kind = {"completed": "run.completed", "rolled back": "run.rolled_back"}.get(state)
        if kind is not None:
            return (start.seq, *t.one(m.group(4), t.of(kind)))
        return (start.seq,)

    # -- a revert: who asked, who approved (the revert run); by which run (the reverted one)
    @c.add(
        r"Revert of run #(\d+): asked for by (\S+) at (\d\d:\d\d) UTC, (?:approved by (.+) at "
        r"(\d\d:\d\d) UTC|not approved \(it never reached its quorum of (\d+)\)) — why: (.+)"
    )
    def revert_of(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        original, who, hhmm, approvers, at, quorum, why = m.groups()
        asked = [
            r
            for r in t.of("revert.requested", reverts=int(original), reason=why)
            if (r.actor, r.hhmm) == (who, hhmm)
        ]
        seqs = t.one("the revert's request", asked)
        started = t.of("revert.started", reverts=int(original))
        if approvers is None:
            if [str(r.data.get("quorum")) for r in asked] != [quorum]:
                raise Unjustified("the request names another quorum")
            return seqs + t.none("a started revert", started, asked)
        said = approvers.split(", ")
        started = [r for r in started if r.data.get("approvers") == said and r.hhmm == at]
        votes = [r for r in t.of("revert.approved", reverts=int(original)) if r.actor in said]
        if sorted(r.actor for r in votes) != sorted(said):
            raise Unjustified("not every approver named has a revert.approved row")
        return seqs + t.one("the revert's start", started) + tuple(r.seq for r in votes)

    @c.add(
        r"Reverted by run #(\d+): asked for by (\S+), approved by (.+) at (\d\d:\d\d) UTC"
        r" — why: (.+)"
    )
    def reverted_by(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        by_run, who, approvers, hhmm, why = m.groups()
        rows = [
            r
            for r in t.of("run.reverted", by_run=int(by_run), requested_by=who, reason=why)
            if ", ".join(r.data.get("approvers") or []) == approvers and r.hhmm == hhmm
        ]
        return t.one("the revert of this run", rows) + t.one(
            "its completion", t.of("run.completed")
        )

    @c.add(r"Date: (\d{4}-\d\d-\d\d)")
    def date(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return t.one("the start date", [r for r in t.of("run.started") if r.at[:10] == m.group(1)])

    @c.add(r"Start Time: (\d\d:\d\d) UTC")
    def start(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return t.one("the start", [r for r in t.of("run.started") if r.hhmm == m.group(1)])

    @c.add(r"End Time: (\d\d:\d\d) UTC")
    def end(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return t.one("the end", [r for r in t.ended() if r.hhmm == m.group(1)])

    @c.add(r"End Time: — \(still running\)")
    def running(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return t.none("an end", t.ended(), [t.started()])

    @c.add(r"Total Duration: (.+)")
    def took(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        ended = t.ended()
        if m.group(1) == "—":
            return t.none("an end", ended, [t.started()])
        if not ended:
            raise Unjustified("the run has not ended")
        seconds = (at_of(ended[-1]) - at_of(t.started())).total_seconds()
        if minutes_text(seconds) != m.group(1):
            raise Unjustified(f"start to end is {minutes_text(seconds)}")
        return (t.started().seq, ended[-1].seq)

    @c.add(r"(Issues Encountered|Deviations from Runbook|Manual steps|Notes):")
    def heading(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return NOTHING

    # -- Issues Encountered: failed or erroring steps, retries, interruptions, aborts,
    # timeouts, overrides, and how the rollback went. Refusals are not issues.
    issues = "Issues Encountered"

    @c.add("none", issues)
    def no_issues(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        bad = [r for r in t.of("step.result") if r.data.get("status") in ("fail", "error")]
        bad += t.of("gate.decided", decision="retry") + rollback_rows(t)
        bad += t.of("phase.interrupted") + t.of("gate.reminded") + t.of("gate.escalated")
        bad += t.of("run.cancelled") + t.of("revert.reminded") + t.of("revert.escalated")
        return t.none("an issue", bad, [t.started()])

    @c.add(r"rolled back: (.+)", issues)
    def rolled_back(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rows = reason_rows(t, m.group(1))
        if rows and all(r.kind == "revert.requested" for r in rows):  # a revert rolls back
            return t.one("the revert's request", rows) + t.one(  # once its quorum started it
                "the revert's start", t.of("revert.started")
            )
        return t.one("the rollback and its reason", rows)

    @c.add(
        r"cancelled by (\S+) at (\d\d:\d\d) UTC: (.*) \(no action had run: nothing to roll back\)",
        issues,
    )
    def cancelled(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        who, hhmm, reason = m.groups()
        rows = [
            r
            for r in t.of("run.cancelled")
            if (r.actor, r.hhmm) == (who, hhmm) and str(r.data.get("reason")) == reason
        ]
        seqs = t.one("the cancellation", rows)
        acted = [r for r in t.of("step.result") if r.data.get("section") == "actions"]
        acted += t.of("rollback.started")
        return seqs + t.none("an action that ran", acted, rows)

    @c.add(r"(\S+)/(\S+) (FAIL|ERROR): (.*) \((\d\d:\d\d) UTC(?:, attempt (\d+))?\)", issues)
    def failed_step(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        where, step, status, evidence, hhmm, attempt = m.groups()
        rows = [
            r
            for r in t.of("step.result", step=step, status=status.lower(), evidence=evidence)
            if t.phase_of(r) == where and r.hhmm == hhmm and attempt_of(t, r) == attempt
        ]
        return t.one(f"{where}/{step} {status}", rows)

    @c.add(r"phase (\S+) retried by (\S+) at (\d\d:\d\d) UTC", issues)
    def retried(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        phase, who, hhmm = m.groups()
        rows = t.of("gate.decided", decision="retry", phase=phase)
        return t.one("the retry", [r for r in rows if r.actor == who and r.hhmm == hhmm])

    @c.add(r"phase (\S+) interrupted at (\d\d:\d\d) UTC \(attempt (\d+)\): .*", issues)
    def interrupted(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        phase, hhmm, attempt = m.groups()
        rows = t.of("phase.interrupted", phase=phase, attempt=int(attempt))
        return t.one("the interruption", [r for r in rows if r.hhmm == hhmm])

    @c.add(r"aborted by (\S+) at (\d\d:\d\d) UTC while a phase was executing", issues)
    def aborted(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rows = [r for r in t.of("run.aborted") if (r.actor, r.hhmm) == m.groups()]
        return t.one("the abort", rows)

    @c.add(
        r"checkpoint of (\S+) waited past its timeout \((reminded|escalated) at (\d\d:\d\d) UTC\)",
        issues,
    )
    def timeout(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        phase, verb, hhmm = m.groups()
        kind = "gate.escalated" if verb == "escalated" else "gate.reminded"
        return t.one("the timeout", [r for r in t.of(kind, phase=phase) if r.hhmm == hhmm])

    @c.add(
        r"the revert waited for its approvers past the gate timeout \((reminded|escalated) at "
        r"(\d\d:\d\d) UTC, (\d+)/(\d+) approvals\)",
        issues,
    )
    def revert_timeout(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        verb, hhmm, votes, quorum = m.groups()
        kind = "revert.escalated" if verb == "escalated" else "revert.reminded"
        rows = [r for r in t.of(kind, votes=int(votes), quorum=int(quorum)) if r.hhmm == hhmm]
        return t.one("the revert's timeout", rows)

    @c.add(
        r"phase (\S+) continued by (.+) at (\d\d:\d\d) UTC although its checks had not passed "
        r"\(override, dry run\)",
        issues,
    )
    def override(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        phase, who, hhmm = m.groups()
        rows = [
            r
            for r in t.of("gate.decided", decision="continue", phase=phase)
            if ", ".join(r.data.get("approvers") or []) == who and r.hhmm == hhmm
        ]
        opened = [
            g
            for g in t.of("gate.opened", phase=phase, checks_passed=False)
            if any(g.data.get("gate") == r.data.get("gate") for r in rows)
        ]
        dry = [r for r in t.of("run.started", dry_run=True)]
        return (
            t.one("the continue", rows) + t.one("unpassed checks", opened) + t.one("a dry run", dry)
        )

    @c.add(r"the rollback was not verified: the runbook has no rollback_checks", issues)
    def unverified(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return t.one("an unverified rollback", t.of("run.rolled_back", verified=False, checks=[]))

    @c.add(r"the rollback was not verified: rollback check\(s\) (.+) did not pass", issues)
    def unhealthy(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        named = m.group(1).split(", ")
        rows = [
            r
            for r in t.of("run.rolled_back", verified=False)
            if set(named) <= set(r.data.get("failed_steps") or [])
        ]
        return t.one("failed rollback checks", rows)

    @c.add(r"the rollback took ([\d.]+) s, over its (\d+)-minute target", issues)
    def over(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rows = [
            r
            for r in t.of("run.rolled_back", within_target=False)
            if str(r.data.get("duration_s")) == m.group(1)
            and str(r.data.get("target_minutes")) == m.group(2)
        ]
        return t.one("the rollback's time", rows)

    # -- the refusals' own line: a count, and who asked for what and why the bot said no.
    @c.add(r"Refused requests: (\d+) \(the bot's rules said no; not issues\) — (.+)")
    def refused(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rows = t.of("action.refused")
        if int(m.group(1)) != len(rows):
            raise Unjustified(f"{len(rows)} refusals are in the trail")
        rest, cited = m.group(2), []
        while rest:
            for r in rows:
                key = (r.data.get("action"), r.actor, r.data.get("reason"))
                same = [
                    x for x in rows if (x.data.get("action"), x.actor, x.data.get("reason")) == key
                ]
                part = f"{len(same)}× {key[0]} by {key[1]} ({key[2]})"
                if rest.startswith(part):
                    cited += [x.seq for x in same]
                    rest = rest[len(part) :].removeprefix("; ")
                    break
            else:
                raise Unjustified(f"no refusal row reads {rest[:80]!r}")
        return tuple(cited)

    # -- Deviations from Runbook
    dev = "Deviations from Runbook"

    @c.add("none", dev)
    def no_deviation(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        bad = t.of("gate.decided", decision="retry") + t.of("phase.interrupted")
        bad += t.of("step.result", status="skipped") + t.of("monitor.missed")
        bad += t.of("gate.overridden") + t.of("freeze.overridden")
        bad += t.of("record.deviation")
        return t.none("a deviation", bad, [t.started()])

    @c.add(
        r"🟥 started during the change freeze (\S+) \((.+)\) by emergency override of (.+) "
        r"at (\d\d:\d\d) UTC — why: (.+)",
        dev,
    )
    def dev_freeze(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        freeze, reason, approvers, hhmm, why = m.groups()
        rows = [
            r
            for r in t.of("freeze.overridden", freeze=freeze, reason=reason)
            if ", ".join(r.data.get("approvers") or []) == approvers
            and "; ".join(r.data.get("justifications") or []) == why
            and r.hhmm == hhmm
        ]
        return t.one("the emergency start", rows)

    @c.add(
        r"🟥 phase (\S+): failed (.+) overridden \(break-glass\) by (.+) at (\d\d:\d\d) UTC"
        r" — why: (.+)",
        dev,
    )
    def dev_override(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        phase, steps, approvers, hhmm, why = m.groups()
        rows = [
            r
            for r in t.of("gate.overridden", phase=phase)
            if ", ".join(r.data.get("steps") or []) == steps
            and ", ".join(r.data.get("approvers") or []) == approvers
            and "; ".join(r.data.get("justifications") or []) == why
            and r.hhmm == hhmm
        ]
        # Each approver's own vote, with the justification the decision quotes.
        votes = []
        for r in rows:
            for said in r.data.get("justifications") or []:
                found = [
                    v
                    for v in t.of("override.vote", phase=phase, gate=r.data.get("gate"))
                    if f"{v.actor}: {v.data.get('justification')}" == said
                    and v.actor in approvers.split(", ")
                ]
                if not found:
                    raise Unjustified(f"no override.vote says {said!r}")
                votes += found
        return t.one("the override", rows) + tuple(v.seq for v in votes)

    @c.add(r"phase (\S+) retried \(by (\S+)\)", dev)
    def dev_retry(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rows = t.of("gate.decided", decision="retry", phase=m.group(1))
        return t.one("the retry", [r for r in rows if r.actor == m.group(2)])

    @c.add(r"phase (\S+) interrupted \(the bot stopped while it ran\)", dev)
    def dev_interrupted(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return t.one("the interruption", t.of("phase.interrupted", phase=m.group(1)))

    @c.add(r"(.+) \(added by (\S+) at (\d\d:\d\d) UTC\)", dev)
    def dev_added(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        text, who, hhmm = m.groups()
        rows = [r for r in t.of("record.deviation", text=text) if (r.actor, r.hhmm) == (who, hhmm)]
        return t.one("the deviation", rows)

    @c.add(r"monitoring rounds (.+) missed", dev)
    def dev_missed(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        said = [int(n) for n in m.group(1).split(", ")]
        rows = t.of("monitor.missed")
        if [n for r in rows for n in r.data.get("rounds") or []] != said:
            raise Unjustified(f"the trail's missed rounds are not {said}")
        return t.one("the missed rounds", rows)

    @c.add(r"(\S+)/(\S+) skipped", dev)
    def skipped(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rows = [r for r in t.of("step.result", step=m.group(2), status="skipped")]
        return t.one("the skip", [r for r in rows if t.phase_of(r) == m.group(1)])

    @c.add(r"Rollback Triggered: (YES|NO)")
    def triggered(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        if m.group(1) == "YES":
            return t.one("a rollback", rollback_rows(t))
        if t.of("run.cancelled"):  # asked for, but nothing had run: no rollback steps ran
            ran = t.of("rollback.started") + t.of("run.rolled_back")
            return t.none("a rollback that ran", ran, t.of("run.cancelled"))
        return t.none("a rollback", rollback_rows(t) + t.of("rollback.started"), [t.started()])

    @c.add(r"Reason: (.+)")
    def reason(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        if m.group(1) == "—" and t.of("run.cancelled"):  # no rollback ran: no reason for one
            ran = t.of("rollback.started") + t.of("run.rolled_back")
            return t.none("a rollback that ran", ran, t.of("run.cancelled"))
        if m.group(1) == "—":
            return t.none("a rollback", rollback_rows(t), [t.started()])
        return t.one("the reason", reason_rows(t, m.group(1)))

    @c.add(r"Production URL: (\S+)")
    def url(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        start = t.started()  # configured, not checked: the environment's base_url
        base = t.runbook.values_for(str(start.data["environment"])).get("base_url")
        if m.group(1) != str(base):
            raise Unjustified(f"the environment's base_url is {base}")
        return (start.seq,)

    @c.add(r"([^:]+): (YES|NO|NOT VERIFIED) — (.+)")
    def bound_field(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        name, word, evidence = m.groups()
        return evidence_rows(t, evidence, WORD[word], field_binding(t.runbook, name))

    @c.add(r"[^:]+: not recorded by the bot: .*; fill in by hand")
    def by_hand(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return NOTHING  # says the bot knows nothing of it: no claim

    # -- Sign-Off: only the run.signoff_requested / run.signed_off rows; never inferred.
    def unmet_parts(text: str, t: Trail) -> list[int]:
        """Each "criterion (continued past by WHO at HH:MM UTC, checkpoint PHASE)" part."""
        cited: list[int] = []
        for part in text.split("; "):
            p = re.fullmatch(
                r"(\S+) \((continued past|overridden \(break-glass\)) by (.+) at (\d\d:\d\d) "
                r"UTC, checkpoint (\S+)\)",
                part,
            )
            if p is None:
                raise Unjustified(f"no rule reads {part!r}")
            crit, how, who, hhmm, phase = p.groups()
            ref = criterion_binding(t.runbook, crit).ref or ""
            if ref.split("/")[0] != phase:
                raise Unjustified(f"{crit} is bound to {ref or 'nothing'}, not to phase {phase}")
            last = gates_of(t, phase)[-1:]
            went = (
                t.of("gate.decided", decision="continue", phase=phase)
                if how == "continued past"
                else t.of("gate.overridden", phase=phase)
            )
            rows = [
                r
                for r in went
                if last
                and r.data.get("gate") == last[0].data.get("gate")
                and ", ".join(r.data.get("approvers") or []) == who
                and r.hhmm == hhmm
            ]
            cited += t.one(f"the continue past {crit}", rows)
        return cited

    def asked(t: Trail) -> Row:
        rows = t.of("run.signoff_requested")
        if len(rows) != 1:
            raise Unjustified(f"{len(rows)} run.signoff_requested rows, not one")
        return rows[0]

    def signatures(t: Trail, said: str) -> list[int]:
        """`said`: "WHO at HH:MM UTC, …", exactly the run.signed_off rows in order."""
        rows = t.of("run.signed_off")
        listed = [f"{r.actor} at {r.hhmm} UTC" for r in rows]
        if ", ".join(listed) != said:
            raise Unjustified(f"the run.signed_off rows say {listed}")
        return [r.seq for r in rows]

    def awaiting(t: Trail, left: str, who: str, so_far: str | None) -> list[int]:
        req = asked(t)
        signed = signatures(t, so_far or "")
        done = {r.actor for r in t.of("run.signed_off")}
        people = [p for p in req.data.get("by") or [] if p not in done]
        groups = [f"a member of {g}" for g in req.data.get("groups") or []]
        expect = " or ".join(x for x in (", ".join(people), ", ".join(groups)) if x)
        if expect != who:
            raise Unjustified(f"the request names {expect!r} still to sign")
        if int(left) != int(req.data["quorum"]) - len(signed) or int(left) <= 0:
            raise Unjustified(f"quorum {req.data['quorum']}, {len(signed)} signed")
        return [req.seq, *signed]

    @c.add(r"Sign-Off: — \(not signed off: success criteria not met: (.+?)(?:; awaiting (\d+) "
           r"more of (.+?)(?:; signed so far: (.+))?)?\)")  # fmt: skip
    def unmet(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        cited = list(t.one("the run's completion", t.of("run.completed")))
        cited += unmet_parts(m.group(1), t)
        if m.group(2) is not None:
            cited += awaiting(t, m.group(2), m.group(3), m.group(4))
        elif t.of("run.signoff_requested"):
            raise Unjustified("a sign-off was asked: the line must say who is awaited")
        return tuple(cited)

    @c.add(r"Sign-Off: (.+) \(signed off, (\d+) needed(?:; success criteria not met: (.+))?\)")
    def signed_off(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        who, need, unmet_text = m.groups()
        req = asked(t)
        cited = [*t.one("the run's completion", t.of("run.completed")), req.seq]
        signed = signatures(t, who)
        if int(need) != int(req.data["quorum"]) or len(signed) < int(need):
            raise Unjustified(f"quorum {req.data['quorum']}, {len(signed)} signed")
        if unmet_text is not None:
            cited += unmet_parts(unmet_text, t)
        return (*cited, *signed)

    @c.add(
        r"Sign-Off: — \(not signed off: awaiting (\d+) more of (.+?)(?:; signed so far: (.+))?\)"
    )
    def awaited(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        done = t.one("the run's completion", t.of("run.completed"))
        return (*done, *awaiting(t, *m.groups()))

    @c.add(r"Sign-Off: — \(no sign-off asked: a dry run\)")
    def dry(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        if not t.started().data.get("dry_run"):
            raise Unjustified("the run is no dry run")
        t.none("a sign-off request", t.of("run.signoff_requested"), [t.started()])
        return (t.started().seq, *t.one("the run's completion", t.of("run.completed")))

    @c.add(r"Sign-Off: — \(no sign-off asked: the runbook names nobody to sign off (\S+)\)")
    def nobody(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        if t.runbook.environments[m.group(1)].signoff is not None:
            raise Unjustified(f"the runbook names people to sign off {m.group(1)}")
        done = t.one("the run's completion", t.of("run.completed"))
        return (*done, *t.none("a sign-off request", t.of("run.signoff_requested"), done_rows(t)))

    def done_rows(t: Trail) -> list[Row]:
        return t.of("run.completed")

    @c.add(r"Sign-Off: — \(not signed off: run (.+)\)")
    def unsigned(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return t.none("a completion", t.of("run.completed"), [t.started()])

    # -- Manual steps: every checkpoint's manual steps, ticked (who, when) or not.
    # A tick that carried a value names it: ", NAME VALUE", as its row keeps it.
    @c.add(
        r"(\S+)/(\S+) \(attempt (\d+)\): ticked by (\S+) at (\d\d:\d\d) UTC(?:, (\S+) (\S+))?",
        "Manual steps",
    )
    def ticked(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        phase, item, attempt, who, hhmm, name, value = m.groups()
        gates = {g.data.get("gate") for g in gates_of(t, phase, int(attempt))}
        rows = [
            r
            for r in t.of("manual.ticked", item=item)
            if r.data.get("gate") in gates
            and r.actor == who
            and r.hhmm == hhmm
            and r.data.get("value") == ({name: value} if name else None)
        ]
        return t.one("the tick" + (f" with {name} {value}" if name else ""), rows)

    @c.add(r"(\S+)/(\S+) \(attempt (\d+)\): not ticked", "Manual steps")
    def unticked(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        phase, item, attempt = m.groups()
        gates = gates_of(t, phase, int(attempt))
        ids = {g.data.get("gate") for g in gates}
        rows = [r for r in t.of("manual.ticked", item=item) if r.data.get("gate") in ids]
        return t.none("a tick", rows, gates)

    @c.add(r"(\S+) at (\d\d:\d\d) UTC: (.+)", "Notes")
    def note(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        who, hhmm, text = m.groups()
        rows = [r for r in t.of("record.note", text=text) if (r.actor, r.hhmm) == (who, hhmm)]
        for r in t.of("gate.vote"):
            if (r.actor, r.hhmm) == (who, hhmm) and text.endswith(f": {r.data.get('comment')}"):
                rows.append(r)
        return t.one("the note", rows)

    # -- success criteria: each line's verdict from exactly the rows its binding names.
    @c.add(r"Success criteria: (\d+) met, (\d+) not met, (\d+) not verified")
    def tally(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return NOTHING  # a count of the lines below: `check_tally` compares them

    @c.add(r"(✅|❌|❔) (.+?) — (.+)")
    def criterion(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        icon, text, evidence = m.groups()
        spec = next((cs for cs in t.runbook.success_criteria if cs.text == text), None)
        if spec is None:
            raise Unjustified(f"the runbook has no criterion {text!r}")
        return evidence_rows(t, evidence, ICON[icon], criterion_binding(t.runbook, spec.id))

    @c.add(r"Not verified by anyone or anything: (.+)")
    def unverified_list(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        return NOTHING  # repeats the ❔ lines: `check_tally` compares them

    @c.add(r"Deployed: not captured \(the run never reached its deployed step\)")
    def not_deployed(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rows = [
            r
            for r in t.of("step.result", status="pass")
            if (r.data.get("artifact") or {}).get("type") == "deployed"
        ]
        return t.none("a deployed artifact", rows, [t.started()])

    def deployed(t: Trail) -> Row:
        rows = [
            r
            for r in t.of("step.result", status="pass")
            if (r.data.get("artifact") or {}).get("type") == "deployed"
        ]
        if not rows:
            raise Unjustified("no deployed step passed")
        return rows[-1]

    @c.add(r"Deployed: commit (.+) of (.+)")
    def commit(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        row = deployed(t)
        art = row.data["artifact"]
        said = art.get("commit") or "unknown (no git commit found)"
        if (said, str(art.get("repo", "?"))) != m.groups():
            raise Unjustified(f"the deployed step saw {said} of {art.get('repo')}")
        return (row.seq,)

    @c.add(r"(\S+): (\S+) (\S+) \((.+)\)", "Deployed")
    def image(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        row = deployed(t)
        service, name, ident, digests = m.groups()
        for img in row.data["artifact"].get("images") or []:
            shown = ", ".join(img.get("repo_digests") or []) or "built here, no registry digest"
            if (img.get("service"), img.get("image"), str(img.get("id"))[:19], shown) == (
                service,
                name,
                ident,
                digests,
            ):
                return (row.seq,)
        raise Unjustified(f"the deployed step saw no such image of {service}")

    @c.add(r"no running container of (\S+) was seen", "Deployed")
    def no_image(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        row = deployed(t)
        if row.data["artifact"].get("images"):
            raise Unjustified("the deployed step saw running containers")
        return (row.seq,)

    add_task_rules(c)  # the "Post-cutover tasks" lines: tests/trail_checker_tasks.py
    return c


def check_tally(text: str) -> None:
    """The record's summary lines say what its criterion lines say, no more."""
    lines = text.splitlines()
    icons = [line[0] for line in lines if line[:1] in ICON]
    for line in lines:
        m = re.fullmatch(r"Success criteria: (\d+) met, (\d+) not met, (\d+) not verified", line)
        if m and tuple(map(int, m.groups())) != tuple(icons.count(i) for i in "✅❌❔"):
            raise Unjustified(f"{line!r} does not count the criterion lines")
        if line.startswith("Not verified by anyone or anything: "):
            named = line.split(": ", 1)[1].split("; ")
            unknown = [x[2:].split(" — ")[0] for x in lines if x.startswith("❔ ")]
            if named != unknown:
                raise Unjustified(f"{line!r} names other criteria than the ❔ lines")


def check_record(text: str, rows: list[Row], runbook: Runbook) -> list[Finding]:
    """The cutover record against the run's exported audit rows."""
    findings = record_rules().check(text, rows, runbook)
    check_tally(text)
    return findings


# ------------------------------------------------------------------------ the T-1h notice


def t1_notice_rules(schedule_id: int) -> Checker:
    """The rules for `bot.notices.t1_stakeholder_text`: the schedule's facts from its
    schedule.created row, the readiness line from exactly the T-24h readiness row it names;
    the runbook's configured words (impact, rollback plan, contacts) must be the runbook's."""
    c = Checker()

    def created(t: Trail) -> Row:
        [row] = t.of("schedule.created", schedule=schedule_id)
        return row

    @c.add(r"📣 (?:Production cutover|Cutover of (\S+)) starting (in 1 hour|in .+)")
    def head(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        row = created(t)
        env = str(row.data["environment"])
        if m.group(1) not in (None, env) or (
            m.group(1) is None and env not in ("prod", "production")
        ):
            raise Unjustified(f"the schedule is of {env}")
        [sent] = t.of("notice.sent", schedule=schedule_id, kind="t-1h")
        left = datetime.fromisoformat(str(row.data["start_at"])) - at_of(sent)
        if m.group(2) == "in 1 hour" and not 55 * 60 <= left.total_seconds() <= 65 * 60:
            raise Unjustified(f"it was sent {left} before the start")
        return (row.seq, sent.seq)

    @c.add(r"Environment: (\S+)")
    def environment(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        row = created(t)
        if row.data["environment"] != m.group(1):
            raise Unjustified("another environment")
        return (row.seq,)

    @c.add(r"Start: (.+ UTC)")
    def start(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        row = created(t)
        at = datetime.fromisoformat(str(row.data["start_at"]))
        if at.strftime("%a %Y-%m-%d %H:%M UTC") != m.group(1):
            raise Unjustified(f"the schedule starts at {at}")
        return (row.seq,)

    @c.add(r"Where it runs: (.+)")
    def where(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        row = created(t)
        if (row.data.get("channel") or "the console") != m.group(1):
            raise Unjustified("another channel")
        return (row.seq,)

    @c.add(
        r"T-24h readiness \(the scheduled T-24h dry run of (.+), (.+ UTC), audit row #(\d+)\): "
        r"(\d+) of (\d+) passed, (\d+) failed(?: \(([^()]+)\))?((?:, \d+ [a-z]+)*)"
    )
    def readiness(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        phase, when, seq, ok, total, bad, bad_steps, rest = m.groups()
        others = {k: int(n) for n, k in re.findall(r", (\d+) ([a-z]+)", rest)}
        [row] = [r for r in t.of("readiness.checked") if r.seq == int(seq)] or [None]
        if row is None:
            raise Unjustified(f"no readiness row #{seq}")
        if (row.data.get("trigger"), row.data.get("schedule")) != ("t-24h", schedule_id):
            raise Unjustified(f"row #{seq} is not this schedule's T-24h readiness dry run")
        if at_of(row).strftime("%a %Y-%m-%d %H:%M UTC") != when:
            raise Unjustified(f"row #{seq} is of {row.at}")
        if t.runbook.phase(str(row.data["phase"])).name != phase:
            raise Unjustified(f"row #{seq} ran another phase")
        results = row.data.get("results") or []
        failed = [str(r["step"]) for r in results if r["status"] in ("fail", "error")]
        counts = (sum(r["status"] == "pass" for r in results), len(results), len(failed))
        if counts != (int(ok), int(total), int(bad)):
            raise Unjustified(f"row #{seq} counts {counts}")
        neither = [
            str(r["status"]) for r in results if r["status"] not in ("pass", "fail", "error")
        ]
        if others != {k: neither.count(k) for k in set(neither)}:
            raise Unjustified(f"row #{seq} has {neither} besides passes and failures")
        if bad_steps is not None and bad_steps.split(", ") != failed:
            raise Unjustified(f"row #{seq} failed {failed}")
        return (row.seq,)

    @c.add(r"T-24h readiness: no T-24h readiness dry run is recorded for schedule #(\d+)")
    def no_readiness(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rows = t.of("readiness.checked", schedule=schedule_id, trigger="t-24h")
        return t.none("a T-24h readiness dry run", rows, [created(t)])

    @c.add(r"(Expected duration|User impact|Rollback plan.*|Contacts): (.+)")
    def configured(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        rb = t.runbook
        said = {
            "Expected duration": rb.estimate_text(),
            "User impact": rb.user_impact,
            "Contacts": "; ".join(f"{x.role}: {x.who}" for x in rb.contacts),
        }.get(m.group(1), "; ".join(st.name for st in rb.rollback))
        if said is not None and said != m.group(2):
            raise Unjustified("the runbook says otherwise")
        return NOTHING  # configured words, not a check

    @c.add(r"\(schedule #(\d+); (.+)\)")
    def tail(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        if int(m.group(1)) != schedule_id or m.group(2) != t.runbook.name:
            raise Unjustified("another schedule or runbook")
        return (created(t).seq,)

    return c


# ------------------------------------------------------------------------ the end, in the feed


def check_ended_feed(text: str, rows: list[Row], runbook: Runbook) -> list[Finding]:
    """`bot.record_feed.ended_feed` against the run's rows: its header ("completed" only
    when no criterion line is ❌, else "ended with N … not met"; the environment, dry run and
    deployed commit as the rows say), then the record's own rules for the criterion lines
    and the Sign-Off line. Every success criterion of the runbook has its line."""
    c = record_rules()

    @c.add(
        r"(🎉|⚠️) (\S+): cutover (completed|ended with (\d+) success criteri(?:on|a) not met) "
        r"\(run #(\d+)(, DRY RUN)?\)(?:: commit (\S+), (\d+) image\(s\) running)?\."
    )
    def ended(m: re.Match[str], t: Trail) -> tuple[int, ...]:
        icon, env, _, unmet, _run, dry, commit, images = m.groups()
        start = t.started()
        if (env, bool(dry)) != (start.data.get("environment"), bool(start.data.get("dry_run"))):
            raise Unjustified("environment or dry run differ from run.started")
        if (icon == "🎉") != (unmet is None):
            raise Unjustified("🎉 is for a completion with every criterion met")
        cited = [start.seq, *t.one("the run's completion", t.of("run.completed"))]
        if commit is not None:
            made = [
                r
                for r in t.of("step.result", status="pass")
                if (r.data.get("artifact") or {}).get("type") == "deployed"
            ]
            if not made:
                raise Unjustified("no deployed artifact")
            art = made[-1].data["artifact"]
            if (str(art.get("commit"))[:12], len(art.get("images") or [])) != (
                commit,
                int(images),
            ):
                raise Unjustified(f"the deployed artifact says {art}")
            cited.append(made[-1].seq)
        return tuple(cited)

    findings = c.check(text, rows, runbook)
    check_tally(text)
    lines = text.splitlines()
    crosses = sum(line.startswith("❌ ") for line in lines)
    head = re.search(r"ended with (\d+) success", lines[0])
    if (int(head.group(1)) if head else 0) != crosses:
        raise Unjustified(f"{lines[0]!r} does not count the ❌ lines ({crosses})")
    verdicts = [line for line in lines if line[:1] in ICON]
    if len(verdicts) != len(runbook.success_criteria):
        raise Unjustified("not every success criterion has its line")
    return findings
