"""Scheduled ticks: a detector that says when its next tick can matter (``tick_due``)
is ticked from then on only, and decides exactly what ticking on every grid point did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventlog.envelope import Stream
from eventlog.sqlite import SqliteEventLog
from processors.detector import Detector, DeviceContext, ReadingView, unscheduled
from processors.detectors import ALL_DETECTORS
from processors.engine import _ticks
from processors.rules import load_rules
from simulators.evaluate import run
from simulators.scenario import load_scenario
from tests.processors.packs.roundtrip import check_tick_due

#: Every alert group has an incident in the first (charging, parking, gates, bins, water,
#: health); in the second an alert clears by a tick (fewer denials left in the window).
SCENARIOS = ("two-estates", "gate-denied-attempts")


def events(name: str, detectors: list[Detector[Any]], path: Path) -> tuple[list[str], set[str]]:
    """The event kinds (sorted) and ids of scenario ``name`` run through ``detectors``."""
    scenario = load_scenario(name)
    with SqliteEventLog(path) as log:
        run(scenario.simulator(), load_rules(), name, detectors=detectors, log=log)
        found = [r.envelope for r in log.iterate(Stream.EVENTS)]
    return sorted(e.kind for e in found), {str(e.id) for e in found}


def test_every_shipped_detector_with_a_tick_is_scheduled() -> None:
    assert [d.name for d in ALL_DETECTORS if _ticks(d) and not d.scheduled] == []
    assert len([d for d in ALL_DETECTORS if d.scheduled]) >= 12


@pytest.mark.parametrize("name", SCENARIOS)
def test_scheduled_ticks_decide_what_ticking_every_grid_point_did(
    name: str, tmp_path: Path
) -> None:
    scheduled = events(name, list(ALL_DETECTORS), tmp_path / "scheduled.sqlite")
    grid = [unscheduled(d) if d.scheduled else d for d in ALL_DETECTORS]
    assert not any(d.scheduled for d in grid)
    assert events(name, grid, tmp_path / "grid.sqlite") == scheduled
    kinds, _ = scheduled
    assert "AlertRaised" in kinds and "AlertCleared" in kinds, kinds


def checked(detector: Detector[Any]) -> Detector[Any]:
    """``detector``, checking after every step that a tick before the state's due time
    changes nothing (:func:`check_tick_due`): what the engine relies on."""
    base = type(detector)

    def step(self: Any, state: Any, reading: ReadingView, ctx: DeviceContext) -> Any:
        state, signals = base.step(self, state, reading, ctx)
        check_tick_due(self, state, reading.at, ctx)
        return state, signals

    made: Detector[Any] = type(f"Checked{base.__name__}", (base,), {"step": step})()
    return made


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_tick_before_the_due_time_changes_nothing(name: str, tmp_path: Path) -> None:
    detectors = [checked(d) if d.scheduled else d for d in ALL_DETECTORS]
    kinds, _ = events(name, detectors, tmp_path / "checked.sqlite")
    assert "AlertRaised" in kinds
