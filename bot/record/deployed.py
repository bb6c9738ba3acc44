"""What was deployed (the `deployed` step's artifact): its commit and running images."""

from __future__ import annotations

from typing import Any

from bot.record.trail import Trail
from phases.checks.deployed import image_line


def deployed_artifact(t: Trail) -> dict[str, Any] | None:
    """The last `deployed` step's artifact in the run's trail (a retried phase: its last)."""
    found = [
        st["artifact"]
        for st in t.steps
        if isinstance(st.get("artifact"), dict) and st["artifact"].get("type") == "deployed"
    ]
    return found[-1] if found else None


def deployed_lines(deployed: dict[str, Any] | None, expected: bool) -> list[str]:
    """The record's "Deployed" lines: the commit, then one line per running image."""
    if deployed is None:
        return (
            ["Deployed: not captured (the run never reached its deployed step)"] if expected else []
        )
    commit = deployed.get("commit") or "unknown (no git commit found)"
    lines = [f"Deployed: commit {commit} of {deployed.get('repo', '?')}"]
    images = deployed.get("images") or []
    if not images:
        lines.append(f"- no running container of {deployed.get('project', '?')} was seen")
    lines += [f"- {image_line(img)}" for img in images]
    return lines
