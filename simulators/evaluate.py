"""Evaluation: run a scenario through ingest and the detectors in-process, score them.

The scenario's simulator produces exactly the MQTT messages a real estate would send
(imperfections included); each is judged by the real ingest :class:`Pipeline`, the
accepted readings are de-duplicated by id (as the log's idempotent append does) and fed
to a :class:`processors.engine.Engine` in send order. No broker, no files: the same
seed gives the same scores. The detectors are then scored against the scenario's
ground truth (:mod:`processors.scoring`).

Given an :class:`eventlog.log.EventLog`, the run also appends what the service would:
the accepted readings, ingest's dead letters and the detectors' events, to the
``readings``, ``rejected`` and ``events`` streams (a log to project into InfluxDB, for
instance). The scores do not depend on it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlog.envelope import Envelope, Stream
from eventlog.log import EventLog
from ingest.pipeline import Pipeline
from processors.detector import Detector
from processors.detectors import ALL_DETECTORS
from processors.engine import NOT_JUDGED, Engine, EngineConfig
from processors.replay import AlertSpan, alert_spans
from processors.rules import RuleSet
from processors.scoring import Score, score
from simulators.estate import EstateSimulator
from simulators.model import Label
from simulators.scenario import Scenario

#: Salt for the evaluation's credential hashes (nothing leaves the process).
_SALT = b"estate-evaluation-salt-not-secret"
#: How long after sending a message ingest receives it.
_TRANSIT = timedelta(milliseconds=300)
#: Records buffered per stream before they are appended to a log (one transaction each).
_APPEND_BATCH = 5000


@dataclass(slots=True)
class Evaluation:
    scenario: str
    rules_version: str
    seed: int
    start: datetime
    end: datetime
    messages: int = 0
    readings: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    not_judged: Counter[str] = field(default_factory=Counter)
    labels: list[Label] = field(default_factory=list)
    spans: list[AlertSpan] = field(default_factory=list)
    device_days: dict[str, float] = field(default_factory=dict)
    scores: list[Score] = field(default_factory=list)
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "rules_version": self.rules_version,
            "seed": self.seed,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "messages": self.messages,
            "readings": self.readings,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "not_judged": dict(self.not_judged),
            "wall_s": round(self.wall_s, 2),
            "scores": [s.to_json() for s in self.scores],
            "labels": [label.as_dict() for label in self.labels],
            "alerts": [
                {
                    "detector": s.detector,
                    "estate": s.estate,
                    "device": s.device,
                    "raised_at": s.start.isoformat(),
                    "ended_at": s.end.isoformat() if s.end else None,
                    "explanation": s.explanation,
                }
                for s in self.spans
            ],
        }


def device_days(engine: Engine, days: float) -> dict[str, float]:
    """Per detector: how many registered devices it watches × ``days``."""
    counts: Counter[str] = Counter()
    for estate in engine.index.estate_ids():
        for ref in engine.index.devices_of(estate):
            owners = {
                (r.owner, r.detector.name) for r in engine.routes(ref.estate, ref.device) or ()
            }
            counts.update(name for _, name in owners)
    return {name: n * days for name, n in counts.items()}


def evaluate(
    scenario: Scenario,
    rules: RuleSet,
    *,
    detectors: Sequence[Detector[Any]] = ALL_DETECTORS,
    config: EngineConfig | None = None,
    progress: Callable[[datetime, int], None] | None = None,
    log: EventLog | None = None,
) -> Evaluation:
    """Run ``scenario`` through ingest and the detectors under ``rules``; the scores."""
    return run(
        scenario.simulator(),
        rules,
        scenario.name,
        detectors=detectors,
        config=config,
        progress=progress,
        log=log,
    )


class _Appender:
    """Appends records to ``log`` stream by stream, in batches, in the order given."""

    def __init__(self, log: EventLog | None) -> None:
        self.log = log
        self.pending: dict[Stream, list[Envelope]] = {s: [] for s in Stream}

    def add(self, stream: Stream, records: Sequence[Envelope]) -> None:
        if self.log is None or not records:
            return
        pending = self.pending[stream]
        pending.extend(records)
        if len(pending) >= _APPEND_BATCH:
            self.flush(stream)

    def flush(self, stream: Stream | None = None) -> None:
        if self.log is None:
            return
        for s in [stream] if stream is not None else list(Stream):
            if self.pending[s]:
                self.log.append(s, self.pending[s])
                self.pending[s] = []


def run(
    simulator: EstateSimulator,
    rules: RuleSet,
    name: str,
    *,
    detectors: Sequence[Detector[Any]] = ALL_DETECTORS,
    config: EngineConfig | None = None,
    progress: Callable[[datetime, int], None] | None = None,
    log: EventLog | None = None,
) -> Evaluation:
    """Run ``simulator``'s traffic through ingest and the detectors; score on its truth.

    With ``log``, the accepted readings, dead letters and events are appended to it."""
    began = time.monotonic()
    index = simulator.index
    pipeline = Pipeline(index, _SALT)
    engine = Engine(index, rules, detectors, config)
    result = Evaluation(name, rules.version, simulator.seed, simulator.start, simulator.end)
    events: list[Envelope] = []
    appender = _Appender(log)
    seen: set[Any] = set()
    stamp = datetime.now(UTC)
    last_report = began
    for message in simulator.messages():
        result.messages += 1
        judged = pipeline.judge(message.topic, message.payload, message.at + _TRANSIT)
        result.rejected.update(str(r.payload.get("reason")) for r in judged.rejected)
        appender.add(Stream.REJECTED, judged.rejected)
        fresh = [r for r in judged.readings if r.id not in seen]
        result.duplicates += len(judged.readings) - len(fresh)
        seen.update(r.id for r in fresh)
        result.readings += len(fresh)
        if fresh:
            appender.add(Stream.READINGS, fresh)
            out = engine.push(fresh, stamp)
            appender.add(Stream.EVENTS, out)
            events += out
        if progress is not None and time.monotonic() - last_report >= 1:
            last_report = time.monotonic()
            progress(message.at, result.readings)
    last = engine.flush(stamp) + engine.advance(simulator.end, stamp)
    appender.add(Stream.EVENTS, last)
    appender.flush()
    events += last
    result.not_judged.update(str(e.payload.get("reason")) for e in events if e.kind == NOT_JUDGED)
    result.labels = simulator.ground_truth
    result.spans = alert_spans(events)
    days = (simulator.end - simulator.start).total_seconds() / 86400
    result.device_days = device_days(engine, days)
    result.scores = score(result.labels, result.spans, result.device_days)
    result.wall_s = time.monotonic() - began
    return result
