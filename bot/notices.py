"""Texts of the scheduled notices, gate reminders and escalations. Plain text: a surface
formats it (Slack shows TEAM:USER ids as mentions); nothing here posts anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from phases.runbook import Checklist, ChecklistItem, EnvironmentSpec, Runbook

STATUS_ICONS = {"pass": "✅", "fail": "❌", "error": "⛔", "warn": "⚠️", "skipped": "⏭️"}


# The notices of a scheduled cutover: (kind, how long before the start time it is due).
EVENTS: list[tuple[str, timedelta]] = [
    ("t-24h", timedelta(hours=24)),
    ("t-1h", timedelta(hours=1)),
    ("t-1h-checklist", timedelta(hours=1)),
    ("t-0", timedelta(0)),
]


def when(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def already_scheduled_text(environment: str, schedule_id: int | None, start_at: datetime) -> str:
    """Why a second cutover of an environment cannot be scheduled beside its booked one."""
    return (
        f"{environment} already has cutover #{schedule_id} scheduled for "
        f"{when(start_at)}; /cutover unschedule {schedule_id} first"
    )


def hhmm(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%H:%M UTC")


def duration(seconds: float) -> str:
    """3725 → "1 h 2 min"; 90000 → "1 d 1 h"; under a minute → "0 min"."""
    minutes = int(max(0.0, seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def expected_duration(runbook: Runbook) -> str:
    """The runbook's one estimate (Runbook.estimate_text), as every message prints it."""
    return runbook.estimate_text()


