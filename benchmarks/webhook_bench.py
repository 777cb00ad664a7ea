"""Webhook delivery benchmark (the issue's ``benchmarks/webhook_bench.py``).

Run from the repository root: ``.venv/bin/python benchmarks/webhook_bench.py [--alerts N]
[--latency-alerts N]`` (it reuses the test harness of ``tests/alerts/conftest.py``).

Real HTTP on loopback to three reference receivers, the wall clock, default
``DeliveryConfig`` (poll interval 0.1 s, concurrency 4 per endpoint). Prints:

* latency: time from an ``AlertRaised`` appended to the log to the start of its first
  delivery attempt (alerts appended one at a time, 20 ms apart), p50/p99/max;
* throughput: deliveries/s when ``--alerts`` alerts are appended at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from alerts.delivery import DeliveryConfig  # noqa: E402
from tests.alerts.conftest import (  # noqa: E402
    OFFICES,
    Dispatching,
    Estate,
    alert_event,
    append_events,
    free_port,
    receiver_for,
    store_of,
)


def _first_attempts(outbox: Path) -> dict[str, float]:
    with sqlite3.connect(outbox) as conn:
        rows = conn.execute(
            "SELECT m.event_id, min(a.started_at) FROM attempts a JOIN messages m"
            " USING (webhook_id) GROUP BY m.event_id"
        ).fetchall()
    return {event_id: started for event_id, started in rows}


async def bench(tmp: Path, alerts: int, latency_alerts: int) -> None:
    ports = {o: free_port() for o in OFFICES}
    estate = Estate(tmp, {o: f"http://127.0.0.1:{p}/hook" for o, p in ports.items()})
    receivers = {o: receiver_for(estate, o, ports[o]) for o in OFFICES}
    for r in receivers.values():
        await r.start()

    def received() -> int:
        return sum(store_of(r).count() for r in receivers.values())

    now = datetime.now(UTC)
    async with Dispatching(estate, config=DeliveryConfig()) as d:
        appended: dict[str, float] = {}
        for n in range(latency_alerts):
            event = alert_event(OFFICES[n % 3], n, at=now)
            appended[str(event.id)] = time.time()
            append_events(estate.log, [event])
            await asyncio.sleep(0.02)
        while received() < latency_alerts:
            await asyncio.sleep(0.01)
        first = _first_attempts(estate.outbox)
        lat = sorted((first[e] - t) * 1000 for e, t in appended.items())
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
        print(
            f"latency log→first attempt over {len(lat)} alerts: p50 {p(0.5):.1f} ms, "
            f"p99 {p(0.99):.1f} ms, max {lat[-1]:.1f} ms (poll interval {d.config.poll_interval} s)"
        )

        batch = [alert_event(OFFICES[n % 3], latency_alerts + n, at=now) for n in range(alerts)]
        start = time.perf_counter()
        append_events(estate.log, batch)
        while received() < latency_alerts + alerts:
            await asyncio.sleep(0.01)
        took = time.perf_counter() - start
        print(
            f"throughput: {alerts} alerts to 3 offices in {took:.2f} s = {alerts / took:.0f} "
            f"deliveries/s (concurrency {d.config.concurrency} per endpoint)"
        )
    for r in receivers.values():
        await r.stop()
    estate.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=3000)
    parser.add_argument("--latency-alerts", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench(Path(tmp), args.alerts, args.latency_alerts))


if __name__ == "__main__":
    main()
