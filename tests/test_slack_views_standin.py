"""The stand-in refuses views and lookups as Slack does, so a test that passes against it does
not fail only in a real workspace: trigger_ids single-use and good for 3 s, the view object's
limits, Home views, and an org-wide token's usergroups lookup without team_id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack import modals
from bot.slack.modals import FormMeta
from standins.slack import SlackStandIn
from tests.slack_harness import TOKEN


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    s = SlackStandIn(TOKEN, rate_limits=False).start()
    yield s
    s.stop()


def client(standin: SlackStandIn) -> WebClient:
    return WebClient(token=TOKEN, base_url=standin.api_url, retry_handlers=[])


def modal(**over: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Roll back run #1"},
        "submit": {"type": "plain_text", "text": "Roll back"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why?"},
                "element": {"type": "plain_text_input", "action_id": "reason"},
            }
        ],
    }
    view.update(over)
    return view


def error_of(call: Any) -> tuple[str, list[str]]:
    with pytest.raises(SlackApiError) as err:
        call()
    data = err.value.response.data
    assert isinstance(data, dict)
    return str(data["error"]), list((data.get("response_metadata") or {}).get("messages") or [])


def test_a_trigger_id_opens_one_view_once(standin: SlackStandIn) -> None:
    web = client(standin)
    trigger = standin.trigger("U1")
    assert web.views_open(trigger_id=trigger, view=modal())["ok"]
    assert error_of(lambda: web.views_open(trigger_id=trigger, view=modal()))[0] == (
        "exchanged_trigger_id"
    )


def test_a_trigger_id_expires_after_three_seconds(standin: SlackStandIn) -> None:
    trigger = standin.trigger("U1")
    time.sleep(3.1)
    assert error_of(lambda: client(standin).views_open(trigger_id=trigger, view=modal()))[0] == (
        "expired_trigger_id"
    )


def test_a_trigger_id_slack_never_issued_is_invalid(standin: SlackStandIn) -> None:
    web = client(standin)
    for trigger in ("12345.98765.abcd2358fdea", "not-a-trigger"):
        assert error_of(lambda t=trigger: web.views_open(trigger_id=t, view=modal()))[0] == (
            "invalid_trigger_id"
        )


@pytest.mark.parametrize(
    "over,pointer",
    [
        ({"title": {"type": "plain_text", "text": "A title of twenty-five ch"}}, "/view/title"),
        ({"title": {"type": "mrkdwn", "text": "*bold*"}}, "/view/title"),
        ({"submit": {"type": "plain_text", "text": "x" * 25}}, "/view/submit"),
        ({"private_metadata": "x" * 3001}, "/view/private_metadata"),
        ({"callback_id": "x" * 256}, "/view/callback_id"),
        ({"blocks": [{"type": "divider"}] * 101}, "/view/blocks"),
        ({"submit": None}, "/view/submit"),
        ({"type": "home"}, "/view/type"),
        ({"blocks": [{"type": "input", "label": {"type": "plain_text", "text": "x"}}]}, "/view"),
    ],
)
def test_a_view_past_its_limits_or_malformed_is_refused(
    standin: SlackStandIn, over: dict[str, Any], pointer: str
) -> None:
    view = modal(**over)
    if view.get("submit") is None:
        view.pop("submit")
    trigger = standin.trigger("U1")
    error, messages = error_of(lambda: client(standin).views_open(trigger_id=trigger, view=view))
    assert error == "invalid_arguments"
    assert any(pointer in m for m in messages), messages
    # A refused view does not use the trigger up.
    assert client(standin).views_open(trigger_id=trigger, view=modal())["ok"]


def test_the_bots_own_forms_fit_the_view_limits_even_with_a_long_response_url() -> None:
    meta = FormMeta("rollback", "T1:U1", 12, 1, 3, "x" * 40, "C0CUTOVER", "https://" + "u" * 4000)
    same = str
    forms = [
        modals.rollback_form(meta, "9 (a phase with a very long name indeed)", True, same),
        modals.rollback_form(meta, "", False, same, abort=True),
        modals.comment_form(meta, "1 (x)", same),
        modals.schedule_form(meta, [f"env{i}" for i in range(150)], same, today=_now()),
    ]
    from standins.slack import view_problems

    for form in forms:
        assert view_problems(form, "modal") == []
        assert FormMeta.decode(form["private_metadata"]) is not None


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_views_publish_takes_a_home_view_and_refuses_what_slack_refuses(
    standin: SlackStandIn,
) -> None:
    web = client(standin)
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
    }
    assert web.views_publish(user_id="U1", view=home)["ok"]
    assert standin.home("U1") == home
    assert error_of(lambda: web.views_publish(user_id="U1", view=modal()))[0] == (
        "invalid_arguments"
    )
    assert error_of(lambda: web.views_publish(user_id="nobody", view=home))[0] == (
        "invalid_arguments"
    )
    too_many = {**home, "blocks": home["blocks"] * 101}
    assert error_of(lambda: web.views_publish(user_id="U1", view=too_many))[0] == (
        "invalid_arguments"
    )
    # within every block limit, but over 250 kB in all, sent as slack_sdk sends it (JSON body)
    huge = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}}] * 100,
    }
    assert error_of(lambda: web.views_publish(user_id="U1", view=huge))[0] == "view_too_large"
    standin.home_tab = False
    assert error_of(lambda: web.views_publish(user_id="U1", view=home))[0] == "not_enabled"


def test_an_org_token_lookup_of_a_user_group_needs_team_id() -> None:
    standin = SlackStandIn(TOKEN, org_token=True, rate_limits=False).start()
    try:
        standin.usergroups["S0APPROVERS"] = ["W0ALICE"]
        web = client(standin)
        error, messages = error_of(lambda: web.usergroups_users_list(usergroup="S0APPROVERS"))
        assert error == "missing_argument" and "team_id" in messages[0]
        answer = web.usergroups_users_list(usergroup="S0APPROVERS", team_id="T1")
        assert answer["users"] == ["W0ALICE"]
    finally:
        standin.stop()


def test_conversations_members_pages_and_refuses_what_slack_refuses(
    standin: SlackStandIn,
) -> None:
    """As Slack: a channel id only (a #name is no channel), a private channel the bot is not
    in does not exist for it, and the list comes in pages of at most `limit`."""
    people = tuple(f"U{i:03d}" for i in range(5))
    standin.add_channel("G0SECRET", "secret", private=True, member=False, members=people)
    standin.add_channel("G0ROOM", "room", private=True, members=people)
    web = client(standin)
    first = web.conversations_members(channel="G0ROOM", limit=2)
    assert first["members"] == ["U000", "U001"]
    cursor = first["response_metadata"]["next_cursor"]
    assert cursor
    rest = web.conversations_members(channel="G0ROOM", limit=1000, cursor=cursor)
    assert rest["members"] == ["U002", "U003", "U004"]
    assert rest["response_metadata"]["next_cursor"] == ""
    for channel in ("G0SECRET", "#room", "C0NOSUCH"):
        with pytest.raises(SlackApiError) as refused:
            web.conversations_members(channel=channel)
        assert refused.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as bad:
        web.conversations_members(channel="G0ROOM", limit=1001)
    assert bad.value.response["error"] == "invalid_limit"


def test_views_publish_with_a_hash_other_than_the_views_is_a_hash_conflict(
    standin: SlackStandIn,
) -> None:
    """views.publish's `hash` ("protect against possible race conditions"): each publish gets a
    new one; a publish carrying an older one is refused and changes nothing."""
    web = client(standin)

    def home(text: str) -> dict[str, Any]:
        return {
            "type": "home",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }

    first = web.views_publish(user_id="U1", view=home("one"))["view"]["hash"]
    second = web.views_publish(user_id="U1", view=home("two"), hash=first)["view"]["hash"]
    assert second != first
    stale = error_of(lambda: web.views_publish(user_id="U1", view=home("old"), hash=first))
    assert stale[0] == "hash_conflict"
    assert standin.home("U1") == home("two")
    assert [view for user, view, _ in standin.published] == [home("one"), home("two")]
