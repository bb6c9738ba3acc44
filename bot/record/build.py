"""`build_record`: the runbook's Notes and success criteria filled in from a run's trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.notices import duration
from bot.post_task_view import task_lines
from bot.record.criteria import evaluate, manual_verdict
from bot.record.deployed import deployed_artifact
from bot.record.issues import deviations, issues, refusals, revert_lines, rollback_reason
from bot.record.manual_steps import manual_lines
from bot.record.sign_off import sign_off_line_of
from bot.record.trail import CutoverRecord, Trail, hm, read_trail
from bot.store import runs
from bot.store.db import Database
from bot.store.models import Run
from bot.store.read_door import door
from bot.store.reads import tasks_view
from phases.runbook import NotesField, Runbook, RunbookError

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
    with door(db).tx() as tx:
        run = runs.get(tx, run_id)
    if run is None:
        raise KeyError(run_id)
    t = read_trail(db, run_id, events)
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
        "issues encountered": issues(run, t) or ["none"],
        "deviations from runbook": deviations(t) or ["none"],
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
    values["sign-off"] = sign_off_line_of(run, t, unmet)
    notes: list[tuple[str, str | list[str]]] = []
    fields = runbook.notes_fields or [_default_field(runbook, n) for n in DEFAULT_NOTES]
    word = {"yes": "YES", "no": "NO", "not verified": "NOT VERIFIED"}
    for f in fields:
        if f.criterion is not None:
            c = by_id[f.criterion]
            notes.append((f.name, f"{word[c.verdict]} — {c.evidence}"))
        elif f.manual is not None:
            m = manual_verdict(t, f.manual)
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
