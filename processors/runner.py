"""The embedded runner: consumers of the log that survive restarts.

A :class:`Consumer` reads one or more streams of the log partition by partition,
hands each batch to :meth:`Consumer.handle`, and from time to time writes one
snapshot holding its whole state *and* the positions it corresponds to
(:class:`processors.statestore.StateStore`); the log checkpoint is committed after the
snapshot, for lag reporting. A consumer killed at any moment restarts from its last
snapshot and re-reads what came after; anything it appends is idempotent by id
(deterministic ids), so the re-run adds nothing twice.

:class:`DetectorRunner` is the consumer that feeds ``readings`` and operator
``commands`` to one :class:`processors.engine.Engine` per partition and appends what
it returns to ``events``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from eventlog.envelope import Stream
from eventlog.log import EventLog, StoredRecord
from processors.engine import Engine
from processors.statestore import StateStore

log = logging.getLogger(__name__)

#: Operator commands (acknowledge, assign, comment, resolve, maintenance) enter here.
COMMANDS: Final = "commands"


def _wall() -> datetime:
    return datetime.now(UTC)


class Consumer(abc.ABC):
    """Reads ``streams`` of the log with positions kept in its snapshot."""

    #: Snapshot name and checkpoint consumer name.
    name: str
    streams: tuple[str, ...]

    def __init__(
        self,
        log_: EventLog,
        store: StateStore,
        *,
        batch: int = 2000,
        snapshot_every_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log_
        self.store = store
        self.batch = batch
        self.snapshot_every_s = snapshot_every_s
        self._monotonic = monotonic
        self.positions: dict[str, dict[int, int]] = {s: {} for s in self.streams}
        self._dirty = False
        self._saved_at = monotonic()
        self.records = 0  #: records handled since start (progress, rates)

    # --- what a consumer does ----------------------------------------------------------

    @abc.abstractmethod
    def handle(self, stream: str, partition: int, records: Sequence[StoredRecord]) -> None:
        """Take one batch of one partition, in log order."""

    @abc.abstractmethod
    def state(self) -> Any:
        """The consumer's state as JSON-compatible data."""

    @abc.abstractmethod
    def restore(self, data: Any) -> None:
        """Continue from what :meth:`state` returned."""

    def idle(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Called when a poll found nothing new (caught up with the log)."""

    # --- driving -----------------------------------------------------------------------

    def load(self) -> bool:
        """Restore the last snapshot; ``False`` when there is none (start from zero)."""
        data = self.store.load(self.name)
        if data is None:
            return False
        self.positions = {
            s: {int(p): int(v) for p, v in data["positions"].get(s, {}).items()}
            for s in self.streams
        }
        self.restore(data["state"])
        return True

    def poll(self) -> int:
        """Handle one batch of every partition of every stream; how many records."""
        done = 0
        for stream in self.streams:
            positions = self.positions[stream]
            for partition in range(self.log.partitions(stream)):
                start = positions.get(partition, 0)
                records = self.log.read(stream, partition, start, self.batch)
                if not records:
                    continue
                self.handle(stream, partition, records)
                positions[partition] = records[-1].position + 1
                done += len(records)
        if done:
            self._dirty = True
            self.records += done
        else:
            self.idle()
        if self._dirty and self._monotonic() - self._saved_at >= self.snapshot_every_s:
            self.save()
        return done

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Poll until the log has nothing new; how many records were handled."""
        total = 0
        while n := self.poll():
            total += n
            if progress is not None:
                progress(total)
        return total

    def save(self) -> int:
        """Write the snapshot now, then commit the checkpoints; the snapshot's size."""
        size = self.store.save(
            self.name,
            {
                "positions": {
                    s: {str(p): v for p, v in by_p.items()} for s, by_p in self.positions.items()
                },
                "state": self.state(),
            },
        )
        for stream, by_partition in self.positions.items():
            for partition, position in by_partition.items():
                self.log.commit_checkpoint(self.name, stream, position, partition)
        self._dirty = False
        self._saved_at = self._monotonic()
        return size

    def lag(self) -> int:
        """Records in the log not yet handled (over every stream and partition)."""
        behind = 0
        for stream in self.streams:
            for partition in range(self.log.partitions(stream)):
                end = self.log.end_position(stream, partition)
                behind += max(0, end - self.positions[stream].get(partition, 0))
        return behind

    async def run(self, stop: asyncio.Event, idle_s: float = 0.05) -> None:
        """Poll until ``stop`` is set (in a worker thread), then save a final snapshot."""
        try:
            while not stop.is_set():
                if not await asyncio.to_thread(self.poll):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), idle_s)
        finally:
            if self._dirty:
                await asyncio.to_thread(self.save)


class DetectorRunner(Consumer):
    """Feeds readings and commands to one engine per partition; appends their events."""

    name = "detectors"
    streams = (Stream.READINGS.value, COMMANDS)

    def __init__(
        self,
        log_: EventLog,
        store: StateStore,
        make_engine: Callable[[], Engine],
        *,
        clock: Callable[[], datetime] = _wall,
        **kwargs: Any,
    ) -> None:
        super().__init__(log_, store, **kwargs)
        self.make_engine = make_engine
        self.clock = clock
        self.engines: dict[int, Engine] = {}
        self.events_appended = 0

    def engine(self, partition: int) -> Engine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = self.engines[partition] = self.make_engine()
        return engine

    def handle(self, stream: str, partition: int, records: Sequence[StoredRecord]) -> None:
        engine, now = self.engine(partition), self.clock()
        if stream == COMMANDS:
            out = [e for r in records for e in engine.command(r.envelope, now)]
        else:
            out = engine.push((r.envelope for r in records), now)
        if out:
            self.events_appended += self.log.append(Stream.EVENTS, out).appended

    def finish(self) -> int:
        """End of a finite input: judge what is buffered (see :meth:`Engine.flush`)."""
        now, appended = self.clock(), 0
        for engine in self.engines.values():
            out = engine.flush(now)
            if out:
                appended += self.log.append(Stream.EVENTS, out).appended
        self.events_appended += appended
        self._dirty = True
        return appended

    def state(self) -> Any:
        return {str(p): e.snapshot() for p, e in self.engines.items()}

    def restore(self, data: Any) -> None:
        self.engines = {}
        for partition, snapshot in data.items():
            self.engine(int(partition)).restore(snapshot)
