"""What the pack tests share: folding a timeline through a detector, the checks the
runner relies on after every step (scheduled ticks), and snapshot round-trips."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from processors.alarm import Signal
from processors.detector import Detector, DeviceContext, ReadingView

StateT = TypeVar("StateT")


def json_roundtrip(detector: Detector[StateT], state: StateT) -> StateT:
    """``state`` through ``dump_state``, JSON text and ``load_state``; checks that nothing is
    lost (the restored state is equal: datetimes come back in UTC, equal instants)."""
    data: Any = detector.dump_state(state)
    restored = detector.load_state(json.loads(json.dumps(data)))
    assert restored == state
    assert type(restored) is type(state)
    return restored


def check_tick_due(
    detector: Detector[StateT], state: StateT, at: datetime, ctx: DeviceContext
) -> None:
    """What the engine relies on to tick a ``scheduled`` detector's state only from its
    ``tick_due`` time: a tick just before that time (at any time, when none is due)
    changes nothing and signals nothing."""
    if not detector.scheduled:
        return
    due = detector.tick_due(state, ctx)
    now = at + timedelta(days=30) if due is None else due - timedelta(microseconds=1)
    after, out = detector.tick(state, now, ctx)
    assert (after, out) == (state, []), (detector.name, at, due, out)


def fold(
    detector: Detector[Any],
    ctx: DeviceContext,
    items: Iterable[ReadingView | datetime],
    state: Any = None,
) -> tuple[Any, list[Signal]]:
    """Fold readings (step) and datetimes (tick) through ``detector``, checking
    :func:`check_tick_due` after each."""
    state = detector.initial(ctx) if state is None else state
    out: list[Signal] = []
    for item in items:
        if isinstance(item, datetime):
            state, signals = detector.tick(state, item, ctx)
            check_tick_due(detector, state, item, ctx)
        else:
            state, signals = detector.step(state, item, ctx)
            check_tick_due(detector, state, item.at, ctx)
        out.extend(signals)
    return state, out
