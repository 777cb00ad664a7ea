"""Injections whose detectors belong to packs still to come (EV, e-bike, parking, gates,
energy) leave the signature their label promises in the device's own traffic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from simulators.model import Label
from simulators.scenario import load_scenario
from tests.simulators.conftest import body, device_of, small_registry, stream_of
from tests.simulators.detecting import accepted

Readings = list[tuple[datetime, str, dict[str, Any]]]


def traffic(
    name: str, extra: Callable[[Label], set[str]] = lambda _: set()
) -> tuple[Label, Readings, dict[str, Readings]]:
    scenario = load_scenario(name).with_registry(small_registry())
    (label,) = scenario.simulator().ground_truth
    wanted = {label.device} | extra(label)
    messages = list(scenario.simulator(only=lambda ref: ref.device in wanted).messages())
    accepted(scenario.registry, messages)  # every one of them valid
    by_device: dict[str, Readings] = {}
    for m in messages:
        by_device.setdefault(device_of(m), []).append((m.at, stream_of(m), body(m)))
    return label, by_device[label.device], by_device


def bay_link(bay: str) -> tuple[str, int]:
    ref = small_registry().index().device("lvcheng", bay)
    assert ref is not None and ref.spec.connector_ref is not None
    return ref.spec.connector_ref


def inside(label: Label, at: datetime) -> bool:
    return label.start <= at < label.end


def test_ev_overstay_keeps_the_car_on_the_connector_long_after_charging() -> None:
    label, readings, _ = traffic("ev-overstay")
    during = [
        d for at, s, d in readings if s == "connector" and d["connector"] == 1 and inside(label, at)
    ]
    statuses = [d["status"] for d in during]
    assert statuses[0] == "preparing" and "charging" in statuses
    assert statuses.count("suspended_ev") == 1 and statuses[-1] == "suspended_ev"
    charged = next(
        at
        for at, s, d in readings
        if s == "connector" and d.get("status") == "suspended_ev" and inside(label, at)
    )
    assert (label.end - charged).total_seconds() > 24 * 3600  # parked past the 24 h grace
    ends = [
        d["status"]
        for at, s, d in readings
        if s == "connector" and at >= label.end and d["connector"] == 1
    ]
    assert ends[:2] == ["finishing", "available"]


def test_an_ev_bay_blocked_is_occupied_while_its_connector_stays_available() -> None:
    def charger(label: Label) -> set[str]:
        link = bay_link(label.device)
        return {link[0]}

    label, readings, devices = traffic("ev-bay-blocked", charger)
    occupied = [d["occupied"] for at, s, d in readings if s == "occupancy" and inside(label, at)]
    assert occupied and all(occupied)
    after = next(d for at, s, d in readings if s == "occupancy" and at > label.end)
    assert after["occupied"] is False
    charger_id, n = bay_link(label.device)
    statuses = {
        d["status"]
        for at, s, d in devices[charger_id]
        if s == "connector" and d["connector"] == n and inside(label, at)
    }
    assert statuses <= {"available"}


def test_an_overheating_ebike_port_is_hot_then_faulted() -> None:
    label, readings, _ = traffic("ebike-over-temperature")
    port = [(at, d) for at, s, d in readings if s == "port" and d["port"] == 3]
    hot = [d["temperature_c"] for at, d in port if inside(label, at)]
    assert max(hot) > 70 and hot[0] < 50
    after = [d["status"] for at, d in port if at >= label.end]
    assert after[:2] == ["faulted", "available"]
    others = [d["temperature_c"] for at, s, d in readings if s == "port" and d["port"] != 3]
    assert max(others) < 50


def test_flying_wire_adds_an_ebike_load_to_the_corridor_at_night() -> None:
    label, readings, _ = traffic("flying-wire")
    power = [(at, d["power_w"]) for at, s, d in readings if s == "register"]
    before = [p for at, p in power if 0 < (label.start - at).total_seconds() <= 2 * 3600]
    first_hours = [p for at, p in power if 0 <= (at - label.start).total_seconds() < 3 * 3600]
    assert min(first_hours) > max(before) + 300


def test_a_blocked_fire_lane_is_occupied_for_the_interval_only() -> None:
    label, readings, _ = traffic("fire-lane-blocked")
    states = [(at, d["occupied"]) for at, s, d in readings if s == "occupancy"]
    assert all(occ == inside(label, at) for at, occ in states)
    assert any(occ for _, occ in states)


@pytest.mark.parametrize(("name", "forced"), [("door-forced", True), ("door-held-open", False)])
def test_doors_forced_or_held_open(name: str, forced: bool) -> None:
    label, readings, _ = traffic(name)
    doors = [(at, d) for at, s, d in readings if s == "door"]
    opened = [(at, d) for at, d in doors if at == label.start]
    assert opened == [(label.start, {**opened[0][1], "state": "open"})]
    assert opened[0][1].get("forced", False) is forced
    assert not [d for at, d in doors if label.start < at < label.end]
    closed = [d for at, d in doors if at == label.end]
    assert closed and closed[0]["state"] == "closed"
    if not forced:  # a granted passage opened it
        passages = [
            d for at, s, d in readings if s == "passage" and (label.start - at).total_seconds() == 1
        ]
        assert passages and passages[0]["result"] == "granted"


def test_a_backflow_runs_the_register_back_and_reports_its_flow() -> None:
    label, readings, _ = traffic("water-backflow")
    registers = [(at, d) for at, s, d in readings if s == "register"]
    during = [d for at, d in registers if inside(label, at)]
    assert len(during) >= 3  # every 5 min while it lasts, the first 5 min in
    flows = [d["flow_l_min"] for d in during]  # the first one averages since the last reading
    assert flows[0] < 0 and all(f < -1 for f in flows[1:])
    before = [d["volume_m3"] for at, d in registers if at < label.start][-1]
    after = next(d["volume_m3"] for at, d in registers if at >= label.end)
    assert (before - after) * 1000 >= 25  # 30 L back, less the household's own use


def test_a_stuck_fill_sensor_repeats_one_level() -> None:
    label, readings, _ = traffic("bin-stuck-sensor")
    levels = [(at, d["fill_pct"]) for at, s, d in readings if s == "level"]
    assert len({fill for at, fill in levels if inside(label, at)}) == 1
    assert len({fill for at, fill in levels if not inside(label, at)}) > 10


def test_a_faulted_connector_has_no_session_until_repaired() -> None:
    label, readings, _ = traffic("ev-charger-faulted")
    one = [(at, d) for at, s, d in readings if s == "connector" and d["connector"] == 1]
    assert [d["status"] for at, d in one if at == label.start] == ["faulted"]
    assert not [d for at, d in one if label.start < at < label.end]
    assert [d["status"] for at, d in one if at == label.end] == ["available"]


def test_a_charger_that_never_stops_keeps_its_port_charging() -> None:
    label, readings, _ = traffic("ebike-session-too-long")
    port = [(at, d) for at, s, d in readings if s == "port" and d["port"] == 1]
    during = [d for at, d in port if inside(label, at)]
    assert {d["status"] for d in during} == {"charging"}
    assert len({d["session_id"] for d in during}) == 1
    assert min(d["power_w"] for d in during) >= 10  # a trickle, never zero
    assert max(d["power_w"] for d in during) > 300  # a real charge first
    after = [d["status"] for at, d in port if at >= label.end]
    assert after[:2] == ["finished", "available"]


def test_one_credential_is_denied_again_and_again() -> None:
    label, readings, _ = traffic("gate-denied-attempts")
    during = [d for at, s, d in readings if s == "passage" and inside(label, at)]
    assert len(during) >= 5  # the rule's attempts in its window
    assert {d["result"] for d in during} == {"denied"}
    assert len({d.get("credential") for d in during}) == 1
    assert not [at for at, s, d in readings if s == "door" and inside(label, at)]


def test_a_crowd_goes_through_on_one_credential() -> None:
    label, readings, _ = traffic("gate-tailgating")
    (crowd,) = [d for at, s, d in readings if s == "passage" and at == label.start]
    assert crowd["result"] == "granted" and crowd["persons_sensed"] == 5
    opened = [
        d for at, s, d in readings if s == "door" and 0 < (at - label.start).total_seconds() < 10
    ]
    assert [d["state"] for d in opened] == ["open", "closed"]


def test_lighting_stays_on_in_daylight() -> None:
    label, readings, _ = traffic("lighting-daylight")
    for at, s, d in readings:
        if s == "register" and 9 <= at.astimezone(label.start.tzinfo).hour < 17:
            assert (d["power_w"] > 1000) == inside(label, at), at
