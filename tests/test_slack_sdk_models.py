"""The stand-in reads every drawn message and view with slack_sdk's own Block Kit models
(`Block.parse(...).to_dict()`, `View(**view).to_dict()`), so a field the SDK would refuse
fails a test against the stand-in, not a live post (issue 25 #5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from standins.slack import SlackStandIn
from tests.slack_harness import TOKEN


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    s = SlackStandIn(TOKEN, rate_limits=False).start()
    yield s
    s.stop()


def client(standin: SlackStandIn) -> WebClient:
    return WebClient(token=TOKEN, base_url=standin.api_url, retry_handlers=[])


def refusal(call: Any) -> tuple[str, list[str]]:
    with pytest.raises(SlackApiError) as err:
        call()
    data = err.value.response.data
    assert isinstance(data, dict)
    messages = data.get("errors") or (data.get("response_metadata") or {}).get("messages") or []
    return str(data["error"]), [str(m) for m in messages]


def button(**over: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": "Continue"},
        "action_id": "go",
        "value": "1",
        **over,
    }


def section(text: str = "Checkpoint", **over: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **over}


# Over-long fields, each with what slack_sdk says of it. The last three are limits the
# stand-in's hand-written checks do not look at: only the SDK's models catch them.
OVER_LONG = [
    ([{"type": "actions", "elements": [button(text={"type": "plain_text", "text": "x" * 76})]}],
     "text attribute cannot exceed 75 characters"),
    ([section("x" * 3001)], "text attribute cannot exceed 3000 characters"),
    ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
     "text attribute cannot exceed 150 characters"),
    ([section(accessory=button(url="https://runbook.test/" + "a" * 3000))],
     "url attribute cannot exceed 3000 characters"),
    ([section(accessory=button(accessibility_label="a" * 76))],
     "accessibility_label attribute cannot exceed 75 characters"),
    ([{"type": "image", "image_url": "https://runbook.test/a.png", "alt_text": "x" * 2001}],
     "alt_text attribute cannot exceed 2000 characters"),
]  # fmt: skip


@pytest.mark.parametrize("blocks,said", OVER_LONG)
def test_a_message_with_a_field_the_sdk_refuses_is_refused_as_invalid_blocks(
    standin: SlackStandIn, blocks: list[dict[str, Any]], said: str
) -> None:
    web = client(standin)
    posted = web.chat_postMessage(channel="C0CUTOVER", text="ok", blocks=[section()])["ts"]
    for call in (
        lambda: web.chat_postMessage(channel="C0CUTOVER", text="fallback", blocks=blocks),
        lambda: web.chat_update(channel="C0CUTOVER", ts=posted, text="fallback", blocks=blocks),
    ):
        error, messages = refusal(call)
        assert error == "invalid_blocks"
        assert any(m.startswith("blocks[0]: slack_sdk: ") and said in m for m in messages), messages
    assert any("invalid_blocks" in p for p in standin.problems)  # a test's problems list sees it


def test_a_block_type_the_sdk_does_not_know_is_refused(standin: SlackStandIn) -> None:
    blocks = [section(), {"type": "poll", "text": "x"}]
    error, messages = refusal(
        lambda: client(standin).chat_postMessage(channel="C0CUTOVER", text="x", blocks=blocks)
    )
    assert error == "invalid_blocks"
    assert "blocks[1]: slack_sdk: unknown block type" in messages


@pytest.mark.parametrize("blocks,said", OVER_LONG[3:])
def test_a_view_with_a_field_the_sdk_refuses_is_refused(
    standin: SlackStandIn, blocks: list[dict[str, Any]], said: str
) -> None:
    web = client(standin)
    title = {"type": "plain_text", "text": "Roll back"}
    modal = {"type": "modal", "title": title, "blocks": blocks}
    trigger = standin.trigger("U1")
    error, messages = refusal(lambda: web.views_open(trigger_id=trigger, view=modal))
    assert error == "invalid_arguments"
    assert any("slack_sdk" in m and said in m for m in messages), messages
    home = {"type": "home", "blocks": blocks}
    error, messages = refusal(lambda: web.views_publish(user_id="U1", view=home))
    assert error == "invalid_arguments"
    assert any("slack_sdk" in m and said in m for m in messages), messages


def test_a_view_the_sdk_view_model_refuses_is_refused(standin: SlackStandIn) -> None:
    """A Home tab with a submit button: the View model's own rule ("home view cannot have
    submit and close")."""
    home = {"type": "home", "submit": {"type": "plain_text", "text": "Go"}, "blocks": [section()]}
    error, messages = refusal(lambda: client(standin).views_publish(user_id="U1", view=home))
    assert error == "invalid_arguments"
    assert "[ERROR] slack_sdk: home view cannot have submit and close [json-pointer:/view]" in (
        messages
    )
