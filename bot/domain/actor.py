"""Who acts: one person is one identity, whichever workspace or surface they act from.

A Slack person is team id + user id. On Enterprise Grid a `W…` user id is org-wide: the same
person typing in a second workspace arrives with another team id, so such an identity is
enterprise id + user id instead (`E0ORG:W0ALICE`), and a slash command typed in workspace B
and a click from the user's home workspace A are one actor. Names are display only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """`id` is the identity the rules compare: E…:W…, T…:U…, console:NAME or system."""

    id: str
    name: str | None = None
    groups: frozenset[str] = frozenset()  # user groups the surface resolved for this request
    team: str | None = None  # the workspace the request came from (Slack)
    enterprise: str | None = None  # the Enterprise Grid org, when there is one

    @classmethod
    def slack(
        cls,
        team: str,
        user: str,
        *,
        enterprise: str | None = None,
        name: str | None = None,
        groups: frozenset[str] = frozenset(),
    ) -> Actor:
        org_wide = bool(enterprise) and user.startswith("W")
        qualifier = enterprise if org_wide else team
        return cls(f"{qualifier}:{user}", name, groups, team=team, enterprise=enterprise or None)

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def user(self) -> str:
        return self.id.partition(":")[2] or self.id

    def is_(self, entry: str) -> bool:
        """True if the qualified id `entry` (PREFIX:USER) names this person.

        PREFIX may be the team or the enterprise. An org-wide `W…` id is the same person in
        every workspace of the enterprise, so `T0HOME:W0ALICE` also matches Alice acting
        from another workspace of her org.
        """
        prefix, _, user = entry.partition(":")
        if not user:
            return entry == self.id
        if entry == self.id:
            return True
        if user != self.user or prefix == "console" or self.id.startswith("console:"):
            return False
        # A W… id is org-wide and Slack's ids are unique: the same W… id is the same person,
        # even on a payload that left the enterprise out (fails closed for self-approval).
        return prefix in (self.team, self.enterprise) or user.startswith("W")

    def in_workspace(self, workspace: str | None) -> bool:
        """True if the actor belongs to `workspace` (a team id or an enterprise id)."""
        return (
            workspace is None
            or workspace in (self.team, self.enterprise)
            or (self.id.partition(":")[0] == workspace)
        )


SYSTEM = Actor("system", "cutover-bot")
