"""Derive residential EV session shapes from the ACN-Data sessions of the Caltech site.

    .venv/bin/python -m simulators.shape.ev_acn [--json PATH]

Reads ``../shared/data/real/ev_acn_caltech/acndata_sessions_cal_dec2020_may2023.json``
(an ACN-Data API dump; ACN-Data terms of use apply) in place. Caltech is a *workplace*
site: drivers plug in in the morning and leave in the afternoon. A residential estate
sees the mirror image, so the shapes are mirrored through a one-hour commute:

* ``HOME_ARRIVAL_SHARE``: the share of home arrivals per local hour = the workplace
  *unplug* hours of weekday sessions shifted by one hour (24 values, sum 1);
* home stay (hours, log-normal ``mu``, ``sigma`` of the natural log) = 22 h minus the
  workplace stay (24 h minus two one-hour commutes), for workplace stays of 2-14 h;
* energy per session (kWh, log-normal ``mu``, ``sigma``) = ``kWhDelivered`` as is.

Only these aggregates leave the script; the data stays where it is.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JSON = (
    ROOT.parent
    / "shared"
    / "data"
    / "real"
    / "ev_acn_caltech"
    / "acndata_sessions_cal_dec2020_may2023.json"
)
_FORMAT = "%a, %d %b %Y %H:%M:%S %Z"
COMMUTE_H = 1


def _at(text: str, tz: ZoneInfo) -> datetime:
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC).astimezone(tz)


def _lognormal(values: list[float]) -> tuple[float, float]:
    logs = [math.log(v) for v in values if v > 0]
    return round(statistics.fmean(logs), 3), round(statistics.pstdev(logs), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    items = json.loads(args.json.read_text(encoding="utf-8"))["_items"]
    home_stays: list[float] = []
    energy: list[float] = []
    arrivals = [0] * 24
    for item in items:
        if not item.get("disconnectTime"):
            continue
        tz = ZoneInfo(item.get("timezone") or "America/Los_Angeles")
        start = _at(item["connectionTime"], tz)
        end = _at(item["disconnectTime"], tz)
        work_stay = (end - start).total_seconds() / 3600
        if start.weekday() >= 5 or not 2 <= work_stay <= 14 or item["kWhDelivered"] <= 0:
            continue
        arrivals[(end.hour + COMMUTE_H) % 24] += 1
        home_stays.append(24 - 2 * COMMUTE_H - work_stay)
        energy.append(float(item["kWhDelivered"]))
    total = sum(arrivals)
    share = [round(a / total, 3) for a in arrivals]
    share[share.index(max(share))] += round(1 - sum(share), 3)
    print(f"weekday workplace sessions used: {len(home_stays)} of {len(items)}")
    print(f"HOME_ARRIVAL_SHARE = {tuple(round(s, 3) for s in share)}")
    print(
        f"HOME_STAY_H lognormal (mu, sigma) = {_lognormal(home_stays)}; "
        f"median {statistics.median(home_stays):.2f} h"
    )
    print(
        f"ENERGY_KWH lognormal (mu, sigma) = {_lognormal(energy)}; "
        f"median {statistics.median(energy):.2f} kWh"
    )


if __name__ == "__main__":
    main()
