"""The energy pack: hand-built meter timelines, the sun, replay properties, and the shipped
scenarios through ingest and the engine.

Times are estate-local (Asia/Shanghai) minutes after ``T0`` (12:00 on Monday 2026-05-04).
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.catalogue import DeviceKind
from devices.demo_estate import generate_registry
from devices.registry import Registry
from processors.alarm import AlertEventKind
from processors.detector import Detector, DeviceContext, ReadingView, context_for
from processors.packs.charging import CHARGING_DETECTORS
from processors.packs.energy import (
    ENERGY_DETECTORS,
    CommonAreaPowerSpike,
    EnergyAboveBaseline,
    FlyingWire,
    LightingDaylight,
    robust_z,
    sun_times,
)
from processors.rules import load_rules
from simulators.estate import EstateSimulator
from simulators.evaluate import run as evaluate_run
from tests.processors.packs.test_charging import (
    PROPERTY,
    check_duplicates,
    check_round_trip,
    check_ticks_and_batches,
    scenario_spans,
)
from tests.processors.packs.test_waste import alarm, kinds
from tests.processors.packs.test_waste import run as fold
from tests.simulators.conftest import START, small_registry

K = AlertEventKind
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=TZ)
NS = uuid.UUID("0d7f8f0a-5a49-4b8e-8a55-2f4c6d8e1b33")
WIRE, LIGHT, BASELINE, SPIKE = (
    FlyingWire(),
    LightingDaylight(),
    EnergyAboveBaseline(),
    CommonAreaPowerSpike(),
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def meter(minutes: float, watts: float, kwh: float = 100.0) -> ReadingView:
    return ReadingView(
        id=uuid.uuid5(NS, f"{minutes}:{watts}:{kwh}"),
        kind="energy_meter.register",
        at=at(minutes),
        payload={"energy_kwh": kwh, "power_w": watts},
    )


def _contexts() -> dict[str, DeviceContext]:
    registry = Registry.model_validate(generate_registry(50, seed=1))
    index = registry.index()
    rules = load_rules()
    refs = [r for r in index.devices_of("lvcheng") if r.kind is DeviceKind.ENERGY_METER]
    pick = {
        "corridor": next(r for r in refs if "corridor" in r.tags),
        "lighting": next(r for r in refs if "lighting" in r.tags),
        "common": next(r for r in refs if "common_area" in r.tags),
        "household": next(r for r in refs if r.profile.role == "household"),
    }
    return {name: context_for(index, ref, rules) for name, ref in pick.items()}


@pytest.fixture(scope="module")
def ctxs() -> dict[str, DeviceContext]:
    return _contexts()


def corridor_night(
    wire_from: float | None, *, hours: float = 6, seed: int = 1, lights_w: float = 90.0
) -> list[ReadingView]:
    """A corridor circuit read every 5 min from 12:00 for a day: ~260 W by day, plus
    ``lights_w`` of lights from 18:40 to 05:10, ±3 % noise; with an e-bike charger (380 W
    for 70 % of ``hours``, then a linear taper to 5 %) plugged in at ``wire_from`` minutes."""
    rng = random.Random(seed)
    out = []
    for m in range(0, 24 * 60, 5):
        local = (12 * 60 + m) % (24 * 60)
        watts = 260.0 + (lights_w if local >= 18 * 60 + 40 or local < 5 * 60 + 10 else 0.0)
        if wire_from is not None and 0 <= (h := (m - wire_from) / 60) < hours:
            share = h / hours
            watts += 380 if share < 0.7 else 380 * (1 - 0.95 * (share - 0.7) / 0.3)
        out.append(meter(m, round(watts * rng.uniform(0.97, 1.03), 1)))
    return out


# --- flying_wire ------------------------------------------------------------------------------


def test_flying_wire_raised_after_min_hours_and_cleared_with_the_taper(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["corridor"]
    _, signals = fold(WIRE, ctx, corridor_night(10 * 60))  # 22:00
    assert [(s.active, s.at) for s in signals] == [(True, at(12 * 60)), (False, at(15 * 60 + 50))]
    raised, ended = signals
    assert raised.explanation.startswith("e-bike charging from a socket suspected: a 3")
    assert "started at 22:00 (window 18:00-06:00) and held within ±25 % for 2 h" in (
        raised.explanation
    )
    assert 340 <= float(raised.values["step_w"]) <= 420
    assert "started at 22:00 ended at 03:50 after 5 h 50 min; it tapered from" in (
        ended.explanation
    )
    assert ended.values["tapered"] == 1
    events = alarm(WIRE, ctx, signals, at(24 * 60))
    assert kinds(events) == [(K.RAISED, at(12 * 60)), (K.CLEARED, at(15 * 60 + 50))]


def test_flying_wire_plugged_in_before_dusk_rides_over_the_lights_coming_on(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["corridor"]  # 18:00; the lights (+130 W) at 18:40, sunset 18:34
    _, signals = fold(WIRE, ctx, corridor_night(6 * 60, lights_w=130))
    assert (signals[0].active, signals[0].at) == (True, at(8 * 60))
    assert signals[0].explanation.endswith("lights that came on at dusk")
    assert 100 <= float(signals[0].values["dusk_w"]) <= 200  # 130 W, noise on a 363 W step
    # the same rise at 21:00 is not the lights: the level changed, the candidate ends
    late = corridor_night(6 * 60, lights_w=0)
    late = [meter((r.at - T0).total_seconds() / 60, float(r.payload["power_w"])
                  + (130.0 if r.at >= at(9 * 60) else 0.0)) for r in late]  # fmt: skip
    _, signals = fold(WIRE, ctx, late)
    assert [(s.active, s.at) for s in signals] == [(True, at(8 * 60)), (False, at(9 * 60 + 25))]
    assert signals[1].values["dusk_w"] == 0


def test_flying_wire_quiet_on_a_plain_night_a_short_load_and_by_day(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["corridor"]
    assert fold(WIRE, ctx, corridor_night(None))[1] == []
    assert fold(WIRE, ctx, corridor_night(10 * 60, hours=1.5))[1] == []  # too short
    assert fold(WIRE, ctx, corridor_night(60, hours=6))[1] == []  # 13:00: outside the window


def test_flying_wire_ignores_a_level_that_wanders(ctxs: dict[str, DeviceContext]) -> None:
    # a circuit stepping up hour by hour (a pump following evening use) is not a charger
    steps = [300.0, 300, 450, 600, 450, 700, 520, 300]
    timeline = [meter(6 * 60 + m, steps[m // 60] + (m % 10)) for m in range(0, 8 * 60, 5)]
    assert fold(WIRE, ctxs["common"], timeline)[1] == []


def test_flying_wire_watches_no_lighting_circuit(ctxs: dict[str, DeviceContext]) -> None:
    assert not WIRE.applies_to(ctxs["lighting"])
    assert all(WIRE.applies_to(ctxs[n]) for n in ("corridor", "common", "household"))


# --- lighting_daylight ------------------------------------------------------------------------


def test_sun_times_for_shanghai_and_the_poles() -> None:
    sun = sun_times(date(2026, 6, 21), 31.23, 121.47)
    assert sun is not None
    rise, sets = (t.astimezone(TZ) for t in sun)
    # published times for Shanghai on the solstice: 04:50 and 19:01 (±2 min)
    assert abs((rise - datetime(2026, 6, 21, 4, 50, tzinfo=TZ)).total_seconds()) < 120
    assert abs((sets - datetime(2026, 6, 21, 19, 1, tzinfo=TZ)).total_seconds()) < 120
    assert sun_times(date(2026, 6, 21), 80.0, 0.0) is None  # midnight sun


def lamps(on_from: float, on_to: float) -> list[ReadingView]:
    """A lighting circuit from 00:00 on 05-04 to 00:00 the next day, read every 5 min:
    on at night (before 05:30 and from 18:40), and from ``on_from`` to ``on_to``
    (minutes after 12:00 of the day before... here: after ``T0`` - 12 h)."""
    out = []
    for m in range(-12 * 60, 12 * 60, 5):
        local = m + 12 * 60
        night = local < 5 * 60 + 30 or local >= 18 * 60 + 40
        watts = 1850.0 if night or on_from <= m < on_to else 6.0
        out.append(meter(m, watts))
    return out


def test_lighting_on_in_daylight_raised_after_persistence_and_resolved_when_off(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["lighting"]
    _, signals = fold(LIGHT, ctx, lamps(-3 * 60, 60))  # 09:00-13:00
    assert [(s.active, s.at) for s in signals] == [(True, at(-3 * 60 + 15)), (False, at(60))]
    assert signals[0].explanation == (
        "lighting on in daylight: 1,850 W (≥ 100 W) at 09:15, on since 09:00 (15 min); "
        "sunrise 05:07, sunset 18:33 at 31.2159°, 121.548° (daylight counted from 30 min after "
        "sunrise to 30 min before sunset)"
    )
    assert signals[1].explanation == "lighting off (6 W) at 13:00 after 4 h on in daylight"
    events = alarm(LIGHT, ctx, signals, at(12 * 60))
    assert kinds(events) == [(K.RAISED, at(-165)), (K.CLEARED, at(60)), (K.RESOLVED, at(60))]


def test_lighting_at_dusk_and_dawn_and_a_short_blip_are_fine(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["lighting"]
    assert fold(LIGHT, ctx, lamps(0, 0))[1] == []
    assert fold(LIGHT, ctx, lamps(0, 10))[1] == []  # 10 min < persist_min 15
    # left on from the morning into the evening: cleared at dusk, lamps expected then
    _, signals = fold(LIGHT, ctx, lamps(-7 * 60, 7 * 60))
    assert signals[-1].explanation.startswith("lighting dusk: lamps expected at 18:05")


# --- energy_above_baseline --------------------------------------------------------------------


def test_robust_z_uses_median_and_mad() -> None:
    med, mad, z = robust_z(3.0, (1.0, 1.1, 0.9, 1.0, 5.0))
    assert med == 1.0
    assert mad == pytest.approx(0.1)
    assert z == pytest.approx((3.0 - 1.0) / (1.4826 * 0.1))


def weeks_of_hours(weeks: int, extra: dict[int, float]) -> list[ReadingView]:
    """A meter read every 15 min for ``weeks`` weeks from Monday 00:00: 0.4 kWh per hour
    (+10 % on odd hours), plus ``extra`` kWh in the given hours (counted from the start)."""
    out, kwh = [], 1000.0
    start = -12 * 60
    for q in range(weeks * 7 * 24 * 4):
        hour = q // 4
        use = 0.4 * (1.1 if hour % 2 else 1.0) + extra.get(hour, 0.0)
        kwh += use / 4
        out.append(meter(start + 15 * (q + 1) - 0.5, 400.0, round(kwh, 4)))
    return out


def test_energy_above_baseline_needs_history_then_flags_a_far_hour_and_clears(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["household"]
    hour = 3 * 7 * 24 + 20  # Monday 20:00 of the fourth week
    _, signals = fold(BASELINE, ctx, weeks_of_hours(4, {hour: 2.0, 20: 2.0}))
    # week 1's extra hour has no history: not judged; week 4's has 3 weeks: judged
    assert [s.active for s in signals] == [True, False]
    raised = signals[0]
    assert raised.explanation.startswith(
        "2.40 kWh in Mon 20:00-21:00 against a median of 0.40 kWh (MAD 0.00) over the same "
        "hour of 3 past weeks: robust z 67.4"
    )
    assert raised.values["weeks"] == 3
    assert fold(BASELINE, ctx, weeks_of_hours(4, {}))[1] == []


# --- common_area_power_spike ------------------------------------------------------------------


def test_common_area_spike_and_back(ctxs: dict[str, DeviceContext]) -> None:
    ctx = ctxs["common"]
    timeline = [meter(m, 900.0 + m % 20) for m in range(0, 60, 5)]
    timeline += [meter(60, 4200.0), meter(65, 4300.0), meter(70, 950.0)]
    _, signals = fold(SPIKE, ctx, timeline)
    assert [(s.active, s.at) for s in signals] == [(True, at(60)), (False, at(70))]
    assert signals[0].explanation.startswith("power spike: 4,200 W at 13:00, 4.6 × the median")
    assert not SPIKE.applies_to(ctxs["corridor"])
    small = [meter(m, 300.0) for m in range(0, 60, 5)] + [meter(60, 1500.0)]
    assert fold(SPIKE, ctx, small)[1] == []  # 5 × but only 1.2 kW above


# --- replay properties ------------------------------------------------------------------------


@st.composite
def meter_timelines(draw: st.DrawFn) -> list[ReadingView]:
    minutes, kwh, out = 0.0, 10.0, []
    for i in range(draw(st.integers(1, 60))):
        minutes += draw(st.sampled_from([5, 5, 15, 30, 60, 240]))
        watts = draw(st.sampled_from([6.0, 300.0, 680.0, 700.0, 1850.0, 5000.0]))
        kwh += draw(st.sampled_from([0.0, 0.1, 0.5, 3.0]))
        out.append(
            ReadingView(
                id=uuid.uuid5(NS, f"h{i}"),
                kind="energy_meter.register",
                at=at(minutes),
                payload={"energy_kwh": kwh, "power_w": watts},
            )
        )
    return out


@PROPERTY
@given(timeline=meter_timelines(), data=st.data())
def test_redeliveries_change_nothing(
    ctxs: dict[str, DeviceContext], timeline: list[ReadingView], data: st.DataObject
) -> None:
    check_duplicates(ENERGY_DETECTORS, ctxs["common"], timeline, data)


@PROPERTY
@given(timeline=meter_timelines(), data=st.data())
def test_ticks_and_batches_change_no_signal(
    ctxs: dict[str, DeviceContext], timeline: list[ReadingView], data: st.DataObject
) -> None:
    check_ticks_and_batches(ENERGY_DETECTORS, ctxs["common"], timeline, data)


@pytest.mark.parametrize("detector", ENERGY_DETECTORS, ids=lambda d: d.name)
def test_state_round_trips_mid_timeline(
    ctxs: dict[str, DeviceContext], detector: Detector[Any]
) -> None:
    name = {"lighting_daylight": "lighting", "common_area_power_spike": "common"}.get(
        detector.name, "corridor"
    )
    timelines: dict[str, list[Any]] = {
        "flying_wire": corridor_night(10 * 60),
        "lighting_daylight": lamps(-3 * 60, 60),
        "energy_above_baseline": weeks_of_hours(4, {3 * 7 * 24 + 20: 2.0}),
        "common_area_power_spike": [
            meter(m, 900.0 if m != 60 else 5000.0) for m in range(0, 90, 5)
        ],
    }
    timeline = timelines[detector.name]
    assert any(s.active for s in fold(detector, ctxs[name], timeline)[1])
    check_round_trip([detector], ctxs[name], timeline)


# --- the shipped scenarios --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["flying-wire", "lighting-daylight"])
def test_scenario_detected_with_recall_one_and_no_false_alarm(name: str) -> None:
    result, _ = scenario_spans(name, ENERGY_DETECTORS)
    assert not result.rejected
    scores = {s.detector: s for s in result.scores}
    assert result.labels
    for label in result.labels:
        score = scores[label.detector]
        assert score.recall == 1.0 and score.false_alarms == 0, score
    assert {s.detector for s in result.spans} == {label.detector for label in result.labels}


def test_two_clean_days_raise_nothing_in_either_pack() -> None:
    """Clean simulated traffic of a small estate (households with evening peaks, corridor
    lights at dusk, common areas following the day, overnight EV sessions of ~17 h,
    e-bike charges with a taper): no charging or energy condition anywhere."""
    sim = EstateSimulator(small_registry(), seed=4, start=START, end=START + timedelta(days=2))
    result = evaluate_run(
        sim, load_rules(), "clean", detectors=(*CHARGING_DETECTORS, *ENERGY_DETECTORS)
    )
    assert result.readings > 20_000
    assert result.device_days["flying_wire"] > 50 and result.device_days["ev_overstay"] > 0
    assert result.spans == []
