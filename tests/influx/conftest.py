"""Fixtures of the InfluxDB projection tests: a real influxd and a real SQLite log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog.sqlite import SqliteEventLog
from tests.support.influx import InfluxD


@pytest.fixture
def influxd() -> Iterator[InfluxD]:
    with InfluxD() as server:
        yield server


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    with SqliteEventLog(tmp_path / "log.sqlite") as event_log:
        yield event_log
