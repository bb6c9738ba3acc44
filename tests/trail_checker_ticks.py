"""Checks what a checkpoint says of checks bound to a tick that a restart or a dead replica
interrupted, against the exported audit trail (tests/trail_checker.py's rows).

Both ways: every "interrupted by … at HH:MM UTC; tick ITEM again or Retry" the text shows has
a `tick.checks_interrupted` row (its item, cause, the stopped replica, the minute) that no
later `tick.checks_resumed` / `tick.checks_started` of that item superseded; and every such
row still standing is shown. Reads only the rows and the runbook (for check names)."""

from __future__ import annotations

import re

from phases.runbook import Runbook
from tests.trail_checker import Row

SHOWN = re.compile(
    r"^  \S+ (?P<name>.+?): interrupted by (?:a restart|replica (?P<owner>\S+) stopping) "
    r"at (?P<hhmm>\d\d:\d\d) UTC; tick (?P<item>\S+) again or Retry(?: · step took .*)?$"
)
MARKS = ("tick.checks_started", "tick.checks_interrupted", "tick.checks_resumed")


def standing(rows: list[Row]) -> dict[tuple[int, str], Row]:
    """(gate, item) → its latest tick-check row, when that row is an interruption."""
    latest: dict[tuple[int, str], Row] = {}
    for row in sorted(rows, key=lambda r: r.seq):
        if row.kind in MARKS:
            latest[(int(row.data["gate"]), str(row.data["item"]))] = row
    return {k: r for k, r in latest.items() if r.kind == "tick.checks_interrupted"}


def check_checkpoint_ticks(text: str, gate: int, rows: list[Row], runbook: Runbook) -> None:
    """`text`: the checkpoint of gate `gate`."""
    open_marks = {k: r for k, r in standing(rows).items() if k[0] == gate}
    names = {c.id: c.name for p in runbook.phases for c in p.tick_checks}
    shown: set[tuple[str, str]] = set()
    for line in text.splitlines():
        m = SHOWN.match(line)
        if m is None:
            assert "interrupted by" not in line or line.startswith("Decision point"), line
            continue
        found = [
            r
            for r in open_marks.values()
            if r.data["item"] == m["item"]
            and r.hhmm == m["hhmm"]
            and (r.data["cause"] == "restart") == (m["owner"] is None)
            and (m["owner"] is None or r.data["owner"] == m["owner"])
            and m["name"] in [names[c] for c in r.data["checks"]]
        ]
        assert found, f"no standing tick.checks_interrupted row says: {line}"
        shown.add((m["item"], m["name"]))
    for row in open_marks.values():
        for check in row.data["checks"]:
            assert (row.data["item"], names[check]) in shown, (
                f"the trail says {check} was interrupted (row {row.seq}); the checkpoint does not"
            )
