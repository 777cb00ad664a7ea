"""The InfluxDB projection: the ``readings`` and ``events`` streams as time series.

How it works
    For each stream (and partition) the writer reads up to ``batch_lines`` records
    from its checkpoint (consumer ``influx``), encodes them as line protocol
    (:mod:`processors.influx_schema`), gzips the batch and POSTs it with aiohttp to
    the v1 ``/write`` API (InfluxDB 1.x, and the compatibility endpoint of 2.x/3.x)
    or the v2 ``/api/v2/write`` API with a token (2.x/3.x). Only once the server
    acknowledged the batch (204) does the checkpoint move past it, so a crash of
    the writer or of InfluxDB can only cause a batch to be written twice, and a
    point is identified by series and time: writing it twice stores it once. While
    one batch is in flight the next one is read and encoded in a worker thread.
    Records are read as the JSON the log stores (``read_json`` of the SQLite log) and
    encoded from it without a pydantic parse: the log validated them on append. A log
    without ``read_json`` is read through the contract's ``read``.

Failures
    * Transient (connection refused or reset, timeout, 429, 5xx, and 401/403/404,
      which an operator must fix but which lose nothing by waiting): retried for
      ever with exponential backoff and jitter, waiting at least ``Retry-After``
      when the server sends it. An outage of any length only delays the writer.
    * Rejected (400/422, 413): the batch is split in halves and each half sent
      again, down to single lines; a single rejected line is recorded on the
      ``influx_rejected`` stream of the log with the server's reason, the source
      stream, position and record id, and the writer moves on. Good lines are thus
      re-sent at most ~log2(batch) times, never for ever. A batch refused only
      because its points are older than the retention policy (InfluxDB 1.x has
      already written the others) is recorded once, as a whole, without splitting.

``docs/timeseries.md`` describes the schema, rollups and retention;
``docs/decisions.md`` why the writes do not go through ``influxdb-client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, Protocol, Self, runtime_checkable
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from eventlog.envelope import Envelope, Stream, deterministic_id
from eventlog.log import EventLog, LogError
from processors.influx_schema import MEASUREMENTS, TagLookup, encode_stored

__all__ = [
    "CONSUMER",
    "REJECTED_STREAM",
    "Backoff",
    "InfluxTarget",
    "InfluxWriter",
    "JsonReader",
    "WriterStats",
    "retry_after",
    "rollup_statements",
]

log = logging.getLogger(__name__)

#: The checkpoint name of the projection.
CONSUMER: Final = "influx"
#: Where lines the server refused are recorded (with the server's reason).
REJECTED_STREAM: Final = "influx_rejected"
#: The streams the projection reads.
SOURCE_STREAMS: Final = (Stream.READINGS.value, Stream.EVENTS.value)
#: The most lines one write request carries.
MAX_BATCH_LINES: Final = 5000
#: The longest single wait, even when a server asks for more with Retry-After.
MAX_RETRY_AFTER_S: Final = 600.0

_REJECTED: Final = frozenset({400, 413, 422})
_RETENTION_ONLY: Final = re.compile(r"^partial write: points beyond retention policy dropped=\d+$")


class InfluxTarget(BaseModel):
    """Where and how to write: v1 (``db``/``rp``) or v2 (``org``/``bucket``/token)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v1"
    database: str = "estate"
    #: v1 retention policy of the raw points (created by :meth:`InfluxWriter.setup` on 1.x)
    retention_policy: str = "raw"
    raw_retention: str = "90d"
    #: retention policy (1.x) of the hourly rollups
    rollup_policy: str = "hourly"
    rollup_retention: str = "1825d"
    org: str | None = None
    bucket: str | None = None
    token: SecretStr | None = None
    batch_lines: int = Field(default=MAX_BATCH_LINES, ge=1, le=MAX_BATCH_LINES)
    gzip_level: int = Field(default=1, ge=0, le=9)
    timeout_s: float = Field(default=30.0, gt=0)
    backoff_base_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    poll_interval_s: float = Field(default=0.5, gt=0)

    @classmethod
    def from_url(cls, url: str, token: str | None = None, **settings: object) -> InfluxTarget:
        """``http://host:8086?db=estate&rp=raw`` (v1) or ``...?org=o&bucket=b`` (v2).

        A ``bucket`` selects the v2 API; ``token`` (or ``?token=``) authenticates on both.
        """
        parts = urlsplit(url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        values: dict[str, object] = {"url": base, **settings}
        token = token or query.get("token")
        if token:
            values["token"] = token
        if "bucket" in query:
            values.update(api="v2", bucket=query["bucket"], org=query.get("org"))
        if "db" in query:
            values["database"] = query["db"]
        if "rp" in query:
            values["retention_policy"] = query["rp"]
        return cls.model_validate(values)

    def write_url(self) -> tuple[str, dict[str, str]]:
        if self.api == "v2":
            if not self.bucket or not self.org:
                raise ValueError("the v2 API needs an org and a bucket")
            return f"{self.url}/api/v2/write", {
                "org": self.org,
                "bucket": self.bucket,
                "precision": "ns",
            }
        return f"{self.url}/write", {
            "db": self.database,
            "rp": self.retention_policy,
            "precision": "ns",
        }

    def headers(self) -> dict[str, str]:
        headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
        if self.token is not None:
            headers["Authorization"] = f"Token {self.token.get_secret_value()}"
        return headers


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


@dataclass
class Backoff:
    """Exponential backoff with jitter: attempt n waits in [d/2, d], d = min(max, base*2^n)."""

    base_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, server_asks: float | None = None) -> float:
        ceiling = min(self.max_s, self.base_s * 2.0 ** min(attempt, 32))
        jittered: float = ceiling * self.rng.uniform(0.5, 1.0)
        if server_asks is not None:  # at least what the server asked, plus a little jitter
            return server_asks + self.rng.uniform(0.0, min(1.0, self.base_s))
        return jittered


