"""The InfluxDB projection against a real influxd 1.x (Debian ``influxdb``).

The outage test holds InfluxDB down for three minutes (the issue's "several minutes");
``ESTATE_INFLUX_OUTAGE_S`` changes that (e.g. 5 for a quick local run).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from eventlog.log import EventLog
from eventlog.sqlite import SqliteEventLog
from processors.influx import (
    MAX_RETRY_AFTER_S,
    REJECTED_STREAM,
    Backoff,
    InfluxTarget,
    InfluxWriter,
    JsonReader,
    retry_after,
)
from processors.influx_schema import encode, registry_lookup
from tests.influx.proxy import FaultyProxy
from tests.support.influx import InfluxD, demo_index, generated_log, generated_records
from tests.support.logs import ContractOnlyLog

NOW = datetime.now(UTC).replace(microsecond=0)
OUTAGE_S = float(os.environ.get("ESTATE_INFLUX_OUTAGE_S", "180"))
MEASUREMENT_STREAMS = ("readings", "events")


def expected_counts(log: SqliteEventLog) -> Counter[str]:
    """Points per measurement that the log should yield (one per encodable record)."""
    counts: Counter[str] = Counter()
    for stream in MEASUREMENT_STREAMS:
        for record in log.iterate(stream):
            line = encode(stream, record.envelope)
            if line is not None:
                counts[line.split(",", 1)[0]] += 1
    return counts


def measured_counts(influxd: InfluxD, db: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    answer = influxd.query("SELECT count(*) FROM /.*/", db)
    for series in answer["results"][0].get("series", []):
        counts[series["name"]] = max(v for v in series["values"][0][1:] if v is not None)
    return counts


def at_end(log: SqliteEventLog, consumer: str = "influx") -> bool:
    return all(
        log.get_checkpoint(consumer, stream) >= log.end_position(stream)
        for stream in MEASUREMENT_STREAMS
    )


def test_every_record_written_once_queryable_with_its_tags(influxd: InfluxD, log) -> None:
    index, n_readings, n_events = generated_log(log, NOW)

    async def go() -> tuple[int, int, InfluxWriter]:
        async with InfluxWriter(
            log, InfluxTarget(url=influxd.url), lookup=registry_lookup(index)
        ) as writer:
            await writer.setup()
            await writer.setup()  # idempotent
            return await writer.drain(), await writer.drain(), writer

    consumed, again, writer = asyncio.run(go())
    assert consumed == n_readings + n_events and again == 0
    assert writer.stats.points == consumed and writer.stats.rejected_lines == 0
    assert writer.stats.batches == -(-n_readings // 5000) + 1  # batches of 5,000 lines
    assert at_end(log)
    expected = expected_counts(log)
    assert sum(expected.values()) == consumed
    assert measured_counts(influxd, "estate") == expected
    # a value and its tags round-trip: the last fill level of one bin
    bin_record = [r for r in log.iterate("readings") if r.envelope.kind == "waste_bin.level"][-1]
    device, estate = bin_record.envelope.device, bin_record.envelope.estate
    answer = influxd.query(
        f'SELECT last("fill_pct") FROM "waste_level" WHERE "device" = \'{device}\' '
        f'AND "estate" = \'{estate}\' GROUP BY "office", "zone", "category", "estate"',
        "estate",
    )
    series = answer["results"][0]["series"]
    assert len(series) == 1
    assert series[0]["values"][0][1] == bin_record.envelope.payload["fill_pct"]
    assert series[0]["tags"]["estate"] == bin_record.envelope.estate
    assert series[0]["tags"]["office"] in {"huamu", "gumei"}
    assert series[0]["tags"]["zone"] and series[0]["tags"]["category"]
    keys = influxd.query("SHOW FIELD KEYS", "estate")["results"][0]["series"]
    types = {(s["name"], k): t for s in keys for k, t in s["values"]}
    assert all(t == "float" for (name, key), t in types.items() if key != "text")
    assert types[("events", "text")] == "string"


def test_rollups_are_continuous_queries_and_backfill(influxd: InfluxD, log) -> None:
    generated_log(log, NOW)

    async def go() -> None:
        async with InfluxWriter(log, InfluxTarget(url=influxd.url)) as writer:
            await writer.setup()
            await writer.drain()
            await writer.backfill_rollups(NOW - timedelta(hours=25), NOW + timedelta(hours=1))

    asyncio.run(go())
    cqs = influxd.query("SHOW CONTINUOUS QUERIES")["results"][0]["series"]
    names = {v[0] for s in cqs if s["name"] == "estate" for v in s["values"]}
    assert {"cq_hourly_waste_level", "cq_hourly_gate_passage", "cq_hourly_device_health"} <= names
    rps = influxd.query('SHOW RETENTION POLICIES ON "estate"')["results"][0]["series"][0]
    by_name = {v[0]: v for v in rps["values"]}
    assert by_name["raw"][1] == "2160h0m0s" and by_name["raw"][-1] is True  # 90 d, default
    assert by_name["hourly"][1] == "43800h0m0s"  # 5 years
    hourly = influxd.query(
        'SELECT max("max_fill_pct"), sum("sum_passages") FROM "estate"."hourly"."waste_level", '
        '"estate"."hourly"."gate_passage"',
        "estate",
    )["results"][0]["series"]
    assert {s["name"] for s in hourly} == {"waste_level", "gate_passage"}
    raw_passages = influxd.query('SELECT sum("passages") FROM "gate_passage"', "estate")
    rolled = next(s for s in hourly if s["name"] == "gate_passage")["values"][0][2]
    assert rolled == raw_passages["results"][0]["series"][0]["values"][0][1]


def test_influxd_killed_mid_stream_loses_nothing_and_rebuild_matches(influxd: InfluxD, log) -> None:
    index, n_readings, n_events = generated_log(log, NOW)
    lookup = registry_lookup(index)
    fast = {"batch_lines": 500, "backoff_base_s": 0.05, "backoff_max_s": 1.0}

    async def go() -> tuple[int, int, int, int]:
        # the reference: the same log, no outage, into another database
        async with InfluxWriter(
            log, InfluxTarget(url=influxd.url, database="reference", **fast),
            lookup=lookup, consumer="reference",
        ) as reference:  # fmt: skip
            await reference.setup()
            await reference.drain()
        writer = InfluxWriter(log, InfluxTarget(url=influxd.url, **fast), lookup=lookup)
        await writer.setup()
        task = asyncio.create_task(writer.run())
        while writer.stats.batches < 5:
            await asyncio.sleep(0.005)
        influxd.stop(signal.SIGKILL)
        written_at_kill = writer.stats.points
        await asyncio.sleep(OUTAGE_S)
        retries_in_outage = writer.stats.retries
        await asyncio.to_thread(influxd.start)
        for _ in range(6000):
            if at_end(log):
                break
            await asyncio.sleep(0.01)
        writer.stop()
        await task
        await writer.close()
        return written_at_kill, retries_in_outage, writer.stats.points, writer.stats.batches

    written_at_kill, retries, points, _ = asyncio.run(go())
    total = n_readings + n_events
    assert 0 < written_at_kill < total  # it was killed mid-stream
    assert retries >= 3  # it kept retrying while InfluxDB was down
    assert at_end(log)
    assert points >= total  # a batch in flight at the kill may have been written twice...
    reference = measured_counts(influxd, "reference")
    after_outage = measured_counts(influxd, "estate")
    assert sum(reference.values()) == total
    assert after_outage == reference  # ...but no point is lost or duplicated

    async def rebuild() -> int:
        async with InfluxWriter(log, InfluxTarget(url=influxd.url), lookup=lookup) as writer:
            return await writer.rebuild()

    assert asyncio.run(rebuild()) == total
    assert measured_counts(influxd, "estate") == reference


def test_type_conflict_is_recorded_with_the_reason_and_the_writer_moves_on(
    influxd: InfluxD, log
) -> None:
    index = demo_index()
    readings, events = generated_records(index, NOW, hours=2)
    waste = [r for r in readings if r.kind == "waste_bin.level"][:7]
    others = [r for r in readings if r.kind != "waste_bin.level"][:293]
    mixed = sorted([*waste, *others], key=lambda r: (r.occurred_at, str(r.id)))
    log.append("readings", mixed)
    log.append("events", events[:10])
    target = InfluxTarget(url=influxd.url)

    async def go() -> InfluxWriter:
        async with InfluxWriter(log, target) as writer:
            await writer.setup()
            # someone else wrote fill_pct as an integer first (in the same shards: type
            # conflicts are per shard in 1.x): our floats now conflict
            foreign = "\n".join(
                f"waste_level,estate=x,device=y{n} fill_pct=1i "
                f"{int(r.occurred_at.timestamp()) * 10**9 + r.occurred_at.microsecond * 1000}"
                for n, r in enumerate(waste)
            )
            influxd.write(foreign, "estate")
            await writer.drain()
            await writer.drain()
            return writer

    writer = asyncio.run(go())
    assert at_end(log)
    assert writer.stats.rejected_lines == 7 and writer.stats.points == 293 + 10
    assert writer.stats.requests < 7 * 2 * 10  # halving: each bad line costs ~2·log2(batch)
    dead = list(log.iterate(REJECTED_STREAM))
    assert len(dead) == 7
    assert {d.envelope.payload["record_id"] for d in dead} == {str(r.id) for r in waste}
    for record in dead:
        payload = record.envelope.payload
        assert payload["status"] == 400 and payload["source_stream"] == "readings"
        assert "field type conflict" in str(payload["reason"]), payload["reason"]
        assert "fill_pct" in str(payload["reason"])
        assert str(payload["line"]).startswith("waste_level,")
    counts = measured_counts(influxd, "estate")
    assert counts["waste_level"] == 7  # only the foreign points
    assert sum(counts.values()) == 293 + 10 + 7


def test_retry_after_and_backoff_on_429_and_503(influxd: InfluxD, log) -> None:
    readings, _ = generated_records(demo_index(), NOW, hours=2)
    assert log.append("readings", readings[:1200]).appended == 1200
    delays: list[float] = []

    async def record_sleep(delay: float) -> None:
        delays.append(delay)

    async def go() -> tuple[FaultyProxy, InfluxWriter]:
        async with FaultyProxy(influxd.url) as proxy:
            proxy.faults = [
                (503, {"Retry-After": "7"}),
                (429, {"Retry-After": "2"}),
                (503, {}),
                (500, {}),
            ]
            target = InfluxTarget(url=proxy.url, batch_lines=1000, backoff_base_s=0.1)
            async with InfluxWriter(
                log, target, rng=random.Random(1), sleep=record_sleep
            ) as writer:
                await writer.setup()
                await writer.drain()
            return proxy, writer

    proxy, writer = asyncio.run(go())
    assert writer.stats.retries == 4
    assert 7 <= delays[0] <= 7.2 and 2 <= delays[1] <= 2.2  # what the server asked (+ jitter)
    assert 0.2 <= delays[2] <= 0.4 and 0.4 <= delays[3] <= 0.8  # exponential, jittered
    assert len(proxy.seen) == 4 + 2  # four refused tries, then the two batches
    assert all(s.headers["Content-Encoding"] == "gzip" for s in proxy.seen)
    assert [len(s.body.splitlines()) for s in proxy.seen[-2:]] == [1000, 200]
    assert proxy.seen[0].query == {"db": "estate", "rp": "raw", "precision": "ns"}
    assert measured_counts(influxd, "estate").total() == 1200


def test_v2_write_request_shape(log) -> None:
    """Only the request shape: no InfluxDB 2.x can run here (a recording server answers)."""
    readings, _ = generated_records(demo_index(), NOW, hours=1)
    log.append("readings", readings[:10])

    async def go() -> FaultyProxy:
        async with FaultyProxy("http://127.0.0.1:9") as proxy:
            proxy.faults = [(204, {})]
            target = InfluxTarget.from_url(f"{proxy.url}/?org=estate-org&bucket=estate",
                                           token="s3cret")  # fmt: skip
            assert target.api == "v2"
            async with InfluxWriter(log, target) as writer:
                await writer.drain()
            return proxy

    proxy = asyncio.run(go())
    (seen,) = proxy.seen
    assert seen.path == "/api/v2/write"
    assert seen.query == {"org": "estate-org", "bucket": "estate", "precision": "ns"}
    assert seen.headers["Authorization"] == "Token s3cret"
    assert len(seen.body.splitlines()) == 10
    assert at_end_readings(log)


def test_stored_json_and_contract_reads_send_the_envelopes_lines(log) -> None:
    """The SQLite log is read as stored JSON, another backend through ``read``: both send
    exactly the lines of :func:`encode` over the parsed envelopes, batch by batch."""
    index = demo_index()
    lookup = registry_lookup(index)
    readings, events = generated_records(index, NOW, hours=2)
    log.append("readings", readings[:1200])
    log.append("events", events[:10])
    assert not isinstance(ContractOnlyLog(log), JsonReader) and isinstance(log, JsonReader)

    async def bodies(event_log: EventLog, consumer: str) -> list[str]:
        async with FaultyProxy("http://127.0.0.1:9") as proxy:
            proxy.faults = [(204, {})] * 10  # a recording server: no influxd needed
            target = InfluxTarget(url=proxy.url, batch_lines=500)
            async with InfluxWriter(event_log, target, lookup=lookup, consumer=consumer) as w:
                assert await w.drain() == 1210 and w.stats.points == 1210
            return [seen.body for seen in proxy.seen]

    expected = []
    for stream in MEASUREMENT_STREAMS:
        records = list(log.iterate(stream))
        for i in range(0, len(records), 500):
            lines = (encode(stream, r.envelope, lookup) for r in records[i : i + 500])
            expected.append("\n".join(line for line in lines if line is not None))
    assert asyncio.run(bodies(log, "influx")) == expected
    assert asyncio.run(bodies(ContractOnlyLog(log), "other")) == expected
    assert at_end(log, "influx") and at_end(log, "other")


def at_end_readings(log: SqliteEventLog) -> bool:
    return log.get_checkpoint("influx", "readings") == log.end_position("readings")


def test_target_from_url_selects_the_api() -> None:
    v1 = InfluxTarget.from_url("http://db:8086/?db=ops&rp=week")
    assert (v1.api, v1.database, v1.retention_policy, v1.url) == (
        "v1",
        "ops",
        "week",
        "http://db:8086",
    )
    v2 = InfluxTarget.from_url("https://cloud:443?org=o&bucket=b&token=tok3n")
    assert v2.api == "v2" and v2.token is not None and v2.token.get_secret_value() == "tok3n"
    assert "tok3n" not in repr(v2)
    with pytest.raises(ValueError, match="org and a bucket"):
        InfluxTarget(api="v2", bucket="b").write_url()


def test_retry_after_parsing_and_backoff_bounds() -> None:
    now = datetime(2026, 11, 22, 5, 0, 0, tzinfo=UTC)
    assert retry_after("12") == 12.0
    assert retry_after("Sun, 22 Nov 2026 05:00:30 GMT", now) == 30.0
    assert retry_after("Sun, 22 Nov 2026 04:00:00 GMT", now) == 0.0
    assert retry_after("99999") == MAX_RETRY_AFTER_S
    assert retry_after("soon") is None and retry_after(None) is None
    backoff = Backoff(0.5, 8.0, random.Random(3))
    for attempt in range(12):
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= backoff.delay(attempt) <= ceiling
    assert 0.25 <= backoff.delay(0) <= 0.5 and 4.0 <= backoff.delay(30) <= 8.0
