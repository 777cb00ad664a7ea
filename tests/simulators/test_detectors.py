"""The shipped scenarios make the project's existing detectors fire on the injected device,
inside the labelled interval, and nowhere else (water, waste and device-health packs).

Scenarios run on a smaller estate than they name (``with_registry``), and only the
labelled devices are simulated (``only``), to keep this quick.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from devices.registry import Registry
from processors.rules import load_rules
from simulators.estate import EstateSimulator
from simulators.evaluate import run
from simulators.model import Imperfections
from simulators.scenario import load_scenario
from tests.simulators.conftest import START, small_registry

#: scenario → the existing detectors its labels name (the other labels are for packs to come)
CASES = {
    "bin-fire": {"bin_fire_risk"},
    "bin-overflow": {"bin_fill_forecast", "bin_overflow"},
    "bin-not-emptied": {"bin_fill_forecast", "bin_overflow", "bin_not_emptied"},
    "water-burst": {"water_burst"},
    "water-leak": {"water_night_flow", "water_continuous_flow"},
    "device-offline": {"device_offline"},
    "ev-bay-blocked": {"ev_bay_blocked"},  # the engine routes the charger's connector to the bay
    "gate-denied-attempts": {"gate_denied_attempts"},
    "ebike-session-too-long": {"ebike_session_too_long"},
    "ev-charger-faulted": {"ev_charger_faulted"},
    "bin-stuck-sensor": {"bin_stuck_sensor"},
    "ev-session-too-long": {"ev_overstay", "ev_session_too_long"},
    "water-backflow": {"water_backflow"},
    "gate-tailgating": {"gate_tailgating"},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_injected_anomaly_is_detected_inside_its_interval(name: str) -> None:
    scenario = load_scenario(name).with_registry(small_registry())
    targets = {i.device for i in scenario.injections}
    sim = scenario.simulator(
        only=lambda ref: ref.device in targets or ref.kind.value == "ev_charger"
    )
    result = run(sim, load_rules(), name)
    assert not result.rejected
    assert {label.detector for label in result.labels} == CASES[name]
    for label in result.labels:
        hits = [
            s
            for s in result.spans
            if s.detector == label.detector
            and s.device == label.device
            and label.start <= s.start <= label.end + timedelta(hours=1)
        ]
        assert hits, (label, result.spans[:5])
    unexpected = [s for s in result.spans if s.detector in CASES[name] and s.device not in targets]
    assert unexpected == []


#: Detectors of the existing packs that must stay quiet on clean traffic (bin_fill_forecast
#: is a forecast: it warns about bins that will be full, which daily rounds then empty).
QUIET = (
    "water_night_flow", "water_continuous_flow", "water_burst", "water_backflow",
    "water_no_use", "bin_overflow", "bin_not_emptied", "bin_fire_risk", "bin_stuck_sensor",
    "device_offline", "low_battery", "clock_skew",
)  # fmt: skip


def test_a_clean_day_and_a_half_raises_no_condition(registry: Registry) -> None:
    end = START + timedelta(hours=36)
    sim = EstateSimulator(registry, seed=4, start=START, end=end)
    result = run(sim, load_rules(), "clean")
    assert [s for s in result.spans if s.detector in QUIET] == []
    assert result.readings > 1000


def test_a_lost_door_close_is_ground_truth_for_door_held_open() -> None:
    """A gate whose ``closed`` message ingest refuses (malformed) looks open: the simulator
    labels it, and door_held_open reports exactly those doors (no other alert)."""
    registry = small_registry()
    sim = EstateSimulator(
        registry,
        seed=3,
        start=START,
        end=START + timedelta(hours=12),
        imperfections=Imperfections(malformed=0.05),
        only=lambda ref: ref.kind.value == "access_gate",
    )
    result = run(sim, load_rules(), "lost-closes")
    lost = [label for label in result.labels if label.kind == "lost_door_close"]
    assert len(lost) >= 3 and {label.detector for label in lost} == {"door_held_open"}
    assert result.rejected  # the broken messages were refused, not silently dropped
    (score,) = [s for s in result.scores if s.detector == "door_held_open"]
    assert score.labels == len(lost) and score.recall == 1.0 and score.false_alarms == 0, score


def test_a_bin_full_before_any_history_is_no_forecast_label() -> None:
    """Behaviour-made overflows are ground truth for bin_overflow; for the forecast only
    when the bin was seen filling before it (a bin full at its first reading cannot have
    been foreseen)."""
    registry = small_registry()
    sim = EstateSimulator(registry, seed=1, start=START, end=START + timedelta(hours=12))
    bin_ = next(
        ref
        for estate in registry.index().estate_ids()
        for ref in registry.index().devices_of(estate)
        if ref.kind.value == "waste_bin" and ref.profile.units.get("fill_pct") != "fraction"
    )
    t0 = START.timestamp()
    fills = [95.0, 95.5, 96.0, 5.0, 50.0, 80.0, 92.0, 95.0, 96.0, 3.0]
    events = [(t0 + 1800 * i, "level", {"fill_pct": fill}) for i, fill in enumerate(fills)]
    assert [e[0] for e in sim._natural_overflows(bin_, events)] == [e[0] for e in events]
    made = [(label.detector, label.end.timestamp()) for label in sim.labels]
    assert made == [
        ("bin_overflow", t0 + 1800 * 3),  # full from the start: no forecast label
        ("bin_overflow", t0 + 1800 * 9),
        ("bin_fill_forecast", t0 + 1800 * 6),  # seen filling first: foreseeable
    ]
