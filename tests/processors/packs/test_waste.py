"""The waste pack: hand-built bin timelines through each detector and the alarm machine.

Times are estate-local (Asia/Shanghai, the demo estate's zone) minutes after ``T0``
(07:40 on 2026-05-01); readings are :class:`ReadingView` objects as the runner builds
them from ``waste_bin.level`` envelopes.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.catalogue import DeviceKind
from devices.demo_estate import dump_registry, generate_registry
from devices.registry import load_registry
from processors.alarm import AlarmBook, AlertEvent, AlertEventKind, Severity, Signal
from processors.alarm import apply_signal as alarm_signal
from processors.alarm import tick as alarm_tick
from processors.detector import Detector, DeviceContext, ReadingView, context_for
from processors.packs.waste import (
    WASTE_DETECTORS,
    BinFillForecast,
    BinFireRisk,
    BinNotEmptied,
    BinOverflow,
    BinStuckSensor,
)
from processors.rules import load_rules
from tests.processors.packs.roundtrip import fold, json_roundtrip

K = AlertEventKind
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 5, 1, 7, 40, tzinfo=TZ)
NS = uuid.UUID("6f1c1c56-1d0b-4a53-9d55-3b0f3f0c0a11")

OVERFLOW, NOT_EMPTIED, FORECAST, FIRE, STUCK = (
    BinOverflow(),
    BinNotEmptied(),
    BinFillForecast(),
    BinFireRisk(),
    BinStuckSensor(),
)

Item = ReadingView | datetime


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def reading(minutes: float, fill: float, temp: float | None = None) -> ReadingView:
    payload: dict[str, Any] = {"fill_pct": fill, "category": "kitchen"}
    if temp is not None:
        payload["temperature_c"] = temp
    return ReadingView(
        id=uuid.uuid5(NS, f"{minutes}:{fill}:{temp}"),
        kind="waste_bin.level",
        at=at(minutes),
        payload=payload,
    )


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DeviceContext:
    path: Path = tmp_path_factory.mktemp("registry") / "estate.yaml"
    path.write_text(dump_registry(generate_registry(households=50)), encoding="utf-8")
    index = load_registry(path).index()
    bins = [ref for ref in index.devices_of("lvcheng") if ref.device.endswith("-kitchen")]
    return context_for(index, bins[0], load_rules())


def run(
    detector: Detector[Any], ctx: DeviceContext, items: Iterable[Item], state: Any = None
) -> tuple[Any, list[Signal]]:
    """Fold readings (step) and datetimes (tick) through ``detector`` (checked)."""
    return fold(detector, ctx, items, state)


def alarm(
    detector: Detector[Any], ctx: DeviceContext, signals: Sequence[Signal], until: datetime
) -> list[AlertEvent]:
    """Alert lifecycle events of ``signals`` under the detector's policy, ticked to ``until``."""
    book, events = AlarmBook(), []
    policy = detector.policy(ctx)
    for s in signals:
        book, new = alarm_signal(book, s, policy)
        events.extend(new)
    book, new = alarm_tick(book, until)
    return events + new


def kinds(events: Iterable[AlertEvent]) -> list[tuple[AlertEventKind, datetime]]:
    return [(e.kind, e.at) for e in events]


def daily_bin(days: int = 4, rate: float = 1.5, seed: int = 3) -> list[ReadingView]:
    """A kitchen bin emptied every morning at about 07:00, read every 30 minutes, with
    ±1 % ultrasonic noise, a compaction dip now and then and a sunny-afternoon
    temperature up to ~48 °C."""
    rng = random.Random(seed)
    out, fill = [], 3.0
    for i in range(days * 48):
        minutes = i * 30
        local = at(minutes)
        if local.hour == 7 and local.minute < 30 + 10 and i:  # the collection round
            fill = rng.uniform(1, 6)
        else:
            fill = min(100.0, fill + rate / 2 + rng.uniform(-0.3, 0.3))
        shown = fill - (4 if rng.random() < 0.05 else 0) + rng.uniform(-1, 1)
        hour = local.hour + local.minute / 60
        temp = 22 + max(0.0, 26 * (1 - abs(hour - 14) / 5)) + rng.uniform(-1, 1)
        out.append(reading(minutes, round(max(0.0, shown), 1), round(temp, 1)))
    return out


