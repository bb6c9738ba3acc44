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
    assert interrupted_note(phase(*actions), results, began=began) == said
