"""Throughput of the detector engine of one partition: what a replay, ``estate rebuild``
and ``estate evaluate`` run, beyond the pure detector steps.

Run from the repository root::

    .venv/bin/python benchmarks/engine_bench.py [--devices N] [--hours H] [--repeat R]

The traffic is :mod:`benchmarks.detectors_bench`'s (the same demo estate, readings and
detectors), as ``readings`` envelopes (built before the clock starts). What is timed is
:meth:`processors.engine.Engine.push` of every envelope in batches of ``--batch`` (the
runner's default read size) and the final :meth:`~processors.engine.Engine.flush`:
routing, the event-time buffer and watermark, the tick grid (one tick a minute of
event time), every detector step and tick, and the alarm machine turning signals into
lifecycle events. A fresh engine each run; the median of ``--repeat`` runs is reported.

``--every-grid`` ticks every time-based detector's states on every grid point, as the
engine did before scheduled ticks (``tick_due``), for an A/B on one machine; the event
ids are the same (compare the digests printed).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from benchmarks.detectors_bench import ALL_DETECTORS, build_devices, build_index, build_readings  # noqa: E402
from eventlog.envelope import Envelope  # noqa: E402
from processors.detector import Detector, unscheduled  # noqa: E402
from processors.engine import Engine  # noqa: E402
from processors.rules import load_rules  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000, help="devices (approximate)")
    parser.add_argument("--hours", type=float, default=4, help="simulated hours of traffic")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--batch", type=int, default=2000, help="envelopes per push")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--every-grid", action="store_true", help="see the module docstring")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    index = build_index(args.devices, args.seed)
    watched = build_devices(args.devices, args.seed, index)
    readings = build_readings(watched, args.hours, args.seed)
    envelopes = [
        Envelope(
            id=view.id,
            kind=view.kind,
            occurred_at=view.at,
            received_at=view.at,
            estate=ctx.estate,
            building=ctx.building,
            device=ctx.device,
            payload=dict(view.payload),
        )
        for view, (ctx, _) in readings
    ]
    detectors: list[Detector[Any]] = [
        unscheduled(d) if args.every_grid and d.scheduled else d for d in ALL_DETECTORS
    ]
    rules = load_rules(None)
    print(
        f"engine of one partition: {len(watched):,} devices, {args.hours:g} h of traffic, "
        f"{len(envelopes):,} readings in batches of {args.batch:,}"
        f"{', time-based detectors ticked on every grid point' if args.every_grid else ''} "
        f"(setup {time.perf_counter() - started:.1f} s, not timed)"
    )
    gc.collect()
    gc.freeze()
    rates: list[float] = []
    digests: set[str] = set()
    for _ in range(args.repeat):
        engine = Engine(index, rules, detectors)
        out: list[Envelope] = []
        started = time.perf_counter()
        for at in range(0, len(envelopes), args.batch):
            batch = envelopes[at : at + args.batch]
            out += engine.push(batch, batch[-1].occurred_at)
        out += engine.flush(envelopes[-1].occurred_at)
        seconds = time.perf_counter() - started
        rates.append(len(envelopes) / seconds)
        digests.add(hashlib.sha256(b"".join(sorted(e.id.bytes for e in out))).hexdigest()[:16])
        stats = engine.stats
    runs = ", ".join(f"{r:,.0f}" for r in rates)
    print(
        f"readings through the engine  {statistics.median(rates):>10,.0f} readings/s "
        f"(median of {args.repeat}; runs: {runs})"
    )
    print(
        f"  {len(out):,} events, {stats.ticks:,} ticks of the grid, {stats.judged:,} readings "
        f"judged; event ids digest {', '.join(sorted(digests))}"
    )
    if len(digests) != 1:
        print("runs disagree on the events", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
