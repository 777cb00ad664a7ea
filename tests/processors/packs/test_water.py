"""The water pack on hand-built hourly timelines (registry: the demo estate, 50 households)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.demo_estate import generate_registry
from devices.registry import load_registry
from processors.alarm import Signal
from processors.detector import DeviceContext, ReadingView, context_for
from processors.packs.water import (
    WATER_DETECTORS,
    WaterBackflow,
    WaterBurst,
    WaterContinuousFlow,
    WaterNightFlow,
    WaterNoUse,
)
from processors.rules import load_rules
from tests.processors.packs.roundtrip import fold, json_roundtrip


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeviceContext, DeviceContext]:
    path: Path = tmp_path_factory.mktemp("reg") / "estate.yaml"
    path.write_text(yaml.safe_dump(generate_registry(households=50), allow_unicode=True))
    index = load_registry(path).index()
    rules = load_rules()
    meters = [
        ref
        for estate in index.estate_ids()
        for ref in index.devices_of(estate)
        if ref.kind == "water_meter"
        and str(ref.profile.name if hasattr(ref.profile, "name") else ref.profile)
        == "water_household"
    ]
    plain = next(m for m in meters if "elderly_alone" not in m.tags)
    elderly = next(m for m in meters if "elderly_alone" in m.tags)
    return context_for(index, plain, rules), context_for(index, elderly, rules)


def _reading(at: datetime, litres: float, flow: float | None = None) -> ReadingView:
    payload: dict[str, Any] = {"volume_m3": litres / 1000}
    if flow is not None:
        payload["flow_l_min"] = flow
    return ReadingView(
        id=uuid5(NAMESPACE_URL, f"t/{at.isoformat()}/{litres}/{flow}"),
        kind="water_meter.register",
        at=at,
        payload=payload,
    )


def timeline(
    ctx: DeviceContext, hourly_l: Sequence[float], start_l: float = 1000.0
) -> list[ReadingView]:
    """Readings every hour at :20 local time from day 1 00:20; hourly_l[i] is used in hour i."""
    start = datetime(2026, 3, 1, 0, 20, tzinfo=ctx.tz).astimezone(UTC)
    volume, out = start_l, [_reading(start, start_l)]
    for i, used in enumerate(hourly_l):
        volume += used
        out.append(_reading(start + timedelta(hours=i + 1), volume))
    return out


def diurnal(days: int, night: float = 0.0) -> list[float]:
    day = [night] * 6 + [30, 60, 20, 5, 5, 10, 25, 10, 5, 5, 10, 20, 40, 30, 20, 10, 5, 0]
    return day * days


def run(det: Any, ctx: DeviceContext, items: Sequence[ReadingView | datetime]) -> list[Signal]:
    return fold(det, ctx, items)[1]


def test_pack_exports_five_detectors() -> None:
    assert [d.name for d in WATER_DETECTORS] == [
        "water_night_flow",
        "water_continuous_flow",
        "water_burst",
        "water_backflow",
        "water_no_use",
    ]
    assert all(d.consumes == {"water_meter.register"} for d in WATER_DETECTORS)


def test_night_flow_fires_on_third_night(contexts: tuple[DeviceContext, DeviceContext]) -> None:
    ctx = contexts[0]
    readings = timeline(ctx, [h + 3.1 for h in diurnal(5)])
    sigs = run(WaterNightFlow(), ctx, readings)
    active = [s for s in sigs if s.active]
    assert active, sigs
    first = active[0]
    assert first.at.astimezone(ctx.tz).date().day == 3  # the third night is judged on day 3
    assert first.explanation.startswith(
        "leak suspected: flow never fell below 3.1 L/h between 02:00 and 05:00 on 3 consecutive"
    )
    assert first.rule_version == ctx.rules.version_of("water_night_flow")
    assert first.evidence and first.values["consecutive_nights"] == 3
    assert [s.active for s in sigs[:2]] == [False, False]


def test_night_flow_silent_on_normal_household(
    contexts: tuple[DeviceContext, DeviceContext],
) -> None:
    ctx = contexts[0]
    sigs = run(WaterNightFlow(), ctx, timeline(ctx, diurnal(10)))
    assert sigs and not any(s.active for s in sigs)
    assert not any(s.active for s in run(WaterContinuousFlow(), ctx, timeline(ctx, diurnal(10))))


def test_leak_that_stops_on_night_two(contexts: tuple[DeviceContext, DeviceContext]) -> None:
    ctx = contexts[0]
    hours = [h + (4.0 if i < 24 + 2 else 0.0) for i, h in enumerate(diurnal(6))]
    sigs = run(WaterNightFlow(), ctx, timeline(ctx, hours))
    assert not any(s.active for s in sigs)


def test_register_reset_and_rollover_are_not_consumption(
    contexts: tuple[DeviceContext, DeviceContext],
) -> None:
    ctx = contexts[0]
    readings = timeline(ctx, diurnal(6), start_l=99_990_000.0)
    night_3 = 2 * 24 + 3  # a reset to zero inside the third night, a jump in the fourth
    glitched = [
        *readings[:night_3],
        *(
            _reading(r.at, r.payload["volume_m3"] * 1000 - 99_990_000.0)
            for r in readings[night_3 : night_3 + 24]
        ),
        _reading(readings[night_3 + 24].at, 500_000_000.0),
        *(
            _reading(r.at, r.payload["volume_m3"] * 1000 - 99_990_000.0 + 10)
            for r in readings[night_3 + 25 :]
        ),
    ]
    for det in WATER_DETECTORS:
        sigs = run(det, ctx, glitched)
        assert not any(s.active for s in sigs), (det.name, sigs)
    night = run(WaterNightFlow(), ctx, glitched)
    assert any(int(s.values["register_resets"]) >= 1 for s in night)
    assert any(int(s.values["register_glitches"]) >= 1 for s in night)


def test_continuous_flow_fires_after_hours(contexts: tuple[DeviceContext, DeviceContext]) -> None:
    ctx = contexts[0]
    readings = timeline(ctx, [h + 2 for h in diurnal(3)])
    sigs = run(WaterContinuousFlow(), ctx, readings)
    assert sigs[0].active
    assert sigs[0].at - readings[0].at == timedelta(hours=24)
    assert "24.0 h" in sigs[0].explanation


def test_burst_from_flow_readings(contexts: tuple[DeviceContext, DeviceContext]) -> None:
    ctx = contexts[0]
    t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
    readings = [_reading(t0 + timedelta(minutes=m), 1000 + 40 * m, 40.0) for m in range(12)]
    readings.append(_reading(t0 + timedelta(minutes=12), 1000 + 40 * 12, 0.0))
    sigs = run(WaterBurst(), ctx, readings)
    assert [s.active for s in sigs] == [True, False]
    assert sigs[0].at == t0 + timedelta(minutes=10) and sigs[0].severity == "critical"


def test_backflow_runback_versus_reset(contexts: tuple[DeviceContext, DeviceContext]) -> None:
    ctx = contexts[0]
    t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
    runback = [_reading(t0, 5000), _reading(t0 + timedelta(hours=1), 4990)]
    sigs = run(WaterBackflow(), ctx, runback)
    assert [s.active for s in sigs] == [True] and "ran back by 10 L" in sigs[0].explanation
    reset = [_reading(t0, 5000), _reading(t0 + timedelta(hours=1), 3)]
    assert run(WaterBackflow(), ctx, reset) == []
    reverse = [_reading(t0 + timedelta(minutes=m), 5000, -2.0) for m in range(7)]
    assert [s.active for s in run(WaterBackflow(), ctx, reverse)] == [True]


def test_no_use_only_for_elderly_alone(contexts: tuple[DeviceContext, DeviceContext]) -> None:
    plain, elderly = contexts
    det = WaterNoUse()
    assert det.applies_to(elderly) and not det.applies_to(plain)
    hours = [20.0] * 3 + [0.0] * 18 + [5.0]
    sigs = run(det, elderly, timeline(elderly, hours))
    assert [s.active for s in sigs] == [True, False]
    assert sigs[0].severity == "major"
    assert sigs[0].at - timeline(elderly, hours)[3].at == timedelta(hours=16)


@pytest.mark.parametrize("det", WATER_DETECTORS, ids=lambda d: d.name)
def test_state_json_round_trip(det: Any, contexts: tuple[DeviceContext, DeviceContext]) -> None:
    ctx = contexts[1]
    readings = timeline(ctx, [h + 3.5 for h in diurnal(5)])
    expected = run(det, ctx, readings)
    state, got = det.initial(ctx), []
    for i, r in enumerate(readings):
        if i % 7 == 3:
            state = json_roundtrip(det, state)
        state, sigs = det.step(state, r, ctx)
        got += sigs
    assert got == expected


HOURS = st.lists(st.sampled_from([0.0, 0.0, 1.0, 3.0, 5.0, 40.0]), min_size=24, max_size=120)


@settings(max_examples=30, deadline=None)
@given(hours=HOURS, dups=st.sets(st.integers(0, 120)), ticks=st.sets(st.integers(0, 120)))
def test_duplicates_and_ticks_change_nothing(
    contexts: tuple[DeviceContext, DeviceContext],
    hours: list[float],
    dups: set[int],
    ticks: set[int],
) -> None:
    ctx = contexts[1]
    readings = timeline(ctx, hours)
    for det in WATER_DETECTORS:
        expected = run(det, ctx, readings)
        noisy: list[ReadingView | datetime] = []
        for i, r in enumerate(readings):
            if i in ticks:
                noisy.append(r.at - timedelta(minutes=30))
            noisy.append(r)
            if i in dups:
                noisy.append(r)
        assert run(det, ctx, noisy) == expected
