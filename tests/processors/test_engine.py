"""The engine and the runner: event-time order, lateness, batching, restarts, replay."""

from __future__ import annotations

import itertools
import random
import tempfile
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.registry import RegistryIndex
from eventlog.envelope import Envelope, Stream
from eventlog.sqlite import SqliteEventLog
from processors.detector import DeviceContext
from processors.detectors import ALL_DETECTORS
from processors.engine import COMMAND_REJECTED, NOT_JUDGED, Engine, EngineConfig
from processors.packs.health import DeviceOffline, OfflineState
from processors.projections import Projections
from processors.rules import load_rules
from processors.runner import COMMANDS, DetectorRunner
from processors.statestore import StateStore
from tests.processors.traffic import envelopes, load_index, write_registry

NOW = datetime(2026, 11, 22, tzinfo=UTC)
LATENESS = timedelta(minutes=2)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RegistryIndex:
    return load_index(write_registry(tmp_path_factory.mktemp("registry")))


@pytest.fixture(scope="module")
def traffic(index: RegistryIndex) -> list[Envelope]:
    return envelopes(index, hours=30)


def make_engine(index: RegistryIndex) -> Engine:
    return Engine(index, load_rules(), ALL_DETECTORS, EngineConfig(lateness=LATENESS))


def run(index: RegistryIndex, batches: list[list[Envelope]]) -> list[Envelope]:
    engine = make_engine(index)
    out: list[Envelope] = []
    for batch in batches:
        out += engine.push(batch, NOW)
    return out + engine.flush(NOW)


def ids(events: list[Envelope]) -> list[tuple[str, str]]:
    return sorted((str(e.id), e.kind) for e in events)


def split(items: list[Envelope], cuts: list[int]) -> list[list[Envelope]]:
    points = sorted({c % (len(items) + 1) for c in cuts})
    bounds = [0, *points, len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


# --- what the packs find in the traffic -------------------------------------------------------


def test_traffic_raises_what_it_holds(index: RegistryIndex, traffic: list[Envelope]) -> None:
    events = run(index, [traffic])
    raised = Counter(e.payload["condition"] for e in events if e.kind == "AlertRaised")
    # The overflowing bin, the leaking household, the failing batteries, the silent meter.
    assert raised["bin_overflow"] >= 1
    assert raised["device_offline"] == 1
    assert raised["low_battery"] >= 1
    assert raised["water_continuous_flow"] >= 1, raised
    for event in events:
        if event.kind == "AlertRaised":
            assert event.payload["rule_version"], event
            assert event.payload["detector"] == event.payload["condition"]
            assert event.payload["explanation"]
    assert not [e for e in events if e.kind == NOT_JUDGED]


def test_every_event_explains_itself_with_evidence(
    index: RegistryIndex, traffic: list[Envelope]
) -> None:
    events = run(index, [traffic])
    reading_ids = {str(e.id) for e in traffic}
    overflow = next(
        e for e in events if e.kind == "AlertRaised" and e.payload["condition"] == "bin_overflow"
    )
    assert overflow.payload["evidence"]
    assert set(overflow.payload["evidence"]) <= reading_ids
    assert any(ch.isdigit() for ch in str(overflow.payload["explanation"]))


# --- properties -------------------------------------------------------------------------------


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_batching_does_not_change_events(
    index: RegistryIndex, traffic: list[Envelope], cuts: list[int]
) -> None:
    assert ids(run(index, split(traffic, cuts))) == ids(run(index, [traffic]))


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_shuffling_within_the_allowed_lateness_does_not_change_events(
    index: RegistryIndex, traffic: list[Envelope], seed: int
) -> None:
    rng = random.Random(seed)
    span = LATENESS.total_seconds()
    arrival = sorted(traffic, key=lambda e: e.occurred_at + timedelta(seconds=rng.random() * span))
    assert arrival != traffic
    assert ids(run(index, [arrival])) == ids(run(index, [traffic]))


def test_readings_later_than_the_allowed_lateness_are_flagged_not_dropped(
    index: RegistryIndex, traffic: list[Envelope]
) -> None:
    held_back = traffic[100]
    rest = traffic[:100] + traffic[101:]
    events = run(index, [rest, [held_back]])
    flagged = [e for e in events if e.kind == NOT_JUDGED]
    assert len(flagged) == 1
    assert flagged[0].payload["reading_id"] == str(held_back.id)
    assert flagged[0].payload["reason"] == "late"
    assert "allowed lateness" in str(flagged[0].payload["detail"])


def test_unregistered_device_is_flagged(index: RegistryIndex, traffic: list[Envelope]) -> None:
    stranger = traffic[0].model_copy(update={"device": "not-in-registry"})
    events = run(index, [[stranger, *traffic[1:]]])
    flagged = [e for e in events if e.kind == NOT_JUDGED]
    assert [e.payload["reason"] for e in flagged] == ["unregistered"]


def _log_run(
    index: RegistryIndex, feed: list[list[Envelope]], directory: Path, snapshot_every_s: float
) -> set[str]:
    """Append ``feed`` batch by batch, polling a runner after each; the event ids."""
    with SqliteEventLog(directory / "log.sqlite") as log:
        store = StateStore(directory / "state.sqlite")
        runner = DetectorRunner(
            log, store, lambda: make_engine(index), batch=97, snapshot_every_s=snapshot_every_s
        )
        runner.load()
        for batch in feed:
            log.append(Stream.READINGS, batch)
            runner.catch_up()
        runner.finish()
        runner.save()
        store.close()
        return {str(r.envelope.id) for r in log.iterate(Stream.EVENTS)}


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    dupes=st.lists(st.integers(min_value=0), min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=0), max_size=5),
)
def test_duplicated_readings_change_nothing(
    index: RegistryIndex, traffic: list[Envelope], dupes: list[int], cuts: list[int]
) -> None:
    sample = traffic[:600]
    copies: dict[int, list[Envelope]] = {}  # position -> copies sent again after it
    for d in dupes:
        i = d % len(sample)
        copies.setdefault(min(len(sample) - 1, i + d % 7), []).append(sample[i])
    with_dupes = [e for i, original in enumerate(sample) for e in (original, *copies.get(i, []))]
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        plain = _log_run(index, [sample], Path(a), 0.0)
        duplicated = _log_run(index, split(with_dupes, cuts), Path(b), 0.0)
    assert duplicated == plain


