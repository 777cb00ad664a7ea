"""Prometheus text exposition (format 0.0.4) from the log and the projections.

A metric provider is any callable returning :class:`Metric` families; the console's own
(:class:`LogMetrics`) reads the log and the projections, and more can be passed to
``build_app(metric_providers=...)`` (webhook delivery outcomes, gateway counters).
Providers run in a worker thread: they may do blocking I/O.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from console.views import SEVERITIES, open_by_severity
from eventlog.envelope import Stream
from eventlog.log import EventLog
from processors.projections import Projections
from processors.runner import COMMANDS

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: The consumers whose committed checkpoints give the lag, with the streams they read.
CONSUMERS: Final = {
    "detectors": (Stream.READINGS.value, COMMANDS),
    "projections": (Stream.EVENTS.value, Stream.READINGS.value),
}
#: Records of ``rejected`` read per scrape at most (the rest on the next scrapes).
REJECTED_BATCH: Final = 50_000

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    help: str
    type: Literal["counter", "gauge"]
    samples: Sequence[tuple[Labels, float]] = field(default_factory=tuple)


MetricProvider = Callable[[], Iterable[Metric]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(metrics: Iterable[Metric]) -> str:
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {_escape(m.help)}")
        lines.append(f"# TYPE {m.name} {m.type}")
        for labels, value in m.samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(
                f"{m.name}{{{text}}} {_number(value)}" if text else f"{m.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


class LogMetrics:
    """Ingest, rejects, lag, open alerts and unjudged readings (a metric provider)."""

    def __init__(self, log: EventLog, projections: Projections) -> None:
        self.log = log
        self.projections = projections
        self._lock = threading.Lock()
        self._rejected: Counter[str] = Counter()
        self._rejected_next: dict[int, int] = {}

    def _tail_rejected(self) -> None:
        stream = Stream.REJECTED.value
        for partition in range(self.log.partitions(stream)):
            start, read = self._rejected_next.get(partition, 0), 0
            while read < REJECTED_BATCH:
                records = self.log.read(stream, partition, start, 5000)
                if not records:
                    break
                for r in records:
                    self._rejected[r.envelope.kind.removeprefix("rejected.")] += 1
                start, read = records[-1].position + 1, read + len(records)
            self._rejected_next[partition] = start

    def _ends(self, stream: str) -> list[tuple[int, int]]:
        return [(p, self.log.end_position(stream, p)) for p in range(self.log.partitions(stream))]

    def __call__(self) -> list[Metric]:
        with self._lock:
            self._tail_rejected()
            rejected = sorted(self._rejected.items())
        ends = {s: self._ends(s) for s in (*(s.value for s in Stream), COMMANDS)}
        lag: list[tuple[Labels, float]] = []
        for consumer, streams in CONSUMERS.items():
            for stream in streams:
                behind = sum(
                    max(0, end - self.log.get_checkpoint(consumer, stream, p))
                    for p, end in ends[stream]
                )
                lag.append(((("consumer", consumer), ("stream", stream)), behind))
        opened = open_by_severity(self.projections, None)
        return [
            Metric(
                "estate_log_end_position",
                "End position of each stream of the event log (records appended, with gaps).",
                "counter",
                [((("stream", s),), sum(e for _, e in v)) for s, v in sorted(ends.items())],
            ),
            Metric(
                "estate_ingest_rejected_total",
                "Messages refused at ingest, by reason (from the rejected stream).",
                "counter",
                [((("reason", r),), n) for r, n in rejected],
            ),
            Metric(
                "estate_consumer_lag_records",
                "Records not yet covered by a consumer's committed checkpoint.",
                "gauge",
                lag,
            ),
            Metric(
                "estate_projection_lag_records",
                "Records the console's projections have not folded yet.",
                "gauge",
                [((), self.projections.lag())],
            ),
            Metric(
                "estate_open_alerts",
                "Open (unresolved) alerts by severity.",
                "gauge",
                [((("severity", s),), opened[s]) for s in SEVERITIES],
            ),
            Metric(
                "estate_readings_not_judged_total",
                "Readings the detectors did not judge, by reason (late, unregistered, ...).",
                "counter",
                [
                    ((("reason", r),), n)
                    for r, n in sorted(dict(self.projections.not_judged).items())
                ],
            ),
            Metric(
                "estate_commands_rejected",
                "Operator commands refused by the alarm machine (the newest kept).",
                "gauge",
                [((), len(self.projections.rejections))],
            ),
        ]
