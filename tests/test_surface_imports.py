"""Issue 19, "contracts that mean it": the surfaces import neither the engine nor the store.

import-linter checks the import graph (pyproject.toml: "Surfaces import neither the engine nor
the store, directly or indirectly"); it does not see what a package's __init__ loads when one
of its modules is imported. This test loads the surfaces in a fresh interpreter and checks
what came with them, so a heavy __init__ on the way (bot.schedules' is one) cannot bring the
engine or the store back at run time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SURFACES = ("bot.slack.app", "bot.slack.server", "bot.console", "commands.handlers")
NEVER = (
    "bot.engine",
    "bot.store",  # its tables, engine and migrations too (bot.store.models, .db, .migrate)
    "bot.audit",
    "sqlmodel",
    "sqlalchemy",
    # The services the wiring builds and hands over (bot.app.services): they reach the store.
    "bot.schedules",
    "bot.checklists",
    "bot.post_tasks",
    "bot.runpage.serve",
)

PROBE = f"""
import json, sys
for name in {SURFACES!r}:
    __import__(name)
never = {NEVER!r}
below = tuple(n + "." for n in never)
print(json.dumps(sorted(m for m in sys.modules if m in never or m.startswith(below))))
"""


def test_the_surfaces_load_neither_the_engine_nor_the_store_at_run_time() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == [], "a surface loads these: hand them over as bot.ports instead"