def test_replay_from_zero_gives_the_live_run_event_ids(
    index: RegistryIndex, traffic: list[Envelope], tmp_path: Path
) -> None:
    live = _log_run(
        index, split(traffic, list(range(0, len(traffic), 250))), tmp_path / "live", 0.0
    )
    (tmp_path / "live").mkdir(exist_ok=True)
    with SqliteEventLog(tmp_path / "live" / "log.sqlite") as log:
        replayed_store = StateStore(tmp_path / "replay-state.sqlite")
        replay = DetectorRunner(log, replayed_store, lambda: make_engine(index))
        engine_events: list[Envelope] = []
        for record in log.iterate(Stream.READINGS):
            engine_events += replay.engine(0).push([record.envelope], NOW)
        engine_events += replay.engine(0).flush(NOW)
        replayed_store.close()
    assert {str(e.id) for e in engine_events} == live
    assert len(live) >= 10


def test_restart_from_a_snapshot_mid_stream_changes_nothing(
    index: RegistryIndex, traffic: list[Envelope], tmp_path: Path
) -> None:
    """A runner that stops (snapshot at an arbitrary point) and a new one that resumes."""
    whole = _log_run(index, [traffic], tmp_path / "whole", 0.0)
    directory = tmp_path / "restarted"
    with SqliteEventLog(directory / "log.sqlite") as log:
        log.append(Stream.READINGS, traffic)
        store = StateStore(directory / "state.sqlite")
        first = DetectorRunner(log, store, lambda: make_engine(index), batch=333)
        for _ in range(5):
            first.poll()
        first.save()
        for _ in range(3):  # work after the snapshot is lost with the "crash"
            first.poll()
        second = DetectorRunner(log, store, lambda: make_engine(index), batch=333)
        assert second.load()
        second.catch_up()
        second.finish()
        store.close()
        assert {str(r.envelope.id) for r in log.iterate(Stream.EVENTS)} == whole


class _CountedOffline(DeviceOffline):
    """``device_offline`` recording each tick: (now, the state's due time then)."""

    def __init__(self, *, scheduled: bool) -> None:
        super().__init__()
        self.scheduled = scheduled  # type: ignore[misc]  # the test's two ways of ticking
        self.ticks: list[tuple[datetime, datetime | None]] = []

    def tick(
        self, state: OfflineState, now: datetime, ctx: DeviceContext
    ) -> tuple[OfflineState, list[Any]]:
        self.ticks.append((now, self.tick_due(state, ctx)))
        return super().tick(state, now, ctx)


