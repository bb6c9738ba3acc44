"""Who may do what, table by table: the pure functions of bot/domain/approvals.py, with no
database and no surface. Each row reads as the rule it checks."""

from __future__ import annotations

from typing import Any

import pytest

from bot.domain import approvals
from bot.domain.actor import Actor
from phases.runbook import EnvironmentSpec


def env(**kw: Any) -> EnvironmentSpec:
    base: dict[str, Any] = {"domain": "prod.test", "base_url": "https://prod.test"}
    base.setdefault("approvers", ["T1:U1", "T1:U2"])
    return EnvironmentSpec(**{**base, **kw})


GRID = {"approvers": ["W111", "W222"], "slack_team": "T111"}
ALICE = Actor.slack("T1", "U1")
BOB = Actor.slack("T1", "U2")
MALLORY = Actor.slack("T1", "U9")


# ------------------------------------------------------------ Enterprise Grid approvers


@pytest.mark.parametrize(
    ("spec", "actor", "approver"),
    [
        # W… listed with a workspace slack_team: the same person from any workspace of the org
        (GRID, Actor.slack("T111", "W111", enterprise="E111"), True),
        (GRID, Actor.slack("T222", "W111", enterprise="E111"), True),
        (GRID, Actor.slack("T111", "W111"), True),  # its own workspace, no enterprise said
        # without an enterprise in the payload, another workspace proves nothing
        (GRID, Actor.slack("T222", "W111"), False),
        # not listed
        (GRID, Actor.slack("T111", "W999", enterprise="E111"), False),
        # a U… id is one workspace's user: the same letters elsewhere are someone else
        ({"approvers": ["U111"], "slack_team": "T111"}, Actor.slack("T222", "U111"), False),
        (
            {"approvers": ["U111"], "slack_team": "T111"},
            Actor.slack("T222", "U111", enterprise="E111"),
            False,
        ),
        # written with the enterprise: only that enterprise counts
        ({"approvers": ["E111:W111"]}, Actor.slack("T222", "W111", enterprise="E111"), True),
        ({"approvers": ["E111:W111"]}, Actor.slack("T999", "W111", enterprise="E999"), False),
        (
            {"approvers": ["W111"], "slack_team": "E111"},
            Actor.slack("T999", "W111", enterprise="E999"),
            False,
        ),
        # a display name is never an identity
        (GRID, Actor.slack("T222", "W999", enterprise="E111", name="W111"), False),
    ],
)
def test_who_is_an_approver_on_enterprise_grid(
    spec: dict[str, Any], actor: Actor, approver: bool
) -> None:
    assert approvals.is_approver(env(**spec), actor) is approver


@pytest.mark.parametrize(
    ("spec", "actor", "listed"),
    [
        (GRID, Actor.slack("T222", "W111", enterprise="E111"), True),
        (GRID, Actor.slack("T222", "W111"), False),
        ({"approvers": ["E111:W111"]}, Actor.slack("T999", "W111", enterprise="E999"), False),
        # a member of an approver group is an approver, but not listed: the group is asked
        (
            {"approvers": [], "approver_groups": ["S1"]},
            Actor.slack("T1", "U1", groups=frozenset({"S1"})),
            False,
        ),
    ],
)
def test_who_is_an_approver_by_id_alone(spec: dict[str, Any], actor: Actor, listed: bool) -> None:
    """`is_listed`: what the Slack surface asks before it reads any approver group."""
    assert approvals.is_listed(env(**spec), actor) is listed


# ------------------------------------------------------------------------ sign-offs


@pytest.mark.parametrize(
    ("self_approval", "actor", "requested_by", "refusal"),
    [
        (True, ALICE, "T1:U1", None),
        (False, BOB, "T1:U1", None),
        (False, ALICE, "T1:U1", approvals.SELF_SIGNOFF),
        (False, MALLORY, "T1:U1", "you are not an approver for prod; nothing was changed"),
        (True, MALLORY, "T1:U2", "you are not an approver for prod; nothing was changed"),
    ],
)
def test_who_may_sign_off(
    self_approval: bool, actor: Actor, requested_by: str, refusal: str | None
) -> None:
    spec = env(approvers=["T1:U1", "T1:U2", "T1:U3"], allow_self_approval=self_approval)
    assert approvals.may_sign_off("prod", spec, actor, requested_by) == refusal


def test_a_grid_requester_may_not_sign_off_from_another_workspace() -> None:
    spec = env(**GRID, allow_self_approval=False, quorum=1)
    from_b = Actor.slack("T222", "W111", enterprise="E111")
    assert approvals.may_sign_off("prod", spec, from_b, "E111:W111") == approvals.SELF_SIGNOFF


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        ("running", None),
        ("waiting", None),
        (
            "completed",
            "run #7 has ended (completed): sign-offs are taken while it runs; nothing was recorded",
        ),
        (
            "rolling_back",
            "run #7 is rolling back: there is nothing to sign off; nothing was recorded",
        ),
        (
            "rolled_back",
            "run #7 is rolled back: there is nothing to sign off; nothing was recorded",
        ),
        ("cancelled", "run #7 is cancelled: there is nothing to sign off; nothing was recorded"),
    ],
)
def test_which_runs_take_sign_offs(status: str, refusal: str | None) -> None:
    assert approvals.signoff_refusal(7, status) == refusal


# ------------------------------------------------------------- ticks that gate Start


@pytest.mark.parametrize(
    ("self_approval", "tickers", "starter", "counts"),
    [
        (True, ["T1:U1"], ALICE, True),  # allowed: the starter's own tick counts
        (False, ["T1:U1"], ALICE, False),  # forbidden: only the starter ticked it
        (False, ["T1:U1"], BOB, True),  # someone else starts on Alice's tick
        (False, ["T1:U1", "T1:U2"], ALICE, True),  # Bob ticked it too
        (False, ["T1:U2"], ALICE, True),
        (False, [], ALICE, False),  # nobody ticked it
    ],
)
def test_whose_ticks_count_for_a_start(
    self_approval: bool, tickers: list[str], starter: Actor, counts: bool
) -> None:
    spec = env(approvers=["T1:U1", "T1:U2", "T1:U3"], allow_self_approval=self_approval)
    assert approvals.start_tick_counts(spec, tickers, starter) is counts


# ------------------------------------------------------------------------ the Home tab


@pytest.mark.parametrize(
    ("spec", "actor", "in_channel", "sees"),
    [
        ({"slack_team": "T1"}, ALICE, False, True),  # an approver, in the channel or not
        ({"slack_team": "T1"}, MALLORY, True, True),  # in the channel the run posts in
        ({"slack_team": "T1"}, MALLORY, False, False),  # neither
        ({"slack_team": "T1"}, Actor.slack("T2", "U9"), True, False),  # another workspace
        ({}, MALLORY, True, True),  # no slack_team: the channel decides
        ({"slack_team": "E1"}, Actor.slack("T5", "W9", enterprise="E1"), True, True),
        (GRID, Actor.slack("T222", "W222", enterprise="E111"), False, True),
    ],
)
def test_who_sees_an_environment_on_home(
    spec: dict[str, Any], actor: Actor, in_channel: bool, sees: bool
) -> None:
    assert approvals.may_see(env(**spec), actor, lambda: in_channel) is sees


def test_an_approver_is_shown_home_without_a_channel_lookup() -> None:
    def lookup() -> bool:
        raise AssertionError("the channel was looked up for an approver")

    assert approvals.may_see(env(slack_team="T1"), ALICE, lookup) is True
