"""The SQLite backend: the contract suite, plus what only the embedded file has to show."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventlog.envelope import Stream
from eventlog.log import AppendResult, EventLog, LogError
from eventlog.sqlite import APPLICATION_ID, PAGE_SIZE, SCHEMA_VERSION, SqliteEventLog
from tests.eventlog.contract import ContractSuite, LogFactory, reading, readings

ROOT = Path(__file__).resolve().parents[2]


class TestSqliteContract(ContractSuite):
    @pytest.fixture(params=["NORMAL", "FULL"])
    def log_factory(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogFactory]:
        opened: list[EventLog] = []

        def open_log() -> EventLog:
            log = SqliteEventLog(tmp_path / "log.db", synchronous=request.param)
            opened.append(log)
            return log

        yield open_log
        for log in opened:
            log.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "log.db"


@pytest.fixture
def log(path: Path) -> Iterator[SqliteEventLog]:
    with SqliteEventLog(path) as log:
        yield log


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# --- the file -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("synchronous", "level"), [("NORMAL", 1), ("FULL", 2)])
def test_file_settings(path: Path, synchronous: str, level: int) -> None:
    with SqliteEventLog(path, synchronous=synchronous) as log:  # type: ignore[arg-type]
        assert log.path == path
        assert log.synchronous == synchronous
        conn = log._conn  # the settings that matter are per connection
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db = raw(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    db.close()


def test_synchronous_must_be_normal_or_full(path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteEventLog(path, synchronous="OFF")  # type: ignore[arg-type]


def test_creates_missing_parent_folders(tmp_path: Path) -> None:
    with SqliteEventLog(tmp_path / "a" / "b" / "log.db") as log:
        log.append(Stream.READINGS, readings(1))
    assert (tmp_path / "a" / "b" / "log.db").is_file()


def test_an_empty_file_becomes_a_log(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.touch()
    with SqliteEventLog(path) as log:
        assert log.append(Stream.READINGS, readings(2)) == AppendResult(2, 0)


def test_stored_row(log: SqliteEventLog, path: Path) -> None:
    envelope = reading(7)
    log.append(Stream.READINGS, [envelope])
    db = raw(path)
    (number,) = db.execute("SELECT number FROM streams WHERE name = 'readings'").fetchone()
    row = db.execute(f"SELECT position, id, key, kind, envelope FROM stream_{number}").fetchone()
    assert row == (1, envelope.id.bytes, "estate-1/dev-1", "reading.water_meter", row[4])
    assert row[4] == envelope.to_json().decode()  # the stored JSON is exactly to_json()
    assert db.execute(f"SELECT json_extract(envelope, '$.payload.seq') FROM stream_{number}")
    db.close()


def test_integrity_check_and_repr(log: SqliteEventLog, path: Path) -> None:
    log.append(Stream.READINGS, readings(3))
    assert log.integrity_check() == []
    assert repr(log) == f"SqliteEventLog({str(path)!r}, synchronous='NORMAL') [open]"
    log.close()
    assert repr(log).endswith("[closed]")


# --- arguments ----------------------------------------------------------------------------------


def test_one_partition_per_stream(log: SqliteEventLog) -> None:
    log.append(Stream.READINGS, readings(1))
    assert log.partitions(Stream.READINGS) == 1
    calls: list[Callable[[], object]] = [
        lambda: log.read(Stream.READINGS, 1),
        lambda: log.read(Stream.READINGS, -1),
        lambda: log.end_position(Stream.READINGS, 1),
        lambda: log.get_checkpoint("c", Stream.READINGS, 1),
        lambda: log.commit_checkpoint("c", Stream.READINGS, 5, 1),
        lambda: list(log.iterate(Stream.READINGS, 2)),
    ]
    for call in calls:
        with pytest.raises(LogError, match="one partition per stream"):
            call()


def test_bad_arguments(log: SqliteEventLog) -> None:
    with pytest.raises(ValueError, match="limit"):
        log.read(Stream.READINGS, limit=0)
    with pytest.raises(ValueError, match="negative"):
        log.commit_checkpoint("c", Stream.READINGS, -1)
    with pytest.raises(ValueError, match="stream"):
        log.append("", readings(1))
    with pytest.raises(ValueError, match="consumer"):
        log.get_checkpoint("", Stream.READINGS)


def test_positions_are_per_stream_and_never_reused(log: SqliteEventLog) -> None:
    log.append(Stream.READINGS, readings(3))
    log.append(Stream.EVENTS, readings(2, "dev-2"))
    log.append(Stream.READINGS, readings(3) + readings(2, first=3))
    assert [r.position for r in log.iterate(Stream.EVENTS)] == [1, 2]
    positions = [r.position for r in log.iterate(Stream.READINGS)]
    assert positions[:3] == [1, 2, 3]
    assert positions == sorted(set(positions))  # skipped duplicates may leave gaps
    assert log.end_position(Stream.READINGS) == positions[-1] + 1


# --- volume and duplicates ----------------------------------------------------------------------


def test_100k_readings_batched_read_back_in_order(log: SqliteEventLog) -> None:
    devices = [f"dev-{d:03d}" for d in range(200)]
    sent = [reading(n // 200, devices[n % 200]) for n in range(100_000)]
    total = AppendResult(0, 0)
    for i in range(0, len(sent), 1000):
        result = log.append(Stream.READINGS, sent[i : i + 1000])
        total = AppendResult(total.appended + result.appended, total.duplicates + result.duplicates)
    assert total == AppendResult(appended=100_000, duplicates=0)

    got = list(log.iterate(Stream.READINGS))
    assert len(got) == 100_000
    assert [r.envelope.id for r in got] == [e.id for e in sent]
    assert [r.position for r in got] == list(range(1, 100_001))
    assert got[0].envelope == sent[0] and got[-1].envelope == sent[-1]
    assert log.end_position(Stream.READINGS) == 100_001


def test_duplicate_ids_are_stored_once(log: SqliteEventLog, path: Path) -> None:
    sent = readings(1000)
    assert log.append(Stream.READINGS, sent) == AppendResult(1000, 0)
    assert log.append(Stream.READINGS, sent[::-1]) == AppendResult(0, 1000)
    assert log.append(Stream.READINGS, sent[:10] * 3 + readings(5, first=1000)) == AppendResult(
        5, 30
    )
    db = raw(path)
    (number,) = db.execute("SELECT number FROM streams WHERE name = 'readings'").fetchone()
    count, distinct = db.execute(
        f"SELECT count(*), count(DISTINCT id) FROM stream_{number}"
    ).fetchone()
    db.close()
    assert count == distinct == 1005


def test_two_instances_on_one_file_share_records_and_idempotency(path: Path) -> None:
    with SqliteEventLog(path) as a, SqliteEventLog(path) as b:
        assert a.append(Stream.READINGS, readings(10)) == AppendResult(10, 0)
        assert b.append(Stream.READINGS, readings(15)) == AppendResult(5, 10)
        assert [r.envelope for r in a.iterate(Stream.READINGS)] == readings(15)
        b.commit_checkpoint("influx", Stream.READINGS, 9)
        assert a.get_checkpoint("influx", Stream.READINGS) == 9
        assert a.append(Stream.EVENTS, readings(1)) == AppendResult(1, 0)  # created by a
        assert b.end_position(Stream.EVENTS) == 2


# --- crash safety -------------------------------------------------------------------------------

CHILD = """
import sys
from eventlog.envelope import Stream
from eventlog.sqlite import SqliteEventLog
from tests.eventlog.contract import readings

