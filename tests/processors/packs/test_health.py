"""The device-health pack: hand-built timelines per detector, the alarm machine on top,
state round-trips and a tick-placement property.

Devices come from a small demo registry (50 households) with the shipped rules. Times
are minutes after ``T0``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.catalogue import DeviceKind
from devices.codec import FLAG_CLOCK_SKEW, FLAG_NO_DEVICE_TIME
from devices.demo_estate import dump_registry, generate_registry
from devices.registry import RegistryIndex, load_registry
from processors.alarm import (
    SYSTEM_ACTOR,
    AlarmBook,
    AlertEvent,
    AlertEventKind,
    Severity,
    Signal,
    apply_signal,
)
from processors.detector import Detector, DeviceContext, ReadingView, context_for
from processors.packs.health import (
    BATTERY_KINDS,
    HEALTH_DETECTORS,
    ClockSkew,
    DeviceOffline,
    LowBattery,
    format_duration,
)
from processors.rules import load_rules
from tests.processors.packs.roundtrip import fold, json_roundtrip

K = AlertEventKind
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
OFFLINE, BATTERY, SKEW = DeviceOffline(), LowBattery(), ClockSkew()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RegistryIndex:
    path: Path = tmp_path_factory.mktemp("registry") / "estate.yaml"
    path.write_text(dump_registry(generate_registry(households=50)), encoding="utf-8")
    return RegistryIndex(load_registry(path))


@pytest.fixture(scope="module")
def contexts(index: RegistryIndex) -> dict[str, DeviceContext]:
    """One context per profile name (the first device of that profile)."""
    rules = load_rules()
    out: dict[str, DeviceContext] = {}
    for estate in index.estate_ids():
        for ref in index.devices_of(estate):
            out.setdefault(ref.profile.name, context_for(index, ref, rules))
    return out


@pytest.fixture(scope="module")
def master(contexts: dict[str, DeviceContext]) -> DeviceContext:
    """A building master meter: reports every 15 min, offline after 45 min."""
    return contexts["water_master"]


@pytest.fixture(scope="module")
def bin_ctx(contexts: dict[str, DeviceContext]) -> DeviceContext:
    return next(c for c in contexts.values() if c.kind is DeviceKind.WASTE_BIN)


def rid(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"reading-{n}")


def reading(
    minutes: float,
    n: int,
    *,
    kind: str = "water_meter.register",
    flags: Sequence[str] = (),
    **payload: Any,
) -> ReadingView:
    return ReadingView(id=rid(n), kind=kind, at=at(minutes), payload=payload, flags=tuple(flags))


def heartbeat(minutes: float, n: int, battery: float | None = None) -> ReadingView:
    payload = {} if battery is None else {"battery_pct": battery}
    return ReadingView(id=rid(n), kind="waste_bin.heartbeat", at=at(minutes), payload=payload)


#: A timeline item: a reading, or an event time to tick to.
Item = ReadingView | datetime


def run(
    detector: Detector[Any],
    ctx: DeviceContext,
    items: Sequence[Item],
    *,
    roundtrip_at: int | None = None,
) -> list[Signal]:
    """Every signal of ``detector`` over ``items``; optionally serialise the state to JSON
    and back before item ``roundtrip_at``."""
    state = detector.initial(ctx)
    signals: list[Signal] = []
    for i, item in enumerate(items):
        if i == roundtrip_at:
            state = json_roundtrip(detector, state)
        state, out = fold(detector, ctx, [item], state)
        signals.extend(out)
    return signals


def alarm(detector: Detector[Any], ctx: DeviceContext, signals: list[Signal]) -> list[AlertEvent]:
    book, events = AlarmBook(), []
    for s in signals:
        book, out = apply_signal(book, s, detector.policy(ctx))
        events.extend(out)
    return events


def kinds(events: list[AlertEvent]) -> list[AlertEventKind]:
    return [e.kind for e in events]


def every_minute(start: float, end: float) -> list[datetime]:
    return [at(m) for m in range(int(start), int(end) + 1)]


# --- the pack ------------------------------------------------------------------------------


def test_pack_exports_one_instance_of_each_detector() -> None:
    assert [d.name for d in HEALTH_DETECTORS] == ["device_offline", "low_battery", "clock_skew"]
    assert DeviceOffline.consumes == frozenset() == ClockSkew.consumes  # every reading kind
    assert "waste_bin.level" in BATTERY_KINDS
    assert {f"{k.value}.heartbeat" for k in DeviceKind} <= BATTERY_KINDS
    assert "water_meter.register" not in BATTERY_KINDS


def test_detectors_apply_to_every_device_with_the_shipped_rules(
    contexts: dict[str, DeviceContext],
) -> None:
    for ctx in contexts.values():
        assert all(d.applies_to(ctx) for d in HEALTH_DETECTORS)


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(seconds=45), "45 s"),
        (timedelta(minutes=47, seconds=30), "47 min"),
        (timedelta(hours=3), "3 h"),
        (timedelta(hours=3, minutes=12), "3 h 12 min"),
        (timedelta(days=2, hours=5, minutes=9), "2 d 5 h"),
        (timedelta(days=1), "1 d"),
    ],
)
def test_format_duration(span: timedelta, text: str) -> None:
    assert format_duration(span) == text


# --- device_offline ------------------------------------------------------------------------


def test_offline_exactly_at_three_intervals_not_before(master: DeviceContext) -> None:
    assert master.profile.reporting_interval_s == 900
    assert OFFLINE.limit(master) == timedelta(minutes=45)
    almost = at(45) - timedelta(seconds=1)
    signals = run(OFFLINE, master, [reading(0, 1), at(30), almost])
    assert signals == []
    signals = run(OFFLINE, master, [reading(0, 1), at(30), almost, at(45), at(60), at(120)])
    assert len(signals) == 1  # reported once, not on every tick
    (offline,) = signals
    assert offline.active and offline.at == at(45)
    assert offline.condition == "device_offline" and offline.detector == "device_offline"
    assert offline.device == master.device and offline.estate == master.estate
    assert offline.severity is Severity.WARNING
    assert offline.evidence == (rid(1),)
    assert offline.rule_version == master.rules.version_of("device_offline")
    assert "no message for 45 min" in offline.explanation
    assert "expected every 15 min (offline after 3 × interval)" in offline.explanation
    assert offline.values["after_s"] == 2700


def test_offline_signal_carries_due_time_when_ticked_late(master: DeviceContext) -> None:
    (offline,) = run(OFFLINE, master, [reading(0, 1), at(47)])
    assert offline.at == at(45)


def test_a_device_reporting_on_time_is_never_offline(master: DeviceContext) -> None:
    items: list[Item] = []
    for i in range(96):  # a day of 15-minute reports, with a little jitter, ticks every minute
        items.append(reading(15 * i + (i % 3), i))
        items += every_minute(15 * i + (i % 3), 15 * (i + 1))
    assert run(OFFLINE, master, items) == []


def test_a_device_never_heard_from_is_not_reported(master: DeviceContext) -> None:
    assert run(OFFLINE, master, every_minute(0, 600)) == []


def test_back_online_clears_and_resolves(master: DeviceContext) -> None:
    items: list[Item] = [reading(0, 1), *every_minute(0, 191), reading(192, 2), at(200)]
    signals = run(OFFLINE, master, items)
    assert [(s.active, s.at) for s in signals] == [(True, at(45)), (False, at(192))]
    back = signals[1]
    assert "back online after 3 h 12 min" in back.explanation
    assert back.evidence == (rid(2),)
    events = alarm(OFFLINE, master, signals)
    assert kinds(events) == [K.RAISED, K.CLEARED, K.RESOLVED]
    raised, cleared, resolved = events
    assert raised.at == at(45) and "no message for 45 min" in raised.explanation
    assert raised.rule_version == master.rules.version_of("device_offline")
    assert cleared.at == at(192) and "back online after 3 h 12 min" in cleared.explanation
    assert resolved.actor == SYSTEM_ACTOR and resolved.reason == "auto"
    assert len({raised.alert_id, cleared.alert_id, resolved.alert_id}) == 1


def test_silence_seen_only_by_the_next_reading_still_raises_at_due_time(
    master: DeviceContext,
) -> None:
    signals = run(OFFLINE, master, [reading(0, 1), reading(192, 2)])
    assert [(s.active, s.at) for s in signals] == [(True, at(45)), (False, at(192))]
    assert kinds(alarm(OFFLINE, master, signals)) == [K.RAISED, K.CLEARED, K.RESOLVED]


def test_offline_again_after_coming_back(master: DeviceContext) -> None:
    items: list[Item] = [reading(0, 1), at(50), reading(60, 2), at(104), at(105), reading(110, 3)]
    signals = run(OFFLINE, master, items)
    assert [(s.active, s.at) for s in signals] == [
        (True, at(45)),
        (False, at(60)),
        (True, at(105)),
        (False, at(110)),
    ]
    events = alarm(OFFLINE, master, signals)
    assert kinds(events) == [K.RAISED, K.CLEARED, K.RESOLVED] * 2
    assert events[0].alert_id != events[3].alert_id  # auto-resolved: a new alert next time


def test_gateways_are_major(contexts: dict[str, DeviceContext]) -> None:
    gateway = contexts["gateway_lora"]
    assert OFFLINE.limit(gateway) == timedelta(minutes=15)
    (offline,) = run(OFFLINE, gateway, [reading(0, 1, kind="gateway.heartbeat"), at(15)])
    assert offline.severity is Severity.MAJOR and offline.at == at(15)
    assert "expected every 5 min" in offline.explanation


def test_chargers_get_five_intervals(contexts: dict[str, DeviceContext]) -> None:
    charger = contexts["ev_ac7"]
    assert OFFLINE.limit(charger) == timedelta(minutes=5)
    items: list[Item] = [reading(0, 1, kind="ev_charger.heartbeat"), at(4.9)]
    assert run(OFFLINE, charger, items) == []
    (offline,) = run(OFFLINE, charger, [*items, at(5)])
    assert "offline after 5 × interval" in offline.explanation


# --- low_battery ---------------------------------------------------------------------------


def test_battery_drifting_down_stays_silent(bin_ctx: DeviceContext) -> None:
    items = [heartbeat(60 * i, i, 50 - i) for i in range(11)]  # 50 % → 40 %
    assert run(BATTERY, bin_ctx, items) == []


def test_low_battery_raises_at_low_pct_with_the_numbers(bin_ctx: DeviceContext) -> None:
    rule = bin_ctx.rules.low_battery
    assert (rule.low_pct, rule.clear_pct) == (20, 30)
    assert run(BATTERY, bin_ctx, [heartbeat(0, 1, 21)]) == []
    (low,) = run(BATTERY, bin_ctx, [heartbeat(0, 1, 21), heartbeat(60, 2, 20)])
    assert low.active and low.at == at(60) and low.evidence == (rid(2),)
    assert low.explanation == "battery at 20 % (at or below 20 %)"
    assert low.values == {"battery_pct": 20.0, "low_pct": 20.0, "clear_pct": 30.0}


def test_bin_level_readings_carry_battery_too(bin_ctx: DeviceContext) -> None:
    level = reading(0, 1, kind="waste_bin.level", fill_pct=40.0, battery_pct=12.5)
    (low,) = run(BATTERY, bin_ctx, [level])
    assert low.active and "battery at 12.5 %" in low.explanation


def test_readings_without_battery_change_nothing(bin_ctx: DeviceContext) -> None:
    items = [heartbeat(0, 1, 15), heartbeat(10, 2), reading(20, 3, kind="waste_bin.level")]
    assert [s.active for s in run(BATTERY, bin_ctx, items)] == [True]


def test_battery_oscillating_between_thresholds_does_not_flap(bin_ctx: DeviceContext) -> None:
    levels = [25, 19, 25, 21, 18, 29, 20, 29.9, 22, 30, 26, 19]
    items = [heartbeat(60 * i, i, pct) for i, pct in enumerate(levels)]
    signals = run(BATTERY, bin_ctx, items)
    assert [(s.active, s.at) for s in signals] == [
        (True, at(60)),
        (False, at(540)),
        (True, at(660)),
    ]
    assert "at or above 30 %" in signals[1].explanation
    events = alarm(BATTERY, bin_ctx, signals)
    assert kinds(events) == [K.RAISED, K.CLEARED, K.RESOLVED, K.RAISED]
    assert events[0].explanation == "battery at 19 % (at or below 20 %)"
    assert events[0].evidence == (rid(1),)
    assert events[1].explanation.startswith("battery at 30 %")


# --- clock_skew ----------------------------------------------------------------------------


def skewed(minutes: float, n: int) -> ReadingView:
    return reading(minutes, n, flags=[FLAG_CLOCK_SKEW])


def test_clock_skew_needs_readings_in_a_row(master: DeviceContext) -> None:
    assert master.rules.clock_skew.readings == 3
    items = [skewed(0, 1), skewed(15, 2), reading(30, 3), skewed(45, 4), skewed(60, 5)]
    assert run(SKEW, master, items) == []


def test_clock_skew_raises_on_the_third_and_clears_on_a_good_reading(
    master: DeviceContext,
) -> None:
    items = [
        skewed(0, 1),
        skewed(15, 2),
        reading(20, 3, flags=[FLAG_NO_DEVICE_TIME]),  # says nothing about the clock
        skewed(30, 4),
        skewed(45, 5),
        reading(60, 6),
        reading(75, 7),
    ]
    signals = run(SKEW, master, items)
    assert [(s.active, s.at) for s in signals] == [(True, at(30)), (False, at(60))]
    assert signals[0].evidence == (rid(1), rid(2), rid(4))
    assert "3 readings in a row" in signals[0].explanation
    assert "after 4 flagged readings" in signals[1].explanation
    events = alarm(SKEW, master, signals)
    assert kinds(events) == [K.RAISED, K.CLEARED, K.RESOLVED]
    assert events[0].evidence == (rid(1), rid(2), rid(4))


# --- state round-trip and tick placement -------------------------------------------------


def mixed_timeline() -> list[Item]:
    return [
        reading(0, 1, flags=[FLAG_CLOCK_SKEW], battery_pct=35.0, kind="waste_bin.heartbeat"),
        at(10),
        reading(15, 2, flags=[FLAG_CLOCK_SKEW], battery_pct=19.0, kind="waste_bin.heartbeat"),
        at(40),
        reading(30, 3, flags=[FLAG_CLOCK_SKEW], kind="waste_bin.level", fill_pct=10.0),
        *every_minute(40, 120),
        reading(121, 4, battery_pct=25.0, kind="waste_bin.heartbeat"),
        at(150),
        reading(160, 5, battery_pct=31.0, kind="waste_bin.heartbeat"),
        at(400),
        reading(401, 6, battery_pct=5.0, kind="waste_bin.heartbeat"),
    ]


@pytest.mark.parametrize("detector", HEALTH_DETECTORS, ids=lambda d: d.name)
def test_state_json_round_trip_mid_timeline_gives_identical_signals(
    detector: Detector[Any], bin_ctx: DeviceContext
) -> None:
    items = mixed_timeline()
    whole = run(detector, bin_ctx, items)
    assert whole  # every detector has something to say on this timeline
    for split in range(len(items)):
        assert run(detector, bin_ctx, items, roundtrip_at=split) == whole


@st.composite
def timelines(draw: st.DrawFn) -> tuple[list[ReadingView], list[Item], datetime]:
    """Readings at random gaps (some far beyond the offline limit), random flags and
    battery levels; the same readings with ticks inserted at times between the previous
    reading and the next one; and a final tick time."""
    gaps = draw(st.lists(st.integers(0, 240), min_size=1, max_size=25))
    readings: list[ReadingView] = []
    t = 0
    for n, gap in enumerate(gaps):
        t += gap
        flags = draw(st.sampled_from([(), (), (FLAG_CLOCK_SKEW,), (FLAG_NO_DEVICE_TIME,)]))
        battery = draw(st.none() | st.integers(0, 100))
        payload = {} if battery is None else {"battery_pct": float(battery)}
        readings.append(
            ReadingView(
                id=rid(n), kind="waste_bin.heartbeat", at=at(t), payload=payload, flags=flags
            )
        )
    end = t + draw(st.integers(0, 240))
    ticked: list[Item] = []
    previous = readings[0].at
    for r in [*readings, None]:
        upper = end if r is None else (r.at - T0).total_seconds() / 60
        lower = (previous - T0).total_seconds() / 60
        for m in sorted(draw(st.lists(st.floats(lower, upper), max_size=4))):
            ticked.append(at(m))
        if r is not None:
            ticked.append(r)
            previous = r.at
    return readings, ticked, at(end)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines())
def test_signals_do_not_depend_on_where_ticks_are_inserted(
    bin_ctx: DeviceContext, timeline: tuple[list[ReadingView], list[Item], datetime]
) -> None:
    readings, ticked, end = timeline
    limit = OFFLINE.limit(bin_ctx)
    for detector in HEALTH_DETECTORS:
        bare = run(detector, bin_ctx, [*readings, end])
        assert run(detector, bin_ctx, [*ticked, end]) == bare
    # and offline is reported exactly at last seen + limit, once per silence ≥ limit
    offline = [s for s in run(OFFLINE, bin_ctx, [*readings, end]) if s.active]
    times = [r.at for r in readings] + [end]
    silences = [a for a, b in itertools.pairwise(times) if b - a >= limit]
    assert [s.at for s in offline] == [a + limit for a in silences]