# --- the normal case: every detector stays silent --------------------------------------------


@pytest.mark.parametrize("detector", WASTE_DETECTORS, ids=lambda d: d.name)
def test_a_bin_filled_and_emptied_daily_raises_nothing(
    ctx: DeviceContext, detector: Detector[Any]
) -> None:
    timeline = daily_bin()
    fills = [float(r.payload["fill_pct"]) for r in timeline]
    assert sum(1 for a, b in itertools.pairwise(fills) if b < a - 20) == 4  # rounds
    items: list[Item] = []
    for r in timeline:  # ticks between readings, as a runner's watermark gives them
        items += [r.at - timedelta(minutes=5), r]
    _, signals = run(detector, ctx, items)
    assert signals, "every reading is evaluated"
    assert not [s for s in signals if s.active]
    assert alarm(detector, ctx, signals, timeline[-1].at + timedelta(days=1)) == []
    assert {s.rule_version for s in signals} == {"2026.11.1"}
    assert all(s.detector == detector.name == s.condition for s in signals)


def test_a_busy_bin_overflows_before_the_morning_round_but_is_emptied_in_time(
    ctx: DeviceContext,
) -> None:
    timeline = daily_bin(days=3, rate=4.2)
    assert max(float(r.payload["fill_pct"]) for r in timeline) >= 95
    _, signals = run(OVERFLOW, ctx, timeline)
    events = alarm(OVERFLOW, ctx, signals, timeline[-1].at)
    raised = [e for e in events if e.kind is K.RAISED]
    cleared = [e for e in events if e.kind is K.CLEARED]
    assert len(raised) == len(cleared) == 3  # full for a few hours each night, emptied at 07:10
    assert all(
        e.at.astimezone(TZ).hour == 7 and "emptied at 07:10" in e.explanation for e in cleared
    )
    for quiet in (NOT_EMPTIED, STUCK, FIRE):
        _, signals = run(quiet, ctx, timeline)
        assert alarm(quiet, ctx, signals, timeline[-1].at + timedelta(days=1)) == []


def test_fill_drops_on_collection_are_reported_as_emptied(ctx: DeviceContext) -> None:
    timeline = [reading(0, 70), reading(30, 75), reading(60, 78), reading(90, 4)]
    _, signals = run(FORECAST, ctx, timeline)
    assert signals[-1].explanation == "bin-cp01-kitchen emptied at 09:10: 4 %"
    assert not signals[-1].active


def test_applies_to_waste_bins_only(ctx: DeviceContext) -> None:
    assert all(d.applies_to(ctx) for d in WASTE_DETECTORS)
    meter = dataclasses.replace(ctx, kind=DeviceKind.WATER_METER)
    assert not any(d.applies_to(meter) for d in WASTE_DETECTORS)
    assert [d.name for d in WASTE_DETECTORS] == [
        "bin_overflow",
        "bin_not_emptied",
        "bin_fill_forecast",
        "bin_fire_risk",
        "bin_stuck_sensor",
    ]
    assert all(d.consumes == frozenset({"waste_bin.level"}) for d in WASTE_DETECTORS)


def test_other_reading_kinds_and_readings_without_fill_are_ignored(ctx: DeviceContext) -> None:
    heartbeat = ReadingView(id=uuid.uuid4(), kind="waste_bin.heartbeat", at=at(0), payload={})
    for detector in WASTE_DETECTORS:
        state = detector.initial(ctx)
        assert detector.step(state, heartbeat, ctx) == (state, [])
    no_temp = reading(0, 50)
    assert FIRE.step(FIRE.initial(ctx), no_temp, ctx)[1] == []


# --- bin_overflow --------------------------------------------------------------------------


