"""The engine is a façade over services, not a stack of mixins (issue 19).

Each service is built in one place (bot/engine/services.py) and given only what it needs:
none is handed the engine, whether as a parameter, an attribute, a bound method of it or a
closure over it. A use case that needs another's operation is handed it at construction,
so no `NotImplementedError` stub stands in for one."""

from __future__ import annotations

import ast
import inspect
import typing
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Actor, Engine, default_context
from bot.engine.services import Services
from bot.store.db import Database
from bot.surface import NullSurface
from tests.servers import ManualClock
from tests.small_runbook import small_runbook

ALICE = Actor("T1:U1", "alice")

ENGINE = Path(__file__).resolve().parent.parent / "bot" / "engine"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    db = Database(f"sqlite:///{tmp_path / 'services.db'}")
    db.create_all()
    eng = Engine(db, small_runbook(tmp_path), background=False)
    yield eng
    eng.shutdown()


def test_no_not_implemented_stub_is_left_in_the_engine() -> None:
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted(ENGINE.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.Name) and node.id == "NotImplementedError"
    ]
    assert found == []


def test_the_engine_has_no_base_class() -> None:
    assert Engine.__mro__ == (Engine, object)


def test_every_engine_class_stands_alone() -> None:
    """No class of the engine package inherits another engine class (no mixin stack); its
    errors (bot/engine/errors.py) are a hierarchy of their own."""
    engine_classes = {
        node.name
        for path in ENGINE.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.ClassDef)
    }
    inheriting = [
        f"{path.name}:{node.name}({ast.unparse(base)})"
        for path in sorted(ENGINE.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.ClassDef)
        for base in node.bases
        if ast.unparse(base).split(".")[-1] in engine_classes and path.name != "errors.py"
    ]
    assert inheriting == []


def _services(engine: Engine) -> dict[str, Any]:
    services = engine.services
    assert isinstance(services, Services)
    return {f.name: getattr(services, f.name) for f in fields(services)}


def test_no_service_is_constructed_with_the_engine() -> None:
    """Checked on the constructors' signatures: no parameter is the façade or named for it."""
    hints = typing.get_type_hints(Services)
    checked = 0
    for field in fields(Services):
        owner = hints[field.name]
        if not inspect.isclass(owner) or not owner.__module__.startswith("bot.engine"):
            continue
        checked += 1
        for name, param in inspect.signature(owner.__init__).parameters.items():
            if name == "self":
                continue
            assert "engine" not in name.lower(), f"{owner.__name__}({name})"
            assert "Engine" not in str(param.annotation).replace("EngineClock", ""), (
                f"{owner.__name__}({name}: {param.annotation})"
            )
    assert checked >= 20  # every use case and shared service


def _reaches(value: Any, target: object, seen: set[int], depth: int = 0) -> bool:
    """Whether `value` is `target`, a bound method of it, a closure or partial over it, or
    an engine object (a sub-service) holding one of those."""
    if value is target:
        return True
    if id(value) in seen or depth > 4:
        return False
    seen.add(id(value))
    owner = getattr(value, "__self__", None)
    if owner is target:
        return True
    if owner is not None and _reaches(owner, target, seen, depth + 1):
        return True
    engine_object = type(value).__module__.startswith("bot.engine") and hasattr(value, "__dict__")
    if engine_object and any(_reaches(v, target, seen, depth + 1) for v in vars(value).values()):
        return True
    for cell in getattr(value, "__closure__", None) or ():
        try:
            if _reaches(cell.cell_contents, target, seen, depth + 1):
                return True
        except ValueError:  # an empty cell
            continue
    inner = [getattr(value, "func", None), *getattr(value, "args", ())]
    return any(v is not None and _reaches(v, target, seen, depth + 1) for v in inner)


def test_no_service_holds_the_engine(engine: Engine) -> None:
    """Checked on the built services: nothing they hold is the façade or leads back to it."""
    for name, service in _services(engine).items():
        for attr, value in vars(service).items():
            assert not _reaches(value, engine, set()), f"{name}.{attr} reaches the engine"


def test_what_a_test_replaces_on_the_engine_reaches_its_services(engine: Engine) -> None:
    """The clock, the surface, the context factory, `background` and `spawn` may be replaced
    while the engine runs (tests do): the services read them anew."""
    clock = ManualClock(1_000_000.0)
    engine.clock = clock
    assert engine.clock is clock
    assert engine.now().timestamp() == 1_000_000.0
    assert engine.services.phases.now().timestamp() == 1_000_000.0
    engine.background = True
    assert engine.services.follow_ups.background is True
    engine.background = False
    surface = NullSurface()
    engine.surface = surface
    assert engine.services.calls.surface is surface
    engine.context_factory = default_context
    assert engine.services.contexts.context_factory is default_context
    held: list[Any] = []
    engine.spawn = lambda fn, *args: held.append((fn, args))  # type: ignore[method-assign]
    run = engine.start_run("staging", ALICE)
    assert [(fn.__name__, args) for fn, args in held] == [("advance", (run.id,))]
