"""${VAR}s: which of the bot's environment variables a runbook may read, and filling them in."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping

from phases.yaml_loader import RunbookError

ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# ${VAR}s a runbook may read without listing them under `variables:`.
RUNBOOK_VAR_PREFIX = "CUTOVER_RUNBOOK_"
# The bot's own settings and credentials (bot/settings.py: CUTOVER_*, SLACK_*; its database
# through DATABASE_URL or libpq's PG*): a runbook never reads them, listed or not. A step
# that could read them could send the signing secret anywhere, or approve its own gate.
_RESERVED_PREFIXES = ("SLACK_", "CUTOVER_", "PG")
_RESERVED_NAMES = frozenset({"DATABASE_URL"})


def reserved_variable(name: str) -> bool:
    """True for the bot's own settings and credentials (never readable by a runbook)."""
    upper = name.upper()
    if upper.startswith(RUNBOOK_VAR_PREFIX):
        return False
    return upper in _RESERVED_NAMES or upper.startswith(_RESERVED_PREFIXES)


def variable_refusal(name: str, variables: Collection[str]) -> str | None:
    """Why a runbook may not read ${name}, with what to write instead; None if it may."""
    if reserved_variable(name):
        stem = re.sub(r"^(SLACK_|CUTOVER_|PG)", "", name.upper()) or "VALUE"
        return (
            f"${{{name}}} is one of the bot's own settings or credentials; a runbook never "
            f"reads those (its steps could send them anywhere). Give the target its own "
            f"variable, e.g. ${{{RUNBOOK_VAR_PREFIX}{stem}}}, set in the bot's environment"
        )
    if name.startswith(RUNBOOK_VAR_PREFIX) or name in variables:
        return None
    return (
        f"${{{name}}} is not a variable this runbook may read: list it at the top of the "
        f"runbook (variables: [{name}]) or name it {RUNBOOK_VAR_PREFIX}{name}"
    )


def expand_env_vars(
    value: str, environ: Mapping[str, str] | None = None, variables: Collection[str] = ()
) -> str:
    """`value` with each ${VAR} filled from the environment; a variable the runbook may not
    read (`variable_refusal`) or that is unset is a RunbookError, never an empty string."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        refusal = variable_refusal(name, variables)
        if refusal:
            raise RunbookError(refusal)
        if name not in env:
            raise RunbookError(
                f"${{{name}}} is used by the runbook but not set in the bot's environment"
            )
        return env[name]

    return ENV_VAR.sub(sub, value)
