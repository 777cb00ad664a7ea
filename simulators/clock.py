"""Simulated time, independent of the wall clock.

Three modes, one class:

* **backfill** (``speed=None``): as fast as possible; device times are historical;
* **real time** (``speed=1``): one simulated second per wall second;
* **accelerated** (``speed=600``: ten simulated minutes per wall second).

The simulator stamps messages with simulated time; :meth:`SimClock.wait_until` holds
each message back until the wall clock has caught up with it (never in backfill).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta


class SimClock:
    def __init__(
        self,
        start: datetime,
        speed: float | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated start must be timezone-aware")
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (or None for backfill)")
        self.start = start
        self.speed = speed
        self._monotonic = monotonic
        self._sleep = sleep
        self._wall0 = monotonic()
        self._latest = start

    @property
    def backfill(self) -> bool:
        return self.speed is None

    def now(self) -> datetime:
        """Simulated now: from the wall clock when paced, the latest message in backfill."""
        if self.speed is None:
            return self._latest
        return self.start + timedelta(seconds=(self._monotonic() - self._wall0) * self.speed)

    def wall_at(self, at: datetime) -> float:
        """The monotonic wall time at which simulated ``at`` falls due (paced modes)."""
        assert self.speed is not None
        return self._wall0 + (at - self.start).total_seconds() / self.speed

    def wait_until(self, at: datetime) -> None:
        """Sleep until simulated ``at`` is due (returns at once in backfill)."""
        self._latest = max(self._latest, at)
        if self.speed is None:
            return
        ahead = self.wall_at(at) - self._monotonic()
        if ahead > 0:
            self._sleep(ahead)
