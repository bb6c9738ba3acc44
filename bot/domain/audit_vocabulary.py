"""The audit vocabulary as a public interface: what each kind of row means and the fields of
its `data`, for the auditors and tools that read the trail.

docs/audit.md is generated from this and from the enum (`python -m bot.domain.audit_vocabulary
> docs/audit.md`); tests/test_audit_vocabulary.py fails when a kind has no entry here (or in
a sibling module, audit_vocabulary_*.py, named for the rows it holds), when a call site writes
a field not listed, or when the doc is stale. A kind or field is never
renamed in place: the old name goes in `audit_kinds.RENAMED` and stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain.audit_kinds import RENAMED, AuditKind
from bot.domain.audit_vocabulary_decisions import ENTRIES as DECISION_ENTRIES
from bot.domain.audit_vocabulary_runs import ENTRIES as RUN_ENTRIES
from bot.domain.audit_vocabulary_schedules import ENTRIES as SCHEDULE_ENTRIES
from bot.domain.audit_vocabulary_tasks import ENTRIES as TASK_ENTRIES
from bot.domain.audit_vocabulary_ticks import ENTRIES as TICK_ENTRIES

REGENERATE = "python -m bot.domain.audit_vocabulary > docs/audit.md"

# Fields every refusal may carry besides action and reason: what the action was about.
_REFUSED_CONTEXT = "gate, item, phase, environment, schedule, criterion, missing, preflight, freeze"


@dataclass(frozen=True)
class Entry:
    what: str
    fields: dict[str, str] = field(default_factory=dict)


# The rows of the bot's own work (refusals, chat failures, leadership, signing keys) are here;
# the others are in the sibling modules named for what they hold.
CATALOGUE: dict[AuditKind, Entry] = {
    AuditKind.ACTION_REFUSED: Entry(
        "an authorization rule or the state machine said no; nothing was changed",
        {
            "action": "start | continue | rollback | retry | tick | abort | note | signoff | "
            "run_signoff | "
            "schedule | unschedule | …",
            "reason": "the refusal as shown to the person",
            "…": f"what the action was about, when it names one: {_REFUSED_CONTEXT}",
        },
    ),
    AuditKind.SURFACE_FAILED: Entry(
        "a chat post failed", {"call": "the surface call", "error": "the error (masked)"}
    ),
    AuditKind.SCHEDULER_LEADER: Entry(
        "this process became the scheduler's leader", {"process": "the process"}
    ),
    AuditKind.AUDIT_KEY_ROTATED: Entry(
        "the bot started with another signing key than the trail's last",
        {"key_id": "the new key's id", "retired_key": "the old key's id, or null"},
    ),
    AuditKind.AUDIT_KEY_DROPPED: Entry(
        "the bot started with no signing key where the trail was signed",
        {"retired_key": "the key retired"},
    ),
}
for entries in (RUN_ENTRIES, DECISION_ENTRIES, SCHEDULE_ENTRIES, TASK_ENTRIES, TICK_ENTRIES):
    CATALOGUE |= {k: Entry(what, fields) for k, (what, fields) in entries.items()}


def markdown() -> str:
    """docs/audit.md: every kind in the enum's order, its meaning and its data fields."""
    out = [
        "# The audit vocabulary",
        "",
        "Every kind of row the bot writes to the audit trail (`audit_event.kind`), and the "
        "fields of its `data` (canonical JSON). Every row also has `seq`, `at` (ISO 8601 "
        "UTC), `run_id` (or null), `actor` (TEAM:USER, console:NAME or `system`), "
        "`prev_hash` and `hash`.",
        "",
        f"Generated from `bot/domain/audit_vocabulary.py` by `{REGENERATE}`; "
        "a test fails when the two differ. A kind or field is never renamed in place: the "
        "old name is kept readable (see the end).",
    ]
    for kind in AuditKind:
        entry = CATALOGUE[kind]
        out += ["", f"## `{kind.value}`", "", entry.what[0].upper() + entry.what[1:] + "."]
        if entry.fields:
            out.append("")
            out += [f"- `{name}`: {meaning}" for name, meaning in entry.fields.items()]
    out += [
        "",
        "## Older names",
        "",
        "A trail keeps the rows an older bot wrote, under the names it used; the bot reads "
        "them as today's kind (`bot.domain.audit_kinds.read_kind` and `read_data`):",
        "",
    ]
    out += [f"- `{old}`: read as `{new.value}`" for old, new in RENAMED.items()]
    out += [
        "",
        "`click.refused` (before c605e77) had `decision` (continue, rollback, retry), `tick` "
        "(the item) or `abort: true` where `action.refused` has `action` (and `item`).",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
