"""The record's manual steps: every one of every checkpoint that opened, ticked or not."""

from __future__ import annotations

from bot.record.trail import Trail, hm
from phases.runbook import Runbook


def manual_lines(runbook: Runbook, t: Trail) -> list[str]:
    """Every manual step of every checkpoint that opened: who ticked it and when (the
    tick's audit row), or that nobody did."""
    out: list[str] = []
    for g in t.opened:
        try:
            items = runbook.phase(str(g.get("phase"))).manual
        except KeyError:
            continue
        for item in items:
            ref = f"{g.get('phase')}/{item.id}"
            where = f"attempt {g.get('attempt') or 1}"
            ticks = [k for k in t.ticks if k["gate"] == g["gate"] and k.get("item") == item.id]
            if not ticks:
                out.append(f"{ref} ({where}): not ticked")
            for k in ticks:
                given = "".join(f", {n} {v}" for n, v in (k.get("value") or {}).items())
                out.append(f"{ref} ({where}): ticked by {k['actor']} at {hm(k['at'])}{given}")
    return out
