"""Answers to one person (a response_url, else an ephemeral message), and views: modals
(views.open) and the App Home tab (views.publish).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.webhook import WebhookClient

from bot.slack.blocks import (
    MAX_BLOCKS,
    REPLY_TEXT,
    Block,
    clip,
    mask_blocks,
    sections,
)
from bot.slack.outbox import (
    RateLimited,
    Refused,
    SlackCallFailed,
)

if TYPE_CHECKING:
    pass

from bot.slack.present.base import SurfaceContext
from bot.slack.transport import retry_handlers

log = logging.getLogger(__name__)


_QUIET = logging.getLogger("bot.slack.surface.webhook")  # a response_url is a credential
_QUIET.setLevel(logging.INFO)  # never logged (its DEBUG line would carry the URL)


class Replies:
    """Replies and views for the person who typed or clicked."""

    def __init__(self, ctx: SurfaceContext) -> None:
        self.ctx = ctx

    def reply(
        self,
        text: str,
        *,
        response_url: str | None,
        channel: str | None,
        user: str | None,
        ephemeral: bool = True,
        run_id: int | None = None,
        blocks: list[Block] | None = None,
    ) -> bool:
        """Answers the person who typed or clicked: via response_url, else chat.postEphemeral.
        `blocks` (a Run page button) go under the text, which is then repeated as a section.

        A reply that cannot be delivered is audited (surface.failed) and logged.
        """
        body = clip(self.ctx.mask(text), REPLY_TEXT)
        extra: dict[str, Any] = (
            {"blocks": [*sections(body.split("\n"))[: MAX_BLOCKS - len(blocks)], *blocks]}
            if blocks
            else {}
        )
        errors: list[str] = []
        if response_url:
            try:
                hook = WebhookClient(  # its DEBUG log line would carry the URL: kept quiet
                    url=response_url, timeout=10, retry_handlers=retry_handlers(), logger=_QUIET
                )
                resp = hook.send_dict(
                    {
                        "text": body,
                        "response_type": "ephemeral" if ephemeral else "in_channel",
                        "replace_original": False,
                        **extra,
                    }
                )
                if resp.status_code == 200:
                    return True
                errors.append(f"response_url answered {resp.status_code}")
            except Exception as exc:
                errors.append(f"response_url: {str(exc).replace(response_url, '[url]')}")
        if channel and user:
            try:
                if ephemeral:
                    self.ctx.transport.call_waiting(
                        "chat_postEphemeral", channel=channel, user=user, text=body, **extra
                    )
                else:
                    self.ctx.pacer.wait(channel)
                    self.ctx.transport.call_waiting(
                        "chat_postMessage", channel=channel, text=body, **extra
                    )
                return True
            except Exception as exc:
                errors.append(f"chat.postEphemeral: {exc}")
        self.ctx.audit_failure("reply", "; ".join(errors) or "nowhere to reply", run_id)
        return False

    def open_view(self, trigger_id: str, view: dict[str, Any], run_id: int | None = None) -> str:
        """Opens a modal (views.open) with a click's or command's trigger_id: "" when it is
        open, else Slack's error (`expired_trigger_id`: more than 3 s after the click).
        Never waits on a Retry-After; a failure is audited (surface.failed)."""
        try:
            self.ctx.transport.call(
                "views_open", trigger_id=trigger_id, view=mask_blocks(view, self.ctx.mask)
            )
            return ""
        except (RateLimited, Refused, SlackCallFailed) as exc:
            error = getattr(exc, "error", "ratelimited")
            self.ctx.audit_failure("views.open", str(exc), run_id)
            return str(error)

    def publish_home(
        self, user: str, view: dict[str, Any], *, view_hash: str | None = None
    ) -> tuple[bool, str]:
        """Publishes a person's Home tab (views.publish): (True, the view's new hash), or
        (False, Slack's error), logged. With `view_hash` (the hash of the view last
        published), Slack refuses it (`hash_conflict`) if another publish came in between."""
        try:
            resp = self.ctx.transport.call(
                "views_publish",
                user_id=user,
                view=mask_blocks(view, self.ctx.mask),
                hash=view_hash,
            )
            return True, str((resp.get("view") or {}).get("hash") or "")
        except (RateLimited, Refused, SlackCallFailed) as exc:
            error = str(getattr(exc, "error", "ratelimited"))
            if error != "hash_conflict":
                log.warning("cannot publish the Home tab: %s", self.ctx.mask(str(exc)))
            return False, error
