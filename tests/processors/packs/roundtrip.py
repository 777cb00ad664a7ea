"""Snapshot round-trip of detector states, as the runner does it (shared by the pack tests)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from processors.detector import Detector

StateT = TypeVar("StateT")


def json_roundtrip(detector: Detector[StateT], state: StateT) -> StateT:
    """``state`` through ``dump_state``, JSON text and ``load_state``; checks that nothing is
    lost (the restored state is equal: datetimes come back in UTC, equal instants)."""
    data: Any = detector.dump_state(state)
    restored = detector.load_state(json.loads(json.dumps(data)))
    assert restored == state
    assert type(restored) is type(state)
    return restored
