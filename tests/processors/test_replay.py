"""What-if replay, alert spans, comparison and scoring against labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.registry import RegistryIndex
from eventlog.envelope import Envelope
from processors.detectors import ALL_DETECTORS
from processors.replay import AlertSpan, alert_spans, compare, difference_table, replay_readings
from processors.rules import load_rules
from processors.scoring import score, score_table
from simulators.model import Label
from tests.processors.traffic import envelopes, load_index, write_registry

T = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RegistryIndex:
    return load_index(write_registry(tmp_path_factory.mktemp("registry")))


@pytest.fixture(scope="module")
def traffic(index: RegistryIndex) -> list[Envelope]:
    return envelopes(index, hours=30)


def test_a_lower_bin_threshold_adds_overflow_alerts(
    index: RegistryIndex, traffic: list[Envelope], tmp_path: Path
) -> None:
    lower = tmp_path / "rules.yaml"
    lower.write_text(
        'version: "2026.11.1-what-if"\n'
        "profiles:\n  waste_bin:\n    bin_overflow: {high_pct: 40, low_pct: 10}\n",
        encoding="utf-8",
    )
    before = alert_spans(replay_readings(traffic, index, load_rules(), ALL_DETECTORS))
    after = alert_spans(replay_readings(traffic, index, load_rules(lower), ALL_DETECTORS))
    rows = {r.detector: r for r in compare(before, after)}
    overflow = rows["bin_overflow"]
    assert overflow.after > overflow.before  # the slowly filling bin now counts as full
    assert overflow.added and not overflow.removed
    assert all(s.device.startswith("bin-") for s in overflow.added)
    untouched = rows["device_offline"]
    assert untouched.before == untouched.after and not untouched.added
    table = difference_table(list(rows.values()))
    assert "bin_overflow" in table and "added" in table


def test_replay_until_fires_the_timers_due_by_then(
    index: RegistryIndex, traffic: list[Envelope]
) -> None:
    end = traffic[-1].occurred_at
    short = alert_spans(replay_readings(traffic, index, load_rules(), ALL_DETECTORS))
    longer = alert_spans(
        replay_readings(traffic, index, load_rules(), ALL_DETECTORS, until=end + timedelta(hours=6))
    )
    offline = [s for s in longer if s.condition == "device_offline"]
    # every device falls silent at the end of the traffic: 6 h later all are offline
    assert len(offline) > len([s for s in short if s.condition == "device_offline"])


def span(device: str, detector: str, start_h: float, end_h: float | None = None) -> AlertSpan:
    return AlertSpan(
        alert_id=f"{device}-{detector}-{start_h}",
        estate="e",
        device=device,
        condition=detector,
        detector=detector,
        severity="warning",
        start=T + timedelta(hours=start_h),
        end=None if end_h is None else T + timedelta(hours=end_h),
        explanation="",
    )


def test_scores_count_hits_misses_delays_and_false_alarms() -> None:
    labels = [
        Label("water_leak", "leak", "e", "m1", T, T + timedelta(hours=10)),
        Label("water_leak", "leak", "e", "m2", T, T + timedelta(hours=10)),
        Label("water_leak", "leak", "e", "m3", T + timedelta(hours=5), T + timedelta(hours=10)),
    ]
    spans = [
        span("m1", "leak", 2),  # detects m1 after 2 h
        span("m1", "leak", 3),  # a second alert on the same label: still a true alert
        span("m3", "leak", 9),  # detects m3 after 4 h
        span("m4", "leak", 1),  # no label: false alarm
        span("m2", "leak", 30),  # far too late (beyond the 6 h grace): false alarm, m2 missed
    ]
    (s,) = score(labels, spans, {"leak": 500.0})
    assert (s.labels, s.detected, s.alerts, s.true_alerts, s.false_alarms) == (3, 2, 5, 3, 2)
    assert s.recall == pytest.approx(2 / 3)
    assert s.precision == pytest.approx(3 / 5)
    assert s.delay_median_s == pytest.approx(3 * 3600)
    assert s.delay_p95_s == pytest.approx(4 * 3600)
    assert s.false_alarms_per_1000_device_days == pytest.approx(4.0)
    assert "leak" in score_table([s]) and "67 %" in score_table([s])


def test_a_detector_with_nothing_to_find_scores_none_not_zero() -> None:
    (s,) = score([], [], {"burst": 100.0})
    assert s.recall is None and s.precision is None and s.delay_median_s is None
    assert s.false_alarms_per_1000_device_days == 0.0
    assert s.to_json()["recall"] is None


def test_overlap_decides_sameness_in_compare() -> None:
    before = [span("m1", "leak", 0, 5)]
    after = [span("m1", "leak", 4, 8), span("m1", "leak", 6, 7)]
    (row,) = compare(before, after)
    assert (row.before, row.after) == (1, 2)
    assert [s.start for s in row.added] == [T + timedelta(hours=6)]
    assert row.removed == []