def test_overflow_raises_after_persistence_holds_through_a_dip_and_clears_when_emptied(
    ctx: DeviceContext,
) -> None:
    timeline = [
        reading(-30, 86),
        reading(0, 94),  # 07:40
        reading(30, 95),  # 08:10: persist_min (30) elapsed
        reading(60, 85),  # compaction dip: still full (hysteresis)
        reading(90, 93),
        reading(120, 60),  # partly emptied: above low_pct, still active
        reading(150, 12),  # 10:10 emptied
        reading(180, 14),
    ]
    _, signals = run(OVERFLOW, ctx, timeline)
    assert [s.active for s in signals] == [False, True, True, True, True, True, False, False]
    assert signals[1].explanation == "bin-cp01-kitchen at 94 % (≥ 90 %) since 07:40"
    assert signals[3].explanation == (
        "bin-cp01-kitchen at 85 % (full since 07:40; clears below 30 %)"
    )
    assert signals[6].explanation == "bin-cp01-kitchen emptied at 10:10: 12 % (< 30 %)"
    assert signals[3].evidence == (timeline[1].id, timeline[3].id)
    assert signals[1].values == {"fill_pct": 94.0, "high_pct": 90.0, "low_pct": 30.0}
    events = alarm(OVERFLOW, ctx, signals, at(600))
    assert kinds(events) == [(K.RAISED, at(30)), (K.CLEARED, at(150))]
    assert events[0].explanation == "bin-cp01-kitchen at 94 % (≥ 90 %) since 07:40"
    assert events[0].severity is Severity.WARNING
    assert events[0].rule_version == "2026.11.1"
    assert events[1].explanation == "bin-cp01-kitchen emptied at 10:10: 12 % (< 30 %)"


def test_overflow_blip_before_persistence_raises_nothing(ctx: DeviceContext) -> None:
    # a lid-open reflection: one high reading, re-measured lower before persist_min
    timeline = [reading(0, 97), reading(10, 70), reading(20, 96), reading(45, 88)]
    _, signals = run(OVERFLOW, ctx, timeline)
    assert [s.active for s in signals] == [True, False, True, False]
    assert alarm(OVERFLOW, ctx, signals, at(600)) == []


# --- bin_not_emptied -----------------------------------------------------------------------


