"""Where the gateway's batches go: judged and appended, in this process or in a worker.

The gateway queues raw messages and hands batches to a sink; the sink judges
each message (``ingest.pipeline``), appends the readings and dead letters, and
reports what it did. Only then does the gateway acknowledge the batch.

* :class:`InlineSink` does this in the caller's thread (embedded runtime, tests).
* :class:`ProcessSink` does it in a worker process, so that paho's network loop
  and the judging run on two cores instead of sharing one interpreter lock;
  ``estate ingest`` uses it. If the worker dies, nothing is acknowledged and
  the broker redelivers.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Literal, Protocol

from devices.registry import load_registry
from eventlog import Envelope, EventLog, Stream
from eventlog.sqlite import SqliteEventLog
from ingest.pipeline import Pipeline, Policy, count_reasons

#: One received message: topic, raw payload, received time.
Message = tuple[str, bytes, datetime]


class SinkError(RuntimeError):
    """The sink could not judge or append a batch; nothing of it may be acknowledged."""


@dataclass(slots=True)
class SinkResult:
    readings_appended: int = 0
    readings_duplicate: int = 0
    rejected_appended: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


class Sink(Protocol):
    #: True when ``process`` runs elsewhere, so the caller should not block its network loop.
    parallel: bool

    def process(self, batch: Sequence[Message]) -> SinkResult: ...

    def close(self) -> None: ...


class InlineSink:
    """Judge and append in the calling thread."""

    parallel = False

    def __init__(self, pipeline: Pipeline, event_log: EventLog) -> None:
        self.pipeline = pipeline
        self.log = event_log

    def process(self, batch: Sequence[Message]) -> SinkResult:
        readings: list[Envelope] = []
        rejected: list[Envelope] = []
        for topic, payload, received_at in batch:
            judgement = self.pipeline.judge(topic, payload, received_at)
            readings.extend(judgement.readings)
            rejected.extend(judgement.rejected)
        result = SinkResult()
        if readings:
            appended = self.log.append(Stream.READINGS, readings)
            result.readings_appended = appended.appended
            result.readings_duplicate = appended.duplicates
        if rejected:
            result.rejected_appended = self.log.append(Stream.REJECTED, rejected).appended
            count_reasons(rejected, result.rejected_by_reason)
        return result

    def close(self) -> None:
        """The log belongs to the caller; nothing to release."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker process needs to build its own pipeline and log (picklable)."""

    registry_path: Path
    salt: bytes
    log_path: Path
    policy: Policy = field(default_factory=Policy)
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"


def _worker_main(spec: WorkerSpec, conn: Connection) -> None:
    # Ctrl-C reaches the whole process group; the gateway decides when the worker ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        registry = load_registry(spec.registry_path)
        event_log = SqliteEventLog(spec.log_path, synchronous=spec.synchronous)
    except Exception as exc:  # report why, then end: the parent turns it into a clear error
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    sink = InlineSink(Pipeline(registry.index(), spec.salt, spec.policy), event_log)
    conn.send(("ready", None))
    try:
        while True:
            try:
                batch = conn.recv()
            except EOFError:  # the gateway is gone (even killed): nothing left to do
                return
            if batch is None:
                return
            try:
                conn.send(("ok", sink.process(batch)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
                return
    finally:
        event_log.close()


class ProcessSink:
    """Judge and append in a worker process (spawned, so no threads are forked)."""

    parallel = True

    def __init__(self, spec: WorkerSpec, start_timeout_s: float = 120.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_worker_main, args=(spec, child), name="estate-ingest-worker", daemon=True
        )
        self._process.start()
        child.close()
        if not self._conn.poll(start_timeout_s):
            self._process.kill()
            raise SinkError(f"ingest worker did not start within {start_timeout_s:.0f} s")
        status, detail = self._receive()
        if status != "ready":
            raise SinkError(f"ingest worker could not start: {detail}")

    def _receive(self) -> tuple[str, object]:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            code = self._process.exitcode
            raise SinkError(f"ingest worker died (exit code {code}): {exc!r}") from None
        return str(status), value

    def process(self, batch: Sequence[Message]) -> SinkResult:
        try:
            self._conn.send(list(batch))
        except (BrokenPipeError, OSError) as exc:
            raise SinkError(f"ingest worker is gone: {exc}") from None
        status, value = self._receive()
        if status != "ok" or not isinstance(value, SinkResult):
            raise SinkError(f"ingest worker failed: {value}")
        return value

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()
