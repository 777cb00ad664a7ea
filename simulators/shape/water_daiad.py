"""Derive the household water-use shape from the DAIAD hourly smart-meter data.

    .venv/bin/python -m simulators.shape.water_daiad [--zip PATH]

Reads ``../shared/data/real/water_daiad/swm_trialA_clean.zip`` (DAIAD trial A, 92
households, hourly cumulative registers in litres, CC-BY-SA 4.0) in place and prints:

* ``HOURLY_SHARE``: the share of a day's water used in each local hour (24 values, sum 1),
  from intervals of 45-75 minutes attributed to the local hour in which they started;
* ``HOURLY_DRY``: per local hour, the fraction of household-hours with no use at all;
* the median of the households' mean daily use (litres) and the log-normal spread
  (sigma of log mean daily use) across households, and the day-to-day spread within a
  household (sigma of log daily use over its own mean).

Only these aggregates leave the script; the data stays where it is.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import statistics
import zipfile
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "real" / "water_daiad" / "swm_trialA_clean.zip"
MEMBER = "swm_trialA_clean.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    args = parser.parse_args()
    rows: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    with zipfile.ZipFile(args.zip) as archive, archive.open(MEMBER) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8"), delimiter=";")
        next(reader)
        for key, when, reading, _diff in reader:
            local = datetime.strptime(when, "%d/%m/%Y %H:%M:%S")  # noqa: DTZ007 - local times
            rows[key].append((local, float(reading)))
    litres_by_hour = [0.0] * 24
    hours_by_hour = [0] * 24
    dry_by_hour = [0] * 24
    household_means: list[float] = []
    day_spread: list[float] = []
    for series in rows.values():
        series.sort()
        daily: dict[object, float] = defaultdict(float)
        covered: dict[object, int] = defaultdict(int)
        for (t0, v0), (t1, v1) in itertools.pairwise(series):
            gap = t1 - t0
            used = v1 - v0
            if not timedelta(minutes=45) <= gap <= timedelta(minutes=75) or not 0 <= used < 2000:
                continue
            hour = t0.hour
            litres_by_hour[hour] += used
            hours_by_hour[hour] += 1
            dry_by_hour[hour] += used == 0
            daily[t0.date()] += used
            covered[t0.date()] += 1
        full = [v for d, v in daily.items() if covered[d] >= 22 and v > 0]
        if len(full) >= 30:
            mean = statistics.fmean(full)
            household_means.append(mean)
            day_spread.append(statistics.pstdev(math.log(v / mean) for v in full))
    per_hour = [litres_by_hour[h] / hours_by_hour[h] for h in range(24)]
    total = sum(per_hour)
    share = [round(v / total, 4) for v in per_hour]
    share[share.index(max(share))] += round(1 - sum(share), 4)
    dry = [round(dry_by_hour[h] / hours_by_hour[h], 3) for h in range(24)]
    logs = [math.log(m) for m in household_means]
    print(f"households used: {len(household_means)} of {len(rows)}")
    print(f"HOURLY_SHARE = {tuple(round(s, 4) for s in share)}")
    print(f"HOURLY_DRY = {tuple(dry)}")
    print(f"median mean daily use: {statistics.median(household_means):.1f} L")
    print(f"sigma of log household mean: {statistics.pstdev(logs):.3f}")
    print(f"median day-to-day sigma (log): {statistics.median(day_spread):.3f}")


if __name__ == "__main__":
    main()
