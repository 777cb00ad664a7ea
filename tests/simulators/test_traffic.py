"""Does a simulated day look like an estate? Shapes, registers, sessions, schedules."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta

from devices.registry import Registry
from simulators.behaviour import ebike_power_w
from simulators.estate import EstateSimulator
from simulators.model import Message
from tests.simulators.conftest import START, body, device_of, local_hour, small_registry, stream_of


def test_every_device_kind_publishes_its_streams(day: list[Message]) -> None:
    pairs = {(m.topic.split("/")[2], stream_of(m)) for m in day}
    assert pairs >= {
        ("access_gate", "passage"), ("access_gate", "door"), ("access_gate", "heartbeat"),
        ("parking_sensor", "occupancy"), ("parking_sensor", "heartbeat"),
        ("waste_bin", "level"), ("water_meter", "register"), ("water_meter", "heartbeat"),
        ("energy_meter", "register"), ("ev_charger", "connector"), ("ev_charger", "heartbeat"),
        ("ebike_station", "port"), ("ebike_station", "heartbeat"), ("gateway", "heartbeat"),
    }  # fmt: skip


def test_household_water_has_a_night_minimum_and_morning_and_evening_peaks() -> None:
    registry = small_registry(60)
    sim = EstateSimulator(
        registry, seed=3, start=START, end=START + timedelta(days=2),
        only=lambda ref: ref.profile.name == "water_household",
    )  # fmt: skip
    index = registry.index()
    last: dict[str, float] = {}
    litres = [0.0] * 24
    for m in sim.messages():
        ref = index.device("lvcheng", device_of(m))
        if ref is None or ref.profile.name != "water_household" or stream_of(m) != "register":
            continue
        volume = body(m)["volume_m3"]
        if ref.device in last:
            litres[(local_hour(m) - 1) % 24] += (volume - last[ref.device]) * 1000
        last[ref.device] = volume
    night = sum(litres[2:5]) / 3
    morning = sum(litres[7:10]) / 3
    evening = sum(litres[19:22]) / 3
    midday = sum(litres[14:17]) / 3
    assert min(range(24), key=litres.__getitem__) in range(1, 6)
    assert night < 0.2 * morning and night < 0.2 * evening
    assert evening > midday and morning > night
    daily_per_household = sum(litres) / 2 / 60
    assert 120 < daily_per_household < 500  # DAIAD median 253 L a day


def test_registers_only_grow(day: list[Message], registry: Registry) -> None:
    series: dict[tuple[str, str], list[float]] = defaultdict(list)
    for m in day:
        if stream_of(m) == "register":
            data = body(m)
            key = "volume_m3" if "volume_m3" in data else "energy_kwh"
            series[(device_of(m), key)].append(data[key])
    assert len(series) > 40
    for (device, _), values in series.items():
        assert values == sorted(values), device
        ref = registry.index().device("lvcheng", device)
        assert ref is not None
        if ref.profile.role in ("household", "master") and ref.kind.value == "energy_meter":
            assert values[-1] > values[0], device


def test_a_building_master_meter_adds_up_its_flats(day: list[Message], registry: Registry) -> None:
    index = registry.index()
    first: dict[str, float] = {}
    latest: dict[str, float] = {}
    for m in day:
        if stream_of(m) == "register" and "volume_m3" in (data := body(m)):
            first.setdefault(device_of(m), data["volume_m3"])
            latest[device_of(m)] = data["volume_m3"]
    subs = index.submeters_of("lvcheng", "wm-01-master")
    assert subs
    flats = sum(latest[s.device] - first[s.device] for s in subs)
    master = latest["wm-01-master"] - first["wm-01-master"]
    assert 0.85 * flats < master < 1.2 * flats  # readings at other times of the hour


def test_bins_fill_and_are_collected_without_overflowing(day: list[Message]) -> None:
    fills: dict[str, list[float]] = defaultdict(list)
    for m in day:
        if stream_of(m) == "level":
            fills[device_of(m)].append(body(m)["fill_pct"])
    for device, reported in fills.items():
        scale = 100 if max(reported) <= 1 else 1  # a bin_ultrasonic_fraction sensor
        values = [v * scale for v in reported]
        assert max(values) < 90, device
        drops = sum(1 for a, b in itertools.pairwise(values) if b < a - 10)
        if device.endswith("kitchen"):
            assert drops == 2, device  # two rounds a day for kitchen waste


def test_ev_connectors_follow_ocpp_and_their_bays_see_the_car(
    day: list[Message], registry: Registry
) -> None:
    index = registry.index()
    allowed = {
        "available": {"preparing"}, "preparing": {"charging", "suspended_ev"},
        "charging": {"charging", "suspended_ev"}, "suspended_ev": {"finishing"},
        "finishing": {"available"},
    }  # fmt: skip
    status: dict[tuple[str, int], str] = {}
    bays: dict[str, bool] = {}
    sessions = 0
    for m in day:
        data = body(m)
        if stream_of(m) == "occupancy":
            bays[device_of(m)] = data["occupied"]
        if stream_of(m) != "connector":
            continue
        key = (device_of(m), data["connector"])
        if key in status:
            assert data["status"] in allowed[status[key]], (key, status[key], data["status"])
        status[key] = data["status"]
        assert (data["power_kw"] > 0) == (data["status"] == "charging")
        if data["status"] == "preparing":
            sessions += 1
            bay = index.bay_for_connector("lvcheng", *key)
            assert bay is not None and bays.get(bay.device) is True
    assert sessions >= 1


def test_gates_peak_in_the_morning_and_evening(day: list[Message]) -> None:
    by_hour = [0] * 24
    out_share: dict[str, list[bool]] = {"morning": [], "evening": []}
    for m in day:
        if stream_of(m) == "passage":
            hour = local_hour(m)
            by_hour[hour] += 1
            if hour in (7, 8):
                out_share["morning"].append(body(m)["direction"] == "out")
            if hour in (18, 19):
                out_share["evening"].append(body(m)["direction"] == "out")
    assert sum(by_hour[7:9]) > 5 * sum(by_hour[2:4])
    assert sum(by_hour[17:20]) > 5 * sum(by_hour[2:4])
    morning = sum(out_share["morning"]) / len(out_share["morning"])
    evening = sum(out_share["evening"]) / len(out_share["evening"])
    assert morning > 0.6 > 0.4 > evening


def test_ebikes_charge_at_night(day: list[Message]) -> None:
    charging = 0
    for m in day:
        if stream_of(m) == "port" and (data := body(m))["status"] == "charging":
            charging += 1
            assert local_hour(m) not in range(9, 17)
            assert data["power_w"] <= 400
            assert data["temperature_c"] < 50
    assert charging > 50


def test_an_ebike_charger_tapers_to_the_end_of_its_charge() -> None:
    powers = [ebike_power_w(h / 10, 5.0) for h in range(0, 60)]
    assert powers[:35] == [380.0] * 35  # constant current for 70 %
    taper = powers[35:50]
    assert taper == sorted(taper, reverse=True) and taper[-1] < 0.15 * 380
    assert powers[50:] == [0.0] * 10  # charged


def test_public_lighting_is_on_at_night_only(day: list[Message]) -> None:
    for m in day:
        if device_of(m).startswith("em-lighting") and stream_of(m) == "register":
            power = body(m)["power_w"]
            if local_hour(m) in (22, 23, 0, 1):
                assert power > 1000
            if local_hour(m) in (10, 11, 12, 13, 14):
                assert power < 10


def test_battery_devices_report_their_battery(day: list[Message]) -> None:
    reported = {device_of(m) for m in day if "battery_pct" in body(m)}
    assert any(d.startswith("p-") for d in reported)
    assert any(d.startswith("wm-") for d in reported)
    assert any(d.startswith("bin-") for d in reported)
