"""Block Kit basics every drawing uses: Slack's limits, mrkdwn escaping and mentions, clipping,
section / header / context / button builders, masking a block tree, and the block-text
count behind Slack's undocumented `msg_blocks_too_long`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.slack.blocks.ids import RUN_PAGE
from bot.text import ICONS as TEXT_ICONS

Mask = Callable[[str], str]
Block = dict[str, Any]
MAX_BLOCKS = 50
SECTION_TEXT = 3000
HEADER_TEXT = 150
CONTEXT_TEXT = 2000
BUTTON_TEXT = 75
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTIONS_PER_GROUP = 10
ACTION_ID = 255
BLOCK_ID = 255
VALUE = 2000
CONFIRM_TITLE, CONFIRM_TEXT, CONFIRM_BUTTON = 100, 300, 30
FALLBACK_TEXT = 3000  # the notification / accessibility text of a message
REPLY_TEXT = 3900  # an ephemeral reply or a thread notice
EVIDENCE_CHARS = 400  # of one step's evidence, in a checkpoint
PASSED_EVIDENCE = 120  # of a passed step's evidence, in the checkpoint's thread replies


# Slack refuses a message whose block text adds up past an undocumented threshold,
# reported at ~11,300-13,300 characters (bolt-js #2509, #2867); the bot keeps 10,000.
BLOCK_TEXT_BUDGET = 10_000
RESULTS_RESERVE = 4_500  # of a checkpoint's budget, kept for the results before manual steps
INTRO_TEXT = 1_000
MANUAL_TEXT = 200
MANUAL_BLOCKS = 30  # of a checkpoint's 50 blocks, at most for the manual steps
PASSED_SUMMARY = 800
DETAIL_SECTION = 2_900
WAITING_TEXT = 1_500  # the mentions of who has not voted yet
DETAIL_MESSAGES = 6  # thread replies of results per checkpoint (then: /cutover audit)
URL_CHARS = 3000  # of a button's url
ICONS = {**TEXT_ICONS, "pending": "⚪"}  # a hollow circle reads better in Slack
RUN_ICONS = {
    "running": "⏳",
    "waiting": "✋",
    "rolling_back": "⏪",
    "rolled_back": "↩️",
    "completed": "✅",
    "cancelled": "🚫",
}
ACTOR_ID = re.compile(r"\b([TE][A-Z0-9]+):([UW][A-Z0-9]+)\b")


def unmasked(text: str) -> str:
    return text


def escape(text: str) -> str:
    """The three characters Slack's mrkdwn needs escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slackify(text: str) -> str:
    """Engine text for mrkdwn: escaped, and TEAM:USER ids shown as mentions."""
    return ACTOR_ID.sub(lambda m: f"<@{m.group(2)}>", escape(text))


def mention(actor_id: str | None) -> str:
    if not actor_id:
        return "?"
    m = ACTOR_ID.fullmatch(actor_id.strip())
    return f"<@{m.group(2)}>" if m else escape(actor_id.strip())


def mentions(actor_ids: str | Iterable[str] | None) -> str:
    """'T1:U1,T1:U2' (a quorum's decided_by) or a list of ids, as '<@U1>, <@U2>'."""
    if not actor_ids:
        return "?"
    ids = actor_ids.split(",") if isinstance(actor_ids, str) else list(actor_ids)
    return ", ".join(mention(i) for i in ids if i.strip()) or "?"


