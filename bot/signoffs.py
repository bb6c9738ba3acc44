"""The sign-off state of a run, read from its audit trail: which success criteria bound to
`signoff` an approver has vouched for, who and when. Surfaces draw it (Slack's sign-off
message, the console's text); the record reads the same rows (`bot.record`). The rows are
read by the store (bot/store/read_signoffs.py); this module holds the plain data and texts.

Sign-offs are asked for when the run's last phase begins (for NostrMaxi, Phase 9's 30
minutes of monitoring): the cutover is live, people can check what only a person can, and
the record posted when the run completes shows their sign-offs.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import approvals

# A criterion can be signed off while the run goes on (bot.domain.approvals owns the rule).
SIGNABLE = approvals.SIGNABLE


@dataclass(frozen=True)
class Signature:
    actor: str
    at: str  # ISO 8601 UTC, as the audit row has it
    note: str = ""


@dataclass(frozen=True)
class CriterionSignoff:
    id: str
    text: str
    signatures: tuple[Signature, ...] = ()


@dataclass(frozen=True)
class RunSignoffState:
    """The completed run's sign-off, as its rows say: who was asked (run.signoff_requested),
    how many must sign, and who did, when (run.signed_off), in order."""

    by: tuple[str, ...]
    groups: tuple[str, ...]
    quorum: int
    signatures: tuple[Signature, ...] = ()

    @property
    def done(self) -> bool:
        return len(self.signatures) >= self.quorum

    def awaited(self) -> str:
        """Who may still sign: the named people who have not, and the groups."""
        signed = {s.actor for s in self.signatures}
        people = [p for p in self.by if p not in signed]
        groups = [f"a member of {g}" for g in self.groups]
        return " or ".join(x for x in (", ".join(people), ", ".join(groups)) if x)


@dataclass(frozen=True)
class SignoffView:
    run_id: int
    environment: str
    status: str
    criteria: tuple[CriterionSignoff, ...]
    run: RunSignoffState | None = None  # the completed run's own sign-off, once asked

    @property
    def signable(self) -> bool:
        return self.status in SIGNABLE

    @property
    def done(self) -> bool:
        return all(c.signatures for c in self.criteria)

    @property
    def run_signable(self) -> bool:
        return self.run is not None and self.status == "completed" and not self.run.done


def refusal_for(status: str, run_id: int) -> str | None:
    """Why a run in `status` takes no sign-off, or None."""
    return approvals.signoff_refusal(run_id, status)


def run_signoff_text(run_id: int, state: RunSignoffState) -> str:
    """The completed run's sign-off as text, for a surface without buttons (the console)."""
    signed = "; ".join(f"{s.actor} at {s.at[11:16]} UTC" for s in state.signatures)
    if state.done:
        return f"✍️ Run #{run_id} is signed off by {signed} ({state.quorum} needed)."
    so_far = f"; signed so far: {signed}" if signed else ""
    return (
        f"✍️ Sign-off of run #{run_id}: {state.quorum - len(state.signatures)} more of "
        f"{state.awaited()} to sign it off with `/cutover signoff {run_id} [--note TEXT]`"
        f"{so_far}."
    )


def signoff_text(view: SignoffView) -> str:
    """The sign-off request as text, for a surface without buttons (the console)."""
    lines = [
        f"✍️ Sign-off for run #{view.run_id} ({view.environment}): an approver vouches for "
        "each of these; the record shows who signed what."
    ]
    for c in view.criteria:
        if c.signatures:
            who = ", ".join(f"{s.actor} at {s.at[11:16]} UTC" for s in c.signatures)
            lines.append(f"✅ {c.text} — signed off by {who}")
        else:
            lines.append(f"❔ {c.text} — `/cutover signoff {view.run_id} {c.id} [--note TEXT]`")
    return "\n".join(lines)