@dataclass
class WriterStats:
    points: int = 0
    batches: int = 0
    requests: int = 0
    retries: int = 0
    rejected_lines: int = 0
    skipped_records: int = 0
    last_error: str | None = None


@runtime_checkable
class JsonReader(Protocol):
    """The optional ``read_json`` of a log backend (``SqliteEventLog`` has it)."""

    def read_json(
        self, stream: str, partition: int = 0, start: int = 0, limit: int = 1000
    ) -> list[tuple[int, str]]: ...


@dataclass(frozen=True, slots=True)
class _Batch:
    stream: str
    partition: int
    #: the line protocol of each record that has a point...
    lines: list[str]
    #: ...and that record: (position, envelope JSON as stored; parsed only for a dead letter)
    sources: list[tuple[int, str]]
    #: the checkpoint once this batch is acknowledged (the next position to read)
    next_start: int
    records: int
    #: the gzipped request body of all ``lines``
    body: bytes


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    reason: str
    retry_after: float | None


class _Stopped(Exception):
    """The writer was asked to stop while waiting to retry."""


def rollup_statements(target: InfluxTarget) -> list[tuple[str, str]]:
    """(name, ``SELECT ... INTO``) of the hourly rollup of every measurement (1.x)."""
    db, raw, hourly = target.database, target.retention_policy, target.rollup_policy
    statements = []  # identifiers from our own settings and schema, not from input
    seen: set[str] = set()
    for spec in MEASUREMENTS.values():
        if spec.name in seen:
            continue
        seen.add(spec.name)
        aggregates = ", ".join(f"{function}(*)" for function in spec.rollup)
        into = f'"{db}"."{hourly}"."{spec.name}"'
        source = f'"{db}"."{raw}"."{spec.name}"'
        select = f"SELECT {aggregates} INTO {into} FROM {source} GROUP BY time(1h), *"  # noqa: S608
        statements.append((f"cq_hourly_{spec.name}", select))
    return statements


