"""The runbook file format's version, and the names it renamed.

A runbook may say `format: 1` (no `format:` means 1). A format this bot does not read (a
newer runbook given to an older bot) is refused before anything else is read, with what this
bot supports: read as format 1 it would fail on fields it does not know, or worse, run with
one it misread. (`version:` is the runbook's own version, as its authors number it.)

A name the format renamed stays readable: an older runbook is read as the new name says, and
`cutover runbook check` warns of each place with the line to write instead. RENAMES is the
history: README.md ("Runbook format and versions") lists the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phases.yaml_loader import RunbookError

FORMAT = 1  # the format this bot writes about and reads
SUPPORTED = (1,)


@dataclass(frozen=True)
class KindRename:
    """A step kind renamed: `old` read as `new` where `applies(params)` says the step is
    written for the old meaning (a name may have been given to something else since)."""

    old: str
    new: str
    since: str  # the change that renamed it
    why: str
    applies: Callable[[dict[str, Any]], bool]


def _old_backup_check(params: dict[str, Any]) -> bool:
    """The backup-age check's parameters, none of the pg_dump action's."""
    return not {"database_url", "dir"} & set(params) and bool(
        {"path", "pattern", "max_age_minutes"} & set(params)
    )


RENAMES = (
    KindRename(
        "backup",
        "backup_age",
        "bbde71f",
        "the `backup` name went to the pg_dump action",
        _old_backup_check,
    ),
)


def check_format(data: dict[str, Any], source: str) -> None:
    """Refuses a format this bot does not read; removes `format:` (the model has no field:
    it is about the file, not the cutover, and the runbook's digest stays as it was)."""
    value = data.pop("format", FORMAT)
    supported = ", ".join(str(v) for v in SUPPORTED)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RunbookError(
            f"{source}: format: {value!r} is not a format number; write format: {FORMAT} "
            f"(this cutover reads runbook format {supported})"
        )
    if value not in SUPPORTED:
        newer = value > max(SUPPORTED)
        raise RunbookError(
            f"{source}: runbook format {value} is "
            + ("newer than this cutover reads" if newer else "not one this cutover reads")
            + f" (it reads format {supported})"
            + (
                ": upgrade cutover-bot to one that reads it, or write the runbook in format "
                f"{FORMAT}"
                if newer
                else f": write format: {FORMAT}"
            )
        )


def read_renamed(data: Any, where: str = "") -> list[str]:
    """Rewrites, in place, every step written with a renamed kind to the new name; returns a
    deprecation warning for each, naming the step and what to write instead."""
    warnings: list[str] = []
    if isinstance(data, list):
        for i, item in enumerate(data):
            warnings += read_renamed(item, f"{where}[{i}]")
    elif isinstance(data, dict):
        kind, params = data.get("kind"), data.get("params")
        for rename in RENAMES:
            if kind == rename.old and "id" in data and rename.applies(params or {}):
                data["kind"] = rename.new
                warnings.append(
                    f"{where.lstrip(' >')} (step {data['id']!r}): kind {rename.old!r} was "
                    f"renamed {rename.new!r} ({rename.why}); read as {rename.new!r}. "
                    f"Write kind: {rename.new} — a later format may stop reading the old name"
                )
        for key, value in data.items():
            if isinstance(value, list | dict):
                warnings += read_renamed(value, f"{where} > {key}")
    return warnings
