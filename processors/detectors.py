"""Every detector the service runs, in one place (the runner, replays and benchmarks)."""

from __future__ import annotations

from typing import Any

from processors.detector import Detector
from processors.packs.health import HEALTH_DETECTORS
from processors.packs.waste import WASTE_DETECTORS
from processors.packs.water import WATER_DETECTORS, WATER_MASTER_DETECTORS

ALL_DETECTORS: tuple[Detector[Any], ...] = (
    *HEALTH_DETECTORS,
    *WASTE_DETECTORS,
    *WATER_DETECTORS,
    *WATER_MASTER_DETECTORS,
)
