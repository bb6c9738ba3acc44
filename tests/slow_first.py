"""Longest tests first on every xdist worker (scripts/test.sh: `-n 6 --dist worksteal`).

Worksteal hands each worker one contiguous slice of the collection at the start (the first
N//6 tests, the next fifth of the rest, …) and later moves work only from the end of a
worker's queue to an idle one. A minute-long test met late in a slice keeps its worker busy
after the others have run out, and one that lands in the same slice as another waits for it.
`order` gives each slice its share of the known-slow tests, longest first, at its start
(greedily, each to the slice with the least slow seconds so far); the other tests keep their
order and fill the slices up to their sizes. Which tests run, and what they assert, is
unchanged: only the order. Without xdist (`-n 0`, the serial part) nothing moves.

SLOW holds seconds per test function (every parametrization of it), from CI logs'
`--durations` and per-module `--durations=0` runs (docs/benchmarks.md, suite time), scaled to
a quiet 2-core machine; they only need to be roughly right relative to each other. A test
missing from it counts as fast; a name that no longer exists fails tests/test_slow_first.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

# seconds per test function, by module
_SLOW: dict[str, dict[str, float]] = {
    # whole runs of the shipped runbook on real containers (seven monitoring rounds)
    "tests/test_runs.py": {
        "test_pass_path_runs_every_phase_and_completes": 57,
        "test_restart_mid_gate_resumes_the_same_run": 56,
        "test_failed_smoke_test_refuses_continue_and_rollback_restores_old_services": 25,
        "test_dry_run_reports_actions_and_changes_nothing": 15,
        "test_failed_migration_restores_the_database_then_rolls_back": 13,
    },
    "tests/test_monitoring.py": {
        "test_shipped_monitoring_phase_flags_a_slow_endpoint_and_a_container_over_its_memory_limit": 47,  # noqa: E501
    },
    # phases 1-6 on real containers
    "tests/test_runbook_for_real.py": {
        "test_a_monitoring_round_fails_when_one_service_dies": 40,
        "test_phase_5_fails_when_the_startup_line_is_missing": 38,
        "test_rollback_is_verified_and_timed_against_the_target": 19,
        "test_rollback_reports_an_old_service_that_does_not_come_back": 12,
    },
    "tests/test_nostrmaxi_rollback_host.py": {
        "test_rollback_starts_the_old_deployment_on_old_docker_host_and_says_where": 15,
    },
    "tests/test_nostrmaxi_ref.py": {
        "test_the_ref_given_at_start_is_checked_out_and_shown_at_the_phase_2_gate": 14,
    },
    "tests/test_nostrmaxi_conditional.py": {
        "test_no_payment_seen_asks_a_person_for_the_webhook_test": 11,
    },
    # the hypothesis state machine, in shards
    "tests/test_properties.py": {
        "test_cutover_state_machine_on_sqlite": 30,
        "test_cutover_state_machine_on_postgres": 30,
    },
    # real `cutover serve` replicas, their leases in real seconds
    "tests/test_replicas.py": {
        "test_a_rolling_restart_of_the_other_replica_never_interrupts_a_live_phase": 20,
        "test_a_killed_replicas_phase_is_taken_over_by_the_other_within_two_leases": 20,
    },
    "tests/test_step_isolation.py": {
        "test_a_step_run_as_the_step_user_reads_nothing_of_the_bot": 8,
        "test_a_bot_not_run_as_root_is_closed_to_its_own_steps": 8,
    },
    # CPU and health windows on real containers
    "tests/test_nostrmaxi_health_vantage_cpu.py": {
        "test_a_container_burning_cpu_fails_as_sustained_and_an_idle_one_passes": 15,
    },
    "tests/test_docker_steps.py": {
        "test_failing_healthcheck_no_healthcheck_and_crash_fail_within_the_wait": 9,
        "test_stats_memory_over_the_limit_fails_and_small_passes": 9,
    },
}
SLOW: dict[str, float] = {
    f"{module}::{name}": seconds
    for module, tests in _SLOW.items()
    for name, seconds in tests.items()
}


class Item(Protocol):
    @property
    def nodeid(self) -> str: ...


T = TypeVar("T", bound=Item)


def estimate(nodeid: str) -> float:
    """The seconds SLOW gives the test function of this node id (0: not known to be slow)."""
    return SLOW.get(nodeid.split("[", 1)[0], 0.0)


def slice_sizes(n: int, workers: int) -> list[int]:
    """The sizes of the slices worksteal first sends the workers (xdist's WorkStealingScheduling:
    each idle worker in turn gets len(pending) // workers_left)."""
    sizes, left = [], n
    for i in range(workers):
        size = left // (workers - i)
        sizes.append(size)
        left -= size
    return sizes


def order(items: Sequence[T], workers: int) -> list[T]:
    """The items, the known-slow ones at the head of the worker slices (see the module's doc)."""
    if workers < 2 or not items:
        return list(items)
    slow = sorted((i for i in items if estimate(i.nodeid) > 0), key=lambda i: -estimate(i.nodeid))
    if not slow:
        return list(items)
    sizes = slice_sizes(len(items), workers)
    heads: list[list[T]] = [[] for _ in sizes]
    load = [0.0] * len(sizes)
    for item in slow:
        free = [k for k in range(len(sizes)) if len(heads[k]) < sizes[k]]
        k = min(free, key=lambda k: (load[k], k))
        heads[k].append(item)
        load[k] += estimate(item.nodeid)
    slow_ids = {id(i) for i in slow}
    rest = iter([i for i in items if id(i) not in slow_ids])
    out: list[T] = []
    for k, size in enumerate(sizes):
        out += heads[k]
        out += [next(rest) for _ in range(size - len(heads[k]))]
    return out
