"""Simulated time: paced by speed, or not at all in backfill."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulators.clock import SimClock
from tests.simulators.conftest import START


class FakeWall:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_accelerated_time_runs_ten_simulated_minutes_per_wall_second() -> None:
    wall = FakeWall()
    clock = SimClock(START, 600, monotonic=wall.monotonic, sleep=wall.sleep)
    clock.wait_until(START + timedelta(minutes=10))
    assert wall.slept == [pytest.approx(1.0)]
    clock.wait_until(START + timedelta(minutes=5))  # already due: no sleep
    assert len(wall.slept) == 1
    wall.now += 2
    assert clock.now() == START + timedelta(minutes=30)


def test_real_time_is_speed_one() -> None:
    wall = FakeWall()
    clock = SimClock(START, 1, monotonic=wall.monotonic, sleep=wall.sleep)
    clock.wait_until(START + timedelta(seconds=3))
    assert wall.slept == [pytest.approx(3.0)]


def test_backfill_never_sleeps_and_follows_the_messages() -> None:
    wall = FakeWall()
    clock = SimClock(START, None, monotonic=wall.monotonic, sleep=wall.sleep)
    clock.wait_until(START + timedelta(days=3))
    assert wall.slept == [] and clock.backfill
    assert clock.now() == START + timedelta(days=3)


def test_a_clock_needs_an_aware_start_and_a_positive_speed() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(START.replace(tzinfo=None))
    with pytest.raises(ValueError, match="positive"):
        SimClock(START, 0)
