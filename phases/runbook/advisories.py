"""What `cutover runbook check` points out without refusing: deprecated names, channels, quorums."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phases.runbook.model import Runbook

_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")  # a Slack channel id, not a #name
_PRODUCTION_LIKE = re.compile(r"^(prod|production|prd|live)([-_].*)?$")


def runbook_warnings(runbook: Runbook) -> list[str]:
    """What `runbook check` points out without refusing: a production-like environment
    with no stakeholders channel tells no stakeholder of a start nobody scheduled; a
    channel given by name breaks when it is renamed (the bot looks the name up once per
    process) and cannot be posted to with an org-wide token."""
    out = [f"deprecated: {line}" for line in runbook._deprecated]
    out += [
        f"environment {name!r} looks like production but has no stakeholders channel: "
        "a start without a schedule (or a schedule without --stakeholders) tells no "
        'stakeholder; add stakeholders: "#channel" to it'
        for name, env in sorted(runbook.environments.items())
        if _PRODUCTION_LIKE.match(name) and not env.stakeholders
    ]
    for name, env in sorted(runbook.environments.items()):
        for key in ("channel", "stakeholders"):
            value = getattr(env, key)
            if value and not _CHANNEL_ID.fullmatch(value) and "${" not in value:
                out.append(
                    f"environment {name!r}: {key} {value!r} is given by name; the bot "
                    "looks it up once, but a rename before that breaks it and an "
                    "org-wide token cannot use names: write the channel id instead "
                    "(open the channel, click its name: the Channel ID is at the bottom, "
                    "e.g. C0123ABCD), with the name in a comment: "
                    f'{key}: "C0123ABCD"  # {value}'
                )
    if runbook.overrides_possible():  # the default quorum + 1: no break-glass there
        out += [
            f"environment {name!r}: {problem}: no override is possible there"
            for name, env in sorted(runbook.environments.items())
            if env.override_quorum is None and (problem := env.override_problem())
        ]
    return out
