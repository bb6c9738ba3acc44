"""Who may mark a post-cutover task done (bot/domain/post_task_rules.py), as a table with no
database: the owner (a user, or a member of the owning group) or an approver; nobody else,
never the bot."""

from __future__ import annotations

import pytest

from bot.domain.actor import SYSTEM, Actor
from bot.domain.post_task_rules import may_mark_done, qualified_owner
from phases.runbook import EnvironmentSpec

ENV = EnvironmentSpec(
    domain="x.test", base_url="https://x.test", slack_team="T1", approvers=["U1", "U2"]
)


@pytest.mark.parametrize(
    ("actor", "owner", "allowed", "role"),
    [
        (Actor("T1:U3"), "T1:U3", True, "owner"),
        (Actor("T1:U4", groups=frozenset({"S0OPS"})), "S0OPS", True, "owner"),
        (Actor("T1:U2"), "T1:U3", True, "approver"),
        (Actor("T1:U2"), None, True, "approver"),
        (Actor("T1:U9"), "T1:U3", False, ""),
        (Actor("T1:U9"), "S0OPS", False, ""),
        (Actor("T2:U3"), "T1:U3", False, ""),  # the same user id in another workspace
        (SYSTEM, None, False, ""),
    ],
)
def test_who_may_mark_a_task_done(
    actor: Actor, owner: str | None, allowed: bool, role: str
) -> None:
    refusal, why = may_mark_done("prod", ENV, actor, owner, "Announce")
    assert (refusal is None, why) == (allowed, role)
    if not allowed:
        assert refusal is not None and refusal.endswith(
            "may mark 'Announce' done; nothing was recorded"
        )


def test_a_bare_owner_id_takes_the_environments_workspace() -> None:
    assert qualified_owner("U3", ENV) == "T1:U3"
    assert qualified_owner("S0OPS", ENV) == "S0OPS"
    assert qualified_owner("console:olga", ENV) == "console:olga"
