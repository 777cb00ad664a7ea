"""The access-gate pack: hand-built passage and door timelines through each detector and the
alarm machine, state round-trips, Hypothesis properties and the shipped door scenarios.

The gate is ``gate-01-a`` of the small demo estate (see ``test_parking.py``, whose helpers
are shared); times are minutes after ``T0``, 10:00 in Shanghai.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.catalogue import DeviceKind
from processors.alarm import Severity
from processors.detector import Detector, DeviceContext, ReadingView
from processors.detectors import ALL_DETECTORS
from processors.packs.gates import (
    GATE_DETECTORS,
    DoorForced,
    DoorHeldOpen,
    GateDeniedAttempts,
    GateTailgating,
)
from processors.rules import DoorForcedRule
from tests.processors.packs.roundtrip import json_roundtrip
from tests.processors.packs.test_parking import (
    NS,
    PROPERTY,
    Item,
    K,
    alarm,
    at,
    check_properties,
    contexts,
    kinds,
    run,
    scenario_spans,
    small_index,
    ticked,
)

HELD, FORCED, DENIED, TAILGATE = (
    DoorHeldOpen(),
    DoorForced(),
    GateDeniedAttempts(),
    GateTailgating(),
)
GATE = "gate-01-a"


@pytest.fixture(scope="module")
def ctx() -> DeviceContext:
    return contexts(small_index())[GATE]


def door(minutes: float, state: str, forced: bool | None = None) -> ReadingView:
    payload: dict[str, Any] = {"state": state}
    if forced is not None:
        payload["forced"] = forced
    return ReadingView(
        id=uuid.uuid5(NS, f"door:{minutes}:{state}"),
        kind="access_gate.door",
        at=at(minutes),
        payload=payload,
    )


def passage(
    minutes: float,
    result: str = "granted",
    persons: int | None = 1,
    method: str = "card",
    credential: str = "ab12cd34ef56ab78",
    n: int = 0,
) -> ReadingView:
    payload: dict[str, Any] = {
        "direction": "in",
        "result": result,
        "method": method,
        "credential_hash": credential,
    }
    if persons is not None:
        payload["persons_sensed"] = persons
    return ReadingView(
        id=uuid.uuid5(NS, f"passage:{minutes}:{result}:{n}"),
        kind="access_gate.passage",
        at=at(minutes),
        payload=payload,
    )


def through(minutes: float, persons: int = 1) -> list[ReadingView]:
    """A normal passage: granted, the door open a second later for ten seconds."""
    return [
        passage(minutes, persons=persons),
        door(minutes + 1 / 60, "open"),
        door(minutes + 11 / 60, "closed"),
    ]


def normal_hour() -> list[ReadingView]:
    return [r for m in range(0, 60, 4) for r in through(m, persons=1 + m % 3)]


def test_wiring(ctx: DeviceContext) -> None:
    assert all(d.applies_to(ctx) for d in GATE_DETECTORS)
    assert all(d in ALL_DETECTORS for d in GATE_DETECTORS)
    bay = dataclasses.replace(ctx, kind=DeviceKind.PARKING_SENSOR)
    assert not any(d.applies_to(bay) for d in GATE_DETECTORS)
    assert [d.name for d in GATE_DETECTORS] == [
        "door_held_open",
        "door_forced",
        "gate_denied_attempts",
        "gate_tailgating",
    ]


@pytest.mark.parametrize("detector", GATE_DETECTORS, ids=lambda d: d.name)
def test_an_hour_of_normal_passages_raises_nothing(
    ctx: DeviceContext, detector: Detector[Any]
) -> None:
    _, signals = run(detector, ctx, [passage(-1), *ticked(normal_hour(), timedelta(seconds=30))])
    assert signals == []


# --- door_held_open --------------------------------------------------------------------------


def test_door_held_open_raises_after_three_minutes_and_resolves_when_closed(
    ctx: DeviceContext,
) -> None:
    timeline = [passage(0), door(0.02, "open"), door(25, "closed")]
    _, signals = run(HELD, ctx, ticked(timeline))
    assert [(s.active, s.at) for s in signals] == [(True, at(3.02)), (False, at(25))]
    assert signals[0].explanation == "door of gate-01-a open since 10:00, for 3 min (≥ 3 min)"
    assert signals[1].explanation == "door of gate-01-a closed at 10:25 after 24 min open"
    events = alarm(HELD, ctx, signals, at(60))
    assert kinds(events) == [(K.RAISED, at(3.02)), (K.CLEARED, at(25)), (K.RESOLVED, at(25))]
    # open for two minutes: nothing
    _, signals = run(HELD, ctx, ticked([door(0, "open"), door(2, "closed")]))
    assert signals == []


# --- door_forced ----------------------------------------------------------------------------


def test_door_forced_flag_is_critical_at_once_and_clears_when_closed(ctx: DeviceContext) -> None:
    timeline = [door(-60, "closed"), door(0, "open", forced=True), door(2, "closed")]
    _, signals = run(FORCED, ctx, timeline)
    assert [(s.active, s.at) for s in signals] == [(True, at(0)), (False, at(2))]
    assert signals[0].severity is Severity.CRITICAL
    assert signals[0].explanation == (
        "door of gate-01-a forced open at 10:00: the controller flagged the opening as forced"
    )
    assert signals[1].explanation == "door of gate-01-a closed at 10:02, 2 min after it was forced"
    events = alarm(FORCED, ctx, signals, at(60))
    assert kinds(events) == [(K.RAISED, at(0)), (K.CLEARED, at(2))]  # an operator resolves


def test_door_opened_without_a_granted_passage_is_forced(ctx: DeviceContext) -> None:
    timeline = [
        *through(0),
        passage(5, result="denied", persons=0),
        door(5.1, "open"),  # 5 min after the last grant, after a denial
        door(6, "closed"),
    ]
    _, signals = run(FORCED, ctx, timeline)
    assert [(s.active, s.at) for s in signals] == [(True, at(5.1)), (False, at(6))]
    assert signals[0].explanation == (
        "door of gate-01-a forced open at 10:05: no granted passage within 30 s before it "
        "(last granted 5 min earlier, at 10:00)"
    )
    assert signals[0].values == {"flagged": 0, "grant_window_s": 30.0, "since_grant_s": 306.0}
    assert signals[0].evidence == (timeline[4].id,)


def test_door_forced_waits_for_the_readings_of_the_opening_instant(ctx: DeviceContext) -> None:
    opened = door(10, "open")
    state, signals = run(FORCED, ctx, [*through(0), opened, at(10)])
    assert signals == [] and state.pending_at == at(10)
    # a passage logged at the same second, judged after its door: not forced
    _, signals = run(FORCED, ctx, [passage(10), at(10.5), door(11, "closed")], state)
    assert signals == []
    # nothing at that instant: the next tick or reading reports it, stamped at the opening
    _, by_tick = run(FORCED, ctx, [at(10.01)], state)
    _, by_reading = run(FORCED, ctx, [door(11, "closed")], state)
    assert [(s.active, s.at) for s in by_tick] == [(True, at(10))]
    assert by_reading[0] == by_tick[0]
    assert [(s.active, s.at) for s in by_reading] == [(True, at(10)), (False, at(11))]


def test_door_forced_infers_nothing_without_history_or_when_grants_are_not_required(
    ctx: DeviceContext,
) -> None:
    _, signals = run(FORCED, ctx, [door(0, "open"), door(1, "closed"), at(5)])
    assert signals == []  # the first reading: passages before it are unknown
    lax = dataclasses.replace(
        ctx, rules=dataclasses.replace(ctx.rules, door_forced=DoorForcedRule(require_grant=False))
    )
    timeline = [door(-5, "closed"), door(0, "open"), door(1, "closed"), door(2, "open", True)]
    _, signals = run(FORCED, lax, [*timeline, at(5)])
    assert [(s.active, s.at) for s in signals] == [(True, at(2))]


def test_door_forced_is_not_inferred_across_a_gap_in_the_gate_sequence_numbers(
    ctx: DeviceContext,
) -> None:
    """A passage refused at ingest (its seq missing) is likelier than a forced door."""

    def numbered(reading: ReadingView, seq: int) -> ReadingView:
        return dataclasses.replace(reading, payload={**reading.payload, "seq": seq})

    granted, opened, closed = through(0)
    heartbeat = ReadingView(
        id=uuid.uuid5(NS, "heartbeat"), kind="access_gate.heartbeat", at=at(3), payload={}
    )
    start = [numbered(granted, 10), numbered(opened, 11), numbered(closed, 12)]
    beat = numbered(heartbeat, 13)
    lost: list[Item] = [numbered(door(5, "open"), 15), numbered(door(5.2, "closed"), 16), at(6)]
    _, signals = run(FORCED, ctx, [*start, beat, *lost])
    assert signals == []  # seq 14 (the passage) never arrived
    kept: list[Item] = [numbered(door(5, "open"), 14), numbered(door(5.2, "closed"), 15), at(6)]
    _, signals = run(FORCED, ctx, [*start, beat, *kept])
    assert [(s.active, s.at) for s in signals] == [(True, at(5)), (False, at(5.2))]


# --- gate_denied_attempts ------------------------------------------------------------------------


def test_five_denied_attempts_within_five_minutes_raise_and_clear_when_the_window_passes(
    ctx: DeviceContext,
) -> None:
    denials = [
        passage(m, result="denied", persons=0, method="face" if m == 2 else "card", n=i)
        for i, m in enumerate([0, 1, 2, 2.5, 3.5])
    ]
    timeline = [*denials, passage(4), passage(20)]
    _, signals = run(DENIED, ctx, ticked(timeline))
    assert [(s.active, s.at) for s in signals] == [(True, at(3.5)), (False, at(5))]
    assert signals[0].explanation == (
        "5 denied attempts at gate-01-a within 3 min (10:00–10:03; ≥ 5 within 5 min): "
        "card ×4, face ×1, 1 distinct credential(s)"
    )
    assert signals[0].evidence == tuple(d.id for d in denials)
    events = alarm(DENIED, ctx, signals, at(30))
    assert kinds(events) == [(K.RAISED, at(3.5)), (K.CLEARED, at(5)), (K.RESOLVED, at(5))]
    # a sixth denial keeps it active until five minutes after the second
    _, signals = run(DENIED, ctx, [*denials, passage(4.5, "denied", 0, n=9), passage(20)])
    assert [(s.active, s.at) for s in signals] == [(True, at(3.5)), (False, at(6))]


def test_denials_spread_out_or_too_few_raise_nothing(ctx: DeviceContext) -> None:
    spread = [passage(m * 2, "denied", 0, n=m) for m in range(10)]  # one every 2 min
    few = [passage(m / 2, "denied", 0, n=m) for m in range(4)]
    for timeline in (spread, few):
        _, signals = run(DENIED, ctx, ticked(timeline))
        assert signals == []


# --- gate_tailgating ----------------------------------------------------------------------------


def test_more_persons_than_the_grant_allows_is_tailgating(ctx: DeviceContext) -> None:
    timeline = [
        passage(0, persons=3),  # a family: fine
        passage(1, persons=4),  # a fourth person on one card
        passage(2, persons=1),
        passage(3, persons=None),  # the gate did not count: not judged
        passage(4, "denied", persons=1),  # somebody went through on a denial
        passage(5, persons=2),
    ]
    _, signals = run(TAILGATE, ctx, timeline)
    assert [(s.active, s.at) for s in signals] == [
        (True, at(1)),
        (False, at(2)),
        (True, at(4)),
        (False, at(5)),
    ]
    assert signals[0].explanation == (
        "gate-01-a: 4 person(s) sensed through on 1 granted credential(s) at 10:01 (granted; "
        "allowed 3 = 3 per grant): tailgating suspected"
    )
    assert signals[2].values == {"persons_sensed": 1.0, "granted": 0, "allowed": 0}
    events = alarm(TAILGATE, ctx, signals, at(10))
    assert [e.kind for e in events].count(K.RAISED) == 2


# --- replay properties -----------------------------------------------------------------------


@pytest.mark.parametrize("detector", GATE_DETECTORS, ids=lambda d: d.name)
def test_state_json_round_trip_mid_timeline_gives_identical_signals(
    ctx: DeviceContext, detector: Detector[Any]
) -> None:
    timeline = ticked(
        [
            *normal_hour(),
            *[passage(60 + m / 3, "denied", 1, n=m) for m in range(6)],
            door(63, "open"),
            passage(64, persons=5),
            door(70, "closed"),
            door(71, "open", forced=True),
            door(72, "closed"),
        ],
        timedelta(minutes=2),
    )
    _, whole = run(detector, ctx, timeline)
    assert any(s.active for s in whole)
    for cut in range(1, len(timeline), 7):
        state, first = run(detector, ctx, timeline[:cut])
        _, rest = run(detector, ctx, timeline[cut:], json_roundtrip(detector, state))
        assert first + rest == whole


@st.composite
def gate_timelines(draw: st.DrawFn) -> list[ReadingView]:
    n = draw(st.integers(min_value=1, max_value=40))
    minutes, out = 0.0, []
    for i in range(n):
        minutes += draw(st.sampled_from([0, 0, 1 / 60, 0.2, 0.5, 1, 2, 4, 10]))
        if draw(st.booleans()):
            payload: dict[str, Any] = {"state": draw(st.sampled_from(["open", "closed"]))}
            if draw(st.integers(0, 9)) == 0:
                payload["forced"] = True
            kind = "access_gate.door"
        else:
            payload = {
                "direction": "in",
                "result": draw(st.sampled_from(["granted", "granted", "denied"])),
                "method": "card",
                "persons_sensed": draw(st.integers(0, 5)),
            }
            kind = "access_gate.passage"
        out.append(
            ReadingView(id=uuid.uuid5(NS, f"g{i}"), kind=kind, at=at(minutes), payload=payload)
        )
    return out


@PROPERTY
@given(timeline=gate_timelines(), data=st.data())
def test_redeliveries_ticks_and_batches_change_no_signal(
    ctx: DeviceContext, timeline: list[ReadingView], data: st.DataObject
) -> None:
    check_properties(GATE_DETECTORS, ctx, timeline, data)


# --- the shipped scenarios ------------------------------------------------------------------


def _gates(ref: Any) -> bool:
    return bool(ref.kind is DeviceKind.ACCESS_GATE)


@pytest.mark.parametrize(
    ("name", "detector", "delay"),
    [
        ("door-forced", "door_forced", timedelta(0)),
        ("door-held-open", "door_held_open", timedelta(minutes=3)),
    ],
)
def test_door_scenarios_are_detected_and_no_other_gate_raises(
    name: str, detector: str, delay: timedelta
) -> None:
    result, spans = scenario_spans(name, _gates)
    (label,) = result.labels
    assert label.detector == detector
    assert [(s.detector, s.device) for s in spans] == [(detector, label.device)]
    (span,) = spans
    assert span.start == label.start + delay
    assert span.end == label.end
    assert result.device_days[detector] > 2  # every gate of the estate was watched
