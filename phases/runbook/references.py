"""What one runbook section names in another must exist: the checks behind `Runbook`'s validator."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from phases.post_tasks import task_problems
from phases.runbook.fields import ID_PATTERN, Value
from phases.runbook.variables import ENV_VAR, reserved_variable, variable_refusal

if TYPE_CHECKING:
    from phases.runbook.model import Runbook


def check_references(runbook: Runbook) -> None:
    """Raises ValueError for the first thing one section names in another that is not there
    (what `Runbook`'s validator refuses a runbook for)."""
    ids = [p.id for p in runbook.phases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"phase ids must be unique; repeated: {', '.join(dupes)}")
    if runbook.pre_cutover:
        for label, cl in (
            ("t_minus_24h", runbook.pre_cutover.t_minus_24h),
            ("t_minus_1h", runbook.pre_cutover.t_minus_1h),
        ):
            if cl.phase and cl.phase not in ids:
                raise ValueError(f"pre_cutover.{label}.phase {cl.phase!r} is not a phase id")
        problems = checklist_problems(runbook)
        if problems:
            raise ValueError("; ".join(problems))
    elif any(m.undoes for p in runbook.phases for m in p.manual):
        raise ValueError("a manual step has undoes but the runbook has no pre_cutover items")
    for name in runbook.environments:
        if not re.fullmatch(ID_PATTERN, name):
            raise ValueError(f"environment name {name!r} must match {ID_PATTERN}")
    problems = criteria_problems(runbook) + variable_problems(runbook)
    problems += task_problems(runbook.post_cutover_tasks, item_ids(runbook))
    problems += [
        f"freeze {f.id!r}: no environment {e!r}"
        for f in runbook.freezes
        for e in f.environments
        if e not in runbook.environments
    ]
    if runbook.overrides_possible():  # an override_quorum written that no one could reach
        problems += [
            f"environment {name!r}: {problem}"
            for name, env in runbook.environments.items()
            if env.override_quorum is not None and (problem := env.override_problem())
        ]
    if problems:
        raise ValueError("; ".join(problems))
    if any(p.on_fail == "restore_and_rollback" for p in runbook.phases) and not runbook.restore:
        raise ValueError(
            "a phase has on_fail: restore_and_rollback but the runbook has no restore steps"
        )


def criteria_problems(runbook: Runbook) -> list[str]:
    out: list[str] = []
    ids = [c.id for c in runbook.success_criteria]
    for dupe in sorted({i for i in ids if ids.count(i) > 1}):
        out.append(f"success criterion id {dupe!r} is repeated")
    phases = {p.id: p for p in runbook.phases}
    for c in runbook.success_criteria:
        for field, ref in (
            ("check", c.check),
            ("monitoring", c.monitoring),
            ("manual", c.manual),
        ):
            if not ref:
                continue
            phase_id, item = ref.split("/")
            phase = phases.get(phase_id)
            if phase is None:
                out.append(f"success criterion {c.id!r}: {field} {ref!r}: no phase {phase_id!r}")
                continue
            names = (
                [m.id for m in phase.manual]
                if field == "manual"
                else [st.id for st in [*phase.actions, *phase.checks]]
            )
            if item not in names:
                out.append(
                    f"success criterion {c.id!r}: {field} {ref!r}: phase {phase_id!r} has no "
                    f"{'manual step' if field == 'manual' else 'step'} {item!r}"
                )
            if field == "monitoring" and phase.monitor is None:
                out.append(f"success criterion {c.id!r}: phase {phase_id!r} has no monitor rounds")
    known = set(ids)
    for f in runbook.notes_fields:
        if f.criterion and f.criterion not in known:
            out.append(f"notes field {f.name!r}: no success criterion {f.criterion!r}")
        if f.manual:
            phase_id, item = f.manual.split("/")
            phase = phases.get(phase_id)
            if phase is None or item not in [m.id for m in phase.manual]:
                out.append(f"notes field {f.name!r}: no manual step {f.manual!r}")
    return out


def variable_problems(runbook: Runbook) -> list[str]:
    """Every ${VAR} the runbook uses must be one it may read (see `variable_refusal`)."""
    out: list[str] = []
    for name in runbook.variables:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            out.append(f"variables: {name!r} is not an environment variable name")
        elif reserved_variable(name):
            out.append(f"variables: {variable_refusal(name, ())}")
    where: list[tuple[str, Value]] = [(f"vars > {k}", v) for k, v in runbook.vars.items()]
    for env_name, env in runbook.environments.items():
        raw = env.template_values(expand=False)
        where += [(f"environments > {env_name} > {k}", v) for k, v in raw.items()]
    for label, value in where:
        for item in value if isinstance(value, list) else [value]:
            for name in ENV_VAR.findall(item):
                problem = variable_refusal(name, runbook.variables)
                if problem:
                    out.append(f"{label}: {problem}")
    return out


def item_ids(runbook: Runbook) -> list[str]:
    pre = runbook.pre_cutover
    lists = (pre.t_minus_24h, pre.t_minus_1h) if pre else ()
    return [i.id for cl in lists for i in cl.items if i.id]


def checklist_problems(runbook: Runbook) -> list[str]:
    """Items that gate Start must be unambiguous and reachable: unique ids across both
    checklists, and a bound check that a pre-cutover dry run actually runs."""
    assert runbook.pre_cutover is not None
    out: list[str] = []
    lists = (
        ("t_minus_24h", runbook.pre_cutover.t_minus_24h),
        ("t_minus_1h", runbook.pre_cutover.t_minus_1h),
    )
    ids = [i.id for _label, cl in lists for i in cl.items if i.id]
    for dupe in sorted({i for i in ids if ids.count(i) > 1}):
        out.append(f"pre_cutover: checklist item id {dupe!r} is repeated")
    dry_run_phases = {cl.phase for _label, cl in lists if cl.phase}
    phases = {p.id: p for p in runbook.phases}
    gating = {i.id for _label, cl in lists for i in cl.items if i.id and i.gates_start}
    for p in runbook.phases:
        for m in p.manual:
            if m.undoes and m.undoes not in gating:
                out.append(
                    f"phase {p.id!r} manual step {m.id!r}: undoes {m.undoes!r} is not a "
                    "pre-cutover item with gates_start: true (only such an item is known "
                    "to be done in every run); ids that gate Start: "
                    + (", ".join(sorted(gating)) or "none")
                )
    for label, cl in lists:
        for item in cl.items:
            if not item.check:
                continue
            where = f"pre_cutover.{label} item {item.id!r}: check {item.check!r}"
            phase_id, step_id = item.check.split("/")
            phase = phases.get(phase_id)
            if phase is None:
                out.append(f"{where}: no phase {phase_id!r}")
            elif step_id not in [c.id for c in phase.checks]:
                actions = [a.id for a in phase.actions]
                out.append(
                    f"{where}: phase {phase_id!r} has no check {step_id!r}"
                    + (" (it is an action; bind a check)" if step_id in actions else "")
                    + f"; its checks: {', '.join(c.id for c in phase.checks) or 'none'}"
                )
            elif phase_id not in dry_run_phases:
                out.append(
                    f"{where}: no pre-cutover dry run runs phase {phase_id!r}; set "
                    f"pre_cutover.t_minus_24h.phase or t_minus_1h.phase to {phase_id!r}"
                )
    return out
