"""What a Slack request says, read once: who sent it, where to answer them, the message a
button was clicked in, and the text typed after `/cutover` (bot.slack.app's listeners)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.surface import Actor


def _enterprise_of(body: dict[str, Any]) -> str | None:
    """The Enterprise Grid org of a request, wherever this payload kind carries it."""
    candidates: list[Any] = [body.get("enterprise_id")]
    for key in ("enterprise", "team", "user"):
        obj = body.get(key)
        if isinstance(obj, dict):
            candidates += [obj.get("enterprise_id"), obj.get("id") if key == "enterprise" else None]
    return next((c for c in candidates if isinstance(c, str) and c.startswith("E")), None)


def actor_from_body(body: dict[str, Any]) -> Actor | None:
    """The person of a slash command form or an interaction payload: team + user, or
    enterprise + user for Grid's org-wide W… ids (one person in every workspace of the org).
    The name is display only."""
    user = body.get("user")
    if isinstance(user, dict):  # block_actions
        team_obj = body.get("team")
        team = user.get("team_id") or (team_obj.get("id") if isinstance(team_obj, dict) else None)
        user_id, name = user.get("id"), user.get("username") or user.get("name")
    else:  # slash command
        team, user_id, name = body.get("team_id"), body.get("user_id"), body.get("user_name")
    if not isinstance(team, str) or not isinstance(user_id, str) or not team or not user_id:
        return None
    return Actor.slack(
        team, user_id, enterprise=_enterprise_of(body), name=name if isinstance(name, str) else None
    )


@dataclass(frozen=True)
class Where:
    """Where to answer the person: response_url, else an ephemeral in the channel."""

    response_url: str | None
    channel: str | None
    user: str | None


def message_ref(body: dict[str, Any]) -> tuple[str, str] | None:
    """(channel, ts) of the message a button was clicked in."""
    container = body.get("container")
    if isinstance(container, dict):
        channel, ts = container.get("channel_id"), container.get("message_ts")
        if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
            return channel, ts
    return None


def where(body: dict[str, Any]) -> Where:
    """Where to answer; a click's `channel` can be `{}` (slack-morphism-rust #370), so the
    container's channel_id is the fallback."""
    user = body.get("user")
    channel = body.get("channel")
    container = body.get("container")
    return Where(
        body.get("response_url"),
        (channel.get("id") if isinstance(channel, dict) else None)
        or body.get("channel_id")
        or (container.get("channel_id") if isinstance(container, dict) else None),
        user.get("id") if isinstance(user, dict) else body.get("user_id"),
    )


def typed_text(text: object) -> str:
    """What the person typed: Slack escapes `&`, `<` and `>` in a command's text as `&amp;`,
    `&lt;` and `&gt;` (its own links and mentions keep their brackets), so a reason typed as
    "db < 5% & rising" is decoded once here, before it is parsed, audited or shown."""
    if not isinstance(text, str):
        return ""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
