"""Points per second written by the InfluxDB projection to a local influxd 1.x.

    .venv/bin/python -m benchmarks.influx_bench [--hours 48] [--estates 4]

Generates a log of readings and alerts of a demo registry (``--estates`` estates of
40 households, one reading per device per 30 minutes over ``--hours``), starts a real
influxd on a free port (``tests/support/influx.py``), runs the writer's ``drain()``
(read from the SQLite log, encode, gzip, POST batches of 5,000 lines, checkpoint) and
prints points/s, with the share of the time spent reading and encoding the log and the
writer's CPU time per point (less sensitive than points/s to other work on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from eventlog.sqlite import SqliteEventLog
from processors.influx import InfluxTarget, InfluxWriter
from processors.influx_schema import encode_stored, registry_lookup
from tests.support.influx import InfluxD, demo_index, generated_log


async def _write(log: SqliteEventLog, url: str, index: object) -> tuple[int, float, float]:
    """Points written, seconds and CPU seconds (this process: every thread) of ``drain()``."""
    async with InfluxWriter(
        log,
        InfluxTarget(url=url),
        lookup=registry_lookup(index),  # type: ignore[arg-type]
    ) as writer:
        await writer.setup()
        started, cpu = time.perf_counter(), time.process_time()
        await writer.drain()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        return writer.stats.points, seconds, cpu


async def _post_only(lines: list[str], url: str) -> float:
    """Seconds influxd takes for ``lines`` alone (the ceiling the writer can reach)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/query", data={"q": "CREATE DATABASE scratch"}):
            pass
        bodies = [
            gzip.compress("\n".join(lines[i : i + 5000]).encode(), 1)
            for i in range(0, len(lines), 5000)
        ]
        started = time.perf_counter()
        for body in bodies:
            async with session.post(
                f"{url}/write",
                params={"db": "scratch", "precision": "ns"},
                data=body,
                headers={"Content-Encoding": "gzip"},
            ) as response:
                assert response.status == 204, await response.text()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--estates", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, InfluxD() as server:
        log = SqliteEventLog(Path(tmp) / "log.sqlite")
        index = demo_index(estates=args.estates)
        started = time.perf_counter()
        _, readings, events = generated_log(log, datetime.now(UTC), hours=args.hours, index=index)
        print(f"log: {readings:,} readings + {events:,} events "
              f"(generated in {time.perf_counter() - started:.1f} s)")  # fmt: skip
        lookup = registry_lookup(index)
        started = time.perf_counter()
        lines = [  # what the writer does: the stored JSON, encoded without pydantic
            line
            for stream in ("readings", "events")
            for _, stored in log.read_json(stream, limit=10**9)
            if (line := encode_stored(stream, stored, lookup)) is not None
        ]
        encode_s = time.perf_counter() - started
        print(f"read + encode only: {len(lines) / encode_s:,.0f} lines/s ({encode_s:.2f} s)")
        server_s = asyncio.run(_post_only(lines, server.url))
        print(f"influxd alone (pre-encoded, gzip, 5,000-line batches, into a scratch database): "
              f"{len(lines) / server_s:,.0f} points/s")  # fmt: skip
        points, seconds, cpu = asyncio.run(_write(log, server.url, index))
        print(f"written: {points:,} points in {seconds:.2f} s = {points / seconds:,.0f} points/s "
              f"(read + encode is {encode_s / seconds:.0%} of that time; "
              f"writer CPU {cpu / points * 1e6:.1f} µs/point)")  # fmt: skip
        log.close()


if __name__ == "__main__":
    main()