def when(dt: datetime | None) -> str:
    """A Slack date token: shown in the reader's time zone, with a UTC fallback."""
    if dt is None:
        return "?"
    fallback = dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(dt.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def clip(text: str, limit: int) -> str:
    """Cuts mrkdwn to `limit` characters without leaving half an &entity; or <token>."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    cut = re.sub(r"&[#A-Za-z0-9]*$", "", cut)
    lt = cut.rfind("<")
    if lt != -1 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return cut + "…"


def clip_plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def one_line(text: str) -> str:
    return " ".join(text.split())


def fit_lines(lines: list[str], limit: int = REPLY_TEXT) -> str:
    """Joins lines within `limit`, keeping the first and the latest ones."""
    text = "\n".join(lines)
    if len(text) <= limit or len(lines) < 3:
        return clip(text, limit)
    head, tail = lines[0], lines[-1]
    kept: list[str] = []
    budget = limit - len(head) - len(tail) - 60
    for line in reversed(lines[1:-1]):
        if len(line) + 1 > budget:
            break
        kept.insert(0, line)
        budget -= len(line) + 1
    dropped = len(lines) - 2 - len(kept)
    return clip("\n".join([head, f"… {dropped} earlier lines not shown", *kept, tail]), limit)


def header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip_plain(text, HEADER_TEXT), "emoji": True},
    }


def section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}}
    if block_id:
        block["block_id"] = block_id[:BLOCK_ID]
    return block


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, CONTEXT_TEXT)}]}


def sections(lines: list[str], limit: int = SECTION_TEXT) -> list[Block]:
    """Packs lines into as few section blocks as their text limit allows."""
    out: list[Block] = []
    current = ""
    for raw in lines:
        line = clip(raw, limit)
        if current and len(current) + 1 + len(line) > limit:
            out.append(section(current))
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        out.append(section(current))
    return out


def button(
    text: str, action_id: str, value: str, style: str | None = None, confirm: Block | None = None
) -> Block:
    b: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip_plain(text, BUTTON_TEXT), "emoji": True},
        "action_id": action_id[:ACTION_ID],
        "value": value[:VALUE],
    }
    if style:
        b["style"] = style
    if confirm:
        b["confirm"] = confirm
    return b


def page_buttons(links: Sequence[tuple[str, str]]) -> Block:
    """Link buttons to run pages ((label, url) each; at most 5, one actions block): Slack
    opens the URL in the browser (and still sends a click, which the app acknowledges)."""
    return {
        "type": "actions",
        "block_id": "run_page",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": clip_plain(label, BUTTON_TEXT)},
                "action_id": f"{RUN_PAGE}:{i}",
                "url": url[:URL_CHARS],
            }
            for i, (label, url) in enumerate(links[:5])
        ],
    }


def confirm_dialog(title: str, text: str, yes: str, no: str = "Cancel") -> Block:
    return {
        "title": {"type": "plain_text", "text": clip_plain(title, CONFIRM_TITLE)},
        "text": {"type": "mrkdwn", "text": clip(text, CONFIRM_TEXT)},
        "confirm": {"type": "plain_text", "text": clip_plain(yes, CONFIRM_BUTTON)},
        "deny": {"type": "plain_text", "text": clip_plain(no, CONFIRM_BUTTON)},
        "style": "danger",
    }


def block_text(blocks: Any) -> int:
    """Characters of every `text` string in a block tree: what Slack's undocumented cumulative
    limit (`msg_blocks_too_long`) is reported to count (bolt-js #2509, #2867)."""
    if isinstance(blocks, dict):
        return sum(
            len(v) if k == "text" and isinstance(v, str) else block_text(v)
            for k, v in blocks.items()
        )
    if isinstance(blocks, list):
        return sum(block_text(v) for v in blocks)
    return 0


_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


def group_mention(group_id: str) -> str:
    return f"<!subteam^{group_id}>" if re.fullmatch(r"S[A-Z0-9]+", group_id) else escape(group_id)


def channel_ref(channel: str | None) -> str:
    """A channel id as a link (Slack draws its name); a name as written."""
    if channel and _CHANNEL_ID.fullmatch(channel):
        return f"<#{channel}>"
    return escape(channel or "?")


def mask_blocks(value: Any, mask: Mask) -> Any:
    """Masks every string of a block tree; a masked string never grows past its old length."""
    if isinstance(value, str):
        masked = mask(value)
        return masked if len(masked) <= len(value) else masked[: len(value)]
    if isinstance(value, list):
        return [mask_blocks(v, mask) for v in value]
    if isinstance(value, dict):
        return {k: mask_blocks(v, mask) for k, v in value.items()}
    return value
