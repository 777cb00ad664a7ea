"""A log seen through the :class:`eventlog.log.EventLog` contract only."""

from __future__ import annotations

from collections.abc import Sequence

from eventlog.envelope import Envelope
from eventlog.log import AppendResult, EventLog, StoredRecord


class ContractOnlyLog(EventLog):
    """Wraps a real log and offers only the contract, like another backend would: none of
    the SQLite log's extras (``read_key``, ``read_json``), so code that uses them when they
    are there is also tested without them. Closing it leaves the real log open."""

    def __init__(self, inner: EventLog) -> None:
        self.inner = inner

    def partitions(self, stream: str) -> int:
        return self.inner.partitions(stream)

    def append(self, stream: str, records: Sequence[Envelope]) -> AppendResult:
        return self.inner.append(stream, records)

    def read(
        self, stream: str, partition: int = 0, start: int = 0, limit: int = 1000
    ) -> list[StoredRecord]:
        return self.inner.read(stream, partition, start, limit)

    def end_position(self, stream: str, partition: int = 0) -> int:
        return self.inner.end_position(stream, partition)

    def get_checkpoint(self, consumer: str, stream: str, partition: int = 0) -> int:
        return self.inner.get_checkpoint(consumer, stream, partition)

    def commit_checkpoint(
        self, consumer: str, stream: str, position: int, partition: int = 0
    ) -> None:
        self.inner.commit_checkpoint(consumer, stream, position, partition)

    def close(self) -> None:
        """Whoever opened the real log closes it."""
