"""Simulated traffic through the real ingest pipeline (detectors: simulators/evaluate.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from devices.registry import Registry
from eventlog.envelope import Envelope
from ingest.pipeline import Pipeline
from processors.detector import Detector
from processors.packs.health import HEALTH_DETECTORS
from processors.packs.waste import WASTE_DETECTORS
from processors.packs.water import WATER_DETECTORS
from simulators.model import Message

SALT = b"simulator-tests-salt-0123456789"
DETECTORS: tuple[Detector[Any], ...] = (*WATER_DETECTORS, *WASTE_DETECTORS, *HEALTH_DETECTORS)
TICK = timedelta(minutes=5)


@dataclass(frozen=True)
class Seen:
    detector: str
    device: str
    at: datetime


def accepted(registry: Registry, messages: Iterable[Message]) -> list[Envelope]:
    """The readings ingest makes of ``messages``; every message must be accepted."""
    pipeline = Pipeline(registry.index(), SALT)
    out: list[Envelope] = []
    for m in messages:
        judged = pipeline.judge(m.topic, m.payload, m.at)
        assert judged.rejected == [], (m, judged.rejected[0].payload["detail"])
        out.extend(judged.readings)
    return out
