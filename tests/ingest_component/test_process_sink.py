"""The worker-process sink that ``estate ingest`` uses: same results, clear failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devices.registry import DeviceRef, Registry
from eventlog import Stream
from eventlog.sqlite import SqliteEventLog
from ingest.pipeline import Pipeline
from ingest.sink import InlineSink, Message, ProcessSink, SinkError, WorkerSpec

from .conftest import SALT


def _messages(meters: list[DeviceRef], n: int) -> list[Message]:
    now = datetime.now(UTC)
    out: list[Message] = []
    for i in range(n):
        ref = meters[i % len(meters)]
        body = {"ts": now.isoformat(), "seq": i, "volume_m3": 10.0 + i}
        out.append(
            (
                f"estates/{ref.estate}/water_meter/{ref.device}/register",
                json.dumps(body).encode(),
                now,
            )
        )
    out.append((f"estates/{meters[0].estate}/water_meter/nope/register", b"{bad", now))
    return out


def test_worker_and_inline_sinks_store_the_same_records(
    registry: Registry, registry_file: Path, water_meters: list[DeviceRef], tmp_path: Path
) -> None:
    batch = _messages(water_meters, 200)
    worker = ProcessSink(WorkerSpec(registry_file, SALT.encode(), tmp_path / "worker.db"))
    try:
        from_worker = worker.process(batch)
        again = worker.process(batch)  # a redelivery: all duplicates
    finally:
        worker.close()
    with SqliteEventLog(tmp_path / "inline.db") as log:
        from_inline = InlineSink(Pipeline(registry.index(), SALT.encode()), log).process(batch)
    assert from_worker == from_inline
    assert from_worker.readings_appended == 200
    assert from_worker.rejected_by_reason == {"invalid_json": 1}
    assert again.readings_appended == 0 and again.readings_duplicate == 200
    with SqliteEventLog(tmp_path / "worker.db") as a, SqliteEventLog(tmp_path / "inline.db") as b:
        for stream in (Stream.READINGS, Stream.REJECTED):
            ids_a = [r.envelope.id for r in a.iterate(stream)]
            ids_b = [r.envelope.id for r in b.iterate(stream)]
            assert ids_a == ids_b and ids_a


def test_worker_that_cannot_start_says_why(tmp_path: Path) -> None:
    spec = WorkerSpec(tmp_path / "missing.yaml", SALT.encode(), tmp_path / "log.db")
    with pytest.raises(SinkError, match=r"could not start.*missing\.yaml"):
        ProcessSink(spec)


def test_a_dead_worker_fails_the_batch_instead_of_acknowledging_it(
    registry_file: Path, water_meters: list[DeviceRef], tmp_path: Path
) -> None:
    sink = ProcessSink(WorkerSpec(registry_file, SALT.encode(), tmp_path / "log.db"))
    try:
        sink._process.kill()  # the worker dies (OOM killer, a crash)
        sink._process.join(timeout=10)
        with pytest.raises(SinkError, match="worker"):
            sink.process(_messages(water_meters, 5))
    finally:
        sink.close()
