"""Through the real ingest pipeline: clean traffic is all accepted; imperfections are
refused, flagged or absorbed exactly as the simulator says they should be."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from devices.registry import Registry
from ingest.pipeline import Judgement, Pipeline
from processors.detector import ReadingView
from simulators.estate import EstateSimulator
from simulators.model import Imperfections, Message
from tests.simulators.conftest import START, body
from tests.simulators.detecting import SALT


def judge_all(registry: Registry, messages: list[Message]) -> list[tuple[Message, Judgement]]:
    pipeline = Pipeline(registry.index(), SALT)
    return [(m, pipeline.judge(m.topic, m.payload, m.at)) for m in messages]


def test_a_whole_clean_day_is_accepted_without_a_single_reject(
    registry: Registry, day: list[Message]
) -> None:
    judged = judge_all(registry, day)
    rejected = [(m.topic, j.rejected[0].payload["detail"]) for m, j in judged if j.rejected]
    assert rejected == []
    readings = [r for _, j in judged for r in j.readings]
    assert len(readings) == len(day) > 10_000
    flags = {str(f) for r in readings for f in ReadingView.from_envelope(r).flags}
    assert flags == {"units_normalised"}  # Wh meters and fraction bins; every time is the device's
    assert len({r.id for r in readings}) == len(readings)  # no reading twice


def run(registry: Registry, **rates: float) -> EstateSimulator:
    return EstateSimulator(
        registry,
        seed=9,
        start=START,
        end=START + timedelta(hours=6),
        imperfections=Imperfections(**rates),
    )


@pytest.fixture(scope="module")
def imperfect(registry: Registry) -> tuple[EstateSimulator, list[tuple[Message, Judgement]]]:
    sim = run(
        registry, batching=0.3, duplicates=0.03, clock_skew=0.1, offline=0.3, low_battery=0.3,
        malformed=0.02,
    )  # fmt: skip
    messages = list(sim.messages())
    return sim, judge_all(registry, messages)


def test_ingest_refuses_exactly_what_the_simulator_broke(
    imperfect: tuple[EstateSimulator, list[tuple[Message, Judgement]]],
) -> None:
    sim, judged = imperfect
    reasons = Counter(r.payload["reason"] for _, j in judged for r in j.rejected)
    assert reasons == sim.stats.expected_rejects
    assert set(reasons) >= {"clock_skew", "schema", "out_of_range", "invalid_json"}
    assert all(r.payload["detail"] for _, j in judged for r in j.rejected)


def test_retries_are_the_same_readings_and_the_log_ids_absorb_them(registry: Registry) -> None:
    plain = judge_all(registry, list(run(registry, batching=0.3).messages()))
    sim = run(registry, batching=0.3, duplicates=0.05)
    retried = judge_all(registry, list(sim.messages()))
    ids = Counter(r.id for _, j in retried for r in j.readings)
    assert sim.stats.duplicates > 10
    assert set(ids) == {r.id for _, j in plain for r in j.readings}
    assert sum(ids.values()) > len(ids) and max(ids.values()) == 2


def test_batched_devices_speak_through_their_gateway(
    imperfect: tuple[EstateSimulator, list[tuple[Message, Judgement]]],
) -> None:
    sim, judged = imperfect
    batches = [(m, j) for m, j in judged if m.topic.endswith("/batch")]
    assert len({m for m, _ in batches}) == sim.stats.batches > 0  # some were sent twice
    sizes = [len(body(m)["readings"]) for m, _ in batches]
    assert max(sizes) > 1
    for m, j in batches:
        assert len(j.readings) + len(j.rejected) == len(body(m)["readings"])


def test_clocks_ahead_are_refused_and_clocks_behind_are_labelled(
    registry: Registry, imperfect: tuple[EstateSimulator, list[tuple[Message, Judgement]]]
) -> None:
    sim, judged = imperfect
    skewed = [r for _, j in judged for r in j.rejected if r.payload["reason"] == "clock_skew"]
    assert skewed
    behind = {label.device for label in sim.ground_truth if label.detector == "clock_skew"}
    assert behind
    for _, j in judged:
        for r in j.readings:
            if r.device in behind:
                assert r.received_at - r.occurred_at > timedelta(minutes=5)


def test_offline_periods_are_silent_and_labelled(
    imperfect: tuple[EstateSimulator, list[tuple[Message, Judgement]]],
) -> None:
    sim, judged = imperfect
    periods = [lab for lab in sim.ground_truth if lab.detector == "device_offline"]
    assert periods
    for label in periods:
        assert label.source == "imperfection" and label.end > label.start
        heard = [
            m.at
            for m, j in judged
            for r in j.readings
            if r.device == label.device and label.start <= m.at < label.end
        ]
        assert heard == [], label


def test_low_batteries_are_reported_low_and_labelled(
    imperfect: tuple[EstateSimulator, list[tuple[Message, Judgement]]],
) -> None:
    sim, judged = imperfect
    low = {lab.device for lab in sim.ground_truth if lab.detector == "low_battery"}
    assert low
    levels = [
        ReadingView.from_envelope(r).number("battery_pct")
        for _, j in judged
        for r in j.readings
        if r.device in low and "battery_pct" in r.payload
    ]
    assert None not in levels
    assert levels and max(x or 0.0 for x in levels) <= 18


def test_imperfections_off_label_nothing(registry: Registry) -> None:
    assert run(registry).ground_truth == []
