"""Fixtures of the ingest component tests: real brokers, real gateways, the real SQLite log.

Everything started here is stopped in teardown, also when a test fails:
Mosquitto processes, amqtt brokers, in-process gateways, ``estate ingest``
subprocesses and test publishers. Ports come from ``free_port()``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

import pytest

from devices.catalogue import DeviceKind
from devices.registry import DeviceRef, Registry
from devices.topics import topic_for
from eventlog import Envelope, Stream
from eventlog.sqlite import APPLICATION_ID, SqliteEventLog
from ingest.embedded_broker import EmbeddedBroker
from ingest.gateway import Gateway, GatewayConfig
from ingest.pipeline import Pipeline
from ingest.sink import InlineSink
from tests.support.brokers import Mosquitto, amqtt_broker
from tests.support.publisher import Message, Publisher, demo_registry, devices_of_kind

ROOT = Path(__file__).resolve().parents[2]
ESTATE_BIN = Path(sys.executable).with_name("estate")
SALT = "component-test-salt-0123456789abcdef"
HOUSEHOLDS = 500  # ~505 water meters: enough for 500 publishing devices


def _teardown(steps: Iterable[Callable[[], object]]) -> None:
    """Run every step even when one fails; then raise the first failure."""
    failures: list[BaseException] = []
    for step in steps:
        try:
            step()
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


# -- registry ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry") / "estate.yaml"


@pytest.fixture(scope="session")
def registry(registry_file: Path) -> Registry:
    return demo_registry(registry_file, households=HOUSEHOLDS)


@pytest.fixture(scope="session")
def water_meters(registry: Registry) -> list[DeviceRef]:
    return devices_of_kind(registry, DeviceKind.WATER_METER, 500)


@pytest.fixture(scope="session")
def probe_meter(registry: Registry) -> DeviceRef:
    """An energy meter whose readings only probe that a gateway is subscribed."""
    return devices_of_kind(registry, DeviceKind.ENERGY_METER, 1)[0]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ESTATE_"):
            monkeypatch.delenv(name)


# -- brokers -----------------------------------------------------------------------------------


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., Mosquitto]]:
    """Make (not start) Mosquitto brokers; all are killed and removed in teardown."""
    made: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        broker = Mosquitto(**options)
        made.append(broker)
        return broker

    yield make
    _teardown(broker.close for broker in made)


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    broker = mosquitto_factory()
    broker.start()
    return broker


@pytest.fixture
def amqtt() -> Iterator[EmbeddedBroker]:
    with amqtt_broker() as broker:
        yield broker


# -- the log -----------------------------------------------------------------------------------


Pair = tuple[str | None, int | None]


def _seq(envelope: Envelope) -> int | None:
    seq = envelope.payload.get("seq")
    return seq if isinstance(seq, int) else None


def pairs_of(messages: Sequence[Message]) -> set[Pair]:
    return {(m.device, m.seq) for m in messages}


class LogWatcher:
    """Reads one SQLite event log incrementally through the public EventLog API.

    SQLite in WAL mode lets this reader run while gateways (in this process or
    in others) append to the same file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log: SqliteEventLog | None = None
        self._next = {Stream.READINGS: 0, Stream.REJECTED: 0}
        self.records: dict[Stream, list[Envelope]] = {Stream.READINGS: [], Stream.REJECTED: []}

    def _created(self) -> bool:
        """The file exists and its creator committed the schema.

        Opening a SqliteEventLog while another process creates the same file can fail
        (its schema check reads ``application_id`` and the tables in separate
        statements and may see the tables but not yet the id); a read-only peek at
        the id first keeps this reader out of that race.
        """
        if not self.path.exists():
            return False
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            ) as conn:
                return bool(conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID)
        except sqlite3.Error:
            return False

    def poll(self) -> None:
        if self._log is None:
            if not self._created():
                return
            self._log = SqliteEventLog(self.path)
        for stream, records in self.records.items():
            for stored in self._log.iterate(stream, start=self._next[stream]):
                records.append(stored.envelope)
                self._next[stream] = stored.position + 1

    @property
    def readings(self) -> list[Envelope]:
        return self.records[Stream.READINGS]

    @property
    def rejected(self) -> list[Envelope]:
        return self.records[Stream.REJECTED]

    def pairs(self) -> set[Pair]:
        """(device, seq) of every reading read so far."""
        return {(r.device, _seq(r)) for r in self.readings}

    def count_logged(self, messages: Sequence[Message]) -> int:
        """How many of ``messages`` are in the log now."""
        self.poll()
        return len(pairs_of(messages) & self.pairs())

    def wait_for(
        self,
        messages: Sequence[Message],
        timeout: float,
        check: Callable[[], object] = lambda: None,
    ) -> None:
        """Poll until every reading of ``messages`` is in the log; ``check`` may raise early."""
        want = pairs_of(messages)
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            missing = want - self.pairs()
            if not missing:
                return
            check()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(missing)} of {len(want)} readings not in the log after {timeout} s, "
                    f"e.g. {sorted(missing, key=str)[:5]}"
                )
            time.sleep(0.1)

    def wait_for_count(self, stream: Stream, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if len(self.records[stream]) >= count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.records[stream])} of {count} records in {stream} after {timeout} s"
                )
            time.sleep(0.05)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "estate.db"


