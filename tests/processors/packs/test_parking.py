"""The parking pack: hand-built bay timelines through each detector and the alarm machine,
state round-trips, Hypothesis properties (redeliveries, tick placement and batching change
no signal) and the shipped scenarios through ingest and the engine.

Devices come from the small demo estate of the simulator tests (24 households, seed 1):
``p-S1-001`` is a fire-lane spot, ``p-S1-002`` a visitor bay, ``p-B1-A-018`` an EV bay
linked to connector 1 of ``evc-001``. Times are minutes after ``T0``, 10:00 in Shanghai
(the estate's zone). The helpers here (:func:`run`, :func:`alarm`, :func:`kinds`,
:func:`ticked`, :func:`check_properties`) are shared with ``test_gates.py``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.catalogue import DeviceKind
from devices.demo_estate import generate_registry
from devices.registry import Registry, RegistryIndex
from eventlog.envelope import Envelope
from ingest.pipeline import Pipeline
from processors.alarm import AlarmBook, AlertEvent, AlertEventKind, Severity, Signal
from processors.alarm import apply_signal as alarm_signal
from processors.alarm import tick as alarm_tick
from processors.detector import Detector, DeviceContext, ReadingView, context_for
from processors.detectors import ALL_DETECTORS
from processors.packs.gates import GATE_DETECTORS
from processors.packs.parking import (
    PARKING_DETECTORS,
    EvBayBlocked,
    FireLaneBlocked,
    VisitorOverstay,
)
from processors.rules import load_rules
from simulators.evaluate import run as evaluate
from simulators.scenario import load_scenario
from tests.processors.packs.roundtrip import fold, json_roundtrip

K = AlertEventKind
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=TZ)
NS = uuid.UUID("0d6c3a4e-5f3b-4c1e-9a51-7d2b8f6a1c20")
FIRE, VISITOR, EV_BAY = FireLaneBlocked(), VisitorOverstay(), EvBayBlocked()
CHARGER = "evc-001"

Item = ReadingView | datetime


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def bay(minutes: float, occupied: bool, changed: float | None = None) -> ReadingView:
    payload: dict[str, Any] = {"occupied": occupied}
    if changed is not None:
        payload["changed_at"] = at(changed).isoformat()
    return ReadingView(
        id=uuid.uuid5(NS, f"bay:{minutes}:{occupied}"),
        kind="parking_sensor.occupancy",
        at=at(minutes),
        payload=payload,
    )


def connector(minutes: float, status: str, power_kw: float = 0.0) -> ReadingView:
    return ReadingView(
        id=uuid.uuid5(NS, f"connector:{minutes}:{status}"),
        kind="ev_charger.connector",
        at=at(minutes),
        payload={"connector": 1, "status": status, "power_kw": power_kw},
        device=CHARGER,
    )


# --- shared helpers ------------------------------------------------------------------------


def small_index() -> RegistryIndex:
    return Registry.model_validate(generate_registry(24, seed=1)).index()


def contexts(index: RegistryIndex) -> dict[str, DeviceContext]:
    rules = load_rules()
    return {ref.device: context_for(index, ref, rules) for ref in index.devices_of("lvcheng")}


@pytest.fixture(scope="module")
def ctxs() -> dict[str, DeviceContext]:
    return contexts(small_index())


def run(
    detector: Detector[Any], ctx: DeviceContext, items: Iterable[Item], state: Any = None
) -> tuple[Any, list[Signal]]:
    """Fold readings (step) and datetimes (tick) through ``detector`` (checked)."""
    return fold(detector, ctx, items, state)


def alarm(
    detector: Detector[Any], ctx: DeviceContext, signals: Sequence[Signal], until: datetime
) -> list[AlertEvent]:
    """Alert lifecycle events of ``signals`` under the detector's policy, ticked to ``until``."""
    book, events = AlarmBook(), []
    policy = detector.policy(ctx)
    for s in signals:
        book, new = alarm_signal(book, s, policy)
        events.extend(new)
    book, new = alarm_tick(book, until)
    return events + new


def kinds(events: Iterable[AlertEvent]) -> list[tuple[AlertEventKind, datetime]]:
    return [(e.kind, e.at) for e in events]


