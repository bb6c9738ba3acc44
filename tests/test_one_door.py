"""Issue 19, "one door": only the store opens a database session. A module outside bot/store
(and bot/db.py, bot/migrate.py, bot/migrations, which make the store possible) that calls
`.session(` must be listed below, as not converted yet; the list only shrinks: a listed
module that no longer calls it must leave the list. The import-linter contract in
pyproject.toml keeps the converted engine modules from importing sqlmodel, sqlalchemy or
bot.db at all."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "commands", "phases")
THE_DOOR = ("bot/store/", "bot/db.py", "bot/migrate.py", "bot/migrations/")

# Not converted to bot.store yet (each opens its own sessions today).
NOT_YET = {
    "bot/post_task_view.py",  # post-cutover tasks (issue 24), the same
    "bot/record/build.py",
    "bot/runpage/page.py",
    "bot/schedules/booking.py",
    "bot/schedules/reconcile.py",
    "bot/schedules/start_gate.py",
    "bot/signoffs.py",
    "bot/views.py",
}


def _opens_a_session(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "session"
        for node in ast.walk(tree)
    )


def _modules() -> dict[str, bool]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(THE_DOOR):
                found[rel] = _opens_a_session(path)
    return found


def test_no_module_outside_the_store_opens_a_session_unless_listed_as_not_converted() -> None:
    opening = {rel for rel, opens in _modules().items() if opens}
    assert opening - NOT_YET == set(), "open sessions through bot.store (Store.tx), not here"


def test_the_not_yet_converted_list_only_names_modules_that_still_open_sessions() -> None:
    modules = _modules()
    stale = {rel for rel in NOT_YET if not modules.get(rel, False)}
    assert stale == set(), "converted: take these off NOT_YET in tests/test_one_door.py"
