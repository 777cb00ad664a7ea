"""The event-log contract, written once; every backend implements it.

Semantics (checked by ``tests/eventlog/contract.py`` against every backend):

* A stream is split into ``partitions(stream)`` partitions; a record goes to
  the partition of its ``key`` so that all facts of one device stay in order.
* ``append`` is idempotent by envelope ``id`` per stream: a record whose id is
  already stored is skipped and the call reports it as a duplicate. When
  ``append`` returns, every record it accepted is durable.
* Positions are integers that grow with append order inside a partition
  (gaps are allowed). ``read`` returns records with ``position >= start``.
* Checkpoints are named per consumer, stream and partition; a consumer commits
  the position of the *next* record it wants, after its sink acknowledged.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from eventlog.envelope import Envelope


class LogError(RuntimeError):
    """The log cannot do what was asked (closed, corrupt, unreachable)."""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    stream: str
    partition: int
    position: int
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one ``append`` call did: ids newly stored and ids already present."""

    appended: int
    duplicates: int


class EventLog(abc.ABC):
    """The contract every backend (SQLite, Kafka) implements."""

    @abc.abstractmethod
    def partitions(self, stream: str) -> int:
        """How many partitions ``stream`` has (1 for the embedded backend)."""

    @abc.abstractmethod
    def append(self, stream: str, records: Sequence[Envelope]) -> AppendResult:
        """Durably append ``records`` in order, skipping ids already stored."""

    @abc.abstractmethod
    def read(
        self, stream: str, partition: int = 0, start: int = 0, limit: int = 1000
    ) -> list[StoredRecord]:
        """Up to ``limit`` records of one partition with ``position >= start``, in order."""

    @abc.abstractmethod
    def end_position(self, stream: str, partition: int = 0) -> int:
        """The position the next appended record will have at least (the high watermark)."""

    @abc.abstractmethod
    def get_checkpoint(self, consumer: str, stream: str, partition: int = 0) -> int:
        """The committed position of ``consumer`` (0 when it never committed)."""

    @abc.abstractmethod
    def commit_checkpoint(
        self, consumer: str, stream: str, position: int, partition: int = 0
    ) -> None:
        """Durably record that ``consumer`` continues at ``position``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources; further calls raise :class:`LogError`."""

    def iterate(
        self, stream: str, partition: int = 0, start: int = 0, batch: int = 1000
    ) -> Iterator[StoredRecord]:
        """Every record of one partition from ``start`` to the current end."""
        while True:
            records = self.read(stream, partition, start, batch)
            if not records:
                return
            yield from records
            start = records[-1].position + 1

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
