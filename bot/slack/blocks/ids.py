"""Action ids of every button and checkbox the bot draws, and the values and block ids they
carry: encoded when drawn, parsed (never trusted) when clicked.
"""

from __future__ import annotations

import re

from bot.views import GateView

CONTINUE, ROLLBACK, RETRY, TICK = "gate_continue", "gate_rollback", "gate_retry", "gate_tick"
COMMENT = "gate_continue_comment"  # Continue with a comment: opens a form
OVERRIDE = "gate_override"  # break-glass past failed steps: opens a form (a justification)
SHOW_OUTPUT = "step_output"  # + ":N": a Show output button (action_ids unique in a block)
START = "schedule_start"  # the Start button of a scheduled cutover's T-0 reminder
CHECKLIST_TICK = "checklist_tick"  # a box of the T-1h checklist: an item that gates Start
RUN_PAGE = "run_page"  # the "Run page" link button (bot/runpage): Slack opens the URL
REVERT = "run_revert"  # the completion message's Revert… button: opens a form (a reason)


def gate_value(view: GateView) -> str:
    return f"{view.id}:{view.attempt}"


def parse_gate_value(value: str | None) -> tuple[int, int] | None:
    """'12:1' → (gate 12, attempt 1); anything else → None.

    Ids have at most 9 digits: a larger number would overflow PostgreSQL's integer column
    in the lookup (a DataError) instead of reading as "no such gate".
    """
    m = re.fullmatch(r"(\d{1,9}):(\d{1,6})", value if isinstance(value, str) else "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_tick_value(value: str | None) -> tuple[int, int, str] | None:
    m = re.fullmatch(
        r"(\d{1,9}):(\d{1,6}):([a-z0-9][a-z0-9_-]{0,39})", value if isinstance(value, str) else ""
    )
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else None


def parse_tick_block(block_id: str | None) -> tuple[int, int, int] | None:
    """'tick:12:1:0' or 'tick:12:1:0:1f' (a drawing's iteration) → (gate 12, attempt 1, group 0)."""
    m = re.fullmatch(
        r"tick:(\d{1,9}):(\d{1,6}):(\d{1,3})(?::[0-9a-f]{1,16})?",
        block_id if isinstance(block_id, str) else "",
    )
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def parse_output_value(value: str | None) -> int | None:
    """A Show output button's value: the step_run id whose output to show."""
    m = re.fullmatch(r"\d{1,9}", value if isinstance(value, str) else "")
    return int(m.group(0)) if m else None


def parse_checklist_block(block_id: str | None) -> tuple[int, int] | None:
    """'checklist:3:g1:1f' → (schedule 3, group 1); 'checklist:3' or 'checklist:3:1f' (a
    message drawn before there were groups: one group) → (3, 0)."""
    m = re.fullmatch(
        r"checklist:(\d{1,9})(?::g(\d{1,2}))?(?::[0-9a-f]{1,16})?",
        block_id if isinstance(block_id, str) else "",
    )
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def parse_number_and_id(value: str | None) -> tuple[int, str] | None:
    """A checklist box's or a Sign off button's value: '12:admin' → (12, "admin") (a
    schedule or run number, an item or criterion id); anything else → None."""
    m = re.fullmatch(
        r"(\d{1,9}):([a-z0-9][a-z0-9_-]{0,39})", value if isinstance(value, str) else ""
    )
    return (int(m.group(1)), m.group(2)) if m else None


def parse_schedule_value(value: str | None) -> int | None:
    """The Start button's value: the schedule id (at most 9 digits, like the gate ids)."""
    m = re.fullmatch(r"\d{1,9}", value if isinstance(value, str) else "")
    return int(m.group(0)) if m else None
