"""The record's Sign-Off line: who signed the completed run off and when, or who is still
awaited, from the run's `run.signoff_requested` and `run.signed_off` rows only. Nothing is
inferred: a run whose environment named nobody says no sign-off was asked, never who
approved its last checkpoint.

A run with a ❌ criterion keeps the golden rule's line ("not signed off: success criteria
not met: …", naming who went on past each): it shows a sign-off only when every unmet
criterion was gone past by an approver's decision and the people named signed it off, and
then it still names the unmet criteria.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.signoffs import RunSignoffState, Signature


def state_from_rows(
    asked: dict[str, Any] | None, signed: Sequence[dict[str, Any]]
) -> RunSignoffState | None:
    """The sign-off state as the record's trail rows give it (rows with "actor", "at")."""
    if asked is None:
        return None
    return RunSignoffState(
        tuple(str(x) for x in asked.get("by") or ()),
        tuple(str(x) for x in asked.get("groups") or ()),
        int(asked.get("quorum") or 1),
        tuple(Signature(str(r["actor"]), str(r["at"]), str(r.get("note") or "")) for r in signed),
    )


def _who(state: RunSignoffState) -> str:
    return ", ".join(f"{s.actor} at {s.at[11:16]} UTC" for s in state.signatures)


def _awaiting(state: RunSignoffState) -> str:
    left = state.quorum - len(state.signatures)
    so_far = f"; signed so far: {_who(state)}" if state.signatures else ""
    return f"awaiting {left} more of {state.awaited()}{so_far}"


def sign_off_line(
    *,
    status: str,
    dry_run: bool,
    environment: str,
    state: RunSignoffState | None,
    unmet: Sequence[str],
    undecided: bool,
) -> str:
    """`unmet`: each ❌ criterion with who went on past it ("health (continued past by …)");
    `undecided`: one of them was gone past by nobody's decision."""
    if status != "completed":
        return f"— (not signed off: run {status.replace('_', ' ')})"
    if unmet:
        base = "success criteria not met: " + "; ".join(unmet)
        if state is None or undecided:
            return f"— (not signed off: {base})"
        if state.done:
            return f"{_who(state)} (signed off, {state.quorum} needed; {base})"
        return f"— (not signed off: {base}; {_awaiting(state)})"
    if dry_run:
        return "— (no sign-off asked: a dry run)"
    if state is None:
        return f"— (no sign-off asked: the runbook names nobody to sign off {environment})"
    if state.done:
        return f"{_who(state)} (signed off, {state.quorum} needed)"
    return f"— (not signed off: {_awaiting(state)})"