class InfluxWriter:
    """The projection of the log into InfluxDB (see the module docstring)."""

    def __init__(
        self,
        log: EventLog,
        target: InfluxTarget,
        *,
        lookup: TagLookup | None = None,
        consumer: str = CONSUMER,
        streams: Sequence[str] = SOURCE_STREAMS,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.log = log
        self.target = target
        self.lookup = lookup
        self.consumer = consumer
        self.streams = tuple(streams)
        self.stats = WriterStats()
        self._backoff = Backoff(target.backoff_base_s, target.backoff_max_s, rng or random.Random())  # noqa: S311 - jitter
        self._sleep = sleep or asyncio.sleep
        self._session: aiohttp.ClientSession | None = None
        self._stop = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stop(self) -> None:
        """Ask :meth:`run` (and any retry wait) to end; the current batch is not acknowledged."""
        self._stop.set()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.target.timeout_s),
                connector=aiohttp.TCPConnector(limit=4),
            )
        return self._session

    # --- setup ----------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create what the projection writes into (idempotent).

        1.x: the database, the raw and hourly retention policies and one continuous
        query per measurement for the hourly rollups. 2.x: the bucket and its DBRP
        mapping (so InfluxQL boards work), with ``influxdb-client``.
        """
        if self.target.api == "v2":
            await asyncio.to_thread(_setup_v2, self.target)
            return
        t = self.target
        db = t.database
        await self.influxql(f'CREATE DATABASE "{db}"')
        for name, duration, default in (
            (t.retention_policy, t.raw_retention, True),
            (t.rollup_policy, t.rollup_retention, False),
        ):
            suffix = " DEFAULT" if default else ""
            try:
                await self.influxql(
                    f'CREATE RETENTION POLICY "{name}" ON "{db}" DURATION {duration} '
                    f"REPLICATION 1{suffix}"
                )
            except RuntimeError as exc:
                if "already exists" not in str(exc):
                    raise
                await self.influxql(
                    f'ALTER RETENTION POLICY "{name}" ON "{db}" DURATION {duration}{suffix}'
                )
        for name, select in rollup_statements(t):
            await self.influxql(
                f'CREATE CONTINUOUS QUERY "{name}" ON "{db}" RESAMPLE FOR 2h BEGIN {select} END'
            )

    async def rebuild(self) -> int:
        """Rebuild the projection from the log: empty it (1.x), rewind, write everything again.

        On 1.x the database is dropped and set up again; on 2.x/3.x the points are
        rewritten over the old ones (a point is identified by series and time, and the
        log never loses a record, so nothing stale can remain). Returns records consumed.
        """
        if self.target.api == "v1":
            await self.influxql(f'DROP DATABASE "{self.target.database}"')
        await self.setup()
        for stream in self.streams:
            for partition in range(self.log.partitions(stream)):
                await asyncio.to_thread(
                    self.log.commit_checkpoint, self.consumer, stream, 0, partition
                )
        return await self.drain()

    async def backfill_rollups(self, start: datetime, end: datetime) -> None:
        """Run the rollup queries over [start, end) (continuous queries only cover new hours)."""
        window = f"WHERE time >= '{start.isoformat()}' AND time < '{end.isoformat()}'"
        for _name, select in rollup_statements(self.target):
            head, _, group = select.partition(" GROUP BY ")
            await self.influxql(f"{head} {window} GROUP BY {group}")

    async def influxql(self, statement: str) -> list[dict[str, object]]:
        """POST one InfluxQL statement to ``/query``; its results (raises on a statement error)."""
        headers = {}
        if self.target.token is not None:
            headers["Authorization"] = f"Token {self.target.token.get_secret_value()}"
        async with self._http().post(
            f"{self.target.url}/query",
            data={"q": statement, "db": self.target.database},
            headers=headers,
        ) as response:
            body = await response.json(content_type=None)
        if response.status >= 300 or "error" in body:
            raise RuntimeError(f"InfluxQL {statement!r} failed: {body.get('error', body)}")
        results: list[dict[str, object]] = body.get("results", [])
        for result in results:
            if "error" in result:
                raise RuntimeError(f"InfluxQL {statement!r} failed: {result['error']}")
        return results

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the log until :meth:`stop`; poll when every stream is caught up."""
        with contextlib.suppress(_Stopped):
            while not self._stop.is_set():
                if await self.drain() == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self.target.poll_interval_s)

    async def drain(self) -> int:
        """Write everything the log holds now; the number of records consumed."""
        consumed = 0
        for stream in self.streams:
            for partition in range(self.log.partitions(stream)):
                consumed += await self._drain_partition(stream, partition)
        return consumed

    async def _drain_partition(self, stream: str, partition: int) -> int:
        start = await asyncio.to_thread(self.log.get_checkpoint, self.consumer, stream, partition)
        consumed = 0
        pending = asyncio.ensure_future(asyncio.to_thread(self._prepare, stream, partition, start))
        try:
            while True:
                batch = await pending
                if batch.records == 0:
                    return consumed
                # read and encode the next batch while this one is in flight
                pending = asyncio.ensure_future(
                    asyncio.to_thread(self._prepare, stream, partition, batch.next_start)
                )
                await self._deliver(batch)
                consumed += batch.records
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    def _prepare(self, stream: str, partition: int, start: int) -> _Batch:
        rows = self._read(stream, partition, start)
        lines: list[str] = []
        sources: list[tuple[int, str]] = []
        for row in rows:
            try:
                text = encode_stored(stream, row[1], self.lookup)
            except (ValueError, KeyError, TypeError) as exc:  # damaged after it was appended
                raise LogError(f"record {row[0]} of {stream!r} is unreadable: {exc}") from exc
            if text is None:
                self.stats.skipped_records += 1
            else:
                lines.append(text)
                sources.append(row)
        next_start = rows[-1][0] + 1 if rows else start
        body = self._body(lines) if lines else b""  # here: zlib runs outside the GIL
        return _Batch(stream, partition, lines, sources, next_start, len(rows), body)

    def _read(self, stream: str, partition: int, start: int) -> list[tuple[int, str]]:
        """``(position, envelope JSON)`` of the next batch of records."""
        limit = self.target.batch_lines
        if isinstance(self.log, JsonReader):
            return self.log.read_json(stream, partition, start, limit)
        records = self.log.read(stream, partition, start, limit)
        return [(record.position, record.envelope.to_json().decode()) for record in records]

    def _body(self, lines: Sequence[str]) -> bytes:
        text = "\n".join(lines).encode()
        return gzip.compress(text, self.target.gzip_level)

    async def _deliver(self, batch: _Batch) -> None:
        rejected = await self._write(batch, 0, len(batch.lines), batch.body)
        if rejected:  # the dead letters are durable before the checkpoint moves past them
            await asyncio.to_thread(self.log.append, REJECTED_STREAM, rejected)
        await asyncio.to_thread(
            self.log.commit_checkpoint,
            self.consumer,
            batch.stream,
            batch.next_start,
            batch.partition,
        )
        refused = sum(int(str(record.payload["lines"])) for record in rejected)
        self.stats.rejected_lines += refused
        self.stats.points += len(batch.lines) - refused
        self.stats.batches += 1

    async def _write(
        self, batch: _Batch, low: int, high: int, body: bytes | None = None
    ) -> list[Envelope]:
        """Write lines ``[low, high)`` of ``batch`` until the server accepts or rejects them;
        dead letters of rejects."""
        if low == high:
            return []
        answer = await self._post_until_answered(body or self._body(batch.lines[low:high]))
        if answer.status < 300:
            return []
        if _RETENTION_ONLY.match(answer.reason) or high - low == 1:
            return [_dead_letter(batch, low, high, answer)]
        middle = (low + high) // 2
        return [
            *await self._write(batch, low, middle),
            *await self._write(batch, middle, high),
        ]

    async def _post_until_answered(self, body: bytes) -> _Answer:
        url, params = self.target.write_url()
        headers = self.target.headers()
        attempt = 0
        while True:
            if self._stop.is_set():
                raise _Stopped
            self.stats.requests += 1
            try:
                async with self._http().post(
                    url, params=params, data=body, headers=headers
                ) as response:
                    text = await response.text()
                    answer = _Answer(
                        response.status,
                        _reason(text, response.headers.get("X-Influxdb-Error")),
                        retry_after(response.headers.get("Retry-After")),
                    )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                answer = _Answer(0, f"{type(exc).__name__}: {exc}", None)
            if answer.status in (200, 204) or answer.status in _REJECTED:
                return answer
            delay = self._backoff.delay(attempt, answer.retry_after)
            self.stats.retries += 1
            self.stats.last_error = answer.reason
            log.warning(
                "influx write failed (%s %s); retry %d in %.2f s",
                answer.status or "no answer",
                answer.reason,
                attempt + 1,
                delay,
            )
            attempt += 1
            await self._interruptible_sleep(delay)

    async def _interruptible_sleep(self, delay: float) -> None:
        if self._sleep is not asyncio.sleep:  # an injected clock (tests)
            await self._sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)


