"""The runbook as data: a YAML file validated with pydantic.

Errors name the file, the phase, the step and the field, so whoever wrote the
runbook can fix it without reading this code. This package's face: the names other
modules import as `from phases.runbook import X`; each section lives in a module of its own.
"""

from __future__ import annotations

from phases.runbook.checklists import (
    DEFAULT_FRESH_MINUTES,
    Checklist,
    ChecklistItem,
    PreCutover,
)
from phases.runbook.criteria import CriterionSpec, NotesField
from phases.runbook.environments import EnvironmentSpec
from phases.runbook.fields import APPROVER_PATTERN, ID_PATTERN, Strict, Value
from phases.runbook.freezes import Day, FreezeSpec, WeeklyWindow
from phases.runbook.loading import load_runbook, validate_steps
from phases.runbook.model import Contact, Runbook
from phases.runbook.phase_specs import Estimate, MonitorSpec, PhaseSpec
from phases.runbook.placeholders import (
    RUN_PLACEHOLDERS,
    render,
    resolve_step,
    tick_placeholders,
)
from phases.runbook.steps import ManualStep, StepSpec
from phases.runbook.variables import (
    RUNBOOK_VAR_PREFIX,
    expand_env_vars,
    reserved_variable,
    variable_refusal,
)
from phases.yaml_loader import RunbookError as RunbookError  # re-exported: its old home

__all__ = [
    "APPROVER_PATTERN",
    "DEFAULT_FRESH_MINUTES",
    "ID_PATTERN",
    "RUNBOOK_VAR_PREFIX",
    "RUN_PLACEHOLDERS",
    "Checklist",
    "ChecklistItem",
    "Contact",
    "CriterionSpec",
    "Day",
    "Estimate",
    "EnvironmentSpec",
    "FreezeSpec",
    "ManualStep",
    "MonitorSpec",
    "NotesField",
    "PhaseSpec",
    "PreCutover",
    "Runbook",
    "RunbookError",
    "StepSpec",
    "Strict",
    "Value",
    "WeeklyWindow",
    "expand_env_vars",
    "load_runbook",
    "render",
    "reserved_variable",
    "resolve_step",
    "tick_placeholders",
    "validate_steps",
    "variable_refusal",
]
