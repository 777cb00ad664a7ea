"""Every detector the service runs, in one place (the runner, replays and benchmarks)."""

from __future__ import annotations

from typing import Any

from processors.detector import Detector
from processors.packs.charging import CHARGING_DETECTORS
from processors.packs.energy import ENERGY_DETECTORS
from processors.packs.gates import GATE_DETECTORS
from processors.packs.health import HEALTH_DETECTORS
from processors.packs.parking import PARKING_DETECTORS
from processors.packs.waste import WASTE_DETECTORS
from processors.packs.water import WATER_DETECTORS, WATER_MASTER_DETECTORS

ALL_DETECTORS: tuple[Detector[Any], ...] = (
    *HEALTH_DETECTORS,
    *WASTE_DETECTORS,
    *WATER_DETECTORS,
    *WATER_MASTER_DETECTORS,
    *CHARGING_DETECTORS,
    *ENERGY_DETECTORS,
    *PARKING_DETECTORS,
    *GATE_DETECTORS,
)
