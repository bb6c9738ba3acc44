"""standins/fast_clock.FastClock: a wait moves its time on by the whole wait, whatever share
of it was really spent."""

from __future__ import annotations

import pytest

from standins.fast_clock import FastClock


def test_a_wait_moves_the_clock_on_by_all_of_it_and_skips_what_is_not_really_waited() -> None:
    clock = FastClock(real=0.25)
    before = clock.monotonic()
    clock.sleep(0.2)
    assert clock.skipped == pytest.approx(0.15)  # the other 0.05 s passed for real
    assert clock.monotonic() - before >= 0.2


def test_the_real_share_of_a_wait_is_between_none_and_all_of_it() -> None:
    with pytest.raises(ValueError, match="share of each wait"):
        FastClock(real=1.5)