@pytest.fixture
def watcher(log_path: Path) -> Iterator[LogWatcher]:
    w = LogWatcher(log_path)
    yield w
    w.close()


def check_exactly_once(
    readings: Sequence[Envelope], published: Sequence[Message], *, ordered: bool = True
) -> None:
    """The readings of the published devices are exactly the published (device, seq) pairs,
    each once, and (``ordered``) each device's ``seq`` strictly increases in log order."""
    devices = {m.device for m in published}
    got = [(r.device, _seq(r)) for r in readings if r.device in devices]
    want = pairs_of(published)
    counts = Counter(got)
    duplicates = sorted(k for k, c in counts.items() if c > 1)
    missing = sorted(want - counts.keys())
    unexpected = sorted(counts.keys() - want)
    assert not missing, f"{len(missing)} published readings missing from the log: {missing[:10]}"
    assert not duplicates, f"{len(duplicates)} readings twice in the log: {duplicates[:10]}"
    assert not unexpected, f"{len(unexpected)} unexpected readings: {unexpected[:10]}"
    if ordered:
        last: dict[str | None, int] = {}
        disorder = []
        for device, seq in got:
            assert seq is not None
            if seq <= last.get(device, -1):
                disorder.append((device, last[device], seq))
            last[device] = seq
        assert not disorder, f"{len(disorder)} out-of-order readings (device, before, after): " + (
            f"{disorder[:10]}"
        )


# -- probing -----------------------------------------------------------------------------------


