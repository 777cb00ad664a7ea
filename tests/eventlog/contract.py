"""The event-log contract, written once and run against every backend.

A backend's test module subclasses :class:`ContractSuite` and defines one
fixture, ``log_factory``: a callable that opens the test's own storage and
returns an :class:`EventLog`. Each test gets fresh, empty storage; calling the
factory again within a test opens *the same* storage again (after the test
closed the previous instance), which is how persistence is checked::

    class TestSqliteContract(ContractSuite):
        @pytest.fixture
        def log_factory(self, tmp_path):
            return lambda: SqliteEventLog(tmp_path / "log.db")

The suite makes no assumption about the number of partitions: records whose
order matters share one key (so they share one partition, wherever that is),
and records are looked up across every partition of a stream.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from eventlog.envelope import Envelope, Stream, deterministic_id
from eventlog.log import AppendResult, EventLog, LogError, StoredRecord

LogFactory = Callable[[], EventLog]

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def reading(n: int, device: str = "dev-1", *, kind: str = "reading.water_meter") -> Envelope:
    """The ``n``-th reading of ``device``; the id depends on (device, n) only."""
    at = T0 + timedelta(seconds=n)
    return Envelope(
        id=deterministic_id(kind, "estate-1", device, n),
        kind=kind,
        occurred_at=at,
        received_at=at + timedelta(milliseconds=250),
        estate="estate-1",
        building="b-3",
        device=device,
        payload={"seq": n, "flow_l_min": 3.25, "total_m3": 1000 + n / 8},
    )


def readings(count: int, device: str = "dev-1", first: int = 0) -> list[Envelope]:
    return [reading(n, device) for n in range(first, first + count)]


def everything(log: EventLog, stream: str) -> list[StoredRecord]:
    """Every record of ``stream``, partition by partition, each in position order."""
    return [r for p in range(log.partitions(stream)) for r in log.iterate(stream, p)]


def home(log: EventLog, stream: str) -> int:
    """The one partition of ``stream`` that holds records (the test wrote a single key)."""
    used = {r.partition for r in everything(log, stream)}
    assert len(used) == 1, f"expected records in exactly one partition, found {used}"
    return used.pop()


def ids(records: list[StoredRecord]) -> list[object]:
    return [r.envelope.id for r in records]


class ContractSuite:
    """What every backend of :class:`EventLog` must do. Subclasses define ``log_factory``."""

    @pytest.fixture
    def log(self, log_factory: LogFactory) -> Iterator[EventLog]:
        log = log_factory()
        yield log
        log.close()

    # --- append and read ----------------------------------------------------------------------

    def test_append_and_read_back_in_order(self, log: EventLog) -> None:
        sent = readings(25)
        assert log.append(Stream.READINGS, sent) == AppendResult(appended=25, duplicates=0)
        part = home(log, Stream.READINGS)
        got = log.read(Stream.READINGS, part, 0, 1000)
        assert [r.envelope for r in got] == sent
        assert all(r.stream == "readings" and r.partition == part for r in got)
        positions = [r.position for r in got]
        assert positions == sorted(set(positions)), "positions must grow with append order"

    def test_order_is_kept_across_append_calls(self, log: EventLog) -> None:
        sent = readings(30)
        for i in range(0, 30, 7):
            log.append(Stream.READINGS, sent[i : i + 7])
        assert [r.envelope for r in everything(log, Stream.READINGS)] == sent

    def test_stream_enum_and_its_name_are_the_same_stream(self, log: EventLog) -> None:
        log.append(Stream.EVENTS, readings(2))
        log.append("events", readings(1, first=2))
        assert [r.envelope for r in everything(log, "events")] == readings(3)
        assert all(r.stream == "events" for r in everything(log, Stream.EVENTS))

    def test_empty_append_does_nothing(self, log: EventLog) -> None:
        assert log.append(Stream.READINGS, []) == AppendResult(appended=0, duplicates=0)
        assert everything(log, Stream.READINGS) == []

    # --- idempotency --------------------------------------------------------------------------

    def test_same_id_in_a_later_call_is_stored_once(self, log: EventLog) -> None:
        sent = readings(5)
        assert log.append(Stream.READINGS, sent) == AppendResult(appended=5, duplicates=0)
        assert log.append(Stream.READINGS, sent) == AppendResult(appended=0, duplicates=5)
        mixed = sent[3:] + readings(2, first=5)  # two known, two new
        assert log.append(Stream.READINGS, mixed) == AppendResult(appended=2, duplicates=2)
        assert ids(everything(log, Stream.READINGS)) == [e.id for e in readings(7)]

    def test_same_id_within_one_batch_is_stored_once(self, log: EventLog) -> None:
        a, b, c = readings(3)
        result = log.append(Stream.READINGS, [a, b, a, c, b, a])
        assert result == AppendResult(appended=3, duplicates=3)
        assert ids(everything(log, Stream.READINGS)) == [a.id, b.id, c.id]

    def test_first_write_of_an_id_wins(self, log: EventLog) -> None:
        first = reading(1)
        again = first.with_payload(flow_l_min=99.0)  # same id, other content
        log.append(Stream.READINGS, [first])
        assert log.append(Stream.READINGS, [again]) == AppendResult(appended=0, duplicates=1)
        (stored,) = everything(log, Stream.READINGS)
        assert stored.envelope == first

    def test_idempotency_is_per_stream(self, log: EventLog) -> None:
        sent = readings(3)
        assert log.append(Stream.READINGS, sent).appended == 3
        assert log.append(Stream.EVENTS, sent).appended == 3
        assert ids(everything(log, Stream.EVENTS)) == [e.id for e in sent]

    # --- positions, paging, iterate ----------------------------------------------------------

    def test_read_pages_with_start_and_limit(self, log: EventLog) -> None:
        sent = readings(10)
        log.append(Stream.READINGS, sent)
        part = home(log, Stream.READINGS)
        first = log.read(Stream.READINGS, part, 0, 4)
        assert [r.envelope for r in first] == sent[:4]
        second = log.read(Stream.READINGS, part, first[-1].position + 1, 4)
        assert [r.envelope for r in second] == sent[4:8]
        rest = log.read(Stream.READINGS, part, second[-1].position + 1, 4)
        assert [r.envelope for r in rest] == sent[8:]
        assert log.read(Stream.READINGS, part, rest[-1].position + 1, 4) == []

    def test_read_returns_records_at_or_after_start(self, log: EventLog) -> None:
        log.append(Stream.READINGS, readings(6))
        part = home(log, Stream.READINGS)
        stored = log.read(Stream.READINGS, part, 0, 100)
        for i, record in enumerate(stored):
            assert log.read(Stream.READINGS, part, record.position, 100) == stored[i:]
        assert log.read(Stream.READINGS, part, stored[-1].position + 1_000_000, 100) == []

    def test_iterate_yields_everything_from_start(self, log: EventLog) -> None:
        sent = readings(23)
        log.append(Stream.READINGS, sent)
        part = home(log, Stream.READINGS)
        assert [r.envelope for r in log.iterate(Stream.READINGS, part, batch=5)] == sent
        stored = log.read(Stream.READINGS, part, 0, 100)
        tail = list(log.iterate(Stream.READINGS, part, start=stored[10].position, batch=4))
        assert tail == stored[10:]

    def test_end_position(self, log: EventLog) -> None:
        log.append(Stream.READINGS, readings(5))
        part = home(log, Stream.READINGS)
        stored = log.read(Stream.READINGS, part, 0, 100)
        end = log.end_position(Stream.READINGS, part)
        assert end == stored[-1].position + 1
        assert log.read(Stream.READINGS, part, end, 100) == []
        log.append(Stream.READINGS, readings(3, first=5))
        new = log.read(Stream.READINGS, part, end, 100)
        assert [r.envelope for r in new] == readings(3, first=5)
        assert all(r.position >= end for r in new)
        assert log.end_position(Stream.READINGS, part) == new[-1].position + 1

    def test_duplicates_do_not_move_end_position(self, log: EventLog) -> None:
        log.append(Stream.READINGS, readings(4))
        part = home(log, Stream.READINGS)
        end = log.end_position(Stream.READINGS, part)
        log.append(Stream.READINGS, readings(4))
        assert log.end_position(Stream.READINGS, part) == end

    def test_reading_an_empty_stream(self, log: EventLog) -> None:
        log.append(Stream.READINGS, readings(3))  # another stream has data
        assert log.partitions(Stream.EVENTS) >= 1
        for part in range(log.partitions(Stream.EVENTS)):
            assert log.read(Stream.EVENTS, part, 0, 10) == []
            assert list(log.iterate(Stream.EVENTS, part)) == []
            assert log.end_position(Stream.EVENTS, part) == 0
        assert everything(log, "never-written") == []

    def test_streams_are_isolated(self, log: EventLog) -> None:
        log.append(Stream.READINGS, readings(4, "dev-1"))
        log.append(Stream.EVENTS, readings(2, "dev-2"))
        log.append(Stream.READINGS, readings(2, "dev-1", first=4))
        assert [r.envelope for r in everything(log, Stream.READINGS)] == readings(6, "dev-1")
        assert [r.envelope for r in everything(log, Stream.EVENTS)] == readings(2, "dev-2")
        assert everything(log, Stream.REJECTED) == []

    def test_records_of_one_key_stay_in_one_partition_in_order(self, log: EventLog) -> None:
        devices = [f"dev-{d}" for d in range(12)]
        sent: dict[str, list[Envelope]] = {d: [] for d in devices}
        batch = []
        for n in range(10):
            for d in devices:
                sent[d].append(reading(n, d))
                batch.append(sent[d][-1])
        log.append(Stream.READINGS, batch)
        got: dict[str, list[StoredRecord]] = {}
        for record in everything(log, Stream.READINGS):
            got.setdefault(record.envelope.key, []).append(record)
        for d in devices:
            records = got[f"estate-1/{d}"]
            assert len({r.partition for r in records}) == 1
            assert [r.envelope for r in records] == sent[d]
            assert 0 <= records[0].partition < log.partitions(Stream.READINGS)

    # --- checkpoints --------------------------------------------------------------------------

    def test_checkpoint_defaults_to_zero(self, log: EventLog) -> None:
        assert log.get_checkpoint("influx", Stream.READINGS) == 0

    def test_commit_checkpoint(self, log: EventLog) -> None:
        log.commit_checkpoint("influx", Stream.READINGS, 42)
        assert log.get_checkpoint("influx", Stream.READINGS) == 42
        log.commit_checkpoint("influx", Stream.READINGS, 57)
        assert log.get_checkpoint("influx", Stream.READINGS) == 57
        log.commit_checkpoint("influx", Stream.READINGS, 0)  # a rebuild starts over
        assert log.get_checkpoint("influx", Stream.READINGS) == 0

    def test_checkpoints_are_per_consumer_and_stream(self, log: EventLog) -> None:
        log.commit_checkpoint("influx", Stream.READINGS, 10)
        log.commit_checkpoint("alert-book", Stream.READINGS, 20)
        log.commit_checkpoint("influx", Stream.EVENTS, 30)
        assert log.get_checkpoint("influx", Stream.READINGS) == 10
        assert log.get_checkpoint("alert-book", Stream.READINGS) == 20
        assert log.get_checkpoint("influx", Stream.EVENTS) == 30
        assert log.get_checkpoint("alert-book", Stream.EVENTS) == 0

    def test_consumer_resumes_from_its_checkpoint(self, log: EventLog) -> None:
        log.append(Stream.READINGS, readings(8))
        part = home(log, Stream.READINGS)
        first = log.read(Stream.READINGS, part, log.get_checkpoint("c", Stream.READINGS, part), 5)
        log.commit_checkpoint("c", Stream.READINGS, first[-1].position + 1, part)
        start = log.get_checkpoint("c", Stream.READINGS, part)
        rest = log.read(Stream.READINGS, part, start, 100)
        assert [r.envelope for r in first + rest] == readings(8)
        log.commit_checkpoint("c", Stream.READINGS, rest[-1].position + 1, part)
        assert log.get_checkpoint("c", Stream.READINGS, part) == log.end_position(
            Stream.READINGS, part
        )

    # --- persistence --------------------------------------------------------------------------

    def test_records_and_checkpoints_survive_reopen(self, log_factory: LogFactory) -> None:
        with log_factory() as log:
            log.append(Stream.READINGS, readings(12))
            log.commit_checkpoint("influx", Stream.READINGS, 7)
            before = everything(log, Stream.READINGS)
            end = log.end_position(Stream.READINGS, before[0].partition)
        with log_factory() as log:
            assert everything(log, Stream.READINGS) == before
            assert log.get_checkpoint("influx", Stream.READINGS) == 7
            assert log.end_position(Stream.READINGS, before[0].partition) == end
            # idempotency holds across reopen
            assert log.append(Stream.READINGS, readings(13)) == AppendResult(1, 12)

    # --- concurrency --------------------------------------------------------------------------

    def test_concurrent_appends_and_reads(self, log: EventLog) -> None:
        """Writers append the same 600 ids in different orders while readers page through."""
        sent = readings(600)
        results: list[AppendResult] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def write(seed: int) -> None:
            order = sent[:]
            random.Random(seed).shuffle(order)
            try:
                for i in range(0, len(order), 40):
                    results.append(log.append(Stream.READINGS, order[i : i + 40]))
            except BaseException as exc:
                errors.append(exc)

        def read() -> None:
            try:
                while not done.is_set():
                    for part in range(log.partitions(Stream.READINGS)):
                        positions = [r.position for r in log.iterate(Stream.READINGS, part)]
                        assert positions == sorted(set(positions))
            except BaseException as exc:
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(2)]
        writers = [threading.Thread(target=write, args=(seed,)) for seed in range(4)]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join(timeout=60)
        done.set()
        for thread in readers:
            thread.join(timeout=60)
        assert not errors, errors
        assert sum(r.appended for r in results) == 600
        assert sum(r.duplicates for r in results) == 3 * 600
        assert sorted(str(i) for i in ids(everything(log, Stream.READINGS))) == sorted(
            str(e.id) for e in sent
        )

    # --- closing ------------------------------------------------------------------------------

    def test_closed_log_raises(self, log_factory: LogFactory) -> None:
        log = log_factory()
        log.append(Stream.READINGS, readings(1))
        log.close()
        calls: list[Callable[[], object]] = [
            lambda: log.partitions(Stream.READINGS),
            lambda: log.append(Stream.READINGS, readings(1, first=1)),
            lambda: log.append(Stream.READINGS, []),
            lambda: log.read(Stream.READINGS),
            lambda: list(log.iterate(Stream.READINGS)),
            lambda: log.end_position(Stream.READINGS),
            lambda: log.get_checkpoint("influx", Stream.READINGS),
            lambda: log.commit_checkpoint("influx", Stream.READINGS, 1),
        ]
        for call in calls:
            with pytest.raises(LogError):
                call()

    def test_close_is_idempotent_and_context_manager_closes(self, log_factory: LogFactory) -> None:
        with log_factory() as log:
            log.append(Stream.READINGS, readings(1))
        with pytest.raises(LogError):
            log.read(Stream.READINGS)
        log.close()  # a second close is harmless
