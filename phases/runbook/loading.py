"""Reading a runbook file: parse, validate every section and every step, locate each error."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from phases import runbook_format
from phases.checks import REGISTRY
from phases.runbook.fields import Value
from phases.runbook.model import Runbook
from phases.runbook.placeholders import (
    RUN_PLACEHOLDERS,
    WHOLE_PLACEHOLDER,
    resolve_step,
    tick_placeholders,
)
from phases.runbook.steps import StepSpec
from phases.runbook.variables import ENV_VAR
from phases.yaml_loader import RunbookError, load_yaml_file


def _locate(data: Any, loc: tuple[Any, ...]) -> str:
    """('phases', 3, 'timeout') -> "phases[3] (id 'migrate') > timeout": where, in words."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            try:
                node = node[key]
                if isinstance(node, dict) and "id" in node:
                    label += f" (id {node['id']!r})"
            except (IndexError, KeyError, TypeError):
                node = None
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
        else:
            parts.append(str(key))
            try:
                node = node[key]
            except (KeyError, TypeError, IndexError):
                node = None
    return " > ".join(parts) or "(top level)"


def load_runbook(path: str | Path) -> Runbook:
    p = Path(path)
    data = load_yaml_file(p)  # bounded, refuses repeated keys (phases/yaml_loader.py)
    if not isinstance(data, dict):
        raise RunbookError(f"{p}: a runbook is a YAML mapping with name, phases and environments")
    runbook_format.check_format(data, str(p))  # a format this bot does not read: refused first
    renamed = runbook_format.read_renamed(data)  # older names read as today's, with a warning
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        msgs = [f"{_locate(data, tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise RunbookError(f"{p}: " + "\n  ".join(msgs)) from None
    problems = validate_steps(runbook)
    if problems:
        raise RunbookError(f"{p}: " + "\n  ".join(problems))
    runbook._deprecated = renamed
    return runbook


def validate_steps(runbook: Runbook) -> list[str]:
    """Checks every step's kind and parameters against each environment, before anything runs."""
    problems: list[str] = []
    ticked = tick_placeholders(runbook)
    for where, section, step in runbook.all_steps():
        kind = REGISTRY.get(step.kind)
        if kind is None:
            known = ", ".join(sorted(REGISTRY))
            problems.append(
                f"{where} > {section} > {step.id!r}: unknown kind {step.kind!r}; known: {known}"
            )
            continue
        if section == "checks" and kind.mutates:
            problems.append(
                f"{where} > checks > {step.id!r}: kind {step.kind!r} changes state; "
                "put it under actions (checks are read-only)"
            )
        for env_name in runbook.environments:
            values = {**RUN_PLACEHOLDERS, **runbook.values_for(env_name, expand=False)}
            if "> manual " in where:
                values.update(ticked)
            token_problem = _literal_token(step, values)
            if token_problem:
                problems.append(f"{where} > {section} > {step.id!r}: {token_problem}")
                break
            try:
                resolve_step(step, values)
            except RunbookError as exc:
                problems.append(
                    f"{where} > {section} > {step.id!r} (environment {env_name!r}): {exc}"
                )
    return problems


def _literal_token(step: StepSpec, values: Mapping[str, Value]) -> str | None:
    """A `bearer_token` must come from the bot's environment (a {var} set from ${VAR}), so
    it is masked wherever the bot shows text and never sits in the runbook's git history."""
    token = step.params.get("bearer_token")
    if token is None:
        return None
    whole = WHOLE_PLACEHOLDER.match(token) if isinstance(token, str) else None
    source = values.get(whole.group(1)) if whole else None
    if isinstance(source, str) and ENV_VAR.search(source):
        return None
    return (
        "bearer_token must be a {placeholder} of a var set from the bot's environment "
        "(vars: {prom_token: ${CUTOVER_RUNBOOK_PROM_TOKEN}}, then bearer_token: "
        "'{prom_token}'), never the token itself"
    )
