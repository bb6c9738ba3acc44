"""What an interrupted phase's gate says of its actions is derived from what was recorded
(their results in the attempt, whether its first action began), one case per row."""

from __future__ import annotations

from typing import Any

import pytest

from bot.engine.recovery import interrupted_note
from phases.runbook import PhaseSpec


def phase(*actions: str) -> PhaseSpec:
    true = {"argv": ["true"]}
    return PhaseSpec.model_validate(
        {
            "id": "p",
            "name": "P",
            "estimate_minutes": 1,
            "checkpoint": "p",
            "actions": [
                {"id": a, "name": f"{a} step", "kind": "run", "params": true} for a in actions
            ],
            "checks": [{"id": "ok", "name": "ok", "kind": "command", "params": true}],
        }
    )


HEAD = "the bot stopped while this phase ran, "
HALF = ": it may be half done. Check by hand, then Retry the phase or Rollback"
CHECK = ". Check, then Retry the phase or Rollback"


@pytest.mark.parametrize(
    ("actions", "results", "began", "said"),
    [
        ((), {}, False, HEAD + "during its checks (it has no actions)" + CHECK),
        (("a", "b"), {}, True, HEAD + "during action *a step* (it had begun; no result was "
         "recorded)" + HALF),
        (("a", "b"), {}, False, HEAD + "before action *a step* ended (it may have begun)" + HALF),
        (("a", "b"), {"a": "pass"}, True, HEAD + "after action *a step* ended and before action "
         "*b step* ended (it may have begun)" + HALF),
        (("a", "b"), {"a": "fail"}, True, HEAD + "after action *a step* failed (its result is "
         "recorded; no later action ran)" + CHECK),
        (("a", "b"), {"a": "pass", "b": "skipped"}, True, HEAD + "after its actions had ended "
         "(their results are recorded)" + CHECK),
    ],
)  # fmt: skip
def test_the_interrupted_gate_says_only_what_the_records_show(
    actions: tuple[str, ...], results: dict[str, str], began: bool, said: Any
) -> None:
    """As a version that marks only the first action's start recorded it (began_step None)."""
    assert interrupted_note(phase(*actions), results, began=began) == said


@pytest.mark.parametrize(
    ("actions", "results", "began_step", "said"),
    [
        (("a", "b"), {}, "a", HEAD + "during action *a step* (it had begun; no result was "
         "recorded)" + HALF),
        (("a", "b"), {"a": "pass"}, "a", HEAD + "after action *a step* ended (its result is "
         "recorded) and before action *b step* began (it did not run)" + CHECK),
        (("a", "b"), {"a": "pass"}, "b", HEAD + "during action *b step* (it had begun; no "
         "result was recorded)" + HALF),
        (("a", "b", "c"), {"a": "pass", "b": "pass"}, "b", HEAD + "after action *b step* ended "
         "(its result is recorded) and before action *c step* began (it did not run)" + CHECK),
        (("a", "b"), {"a": "fail"}, "a", HEAD + "after action *a step* failed (its result is "
         "recorded; no later action ran)" + CHECK),
    ],
)  # fmt: skip
def test_the_interrupted_gate_names_the_action_that_had_begun_and_the_one_that_had_not(
    actions: tuple[str, ...], results: dict[str, str], began_step: str, said: Any
) -> None:
    """Each action's start is recorded (began_step) before it runs."""
    note = interrupted_note(phase(*actions), results, began=True, began_step=began_step)
    assert note == said