path, synchronous, first, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = SqliteEventLog(path, synchronous=synchronous)
pool = readings(40 * batch, first=first)  # built beforehand: the loop is nearly all append
for i in range(0, len(pool), batch):
    print("appending", flush=True)
    result = log.append(Stream.READINGS, pool[i : i + batch])
    assert result.appended == batch, result
    print(first + i + batch, flush=True)  # every record below this is acknowledged
"""


def append_until_killed(path: Path, synchronous: str, first: int, batch: int) -> tuple[int, bool]:
    """Run a child appending batches and SIGKILL it inside an append call.

    Returns how many records the child had acknowledged, and whether it died
    inside ``append`` (it had announced an append that never returned).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), synchronous, str(first), str(batch)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged, last = first, ""
    try:
        assert child.stdout is not None
        for line in child.stdout:
            last = line.strip()
            if last != "appending":
                acknowledged = int(last)
            elif acknowledged - first >= 6 * batch:
                time.sleep(random.uniform(0, 0.012))  # about as long as one append
                child.send_signal(signal.SIGKILL)
                break
        else:
            raise AssertionError(f"child ended before it was killed: {child.wait()}")
        rest, _ = child.communicate(timeout=30)
        for line in rest.split("\n"):  # what it printed before it died
            if line.strip():
                last = line.strip()
                if last != "appending":
                    acknowledged = int(last)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    return acknowledged, last == "appending"


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_sigkill_during_batched_appends_loses_nothing_acknowledged(
    path: Path, synchronous: str
) -> None:
    batch = 500
    stored = 0
    killed_inside_append = 0
    for _ in range(3):
        acknowledged, inside = append_until_killed(path, synchronous, stored, batch)
        killed_inside_append += inside
        assert (path.parent / (path.name + "-wal")).exists()  # it died with the WAL open
        with SqliteEventLog(path) as log:
            assert log.integrity_check() == []
            got = list(log.iterate(Stream.READINGS))
        stored = len(got)
        assert stored >= acknowledged, "an acknowledged append was lost"
        assert stored % batch == 0, "a batch was stored in part"
        assert [r.envelope.id for r in got] == [e.id for e in readings(stored)]
    assert killed_inside_append >= 1, "no kill landed inside an append call"
    db = raw(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()


# --- files that are not (our) event logs --------------------------------------------------------


def refused(path: Path, match: str) -> str:
    before = path.read_bytes()
    with pytest.raises(LogError, match=match) as caught:
        SqliteEventLog(path)
    assert path.read_bytes() == before, "a refused file must be left untouched"
    return str(caught.value)


def test_random_bytes_are_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(random.Random(1).randbytes(64 * 1024))
    message = refused(path, "not a valid SQLite database")
    assert str(path) in message


def test_a_text_file_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("estate: green-valley\nbuildings: []\n" * 200)
    refused(path, "not a valid SQLite database")


def test_a_foreign_sqlite_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = raw(path)
    db.execute("CREATE TABLE residents (name TEXT)")
    db.close()
    refused(path, r"another application .*residents")


def test_a_log_of_a_newer_schema_is_refused(path: Path) -> None:
    SqliteEventLog(path).close()
    db = raw(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    refused(path, f"schema version {SCHEMA_VERSION + 1}, newer")


def test_a_log_missing_its_tables_is_refused(path: Path) -> None:
    SqliteEventLog(path).close()
    db = raw(path)
    db.execute("DROP TABLE checkpoints")
    db.close()
    refused(path, "damaged")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="directory"):
        SqliteEventLog(tmp_path)


def test_corrupt_pages_raise_log_error(path: Path) -> None:
    with SqliteEventLog(path) as log:
        log.append(Stream.READINGS, readings(3000))
    data = bytearray(path.read_bytes())
    assert len(data) > 4 * PAGE_SIZE
    data[PAGE_SIZE:] = random.Random(2).randbytes(len(data) - PAGE_SIZE)  # keep page 1
    path.write_bytes(bytes(data))
    with pytest.raises(LogError, match="corrupt"), SqliteEventLog(path) as log:  # not sqlite3's
        list(log.iterate(Stream.READINGS))


_OPEN_AND_APPEND = """
import sys
from datetime import UTC, datetime
from eventlog.envelope import Envelope, deterministic_id
from eventlog.sqlite import SqliteEventLog
now = datetime.now(UTC)
with SqliteEventLog(sys.argv[1]) as log:
    log.append("readings", [Envelope(id=deterministic_id("t", sys.argv[2]), kind="t",
               occurred_at=now, received_at=now)])
"""


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Replicas started together on an empty data dir race to create the schema."""
    for attempt in range(8):
        path = tmp_path / f"race-{attempt}.db"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_AND_APPEND, str(path), str(n)],
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(4)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), errors
        with SqliteEventLog(path) as log:
            assert len(list(log.iterate("readings"))) == 4