class Prober:
    """Readings of one probe device; publishing them until one is logged proves a subscription.

    (A gateway's SUBSCRIBE may still be on its way when its CONNACK arrived; a
    message published before the broker holds the subscription is dropped.)
    """

    def __init__(self, meter: DeviceRef) -> None:
        self.meter = meter
        self.sent = 0
        self._base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)

    def next(self) -> Message:
        seq = self.sent
        self.sent += 1
        body = {
            "ts": (self._base + timedelta(seconds=seq)).isoformat(),
            "seq": seq,
            "energy_kwh": 1.0 + seq,
        }
        return Message(
            topic=topic_for(self.meter.estate, self.meter.kind, self.meter.device, "register"),
            payload=json.dumps(body).encode(),
            device=self.meter.device,
            seq=seq,
        )

    def until_logged(
        self,
        publisher: Publisher,
        watcher: LogWatcher,
        timeout: float = 20.0,
        check: Callable[[], object] = lambda: None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            publisher.publish([self.next()])
            pause = time.monotonic() + 0.25
            while time.monotonic() < pause:
                watcher.poll()
                if any(r.device == self.meter.device for r in watcher.readings):
                    return
                check()
                time.sleep(0.03)
            if time.monotonic() > deadline:
                raise AssertionError(f"no probe reading reached the log within {timeout} s")


@pytest.fixture
def prober(probe_meter: DeviceRef) -> Prober:
    return Prober(probe_meter)


# -- publishers --------------------------------------------------------------------------------


@pytest.fixture
def publishers() -> Iterator[Callable[..., Publisher]]:
    """``make(host, port, client_id=..., protocol=..., ...)`` → a connected Publisher."""
    made: list[Publisher] = []

    def make(host: str, port: int, *, connect: bool = True, **options: Any) -> Publisher:
        publisher = Publisher(host, port, **options)
        made.append(publisher)
        return publisher.connect() if connect else publisher

    yield make
    _teardown(publisher.close for publisher in made)


# -- gateways in this process ------------------------------------------------------------------


@pytest.fixture
def gateways(registry: Registry, log_path: Path) -> Iterator[Callable[..., Gateway]]:
    """``start(url, client_id=..., protocol=..., **config)`` → a started in-process Gateway
    appending to its own SqliteEventLog connection on ``log_path`` (default)."""
    running: list[tuple[Gateway, SqliteEventLog]] = []

    def start(url: str, *, path: Path | None = None, **config: Any) -> Gateway:
        event_log = SqliteEventLog(path or log_path)
        sink = InlineSink(Pipeline(registry.index(), SALT.encode()), event_log)
        gateway = Gateway(sink, GatewayConfig(url=url, **config))
        running.append((gateway, event_log))
        gateway.start()
        return gateway

    yield start
    _teardown([gateway.stop for gateway, _ in running] + [log.close for _, log in running])


# -- `estate ingest` subprocesses --------------------------------------------------------------

_STATUS = re.compile(r"received (\d+), readings appended (\d+) \(duplicates (\d+)\)")


class IngestProcess:
    """``estate ingest`` in a subprocess; output goes to files next to its data dir."""

    def __init__(
        self,
        workdir: Path,
        registry_file: Path,
        url: str,
        *,
        client_id: str,
        protocol: Literal["5", "3.1.1"] = "5",
        shared_group: str | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.data_dir = data_dir or workdir / "data"
        self.argv = [
            str(ESTATE_BIN),
            "ingest",
            "--mqtt-url",
            url,
            "--data-dir",
            str(self.data_dir),
            "--registry",
            str(registry_file),
            "--client-id",
            client_id,
            "--protocol",
            protocol,
        ]
        if shared_group:
            self.argv += ["--shared-group", shared_group]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ESTATE_")}
        self.env.update({"ESTATE_HASH_SALT": SALT, "PYTHONUNBUFFERED": "1"}, **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._files: list[IO[bytes]] = []

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"ingest-{self.runs}.out"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"ingest-{self.runs}.err"

    def start(self) -> IngestProcess:
        if self.running:
            raise RuntimeError("already running")
        self.runs += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        out, err = open(self.stdout_path, "wb"), open(self.stderr_path, "wb")  # noqa: SIM115
        self._files += [out, err]
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, env=self.env, cwd=ROOT)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def last_status(self) -> tuple[int, int, int] | None:
        """(received, appended, duplicates) of the last status line this run printed."""
        found = _STATUS.findall(self.stdout())
        return tuple(int(x) for x in found[-1]) if found else None  # type: ignore[return-value]

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"estate ingest exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}"
            )

    def signal(self, sig: signal.Signals, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for f in self._files:
            f.close()
        self._files.clear()
        return code

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in self._files:
            f.close()
        self._files.clear()


@pytest.fixture
def ingest_processes(
    tmp_path: Path, registry_file: Path, registry: Registry
) -> Iterator[Callable[..., IngestProcess]]:
    """``make(url, client_id=..., name=..., ...)`` → an IngestProcess (not started)."""
    made: list[IngestProcess] = []

    def make(url: str, *, name: str = "ingest", **options: Any) -> IngestProcess:
        process = IngestProcess(
            tmp_path / name, registry_file, url, data_dir=tmp_path / "data", **options
        )
        made.append(process)
        return process

    def stop(process: IngestProcess) -> None:
        if process.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.signal(signal.SIGTERM, timeout=15)
        process.kill()

    yield make
    _teardown(functools.partial(stop, process) for process in made)