def full_day(until_min: int, step: int = 30) -> list[ReadingView]:
    return [reading(m, 92 + (m // step) % 5) for m in range(0, until_min + 1, step)]


def test_not_emptied_within_sla_is_major_and_clears_when_emptied(
    ctx: DeviceContext,
) -> None:
    timeline = [*full_day(15 * 60), reading(15 * 60 + 30, 5)]  # emptied at 23:10
    _, signals = run(NOT_EMPTIED, ctx, timeline)
    active = [s for s in signals if s.active]
    assert active[0].at == at(12 * 60)  # 19:40: full since 07:40, sla_h 12
    assert active[0].severity is Severity.MAJOR
    assert active[0].explanation == (
        "bin-cp01-kitchen full since 07:40 and not emptied within 12 h (last 95 %)"
    )
    # reported as of the deadline, before the 19:40 reading is applied
    assert active[0].evidence == (timeline[0].id, timeline[23].id)
    assert active[1].at == at(12 * 60) and active[1].evidence == (timeline[0].id, timeline[24].id)
    assert not signals[0].active
    assert signals[0].explanation == (
        "bin-cp01-kitchen at 92 %: full since 07:40, to be emptied by 19:40"
    )
    assert signals[-1].explanation == "bin-cp01-kitchen emptied at 23:10: 5 %"
    events = alarm(NOT_EMPTIED, ctx, signals, at(24 * 60))
    assert kinds(events) == [(K.RAISED, at(12 * 60)), (K.CLEARED, at(15 * 60 + 30))]
    assert events[0].severity is Severity.MAJOR


def test_not_emptied_escalates_after_half_the_sla(ctx: DeviceContext) -> None:
    _, signals = run(NOT_EMPTIED, ctx, full_day(20 * 60))
    events = alarm(NOT_EMPTIED, ctx, signals, at(20 * 60))
    assert kinds(events) == [(K.RAISED, at(12 * 60)), (K.ESCALATED, at(18 * 60))]
    assert events[1].severity is Severity.CRITICAL


def test_not_emptied_is_silent_when_emptied_in_time(ctx: DeviceContext) -> None:
    timeline = [
        *full_day(10 * 60),
        reading(10 * 60 + 30, 3),
        *[reading(m, 10) for m in range(11 * 60, 30 * 60, 60)],
    ]
    items: list[Item] = [t for r in timeline for t in (r.at - timedelta(minutes=1), r)]
    _, signals = run(NOT_EMPTIED, ctx, items)
    assert not [s for s in signals if s.active]
    assert alarm(NOT_EMPTIED, ctx, signals, at(40 * 60)) == []


def test_not_emptied_deadline_between_readings_comes_from_tick_or_next_reading(
    ctx: DeviceContext,
) -> None:
    # hourly readings at :10 from 07:40 + 30 min: the 19:40 deadline falls between two
    timeline = [reading(0, 95), *[reading(m, 95) for m in range(30, 14 * 60, 60)]]
    ticked = [t for r in timeline for t in (r.at - timedelta(minutes=7), r)]
    _, plain = run(NOT_EMPTIED, ctx, timeline)
    _, with_ticks = run(NOT_EMPTIED, ctx, ticked)
    assert plain == with_ticks
    assert next(s.at for s in plain if s.active) == at(12 * 60)
    _, tick_only = run(NOT_EMPTIED, ctx, [*timeline[:13], at(12 * 60 + 5), at(12 * 60 + 9)])
    assert [s.at for s in tick_only if s.active] == [at(12 * 60)]
    assert kinds(alarm(NOT_EMPTIED, ctx, plain, at(13 * 60))) == [(K.RAISED, at(12 * 60))]


# --- bin_fill_forecast ---------------------------------------------------------------------


def test_forecast_full_within_horizon_then_emptied(ctx: DeviceContext) -> None:
    # emptied at 07:40 to 45 %, then 3.1 %/h; the drop from 80 % is a collection, not a rate
    timeline = [reading(-60, 78), reading(-30, 80)]
    timeline += [reading(m, round(45 + 3.1 * m / 60, 2)) for m in range(0, 12 * 60 + 1, 30)]
    timeline += [reading(13 * 60, 2)]
    _, signals = run(FORECAST, ctx, timeline)
    by_time = {s.at: s for s in signals}
    assert not by_time[at(60)].active  # three readings since emptying: too few
    assert by_time[at(60)].explanation == (
        "bin-cp01-kitchen at 48.1 %: 3 of 4 readings needed for a forecast"
    )
    # 10 h to full is within the 12 h horizon, but a bin below 60 % is left to the round
    assert not by_time[at(270)].active
    assert by_time[at(270)].explanation.startswith("bin-cp01-kitchen full in 10.0 h")
    first = next(s for s in signals if s.active)
    assert first.at == at(300)  # (90 - 60.5) / 3.1 = 9.5 h ≤ 12 h, and 60.5 % ≥ 60 %
    assert first.explanation == (
        "bin-cp01-kitchen full within 9.5 h at 3.1 %/h (now 60.5 %, full at 90 %)"
    )
    assert first.severity is Severity.INFO
    assert len(first.evidence) == 11
    late = by_time[at(12 * 60)]
    assert late.explanation.startswith("bin-cp01-kitchen full within 2.5 h at 3.1 %/h")
    assert not signals[-1].active
    events = alarm(FORECAST, ctx, signals, at(14 * 60))
    assert kinds(events) == [(K.RAISED, at(300)), (K.CLEARED, at(780)), (K.RESOLVED, at(780))]
    assert events[0].explanation == first.explanation


def test_forecast_five_hours_out(ctx: DeviceContext) -> None:
    timeline = [reading(m, round(64.58 + 3.1 * m / 60, 3)) for m in range(0, 181, 60)]
    _, signals = run(FORECAST, ctx, timeline)
    assert signals[-1].explanation == (
        "bin-cp01-kitchen full within 5.2 h at 3.1 %/h (now 73.9 %, full at 90 %)"
    )
    assert signals[-1].values["hours_to_full"] == pytest.approx(5.2, abs=0.01)


def test_forecast_silent_for_slow_flat_or_already_full_bins(ctx: DeviceContext) -> None:
    slow = [reading(m, 10 + 0.4 * m / 60) for m in range(0, 600, 30)]  # 0.4 %/h < 0.5
    flat = [reading(m, 40) for m in range(0, 600, 30)]
    far = [reading(m, 5 + 2 * m / 60) for m in range(0, 300, 30)]  # 2 %/h: ~40 h away
    for timeline in (slow, flat, far):
        _, signals = run(FORECAST, ctx, timeline)
        assert not any(s.active for s in signals)
    _, signals = run(FORECAST, ctx, [reading(m, 80 + m / 10) for m in range(0, 200, 30)])
    assert signals[-1].explanation == "bin-cp01-kitchen already full at 98 % (≥ 90 %)"
    assert not signals[-1].active


# --- bin_fire_risk -------------------------------------------------------------------------


def test_fire_risk_over_temperature_is_critical_and_clears_after_cooling(
    ctx: DeviceContext,
) -> None:
    timeline = [
        reading(0, 50, 31),
        reading(30, 50, 64),  # ≥ 60 °C
        reading(60, 50, 57),  # below 60 but not below 55: still at risk
        reading(90, 50, 52),  # cooled
        reading(120, 50, 48),
        reading(150, 50, 45),
    ]
    _, signals = run(FIRE, ctx, timeline)
    assert [s.active for s in signals] == [False, True, True, False, False, False]
    assert signals[1].explanation == (
        "bin-cp01-kitchen fire risk: 64 °C (≥ 60 °C), rising 11 °C/10 min (≥ 10) from 31 °C"
    )
    assert signals[2].explanation == (
        "bin-cp01-kitchen fire risk: 57 °C, not yet below 55 °C (since 08:10)"
    )
    assert signals[3].explanation == "bin-cp01-kitchen cooled to 52 °C (< 55 °C)"
    events = alarm(FIRE, ctx, signals, at(300))
    assert kinds(events) == [(K.RAISED, at(30)), (K.CLEARED, at(120))]  # 30 min below
    assert events[0].severity is Severity.CRITICAL


def test_fire_risk_rapid_rise_below_threshold(ctx: DeviceContext) -> None:
    timeline = [reading(0, 50, 25), reading(10, 50, 37), reading(20, 50, 40), reading(30, 50, 30)]
    _, signals = run(FIRE, ctx, timeline)
    assert [s.active for s in signals] == [False, True, True, False]
    assert signals[1].explanation == (
        "bin-cp01-kitchen fire risk: 37 °C, rising 12 °C/10 min (≥ 10) from 25 °C"
    )
    assert signals[1].evidence == (timeline[0].id, timeline[1].id)
    assert signals[3].explanation == "bin-cp01-kitchen cooled to 30 °C (< 32 °C)"


def test_fire_risk_ignores_slow_warming_and_jitter_between_close_readings(
    ctx: DeviceContext,
) -> None:
    slow = [reading(0, 50, 25), reading(60, 50, 45), reading(120, 50, 55)]  # sun: 3 °C/10 min
    close = [reading(0, 50, 25), reading(2, 50, 32), reading(4, 50, 26)]  # 7 °C in 2 min
    for timeline in (slow, close):
        _, signals = run(FIRE, ctx, timeline)
        assert not any(s.active for s in signals)


# --- bin_stuck_sensor ----------------------------------------------------------------------


def test_stuck_sensor_after_stuck_h_and_clears_when_it_moves(ctx: DeviceContext) -> None:
    flat = [reading(m, 42 + (0.3 if (m // 30) % 2 else 0)) for m in range(0, 49 * 60, 30)]
    timeline = [*flat, reading(49 * 60, 47), reading(49 * 60 + 30, 49)]
    _, signals = run(STUCK, ctx, timeline)
    active = [s for s in signals if s.active]
    assert active[0].at == at(48 * 60)
    assert active[0].explanation == (
        "bin-cp01-kitchen fill unchanged at 42 % (± 0.5 %) for 48 h since 05-01 07:40 (≥ 48 h)"
    )
    assert active[0].evidence == (timeline[0].id, active[0].evidence[1])
    assert active[0].values["reason"] == "stuck"
    events = alarm(STUCK, ctx, signals, at(60 * 60))
    assert kinds(events) == [(K.RAISED, at(48 * 60)), (K.CLEARED, at(50 * 60))]
    assert events[0].severity is Severity.WARNING


def test_stuck_sensor_implausible_jump(ctx: DeviceContext) -> None:
    timeline = [reading(0, 12), reading(5, 71), reading(35, 72), reading(65, 74)]
    _, signals = run(STUCK, ctx, timeline)
    assert [s.active for s in signals] == [False, True, False, False]
    assert signals[1].explanation == (
        "bin-cp01-kitchen fill jumped from 12 % to 71 % in 5 min "
        "(more than 50 points within 10 min): implausible"
    )
    assert signals[1].values["reason"] == "jump"
    events = alarm(STUCK, ctx, signals, at(200))
    assert kinds(events) == [(K.RAISED, at(5)), (K.CLEARED, at(95))]
    # a collection (a drop) and a slow rise are never implausible
    _, signals = run(STUCK, ctx, [reading(0, 95), reading(5, 2), reading(35, 60)])
    assert not any(s.active for s in signals)


# --- replay properties ---------------------------------------------------------------------


@pytest.mark.parametrize("detector", WASTE_DETECTORS, ids=lambda d: d.name)
def test_state_json_round_trip_mid_timeline_gives_identical_signals(
    ctx: DeviceContext, detector: Detector[Any]
) -> None:
    timeline: list[Item] = [
        *full_day(13 * 60),
        reading(13 * 60 + 30, 3, 70),
        reading(13 * 60 + 35, 60, 40),
        *[reading(m, 20 + 3 * (m - 14 * 60) / 60, 25) for m in range(14 * 60, 30 * 60, 30)],
        *[reading(m, 40, 25) for m in range(30 * 60, 80 * 60, 30)],
    ]
    _, whole = run(detector, ctx, timeline)
    for cut in (1, 7, 20, 30, len(timeline) - 3):
        state, first = run(detector, ctx, timeline[:cut])
        restored = json_roundtrip(detector, state)
        _, rest = run(detector, ctx, timeline[cut:], restored)
        assert first + rest == whole
    assert any(s.active for s in whole)


@st.composite
def timelines(draw: st.DrawFn) -> list[ReadingView]:
    n = draw(st.integers(min_value=1, max_value=60))
    minutes, fill, temp, out = 0, draw(st.floats(0, 100)), 25.0, []
    for i in range(n):
        minutes += draw(st.sampled_from([2, 5, 10, 30, 30, 30, 60, 180, 600]))
        move = draw(st.sampled_from(["same", "up", "down", "empty", "jump", "full"]))
        fill = {
            "same": fill,
            "up": min(100.0, fill + 3),
            "down": max(0.0, fill - 5),
            "empty": 2.0,
            "jump": min(100.0, fill + 55),
            "full": 95.0,
        }[move]
        temp = draw(st.sampled_from([temp, 25.0, 45.0, 58.0, 65.0, temp + 12]))
        payload = {"fill_pct": fill, "category": "kitchen", "temperature_c": min(temp, 200.0)}
        out.append(
            ReadingView(
                id=uuid.uuid5(NS, f"r{i}"), kind="waste_bin.level", at=at(minutes), payload=payload
            )
        )
    return out


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(timeline=timelines(), data=st.data())
def test_redelivered_readings_change_nothing(
    ctx: DeviceContext, timeline: list[ReadingView], data: st.DataObject
) -> None:
    delivered: list[Item] = []
    for i, r in enumerate(timeline):
        delivered.append(r)
        if data.draw(st.booleans(), label=f"again {i}"):
            back = data.draw(st.integers(min_value=0, max_value=i), label=f"which {i}")
            delivered.append(timeline[back])  # the same id again, now or late
    for detector in WASTE_DETECTORS:
        state, once = run(detector, ctx, timeline)
        state_twice, twice = run(detector, ctx, delivered)
        assert twice == once
        assert state_twice == state


@PROPERTY
@given(timeline=timelines(), data=st.data())
def test_ticks_and_batches_before_the_next_reading_change_no_signal(
    ctx: DeviceContext, timeline: list[ReadingView], data: st.DataObject
) -> None:
    items: list[Item] = []
    previous = T0
    for i, r in enumerate(timeline):
        gap = (r.at - previous).total_seconds()
        ticks = data.draw(
            st.lists(st.floats(min_value=0, max_value=1), max_size=3), label=f"ticks {i}"
        )
        items += [previous + timedelta(seconds=gap * f) for f in sorted(ticks)]
        items.append(r)
        previous = r.at
    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=3), label="cuts"))
    for detector in WASTE_DETECTORS:
        _, plain = run(detector, ctx, timeline)
        state, batched, start = detector.initial(ctx), [], 0
        for cut in [*cuts, len(items)]:
            state, signals = run(detector, ctx, items[start:cut], state)
            state, start = json_roundtrip(detector, state), cut
            batched += signals
        assert batched == plain