def _reason(body: str, header: str | None) -> str:
    if header:
        return header
    match = re.search(r'"(?:error|message)"\s*:\s*"((?:[^"\\]|\\.)*)"', body)
    return match.group(1).replace('\\"', '"') if match else body.strip()[:2000]


def _dead_letter(batch: _Batch, low: int, high: int, answer: _Answer) -> Envelope:
    """The ``influx_rejected`` record of refused lines ``[low, high)`` of ``batch`` (one
    line, or a whole batch)."""
    (first, stored), (last, _) = batch.sources[low], batch.sources[high - 1]
    envelope = Envelope.from_json(stored)
    payload: dict[str, object] = {
        "source_stream": batch.stream,
        "partition": batch.partition,
        "position": first,
        "last_position": last,
        "record_id": str(envelope.id),
        "lines": high - low,
        "line": batch.lines[low],
        "status": answer.status,
        "reason": answer.reason,
    }
    return Envelope(
        id=deterministic_id("influx-rejected", batch.stream, batch.partition, first, last),
        kind="influx.rejected",
        occurred_at=envelope.occurred_at,
        received_at=datetime.fromtimestamp(time.time(), UTC),
        estate=envelope.estate,
        building=envelope.building,
        device=envelope.device,
        payload=payload,
    )


def _setup_v2(target: InfluxTarget) -> None:
    """Bucket (with retention) and DBRP mapping on InfluxDB 2.x, with ``influxdb-client``."""
    # imported here: only a 2.x setup needs the client (its modules are untyped)
    from influxdb_client.client.influxdb_client import InfluxDBClient  # noqa: PLC0415
    from influxdb_client.domain.bucket_retention_rules import (  # noqa: PLC0415
        BucketRetentionRules,
    )
    from influxdb_client.domain.dbrp_create import DBRPCreate  # noqa: PLC0415
    from influxdb_client.service.dbr_ps_service import DBRPsService  # noqa: PLC0415

    if target.token is None or not target.org or not target.bucket:
        raise ValueError("InfluxDB 2.x setup needs a token, an org and a bucket")
    seconds = _duration_seconds(target.raw_retention)
    with InfluxDBClient(
        url=target.url, token=target.token.get_secret_value(), org=target.org
    ) as client:
        org = client.organizations_api().find_organizations(org=target.org)[0]
        buckets = client.buckets_api()
        bucket = buckets.find_bucket_by_name(target.bucket)
        if bucket is None:
            rules = BucketRetentionRules(  # type: ignore[no-untyped-call]
                type="expire", every_seconds=seconds
            )
            bucket = buckets.create_bucket(
                bucket_name=target.bucket, retention_rules=rules, org=target.org
            )
        dbrps = DBRPsService(client.api_client)  # type: ignore[no-untyped-call]
        existing = dbrps.get_dbr_ps(org_id=org.id, bucket_id=bucket.id)  # type: ignore[no-untyped-call]
        if not any(d.database == target.database for d in existing.content or []):
            dbrps.post_dbrp(  # type: ignore[no-untyped-call]
                DBRPCreate(  # type: ignore[no-untyped-call]
                    org_id=org.id,
                    bucket_id=bucket.id,
                    database=target.database,
                    retention_policy=target.retention_policy,
                    default=True,
                )
            )


_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration_seconds(text: str) -> int:
    """``90d`` -> seconds; ``INF`` or ``0`` -> 0 (keep for ever)."""
    if text.upper() in ("INF", "0"):
        return 0
    match = re.fullmatch(r"(\d+)([smhdw])", text)
    if match is None:
        raise ValueError(f"retention {text!r} is not like 90d, 12w or INF")
    return int(match.group(1)) * _UNITS[match.group(2)]