def ticked(timeline: Sequence[ReadingView], every: timedelta = timedelta(minutes=1)) -> list[Item]:
    """``timeline`` with a tick every ``every`` of event time up to each reading (a runner's
    grid: a tick at ``G`` comes before every reading at or after ``G``)."""
    items: list[Item] = []
    now = timeline[0].at
    for r in timeline:
        while now <= r.at:
            items.append(now)
            now += every
        items.append(r)
    return items


def check_properties(
    detectors: Sequence[Detector[Any]],
    ctx: DeviceContext,
    timeline: list[ReadingView],
    data: st.DataObject,
) -> None:
    """Redeliveries (now or later) change nothing; ticks anywhere up to the next reading
    and cutting the stream into JSON-restored batches change no signal."""
    delivered: list[Item] = []
    for i, r in enumerate(timeline):
        delivered.append(r)
        if data.draw(st.booleans(), label=f"again {i}"):
            back = data.draw(st.integers(min_value=0, max_value=i), label=f"which {i}")
            delivered.append(timeline[back])
    items: list[Item] = []
    previous = timeline[0].at - timedelta(minutes=1) if timeline else T0
    for i, r in enumerate(timeline):
        gap = (r.at - previous).total_seconds()
        ticks = data.draw(
            st.lists(st.floats(min_value=0, max_value=1), max_size=3), label=f"ticks {i}"
        )
        items += [previous + timedelta(seconds=gap * f) for f in sorted(ticks)]
        items.append(r)
        previous = r.at
    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=3), label="cuts"))
    # a tick at the last reading's time ends both runs: a due time that a tick reported
    # before a reading of a kind the detector ignores is reported by that tick in both
    end: list[Item] = [timeline[-1].at] if timeline else []
    items += end
    for detector in detectors:
        state, plain = run(detector, ctx, [*timeline, *end])
        state_twice, twice = run(detector, ctx, [*delivered, *end])
        assert twice == plain
        assert state_twice == state
        state, batched, start = detector.initial(ctx), [], 0
        for cut in [*cuts, len(items)]:
            state, signals = run(detector, ctx, items[start:cut], state)
            state, start = json_roundtrip(detector, state), cut
            batched += signals
        # ticks may report a due time before the next reading instead of that reading
        # doing it: the same signals, in the same order
        assert batched == plain


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def scenario_spans(name: str, only: Callable[[Any], bool]) -> tuple[Any, list[Any]]:
    """A shipped scenario on the small estate, simulating the devices ``only`` selects,
    through ingest and the engine with the parking and gate packs."""
    scenario = load_scenario(name).with_registry(
        Registry.model_validate(generate_registry(24, seed=1))
    )
    sim = scenario.simulator(only=only)
    result = evaluate(sim, load_rules(), name, detectors=(*PARKING_DETECTORS, *GATE_DETECTORS))
    assert not result.rejected
    return result, result.spans


# --- wiring -------------------------------------------------------------------------------


def test_each_detector_watches_its_tagged_bays_only(ctxs: dict[str, DeviceContext]) -> None:
    fire, visitor, ev = ctxs["p-S1-001"], ctxs["p-S1-002"], ctxs["p-B1-A-018"]
    assert [d.applies_to(fire) for d in PARKING_DETECTORS] == [True, False, False]
    assert [d.applies_to(visitor) for d in PARKING_DETECTORS] == [False, True, False]
    assert [d.applies_to(ev) for d in PARKING_DETECTORS] == [False, False, True]
    gate = ctxs["gate-01-a"]
    assert not any(d.applies_to(gate) for d in PARKING_DETECTORS)
    wrong_kind = dataclasses.replace(fire, kind=DeviceKind.WASTE_BIN)
    assert not FIRE.applies_to(wrong_kind)
    assert all(d in ALL_DETECTORS for d in PARKING_DETECTORS)


