"""Filling {placeholders} into a step's parameters, and the stand-in values validation uses."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from phases import tick_values
from phases.checks import REGISTRY, StepKind
from phases.checks.base import StepParams
from phases.runbook.fields import Value
from phases.runbook.steps import StepSpec
from phases.yaml_loader import RunbookError

if TYPE_CHECKING:
    from phases.runbook.model import Runbook


class _Template(string.Formatter):
    def __init__(self, values: Mapping[str, Value]) -> None:
        self.values = values

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, int) or key not in self.values:
            known = ", ".join(sorted(self.values))
            raise RunbookError(f"unknown placeholder {{{key}}}; known: {known}")
        value = self.values[key]
        if isinstance(value, list):
            raise RunbookError(f"{{{key}}} is a list: use it alone as a whole list item")
        return value


WHOLE_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def render(value: Any, values: Mapping[str, Value]) -> Any:
    """Fills {placeholders} in every string of a parameter tree; {{ and }} are literal braces.

    A list item that is exactly "{name}" of a list value is spliced in, so an
    argv can start with a command that is itself several words.
    """
    if isinstance(value, str):
        whole = WHOLE_PLACEHOLDER.match(value)
        if whole and isinstance(values.get(whole.group(1)), list):
            return list(values[whole.group(1)])
        return _Template(values).vformat(value, (), {})
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            rendered = render(item, values)
            if isinstance(item, str) and isinstance(rendered, list):
                out.extend(rendered)
            else:
                out.append(rendered)
        return out
    if isinstance(value, dict):
        return {k: render(v, values) for k, v in value.items()}
    return value


def resolve_step(step: StepSpec, values: Mapping[str, Value]) -> tuple[StepKind[Any], StepParams]:
    """The step's kind and its parameters rendered for one environment and validated."""
    kind = REGISTRY.get(step.kind)
    if kind is None:
        known = ", ".join(sorted(REGISTRY))
        raise RunbookError(f"unknown kind {step.kind!r}; known kinds: {known}")
    rendered = render(step.params, values)
    try:
        return kind, kind.params.model_validate(rendered)
    except ValidationError as exc:
        raise RunbookError(describe_error(exc, prefix="params")) from None


def describe_error(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"]))
        lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)


# Values a run fills in as it goes (bot/engine/core.py `context`): the runbook may use them,
# so validation gives them stand-in values.
RUN_PLACEHOLDERS: dict[str, Value] = {
    "run_backup": "/path/of/this/runs/verified/backup.dump",
    "run_backup_sha256": "0" * 64,
}


def tick_placeholders(runbook: Runbook) -> dict[str, Value]:
    """What validation and preflight fill `{tick/ITEM/NAME}` with (a value a tick gives)."""
    return {
        tick_values.key(m.id, m.value.name): tick_values.stand_in(m.value)
        for p in runbook.phases
        for m in p.manual
        if m.value
    }
