"""Replay the DAIAD household smart-water-meter data through the water pack.

Usage (from the repository root)::

    .venv/bin/python benchmarks/daiad_replay.py [--zip PATH] [--tz Europe/Madrid]

Reads ``../shared/data/real/water_daiad/swm_trialA_clean.zip`` (92 households, hourly
cumulative registers in litres, CC-BY-SA 4.0; never copied into this repository), turns
each household's register into ``water_meter.register`` readings (``volume_m3``; the
flow is derived by the detectors from register differences), runs ``water_night_flow``
and ``water_continuous_flow`` with the shipped rules through the alarm machine, and
prints per-household results and totals. Results are reported in ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devices.catalogue import DeviceKind  # noqa: E402
from devices.profiles import BUILTIN_PROFILES  # noqa: E402
from processors.alarm import AlarmBook, AlertEventKind, apply_signal  # noqa: E402
from processors.detector import DeviceContext, ReadingView  # noqa: E402
from processors.packs.water import (  # noqa: E402
    Register,
    WaterContinuousFlow,
    WaterNightFlow,
    advance_register,
)
from processors.rules import load_rules  # noqa: E402

DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "real" / "water_daiad" / "swm_trialA_clean.zip"
MEMBER = "swm_trialA_clean.csv"


@dataclass
class Result:
    key: str
    readings: int
    first: datetime
    last: datetime
    nights_judged: int
    nights_incomplete: int
    longest_leak_run: int
    longest_nonzero_run: int
    nonzero_run_end: date | None
    raised: int
    first_raise: str
    continuous_raised: int
    resets: int
    glitches: int
    runbacks: int
    gaps: int
    duplicates: int


def load(zip_path: Path) -> dict[str, list[tuple[datetime, float]]]:
    """household key → [(local naive time, register litres)] as in the file."""
    rows: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    with zipfile.ZipFile(zip_path) as archive, archive.open(MEMBER) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8"), delimiter=";")
        next(reader)
        for key, stamp, register, _diff in reader:
            rows[key].append((datetime.strptime(stamp, "%d/%m/%Y %H:%M:%S"), float(register)))  # noqa: DTZ007
    return rows


def readings_of(
    key: str, rows: list[tuple[datetime, float]], tz: ZoneInfo
) -> tuple[list[ReadingView], int]:
    """Event-time ordered readings (the runner's guarantee) and the duplicates dropped."""
    by_time: dict[datetime, float] = {}
    duplicates = 0
    for local, litres in rows:
        at = local.replace(tzinfo=tz).astimezone(UTC)
        if at in by_time:
            duplicates += 1
            continue
        by_time[at] = litres
    views = [
        ReadingView(
            id=uuid5(NAMESPACE_URL, f"daiad/{key}/{at.isoformat()}"),
            kind="water_meter.register",
            at=at,
            payload={"volume_m3": litres / 1000},
        )
        for at, litres in sorted(by_time.items())
    ]
    return views, duplicates


def nonzero_night_runs(
    views: list[ReadingView], ctx: DeviceContext, floor_l_h: float
) -> tuple[int, date | None]:
    """Longest run of consecutive nights whose minimum night flow was ≥ ``floor_l_h``,
    judged exactly as water_night_flow does (a lower threshold, the same windows)."""
    rule = ctx.rules.water_night_flow.model_copy(update={"min_flow_l_h": floor_l_h})
    rules = _replace_rule(ctx, rule)
    detector, state = WaterNightFlow(), WaterNightFlow().initial(rules)
    best, best_end = 0, None
    for view in views:
        state, _ = detector.step(state, view, rules)
        if state.streak > best:
            best, best_end = state.streak, state.last_night
    return best, best_end


def _replace_rule(ctx: DeviceContext, night_rule: Any) -> DeviceContext:
    return replace(ctx, rules=replace(ctx.rules, water_night_flow=night_rule))


@dataclass(frozen=True)
class _Ref:
    """The registry facts rule resolution needs (the DAIAD meters are not registered)."""

    estate: str
    device: str
    kind: str
    profile: str


def context(index: int, tz: ZoneInfo) -> DeviceContext:
    rules = load_rules()
    device = f"wm-daiad-{index:03d}"
    profile = BUILTIN_PROFILES["water_household"]
    ref = _Ref("daiad", device, DeviceKind.WATER_METER, "water_household")
    return DeviceContext(
        estate="daiad",
        device=device,
        building=None,
        kind=DeviceKind.WATER_METER,
        profile=profile,
        tags=frozenset(),
        tz=tz,
        rules=rules.for_device(ref),
    )


def replay(key: str, index: int, rows: list[tuple[datetime, float]], tz: ZoneInfo) -> Result:
    ctx = context(index, tz)
    views, duplicates = readings_of(key, rows, tz)
    night, cont = WaterNightFlow(), WaterContinuousFlow()
    n_state, c_state = night.initial(ctx), cont.initial(ctx)
    book = AlarmBook()
    raised = continuous_raised = 0
    first_raise = ""
    reg = Register()
    for view in views:
        reg, _, _ = advance_register(reg, view, ctx)
        n_state, signals = night.step(n_state, view, ctx)
        c_state, more = cont.step(c_state, view, ctx)
        for sig in signals:
            book, events = apply_signal(book, sig, night.policy(ctx))
            for event in events:
                if event.kind is AlertEventKind.RAISED:
                    raised += 1
                    if not first_raise:
                        first_raise = f"{event.at:%Y-%m-%d}: {event.explanation}"
        for sig in more:
            book, events = apply_signal(book, sig, cont.policy(ctx))
            continuous_raised += sum(e.kind is AlertEventKind.RAISED for e in events)
    longest_nonzero, end = nonzero_night_runs(views, ctx, 1.0)
    return Result(
        key=key,
        readings=len(views),
        first=views[0].at,
        last=views[-1].at,
        nights_judged=n_state.nights_judged,
        nights_incomplete=n_state.nights_incomplete,
        longest_leak_run=n_state.longest_streak,
        longest_nonzero_run=longest_nonzero,
        nonzero_run_end=end,
        raised=raised,
        first_raise=first_raise,
        continuous_raised=continuous_raised,
        resets=reg.resets,
        glitches=reg.glitches,
        runbacks=reg.runbacks,
        gaps=reg.gaps,
        duplicates=duplicates,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--tz", default="Europe/Madrid", help="timezone of the file's times")
    args = parser.parse_args(argv)
    tz = ZoneInfo(args.tz)
    data = load(args.zip)
    results = [replay(key, i, rows, tz) for i, (key, rows) in enumerate(sorted(data.items()))]
    print(
        f"{'household':10} {'readings':>8} {'nights':>6} {'incompl':>7} {'leak run':>8} "
        f"{'≥1L/h run':>9} {'night':>6} {'contin':>6} {'resets':>6} {'glitch':>6} "
        f"{'runback':>7} {'gaps':>5} {'dups':>5}"
    )
    for r in results:
        print(
            f"{r.key[:8]:10} {r.readings:8} {r.nights_judged:6} {r.nights_incomplete:7} "
            f"{r.longest_leak_run:8} {r.longest_nonzero_run:9} {r.raised:6} "
            f"{r.continuous_raised:6} {r.resets:6} {r.glitches:6} {r.runbacks:7} "
            f"{r.gaps:5} {r.duplicates:5}"
        )
    flagged = [r for r in results if r.raised]
    cont = [r for r in results if r.continuous_raised]
    longest = max(results, key=lambda r: r.longest_nonzero_run)
    longest_leak = max(results, key=lambda r: r.longest_leak_run)
    span = (min(r.first for r in results), max(r.last for r in results))
    print()
    print(f"households: {len(results)}; readings: {sum(r.readings for r in results)}")
    print(f"period: {span[0]:%Y-%m-%d} .. {span[1]:%Y-%m-%d}")
    print(
        f"water_night_flow: {len(flagged)} households flagged "
        f"({sum(r.raised for r in results)} alerts raised)"
    )
    print(
        f"water_continuous_flow: {len(cont)} households flagged "
        f"({sum(r.continuous_raised for r in results)} alerts raised)"
    )
    print(
        f"longest run of nights with minimum ≥ 1 L/h: {longest.longest_nonzero_run} "
        f"(household {longest.key[:8]}, ending night of {longest.nonzero_run_end})"
    )
    print(
        f"longest run of nights with minimum ≥ 3 L/h (the rule): "
        f"{longest_leak.longest_leak_run} (household {longest_leak.key[:8]})"
    )
    print(
        "register glitches: "
        f"resets {sum(r.resets for r in results)} in {sum(bool(r.resets) for r in results)} "
        f"households, implausible jumps {sum(r.glitches for r in results)}, "
        f"run-backs {sum(r.runbacks for r in results)}, gaps > 3 h {sum(r.gaps for r in results)}, "
        f"duplicate timestamps {sum(r.duplicates for r in results)}"
    )
    for r in sorted(flagged, key=lambda r: -r.longest_leak_run)[:5]:
        print(f"  {r.key[:8]}: longest run {r.longest_leak_run} nights; first: {r.first_raise}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
