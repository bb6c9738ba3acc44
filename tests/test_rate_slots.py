"""Rate budgets in the database (bot.store.rate_slots): two replicas, each with its own
connections, taking slots of one budget at once get every slot once, in one sequence, on
SQLite and on the real PostgreSQL. The clock is injected: nothing waits in real time."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bot.store.db import Database
from bot.store.rate_slots import SharedSlots


@pytest.fixture
def two_replicas(db: Database) -> Iterator[tuple[Database, Database]]:
    other = Database(db.engine.url.render_as_string(hide_password=False))
    yield db, other
    other.dispose()


def test_two_replicas_reserving_at_once_get_one_sequence_of_slots(
    two_replicas: tuple[Database, Database],
) -> None:
    now = 1000.0  # a clock that stands still: every wait is what the budget handed out
    slots = [SharedSlots(d, clock=lambda: now) for d in two_replicas]
    pauses: list[float] = []
    guard = threading.Lock()

    def post(s: SharedSlots) -> None:
        for _ in range(10):
            pause = s.reserve("post:C1", 1.1)
            with guard:
                pauses.append(pause)

    threads = [threading.Thread(target=post, args=(s,)) for s in slots for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(round(p, 6) for p in pauses) == [round(i * 1.1, 6) for i in range(40)]


def test_a_slot_taken_by_one_replica_is_not_free_for_the_other_until_it_is_due(
    two_replicas: tuple[Database, Database],
) -> None:
    clock = [50.0]
    a, b = (SharedSlots(d, clock=lambda: clock[0]) for d in two_replicas)
    assert a.take("home:U1", 5.0) == 0.0
    assert b.take("home:U1", 5.0) == pytest.approx(5.0)  # taken: nothing changed
    clock[0] += 5.0
    assert b.take("home:U1", 5.0) == 0.0
    a.free("home:U1")  # given back early: free at once
    assert a.take("home:U1", 5.0) == 0.0
    assert b.reserve("other", 1.0) == 0.0  # budgets are by key


def test_a_hold_closes_the_budget_for_every_replica_for_that_long(
    two_replicas: tuple[Database, Database],
) -> None:
    clock = [10.0]
    a, b = (SharedSlots(d, clock=lambda: clock[0]) for d in two_replicas)
    a.hold("post:C1", 3.0)  # Slack said Retry-After: 3
    assert b.reserve("post:C1", 1.1) == pytest.approx(3.0)
    a.hold("post:C1", 1.0)  # a shorter hold never shortens a longer one
    assert b.reserve("post:C1", 1.1) == pytest.approx(4.1)


def test_without_a_clock_the_slots_keep_the_database_clock(db: Database) -> None:
    slots = SharedSlots(db)
    assert slots.reserve("views.publish", 60.0) == 0.0
    assert 59.0 < slots.reserve("views.publish", 60.0) <= 60.0
