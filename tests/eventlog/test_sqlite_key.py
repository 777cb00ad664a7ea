"""``SqliteEventLog.read_key``: the records of one device over a time range, and its index."""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from eventlog.envelope import Stream
from eventlog.sqlite import SqliteEventLog
from tests.eventlog.contract import T0, reading

KEY = "estate-1/dev-1"


def key_index_tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT tbl_name FROM sqlite_master WHERE type = 'index' AND name LIKE '%_key'"
        ).fetchall()
    finally:
        db.close()
    return {r[0] for r in rows}


@pytest.fixture
def log(tmp_path: Path) -> SqliteEventLog:
    log = SqliteEventLog(tmp_path / "log.db")
    mixed = [reading(n, device) for n in range(50) for device in ("dev-1", "dev-2", "dev-3")]
    random.Random(3).shuffle(mixed)  # log order is not device-time order
    log.append(Stream.READINGS, mixed)
    return log


def test_only_the_key_in_log_order(log: SqliteEventLog) -> None:
    got = log.read_key(Stream.READINGS, KEY)
    assert len(got) == 50
    assert {r.envelope.device for r in got} == {"dev-1"}
    positions = [r.position for r in got]
    assert positions == sorted(positions)
    assert log.read_key(Stream.READINGS, "estate-1/nobody") == []
    assert log.read_key("no-such-stream", KEY) == []


def test_time_range_is_inclusive_and_exact_to_the_microsecond(log: SqliteEventLog) -> None:
    since, until = T0 + timedelta(seconds=10), T0 + timedelta(seconds=19)
    got = log.read_key(Stream.READINGS, KEY, since, until)
    assert sorted(r.envelope.payload["seq"] for r in got) == list(range(10, 20))
    tiny = timedelta(microseconds=1)
    assert len(log.read_key(Stream.READINGS, KEY, since + tiny, until - tiny)) == 8
    assert log.read_key(Stream.READINGS, KEY, until, since) == []


def test_pages_forward_and_newest_first_cover_everything_once(log: SqliteEventLog) -> None:
    for newest_first in (False, True):
        seen: list[int] = []
        after: int | None = None
        while page := log.read_key(
            Stream.READINGS, KEY, limit=7, after=after, newest_first=newest_first
        ):
            assert len(page) <= 7
            seen += [r.position for r in page]
            after = page[-1].position
        assert len(seen) == len(set(seen)) == 50
        assert seen == sorted(seen, reverse=newest_first)


def test_limit_counts_only_records_in_the_range(log: SqliteEventLog) -> None:
    since = T0 + timedelta(seconds=45)
    got = log.read_key(Stream.READINGS, KEY, since=since, limit=3)
    assert [r.envelope.occurred_at >= since for r in got] == [True] * 3


def test_bad_arguments(log: SqliteEventLog) -> None:
    with pytest.raises(ValueError, match="limit"):
        log.read_key(Stream.READINGS, KEY, limit=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        log.read_key(Stream.READINGS, KEY, since=T0.replace(tzinfo=None))


def test_new_tables_get_the_index(log: SqliteEventLog, tmp_path: Path) -> None:
    log.append(Stream.EVENTS, [reading(1, kind="event.x")])
    log.close()
    assert key_index_tables(tmp_path / "log.db") == {"stream_1", "stream_2"}


def test_a_log_written_before_the_index_gets_it_on_opening(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with SqliteEventLog(path) as log:
        log.append(Stream.READINGS, [reading(n) for n in range(5)])
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP INDEX stream_1_key")
    db.close()
    assert key_index_tables(path) == set()
    with SqliteEventLog(path) as log:
        assert key_index_tables(path) == {"stream_1"}
        assert len(log.read_key(Stream.READINGS, KEY)) == 5
        assert log.integrity_check() == []
    with SqliteEventLog(path) as log:  # opening again is a no-op
        assert key_index_tables(path) == {"stream_1"}


def test_the_query_uses_the_index(log: SqliteEventLog, tmp_path: Path) -> None:
    log.close()
    db = sqlite3.connect(tmp_path / "log.db")
    plan = " ".join(
        str(row[-1])
        for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT position FROM stream_1 WHERE key = ? AND position > ?"
            " ORDER BY position",
            (KEY, 0),
        )
    )
    db.close()
    assert "stream_1_key" in plan