def test_readings_of_other_kinds_or_without_occupancy_change_nothing(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["p-S1-001"]
    heartbeat = ReadingView(
        id=uuid.uuid4(), kind="parking_sensor.heartbeat", at=at(0), payload={"battery_pct": 80}
    )
    garbled = ReadingView(
        id=uuid.uuid4(), kind="parking_sensor.occupancy", at=at(1), payload={"occupied": "yes"}
    )
    state, signals = run(FIRE, ctx, [bay(-5, True), heartbeat, garbled, at(30)])
    assert [s.at for s in signals] == [at(-2)]  # only the occupancy counted
    assert state.since == at(-5)


# --- fire_lane_blocked --------------------------------------------------------------------


def test_fire_lane_blocked_is_critical_after_three_minutes_and_clears_when_free(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["p-S1-001"]
    timeline = [bay(0, True, changed=-0.5), bay(60, True, changed=-0.5), bay(62, False)]
    _, signals = run(FIRE, ctx, ticked(timeline))
    assert [(s.active, s.at) for s in signals] == [(True, at(3)), (False, at(62))]
    raised, cleared = signals
    assert raised.severity is Severity.CRITICAL
    assert raised.explanation == (
        "fire lane blocked: p-S1-001 occupied since 10:00 (sensor: occupied since 09:59), "
        "for 3 min (≥ 3 min); the lane must stay clear"
    )
    assert raised.evidence == (timeline[0].id,)
    assert raised.values == {"held_s": 180.0, "limit_s": 180.0}
    assert raised.rule_version == "2026.11.1"
    assert cleared.explanation == "p-S1-001 free at 11:02 after 1 h 2 min occupied"
    assert cleared.values["held_s"] == 62 * 60
    events = alarm(FIRE, ctx, signals, at(120))
    assert kinds(events) == [(K.RAISED, at(3)), (K.CLEARED, at(62))]  # not auto-resolved


def test_fire_lane_stop_shorter_than_the_limit_raises_nothing(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["p-S1-001"]
    timeline = [bay(0, False), bay(10, True), bay(12.5, False), bay(20, True), bay(22, False)]
    _, signals = run(FIRE, ctx, ticked(timeline, timedelta(seconds=20)))
    assert signals == []
    # freed exactly at the due time: the tick at that instant comes first, and waits
    _, signals = run(FIRE, ctx, [bay(0, True), at(3), bay(3, False), at(4)])
    assert signals == []


def test_fire_lane_due_time_comes_from_a_tick_or_the_next_reading(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["p-S1-001"]
    state, signals = run(FIRE, ctx, [bay(0, True), at(2.99), at(3)])
    assert signals == []  # held for 3:00 exactly: not yet longer than the limit
    _, by_tick = run(FIRE, ctx, [at(3.01)], state)
    _, by_reading = run(FIRE, ctx, [bay(60, True)], state)
    assert by_tick == by_reading and [s.at for s in by_tick] == [at(3)]
    # a zero limit raises at the reading itself
    zero = dataclasses.replace(
        ctx,
        rules=dataclasses.replace(
            ctx.rules,
            fire_lane_blocked=ctx.rules.fire_lane_blocked.model_copy(update={"minutes": 0}),
        ),
    )
    _, signals = run(FIRE, zero, [bay(0, True)])
    assert [(s.active, s.at) for s in signals] == [(True, at(0))]


# --- visitor_overstay -----------------------------------------------------------------------


def test_visitor_overstay_after_the_limit_is_info_and_resolves_when_the_car_leaves(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["p-S1-002"]
    timeline = [bay(0, True), *[bay(m, True) for m in range(60, 540, 60)], bay(530, False)]
    _, signals = run(VISITOR, ctx, timeline)
    assert [(s.active, s.at) for s in signals] == [(True, at(480)), (False, at(530))]
    assert signals[0].severity is Severity.INFO
    assert signals[0].explanation == (
        "visitor bay p-S1-002 occupied since 10:00, for 8 h (limit 8 h)"
    )
    events = alarm(VISITOR, ctx, signals, at(600))
    assert kinds(events) == [(K.RAISED, at(480)), (K.CLEARED, at(530)), (K.RESOLVED, at(530))]
    # a six-hour visit is within the limit
    _, signals = run(VISITOR, ctx, ticked([bay(0, True), bay(360, False)]))
    assert signals == []


# --- ev_bay_blocked ----------------------------------------------------------------------------


def test_ev_bay_occupied_without_a_session_raises_after_the_limit(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["p-B1-A-018"]
    timeline = [
        connector(-30, "available"),
        bay(0, True),
        connector(10, "available"),
        connector(20, "available"),
        bay(90, False),
    ]
    _, signals = run(EV_BAY, ctx, ticked(timeline))
    assert [(s.active, s.at) for s in signals] == [(True, at(15)), (False, at(90))]
    assert signals[0].explanation == (
        "EV bay p-B1-A-018 occupied with no charging session for 15 min (≥ 15 min) since "
        "10:00; connector evc-001 available"
    )
    assert signals[1].explanation == "EV bay p-B1-A-018 free at 11:30 after 1 h 30 min blocked"
    events = alarm(EV_BAY, ctx, signals, at(120))
    assert kinds(events) == [(K.RAISED, at(15)), (K.CLEARED, at(90)), (K.RESOLVED, at(90))]


def test_ev_bay_a_car_that_plugs_in_and_leaves_after_unplugging_is_fine(
    ctxs: dict[str, DeviceContext],
) -> None:
    ctx = ctxs["p-B1-A-018"]
    timeline = [
        connector(-30, "available"),
        bay(0, True),  # parks...
        connector(4, "preparing"),  # ...plugs in within minutes
        connector(5, "charging", 7.0),
        connector(200, "suspended_ev"),  # done: the charging pack's overstay, not this
        connector(400, "finishing"),
        connector(401, "available"),  # unplugged
        bay(402, False),  # and gone
    ]
    _, signals = run(EV_BAY, ctx, ticked(timeline))
    assert signals == []


def test_ev_bay_a_session_starting_clears_the_condition(ctxs: dict[str, DeviceContext]) -> None:
    ctx = ctxs["p-B1-A-018"]
    timeline = [connector(-1, "available"), bay(0, True), connector(40, "charging", 6.9)]
    _, signals = run(EV_BAY, ctx, timeline)
    assert [(s.active, s.at) for s in signals] == [(True, at(15)), (False, at(40))]
    assert signals[1].explanation == (
        "EV bay p-B1-A-018: charging session started at 10:40 (charging) after 40 min blocked"
    )


def test_ev_bay_with_an_unknown_connector_status_is_never_judged(
    ctxs: dict[str, DeviceContext],
) -> None:
    """What the bay sees until the runner routes its connector's readings to it."""
    ctx = ctxs["p-B1-A-018"]
    state, signals = run(EV_BAY, ctx, ticked([bay(0, True), bay(600, True)]))
    assert signals == [] and state.since is None
    # the status arrives: the condition starts then, not back at the occupancy
    _, signals = run(EV_BAY, ctx, [connector(601, "available"), at(700)], state)
    assert [(s.active, s.at) for s in signals] == [(True, at(616))]


# --- replay properties ----------------------------------------------------------------------


def mixed_day() -> list[ReadingView]:
    return [
        connector(-5, "available"),
        bay(0, True),
        connector(3, "charging", 7),
        connector(60, "available"),
        bay(70, True),
        bay(100, False),
        bay(130, True),
        bay(131, False),
        bay(200, True),
        bay(500, True),
        bay(800, False),
    ]


@pytest.mark.parametrize("detector", PARKING_DETECTORS, ids=lambda d: d.name)
def test_state_json_round_trip_mid_timeline_gives_identical_signals(
    ctxs: dict[str, DeviceContext], detector: Detector[Any]
) -> None:
    ctx = ctxs["p-B1-A-018"]  # the tag check is applies_to's: every detector can run here
    timeline = ticked(mixed_day(), timedelta(minutes=7))
    _, whole = run(detector, ctx, timeline)
    assert any(s.active for s in whole)
    for cut in range(1, len(timeline), 5):
        state, first = run(detector, ctx, timeline[:cut])
        _, rest = run(detector, ctx, timeline[cut:], json_roundtrip(detector, state))
        assert first + rest == whole


@st.composite
def bay_timelines(draw: st.DrawFn) -> list[ReadingView]:
    n = draw(st.integers(min_value=1, max_value=40))
    minutes, out = 0.0, []
    statuses = ["available", "preparing", "charging", "suspended_ev", "faulted", "available"]
    for i in range(n):
        minutes += draw(st.sampled_from([0, 0.5, 1, 2, 3, 10, 15, 30, 60, 300]))
        if draw(st.booleans()):
            payload: dict[str, Any] = {"occupied": draw(st.booleans())}
            kind, device = "parking_sensor.occupancy", ""
        else:
            payload = {"connector": 1, "status": draw(st.sampled_from(statuses)), "power_kw": 0}
            kind, device = "ev_charger.connector", CHARGER
        out.append(
            ReadingView(
                id=uuid.uuid5(NS, f"r{i}"),
                kind=kind,
                at=at(minutes),
                payload=payload,
                device=device,
            )
        )
    return out


@PROPERTY
@given(timeline=bay_timelines(), data=st.data())
def test_redeliveries_ticks_and_batches_change_no_signal(
    ctxs: dict[str, DeviceContext], timeline: list[ReadingView], data: st.DataObject
) -> None:
    check_properties(PARKING_DETECTORS, ctxs["p-B1-A-018"], timeline, data)


# --- the shipped scenarios ------------------------------------------------------------------


def test_fire_lane_scenario_is_detected_and_no_bay_or_gate_raises_anything_else() -> None:
    def only(ref: Any) -> bool:
        return bool(ref.kind in (DeviceKind.PARKING_SENSOR, DeviceKind.ACCESS_GATE))

    result, spans = scenario_spans("fire-lane-blocked", only)
    (label,) = result.labels
    assert (label.detector, label.device) == ("fire_lane_blocked", "p-S1-001")
    assert [(s.detector, s.device) for s in spans] == [("fire_lane_blocked", "p-S1-001")]
    (span,) = spans
    assert span.start == label.start + timedelta(minutes=3)
    assert span.end == label.end
    assert result.readings > 1000  # every bay and gate of the estate for 12 h


def test_ev_bay_blocked_scenario_with_the_connector_routed_to_the_bay() -> None:
    """The routing the runner is to do (a ``bay`` scope), by hand: the bay's readings and
    its linked connector's, through the real ingest, in device-time order."""
    name = "ev-bay-blocked"
    scenario = load_scenario(name).with_registry(
        Registry.model_validate(generate_registry(24, seed=1))
    )
    (injection,) = scenario.injections
    sim = scenario.simulator(
        only=lambda ref: ref.kind in (DeviceKind.PARKING_SENSOR, DeviceKind.EV_CHARGER)
    )
    index = sim.index
    pipeline = Pipeline(index, b"parking-test-salt-not-secret")
    envelopes: dict[uuid.UUID, Envelope] = {}
    for message in sim.messages():
        judged = pipeline.judge(message.topic, message.payload, message.at)
        envelopes.update((e.id, e) for e in judged.readings)
    rules = load_rules()
    labels = sim.ground_truth
    assert {(lab.detector, lab.device) for lab in labels} == {("ev_bay_blocked", injection.device)}
    raised: dict[str, list[AlertEvent]] = {}
    for ref in index.devices_of("lvcheng"):
        link = ref.spec.connector_ref
        if link is None:
            continue
        ctx = context_for(index, ref, rules)
        assert EV_BAY.applies_to(ctx)
        charger, number = link
        mine = sorted(
            (
                e
                for e in envelopes.values()
                if e.device == ref.device
                or (
                    e.device == charger
                    and e.kind == "ev_charger.connector"
                    and e.payload.get("connector") == number
                )
            ),
            key=lambda e: (e.occurred_at, e.id.bytes),
        )
        views = [ReadingView.from_envelope(e) for e in mine]
        assert any(v.device == charger for v in views) and any(
            v.device == ref.device for v in views
        )
        _, signals = run(EV_BAY, ctx, ticked(views))
        events = alarm(EV_BAY, ctx, signals, sim.end)
        raised[ref.device] = [e for e in events if e.kind is K.RAISED]
    (label,) = labels
    assert set(raised) == {"p-B1-A-018", "p-B1-A-019"}
    assert [e.at for e in raised[label.device]] == [label.start + timedelta(minutes=15)]
    assert "connector evc-001 available" in raised[label.device][0].explanation
    others = [e for device, events in raised.items() if device != label.device for e in events]
    assert others == []  # a day of normal charging at the other bay: no alarm