def test_scheduled_ticks_give_the_events_of_ticking_every_grid_point(
    index: RegistryIndex, traffic: list[Envelope]
) -> None:
    """``device_offline`` states are ticked from their due time on, not on every grid point
    (one state per device): the events are the same, for a fraction of the ticks."""

    def events(offline: _CountedOffline, batches: list[list[Envelope]]) -> list[Envelope]:
        detectors = [offline if d.name == offline.name else d for d in ALL_DETECTORS]
        engine = Engine(index, load_rules(), detectors, EngineConfig(lateness=LATENESS))
        out: list[Envelope] = []
        for batch in batches:
            out += engine.push(batch, NOW)
        return out + engine.flush(NOW)

    every, scheduled = _CountedOffline(scheduled=False), _CountedOffline(scheduled=True)
    expected = events(every, [traffic])
    got = events(scheduled, split(traffic, list(range(0, len(traffic), 97))))
    assert ids(got) == ids(expected)
    raised = [e for e in got if e.kind == "AlertRaised"]
    assert [e.payload["condition"] for e in raised].count("device_offline") == 1
    assert scheduled.ticks, "the silent meter's state was never ticked"
    assert all(due is not None and due <= now for now, due in scheduled.ticks)
    assert len(scheduled.ticks) * 100 < len(every.ticks), (len(scheduled.ticks), len(every.ticks))


def test_commands_from_the_log_reach_the_alarm_book(
    index: RegistryIndex, traffic: list[Envelope], tmp_path: Path
) -> None:
    with SqliteEventLog(tmp_path / "log.sqlite") as log:
        log.append(Stream.READINGS, traffic)
        store = StateStore(tmp_path / "state.sqlite")
        runner = DetectorRunner(log, store, lambda: make_engine(index))
        runner.catch_up()
        events = [r.envelope for r in log.iterate(Stream.EVENTS)]
        resolved = {e.payload["alert_id"] for e in events if e.kind == "AlertResolved"}
        raised = next(
            e for e in events if e.kind == "AlertRaised" and e.payload["alert_id"] not in resolved
        )
        alert_id = str(raised.payload["alert_id"])
        at = raised.occurred_at + timedelta(minutes=5)

        def command(name: str, **fields: Any) -> Envelope:
            return Envelope(
                id=uuid.uuid4(),
                kind=name,
                occurred_at=at,
                received_at=at,
                estate=raised.estate,
                device=raised.device,
                payload={
                    "command": name,
                    "alert_id": alert_id,
                    "by": "op-li",
                    "at": at.isoformat(),
                    **fields,
                },
            )

        log.append(
            COMMANDS,
            [command("AcknowledgeAlert", comment="on my way"), command("AcknowledgeAlert")],
        )
        runner.catch_up()
        kinds = [r.envelope.kind for r in log.iterate(Stream.EVENTS)]
        assert kinds.count("AlertAcknowledged") == 1
        rejected = [
            r.envelope for r in log.iterate(Stream.EVENTS) if r.envelope.kind == COMMAND_REJECTED
        ]
        assert len(rejected) == 1 and "already acknowledged" in str(rejected[0].payload["reason"])
        store.close()


def test_engine_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="lateness"):
        EngineConfig(lateness=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="tick_every"):
        EngineConfig(tick_every=timedelta(0))


def test_projections_built_live_equal_a_rebuild_from_the_log(
    index: RegistryIndex, traffic: list[Envelope], tmp_path: Path
) -> None:
    with SqliteEventLog(tmp_path / "log.sqlite") as log:
        store = StateStore(tmp_path / "state.sqlite")
        runner = DetectorRunner(log, store, lambda: make_engine(index), batch=150)
        live = Projections(log, store, batch=40)
        for batch in split(traffic, list(range(0, len(traffic), 200))):
            log.append(Stream.READINGS, batch)
            runner.poll()
            live.poll()  # behind the detectors: it sees events and readings interleaved
        runner.catch_up()
        live.catch_up()
        rebuilt = Projections(log, StateStore(tmp_path / "other.sqlite"))
        rebuilt.catch_up()
        assert live.digest() == rebuilt.digest()
        assert live.alerts and live.devices
        offline = [a for a in live.alerts.values() if a.condition == "device_offline"]
        assert offline and offline[0].history[0].kind == "AlertRaised"
        assert "device_offline" in live.conditions(offline[0].estate, offline[0].device)
        restored = Projections(log, store)
        live.save()
        assert restored.load() and restored.digest() == live.digest()
        store.close()


def test_master_scoped_detectors_see_their_sub_meters(index: RegistryIndex) -> None:
    """water_balance: the engine feeds a master meter's state with its sub-meters' readings."""
    leaky = envelopes(index, hours=60, meters=10, master_loss=0.6, silent=False)
    raised = [
        e
        for e in run(index, [leaky])
        if e.kind == "AlertRaised" and e.payload["condition"] == "water_balance"
    ]
    assert len(raised) == 1
    assert raised[0].device == "wm-01-master"
    assert "unaccounted" in str(raised[0].payload["explanation"])
    balanced = envelopes(index, hours=60, meters=10, master_loss=0.02, silent=False)
    assert not [e for e in run(index, [balanced]) if e.payload.get("condition") == "water_balance"]
