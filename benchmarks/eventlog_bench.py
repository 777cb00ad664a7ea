"""Throughput of the embedded (SQLite) event log.

Run from the repository root::

    .venv/bin/python benchmarks/eventlog_bench.py [--records N] [--batch B]

Each run uses a fresh file in a temporary folder. Envelopes are built before
the clock starts (building them is ingest's cost, not the log's); what is timed
is ``append`` (serialisation, insert, commit) and ``iterate`` (select, parse
into :class:`Envelope`). Batched append and read are repeated ``--repeat``
times and the median is reported, since figures on a shared VM are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from eventlog.envelope import Envelope, Stream, deterministic_id  # noqa: E402
from eventlog.sqlite import SqliteEventLog  # noqa: E402

T0 = datetime(2026, 11, 22, tzinfo=UTC)
DEVICES = 500


def reading(n: int) -> Envelope:
    """A water-meter reading as ingest would append it (``n`` makes it unique)."""
    device = f"wm-{n % DEVICES:04d}"
    seq = n // DEVICES
    at = T0 + timedelta(seconds=seq * 60)
    return Envelope(
        id=deterministic_id("reading.water_meter", "green-valley", device, seq),
        kind="reading.water_meter",
        occurred_at=at,
        received_at=at + timedelta(milliseconds=180),
        estate="green-valley",
        building=f"b-{n % 40:02d}",
        device=device,
        payload={
            "ts": at.isoformat(),
            "seq": seq,
            "total_m3": round(1000 + seq * 0.0125, 4),
            "flow_l_min": 3.25,
            "battery_pct": 87.5,
        },
    )


def batches(records: int, batch: int, first: int = 0) -> Iterator[list[Envelope]]:
    for start in range(first, first + records, batch):
        yield [reading(n) for n in range(start, min(start + batch, first + records))]


def timed_append(log: SqliteEventLog, records: int, batch: int, first: int = 0) -> float:
    """Seconds spent inside ``append`` for ``records`` records in calls of ``batch``."""
    spent = 0.0
    for envelopes in batches(records, batch, first):
        started = time.perf_counter()
        log.append(Stream.READINGS, envelopes)
        spent += time.perf_counter() - started
    return spent


def timed_read(log: SqliteEventLog, page: int) -> tuple[int, float]:
    started = time.perf_counter()
    count = sum(1 for _ in log.iterate(Stream.READINGS, batch=page))
    return count, time.perf_counter() - started


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f} records/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records per run")
    parser.add_argument("--batch", type=int, default=1_000, help="records per append call")
    parser.add_argument("--single", type=int, default=5_000, help="records appended one by one")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the batched figures")
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    args = parser.parse_args(argv)

    print(
        f"event log (SQLite {sqlite3.sqlite_version}, WAL, synchronous={args.synchronous}), "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"{args.records:,} readings, batches of {args.batch:,}, median of {args.repeat} runs")
    appends: list[float] = []
    duplicates: list[float] = []
    reads: list[float] = []
    size = 0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "log.db"
            with SqliteEventLog(path, synchronous=args.synchronous) as log:
                appends.append(args.records / timed_append(log, args.records, args.batch))
                duplicates.append(args.records / timed_append(log, args.records, args.batch))
                count, seconds = timed_read(log, 1_000)
                assert count == args.records, count
                reads.append(count / seconds)
            size = path.stat().st_size

    with (
        tempfile.TemporaryDirectory() as folder,
        SqliteEventLog(Path(folder) / "log.db", synchronous=args.synchronous) as log,
    ):
        single = args.single / timed_append(log, args.single, 1)

    def show(label: str, values: list[float]) -> None:
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{label:<38} {statistics.median(values):>10,.0f} records/s   (runs: {runs})")

    show(f"append, batched ({args.batch:,} per call)", appends)
    show("append, batched, all duplicates", duplicates)
    show("read (iterate, pages of 1,000)", reads)
    print(f"{'append, one record per call':<38} {single:>10,.0f} records/s   ({args.single:,})")
    print(f"file size {size / 1e6:.1f} MB ({size / args.records:,.0f} bytes per record)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
