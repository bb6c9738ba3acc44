"""Issue 19, "one door": only the store opens a database session. No module outside bot/store
(which holds db.py, migrate.py and migrations/, what makes the store possible) calls
`.session(`; the list of modules not yet converted that this test once kept is empty. The
import-linter contracts in pyproject.toml keep the rest from importing sqlmodel, sqlalchemy
or bot.store.db at all."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "commands", "phases")
THE_DOOR = ("bot/store/",)


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


def test_no_module_outside_the_store_opens_a_session() -> None:
    opening = {rel for rel, opens in _modules().items() if opens}
    assert opening == set(), "open sessions through bot.store (Store.tx), not here"


def test_the_check_finds_a_session_opened_outside_the_store(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("def f(db):\n    with db.session() as s:\n        return s\n")
    assert _opens_a_session(planted)


SURFACES = ("bot/slack/", "bot/console.py", "commands/")


def test_no_surface_reaches_the_engines_database() -> None:
    """Slack, the console and the commands read through the `reads` the wiring hands them
    (bot.ports.ReadsPort), never through `engine.db` (issue 19, "one Reads object")."""
    reaching = {
        rel
        for rel in _modules()
        if rel.startswith(SURFACES) and "engine.db" in (ROOT / rel).read_text(encoding="utf-8")
    }
    assert reaching == set(), "read through `reads` (bot.ports.ReadsPort), not engine.db"
