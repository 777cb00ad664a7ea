"""Time for alert delivery: the wall clock, or a virtual one for tests and benchmarks.

Delivery reads time through a :class:`Clock` (``now()`` and ``sleep()``): retry and
backoff schedules, ``webhook-timestamp`` and the receiver's tolerance window all use
it. Polling of the log and of the outbox (work that other processes may create) uses
real time, so a frozen virtual clock never stalls delivery.

:class:`VirtualClock` stands still until it is advanced. ``autojump`` advances it to
the next sleeper's deadline whenever the program has had a moment of real time to
react, so a 40-minute outage of a street office runs in a second or two while the
HTTP traffic stays real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "SystemClock", "VirtualClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The wall clock and ``asyncio.sleep``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """A clock that moves only when advanced; sleepers wake when their deadline is reached."""

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("naive datetime: a timezone is required")
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now + timedelta(seconds=seconds)
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future  # a cancelled sleeper is skipped when its deadline comes

    def next_deadline(self) -> datetime | None:
        """The earliest deadline of a sleeper still waiting, if any."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def advance_to(self, when: datetime) -> None:
        """Move to ``when`` (never backwards) and wake every sleeper due by then."""
        self._now = max(self._now, when)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def advance(self, seconds: float) -> None:
        self.advance_to(self._now + timedelta(seconds=seconds))

    async def autojump(
        self,
        done: Callable[[], bool],
        *,
        until: datetime | None = None,
        real_pause: float = 0.002,
        idle: float = 0.2,
        real_timeout: float = 60.0,
    ) -> bool:
        """Jump from deadline to deadline until ``done()`` or the clock reaches ``until``.

        Between jumps the program gets ``real_pause`` seconds of real time to act
        (finish an HTTP attempt, record it). With no sleeper at all for ``idle`` real
        seconds the clock jumps to ``until``. Returns ``done()``; raises
        ``TimeoutError`` after ``real_timeout`` real seconds.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + real_timeout
        quiet_since = loop.time()
        while not done():
            if until is not None and self._now >= until:
                return False
            if loop.time() > give_up:
                raise TimeoutError(f"virtual clock stuck at {self._now.isoformat()}")
            await asyncio.sleep(real_pause)
            deadline = self.next_deadline()
            if deadline is None:
                if until is not None and loop.time() - quiet_since > idle:
                    self.advance_to(until)
                continue
            quiet_since = loop.time()
            self.advance_to(deadline if until is None else min(deadline, until))
        return True