def checklist(title: str, items: Sequence[ChecklistItem | str]) -> str:
    """The checklist's lines; an item that gates Start says so and how it is done."""
    lines = [title]
    for item in items:
        if isinstance(item, str):
            lines.append(f"☐ {item}")
        elif item.check:
            lines.append(f"☐ {item.text} [{item.id}: needed before Start; the bot checks it]")
        elif item.gates_start:
            lines.append(f"☐ {item.text} [{item.id}: needed before Start; an approver ticks it]")
        else:
            lines.append(f"☐ {item.text}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ItemState:
    """Where one item that gates Start stands, for one schedule (or an unscheduled start)."""

    item: ChecklistItem
    done: bool
    detail: str  # "ticked by T1:U1 at 13:05 UTC", "check backup failed at 13:00 UTC: …"
    how: str  # what to do to complete it (empty when done)

    @property
    def id(self) -> str:
        return self.item.id or ""


def item_line(state: ItemState) -> str:
    icon = "✅" if state.done else ("❌" if state.item.check else "☐")
    by = "bot" if state.item.check else "approver"
    return f"{icon} {state.item.text} [{state.id}, {by}]: {state.detail}"


def missing_text(missing: Sequence[ItemState], nothing: str = "Nothing was started.") -> str:
    """The refusal of a Start whose required pre-cutover items are not all done."""
    n = len(missing)
    lines = [
        f"Start refused: {n} pre-cutover item{'s' if n != 1 else ''} needed before Start "
        f"{'is' if n == 1 else 'are'} not done. {nothing}"
    ]
    for st in missing:
        lines.append(f"{item_line(st)} → {st.how}")
    return "\n".join(lines)


START_ITEMS_HEAD = "Pre-cutover items needed before Start"


def start_checklist_text(target: str, states: Sequence[ItemState]) -> str:
    """`/cutover checklist`: every item that gates Start and where it stands."""
    if not states:
        return "This runbook has no pre-cutover items that gate Start."
    done = sum(1 for st in states if st.done)
    head = f"{START_ITEMS_HEAD} ({target}): {done}/{len(states)} done"
    lines = [item_line(st) + ("" if st.done else f" → {st.how}") for st in states]
    return "\n".join([head, *lines])


def cutover_label(env_name: str) -> str:
    return "Production cutover" if env_name in ("prod", "production") else f"Cutover of {env_name}"


def late_note(due_at: datetime, now: datetime) -> str:
    return (
        f"⏰ Sent late: this notice was due at {when(due_at)} and is "
        f"{duration((now - due_at).total_seconds())} late (the bot was not running then)."
    )


def repeat_note(claimed_at: datetime | None, claimed_by: str | None) -> str:
    at = hhmm(claimed_at) if claimed_at else "?"
    return (
        f"♻️ Possibly a repeat: an earlier attempt ({claimed_by or '?'}, {at}) "
        "stopped before confirming it was posted."
    )


def channel_name(channel: str | None) -> str:
    return channel or "the console"


@dataclass(frozen=True)
class StepLine:
    name: str
    status: str
    evidence: str


@dataclass(frozen=True)
class Readiness:
    """The T-24h dry run of the checklist's phase."""

    phase_name: str
    steps: list[StepLine]
    error: str | None = None  # the dry run could not run at all

    @property
    def blocking(self) -> list[StepLine]:
        return [s for s in self.steps if s.status in ("fail", "error")]


def t24_text(
    schedule_id: int,
    env_name: str,
    start_at: datetime,
    now: datetime,
    runbook: Runbook,
    readiness: Readiness | None,
    preflight: str | None = None,
) -> str:
    lines = [
        f"📅 T-24h: {cutover_label(env_name)} scheduled for {when(start_at)} "
        f"(in {duration((start_at - now).total_seconds())}) — schedule #{schedule_id}."
    ]
    if readiness is not None:
        lines += readiness_lines(readiness)
    if preflight:
        lines.append(preflight)
    pre = runbook.pre_cutover
    if pre is not None:
        lines.append(checklist(pre.t_minus_24h.title, pre.t_minus_24h.items))
    return "\n".join(lines)


def t1_stakeholder_text(
    schedule_id: int,
    env_name: str,
    start_at: datetime,
    now: datetime,
    runbook: Runbook,
    run_channel: str | None,
    readiness: str | None = None,
) -> str:
    left = (start_at - now).total_seconds()
    soon = "in 1 hour" if 55 * 60 <= left <= 65 * 60 else f"in {duration(left)}"
    lines = [
        f"📣 {cutover_label(env_name)} starting {soon}",
        f"Environment: {env_name}",
        f"Start: {when(start_at)}",
        f"Expected duration: {expected_duration(runbook)}",
        f"Where it runs: {channel_name(run_channel)}",
    ]
    if readiness:
        lines.append(readiness)
    if runbook.user_impact:
        lines.append(f"User impact: {runbook.user_impact}")
    if runbook.rollback:
        target = (
            f" within {runbook.rollback_time_minutes} min" if runbook.rollback_time_minutes else ""
        )
        steps = "; ".join(st.name for st in runbook.rollback)
        lines.append(f"Rollback plan{target}: {steps}")
    if runbook.contacts:
        lines.append("Contacts: " + "; ".join(f"{c.role}: {c.who}" for c in runbook.contacts))
    lines.append(f"(schedule #{schedule_id}; {runbook.name})")
    return "\n".join(lines)


def t1_checklist_text(
    schedule_id: int,
    env_name: str,
    start_at: datetime,
    cl: Checklist,
    readiness: Readiness | None = None,
    states: Sequence[ItemState] = (),
) -> str:
    """The T-1h checklist: the dry run's results when the checklist names a phase, every
    line, then the items that gate Start with their state and how to complete each."""
    lines = [
        f"🕐 T-1h: {cutover_label(env_name)} at {when(start_at)} — schedule #{schedule_id}. "
        "Stakeholders have been notified."
    ]
    if readiness is not None:
        lines += readiness_lines(readiness)
    lines.append(checklist(cl.title, cl.items))
    if states:
        lines.append(start_checklist_text(f"schedule #{schedule_id}", states))
    return "\n".join(lines)


RESULT_INDENT = "  "  # a readiness result line: indented, an icon, the check's name, its evidence
_RESULT_STATUS = {icon: status for status, icon in STATUS_ICONS.items()} | {"•": "other"}


def result_status(line: str) -> str | None:
    """The status one line of `readiness_lines` shows for its check ("pass", "fail", …), or
    None for a line that is no check's result: how a surface that must shorten a notice
    tells the results (attention first, passed ones counted) from the notice's other lines."""
    if (
        not line.startswith(RESULT_INDENT)
        or line[len(RESULT_INDENT) : len(RESULT_INDENT) + 1] == " "
    ):
        return None
    icon, sep, _ = line[len(RESULT_INDENT) :].partition(" ")
    return _RESULT_STATUS.get(icon) if sep else None


def readiness_lines(readiness: Readiness) -> list[str]:
    if readiness.error:
        return [f"⛔ Readiness dry run could not run: {readiness.error}"]
    bad = readiness.blocking
    verdict = (
        f"❌ {len(bad)} of {len(readiness.steps)} checks failed — fix before the cutover"
        if bad
        else f"✅ all {len(readiness.steps)} checks passed (0 failures)"
    )
    return [f"Readiness dry run ({readiness.phase_name}): {verdict}"] + [
        f"{RESULT_INDENT}{STATUS_ICONS.get(s.status, '•')} {s.name}: {s.evidence}"
        for s in readiness.steps
    ]


def approver_names(env: EnvironmentSpec) -> list[str]:
    return sorted(env.approver_set()) + [f"group {g}" for g in env.approver_groups]


def t0_text(schedule_id: int, env_name: str, start_at: datetime, env: EnvironmentSpec) -> str:
    who = ", ".join(approver_names(env)) or "(no approvers configured)"
    return (
        f"🚦 It is time: {cutover_label(env_name)} scheduled for {when(start_at)} "
        f"(schedule #{schedule_id}).\nApprovers {who}: press Start to begin, "
        f"or type /cutover start {env_name}. It never starts by itself."
    )


def gate_reminder_text(
    run_id: int, phase_name: str, waited_s: float, timeout_min: int, env: EnvironmentSpec
) -> str:
    who = ", ".join(approver_names(env)) or "approvers"
    return (
        f"⏳ Reminder: the checkpoint of {phase_name} (run #{run_id}) has waited "
        f"{duration(waited_s)} for a decision (gate timeout {timeout_min} min). {who}: "
        "Continue, Retry or Rollback. Nothing proceeds by itself."
    )


def gate_escalation_text(
    run_id: int,
    env_name: str,
    phase_name: str,
    waited_s: float,
    timeout_min: int,
    env: EnvironmentSpec,
) -> str:
    who = ", ".join(approver_names(env)) or "approvers"
    return (
        f"🚨 Escalation: run #{run_id} of {env_name} has waited {duration(waited_s)} at the "
        f"checkpoint of {phase_name} (2× the {timeout_min} min gate timeout). {who}: decide "
        f"now (Continue, Retry or Rollback; /cutover abort {env_name} --reason … rolls back). "
        "The bot never approves by itself."
    )


def revert_reminder_text(
    run_id: int, reverts: int, waited_s: float, votes: int, env: EnvironmentSpec, env_name: str
) -> str:
    """A revert waiting for its approvers past the gate timeout: as a gate's reminder."""
    who = ", ".join(approver_names(env)) or "approvers"
    return (
        f"⏳ Reminder: the revert of run #{reverts} (run #{run_id}) has waited "
        f"{duration(waited_s)} for its approvers ({votes}/{env.quorum}; gate timeout "
        f"{env.gate_timeout_minutes} min). {who}: approve it with /cutover revert {env_name} "
        f"--reason …, or cancel it with /cutover abort {env_name} --reason …. Nothing "
        "proceeds by itself."
    )


def revert_escalation_text(
    run_id: int, reverts: int, waited_s: float, votes: int, env: EnvironmentSpec, env_name: str
) -> str:
    who = ", ".join(approver_names(env)) or "approvers"
    return (
        f"🚨 Escalation: the revert of {env_name}'s run #{reverts} (run #{run_id}) has waited "
        f"{duration(waited_s)} for its approvers ({votes}/{env.quorum}; 2× the "
        f"{env.gate_timeout_minutes} min gate timeout). {who}: decide now (/cutover revert "
        f"{env_name} --reason … approves it, /cutover abort {env_name} --reason … cancels it). "
        "The bot never approves by itself."
    )


def readiness_verdict(seq: int, at: str, data: dict[str, Any], runbook: Runbook) -> str:
    """The T-1h stakeholder line quoting one T-24h readiness dry run (its audit row): which
    row, when, which phase, how many checks passed and failed. Nothing else is quoted."""
    results = data.get("results") or []
    passed = [r for r in results if r.get("status") == "pass"]
    bad = [str(r.get("step")) for r in results if r.get("status") in ("fail", "error")]
    other = [r for r in results if r.get("status") not in ("pass", "fail", "error")]
    try:
        phase = runbook.phase(str(data.get("phase"))).name
    except KeyError:
        phase = str(data.get("phase"))
    head = (
        f"T-24h readiness (the scheduled T-24h dry run of {phase}, "
        f"{when(datetime.fromisoformat(at))}, audit row #{seq}): "
    )
    counts = f"{len(passed)} of {len(results)} passed, {len(bad)} failed"
    if bad:
        counts += f" ({', '.join(bad)})"
    for status in sorted({str(r.get("status")) for r in other}):  # warn, skipped (actions)
        counts += f", {sum(str(r.get('status')) == status for r in other)} {status}"
    return head + counts
