"""Scenario files: the shipped library, ground truth, device selection and refusals."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devices.demo_estate import write_registry
from simulators.scenario import (
    INJECTIONS,
    ScenarioError,
    load_scenario,
    parse_duration,
    scenario_names,
)
from tests.simulators.conftest import small_registry


def test_the_library_has_a_scenario_for_every_injection_kind_and_a_demo() -> None:
    names = scenario_names()
    assert "demo" in names
    kinds = {i.kind for name in names for i in load_scenario(name).injections}
    assert kinds == set(INJECTIONS)


def test_the_demo_fires_several_kinds_of_alert_in_its_first_hours() -> None:
    demo = load_scenario("demo")
    early = {
        label.detector
        for label in demo.simulator().ground_truth
        if label.start < demo.start + timedelta(hours=4)
    }
    assert len(early) >= 6
    assert {"bin_fire_risk", "door_forced", "water_burst", "fire_lane_blocked"} <= early
    assert demo.imperfections.any


def test_ground_truth_is_the_injected_interval_with_its_detectors() -> None:
    scenario = load_scenario("bin-not-emptied")
    labels = scenario.simulator().ground_truth
    assert [(x.kind, x.detector) for x in labels] == [
        ("bin_not_emptied", "bin_fill_forecast"),
        ("bin_not_emptied", "bin_not_emptied"),
        ("bin_not_emptied", "bin_overflow"),
    ]
    start = datetime.fromisoformat("2026-05-04T08:00:00+08:00")
    for label in labels:
        assert (label.start, label.end) == (start, start + timedelta(hours=20))
        assert label.device.endswith("recyclable") and label.estate == "lvcheng"
        record = label.as_dict()
        assert record["start"] == start.isoformat() and record["source"] == "scenario"


def test_selection_is_deterministic_and_injections_move_with_the_start() -> None:
    first = load_scenario("water-leak").injections
    assert first == load_scenario("water-leak").injections
    scenario = load_scenario("water-leak")
    later = scenario.start + timedelta(days=30)
    moved = scenario.simulator(start=later).ground_truth
    assert {x.start for x in moved} == {later + timedelta(hours=6)}


def test_a_registry_file_and_selectors_with_count(tmp_path: Path) -> None:
    write_registry(tmp_path / "estate.yaml", households=30)
    path = write(
        tmp_path,
        """
        name: two-leaks
        registry: estate.yaml
        seed: 3
        start: 2026-05-04T00:00:00+08:00
        duration: 1d
        injections:
          - {kind: water_leak, select: {building: b01}, count: 2, duration: 12h}
          - {kind: door_forced, device: gate-01-a, start: 2h}
        """,
    )
    scenario = load_scenario(path)
    leaks = [i for i in scenario.injections if i.kind == "water_leak"]
    assert len({i.device for i in leaks}) == 2
    assert all(i.device.startswith("wm-01-") and i.device != "wm-01-master" for i in leaks)
    forced = next(i for i in scenario.injections if i.kind == "door_forced")
    assert forced.end - forced.start == timedelta(minutes=2)  # the kind's default duration


def write(tmp_path: Path, text: str) -> Path:
    lines = text.strip("\n").splitlines()
    indent = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
    path = tmp_path / "scenario.yaml"
    path.write_text("\n".join(x[indent:] for x in lines) + "\n", encoding="utf-8")
    return path


BASE = """
name: broken
registry: {households: 20}
seed: 1
start: "2026-05-04T00:00:00+08:00"
duration: 1d
"""


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "injections:\n  - kind: bin_fyre\n",
            "7: injections[0].kind: unknown injection kind 'bin_fyre'; did you mean 'bin_fire'?",
        ),
        (
            "injections:\n  - kind: bin_fire\n    colour: red\n",
            "8: injections[0].colour: unknown field 'colour'",
        ),
        (
            "injections:\n  - kind: bin_fire\n    duration: 2 hours\n",
            "8: injections[0].duration: duration '2 hours' is not like 90s, 30m, 6h, 4d or 1h30m",
        ),
        (
            "injections:\n  - kind: bin_fire\n    device: bin-cp01-kitchn\n",
            "8: injections[0].device: device 'bin-cp01-kitchn' is not in the registry; did you "
            "mean 'bin-cp01-kitchen'?",
        ),
        (
            "injections:\n  - kind: bin_fire\n    device: wm-01-101\n",
            "8: injections[0].device: device 'wm-01-101' is a water_meter, not a waste_bin; "
            "bin_fire needs waste_bin",
        ),
        (
            "injections:\n  - kind: fire_lane_blocked\n    select: {zone: B1-A}\n",
            "8: injections[0].select: the selector matches 0 device(s) that fit fire_lane_blocked "
            "(parking_sensor tagged fire_lane), 1 wanted",
        ),
        (
            "injections:\n  - kind: bin_fire\n    params: {heat: 3}\n",
            "8: injections[0].params.heat: unknown parameter of bin_fire (known: rise_c)",
        ),
        (
            "injections:\n  - kind: bin_fire\n    start: 2d\n",
            "8: injections[0].start: 2026-05-06 00:00:00+08:00 is outside the scenario",
        ),
        (
            "injections:\n  - kind: bin_fire\n    start: 2026-05-04T02:00:00\n",
            "8: injections[0].start: a time needs a UTC offset",
        ),
        ("seed: 2\n", "6: key 'seed' appears twice in one mapping (first at line 3)"),
    ],
)
def test_invalid_scenarios_are_refused_with_file_line_path_and_message(
    tmp_path: Path, tail: str, expected: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BASE.lstrip("\n") + tail, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert f"{path}:{expected}" in str(caught.value)


def test_missing_fields_syntax_errors_and_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nseed: one\n", encoding="utf-8")
    assert f"{path}:1: registry: missing required field 'registry'" in refusal(path)
    assert f"{path}:2: seed: Input should be a valid integer" in refusal(path)
    path.write_text("name: [x\n", encoding="utf-8")
    assert f"{path}:2: YAML syntax error" in refusal(path)
    assert "no-such-thing: no such scenario (shipped: bin-fire" in refusal("no-such-thing")


def refusal(what: str | Path) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(what)
    return str(caught.value)


def test_a_scenario_on_another_registry_reresolves_its_devices() -> None:
    scenario = load_scenario("door-forced")
    small = scenario.with_registry(small_registry(10))
    assert small.injections[0].device.startswith("gate-")
    assert small.registry is not scenario.registry


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration("0.5h") == timedelta(minutes=30)
    for bad in ("", "h", "10", "1 hour", "-1h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
