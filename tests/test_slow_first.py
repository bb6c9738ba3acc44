"""tests/slow_first.py: the known-slow tests open the worker slices of xdist's worksteal, and
only the order changes. Checked against xdist's own scheduler, driven with stub workers."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler.worksteal import WorkStealingScheduling

from tests.slow_first import SLOW, estimate, order, slice_sizes

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class FakeItem:
    nodeid: str


@dataclass(eq=False)
class StubWorker:
    """What WorkStealingScheduling asks of a worker: it records the tests it is sent."""

    name: str
    sent: list[int] = field(default_factory=list)
    shutting_down: bool = False

    @property
    def gateway(self) -> Any:
        return type("Gateway", (), {"id": self.name})()

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent += indices

    def send_steal(self, indices: list[int]) -> None:  # pragma: no cover - not reached here
        raise AssertionError("no stealing before any test ran")

    def shutdown(self) -> None:  # pragma: no cover
        self.shutting_down = True


class StubConfig:
    def __init__(self, workers: int) -> None:
        self.workers = workers

    def getvalue(self, name: str) -> Any:
        assert name == "tx"
        return [f"{self.workers}*popen"]


def first_slices(collection: list[str], workers: int) -> list[list[str]]:
    """What xdist's worksteal scheduler first sends each worker, for this collection."""
    sched = WorkStealingScheduling(StubConfig(workers))  # type: ignore[arg-type]
    stubs = [StubWorker(f"gw{i}") for i in range(workers)]
    for stub in stubs:
        sched.add_node(stub)  # type: ignore[arg-type]
    for stub in stubs:
        sched.add_node_collection(stub, collection)  # type: ignore[arg-type]
    sched.schedule()
    return [[collection[i] for i in stub.sent] for stub in stubs]


SLOW_IDS = list(SLOW)


def fake_suite(n: int) -> list[FakeItem]:
    """n fast tests with every known-slow test spread among them, parametrized slow ones twice."""
    items = [FakeItem(f"tests/test_fast.py::test_{k}") for k in range(n)]
    for j, nodeid in enumerate(SLOW_IDS):
        items.insert((j * 37) % len(items), FakeItem(nodeid))
        if j % 3 == 0:
            items.insert((j * 53) % len(items), FakeItem(f"{nodeid}[postgres]"))
    return items


@pytest.mark.parametrize("workers", [2, 3, 4, 6])
@pytest.mark.parametrize("n", [100, 1741])
def test_slice_sizes_are_the_slices_xdists_worksteal_first_sends(workers: int, n: int) -> None:
    collection = [f"t{k}" for k in range(n)]
    assert [len(s) for s in first_slices(collection, workers)] == slice_sizes(n, workers)


@pytest.mark.parametrize("workers", [2, 4, 6])
def test_every_worker_starts_with_the_slow_tests_longest_first_and_nothing_else_changes(
    workers: int,
) -> None:
    items = fake_suite(1700)
    ordered = order(items, workers)
    assert sorted(i.nodeid for i in ordered) == sorted(i.nodeid for i in items)  # same tests
    fast = [i.nodeid for i in items if not estimate(i.nodeid)]
    assert [i.nodeid for i in ordered if not estimate(i.nodeid)] == fast  # in their order
    slices = first_slices([i.nodeid for i in ordered], workers)
    loads = []
    for got in slices:
        head = [t for t in got[: len(SLOW_IDS) * 2] if estimate(t)]
        assert got[: len(head)] == head  # every slow test of the slice comes first …
        assert [estimate(t) for t in head] == sorted((estimate(t) for t in head), reverse=True)
        assert not [t for t in got[len(head) :] if estimate(t)]  # … and none after the fast
        loads.append(sum(estimate(t) for t in head))
    assert max(loads) - min(loads) <= max(SLOW.values())  # shared out, not piled on one


def test_without_xdist_or_slow_tests_nothing_moves() -> None:
    items = fake_suite(50)
    assert order(items, 0) == items and order(items, 1) == items
    fast = [FakeItem(f"tests/test_fast.py::test_{k}") for k in range(10)]
    assert order(fast, 4) == fast


def test_every_slow_entry_names_a_test_function_that_exists() -> None:
    """A renamed or deleted test must leave SLOW, or the order silently stops helping."""
    for nodeid in SLOW:
        path, name = nodeid.split("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in names, nodeid
