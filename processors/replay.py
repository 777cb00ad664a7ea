"""What-if replay: re-run the detectors over readings with other rules, in memory.

Nothing here touches the live detector state, the projections or the ``events``
stream: a replay folds readings through a fresh :class:`Engine` and returns the events
it *would* have produced. :func:`alert_spans` turns events into alert intervals and
:func:`compare` tells which alerts another rule set adds or removes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devices.registry import RegistryIndex
from eventlog.envelope import Envelope, Stream
from eventlog.log import EventLog
from processors.detector import Detector
from processors.engine import Engine, EngineConfig
from processors.rules import RuleSet

_BATCH = 5000


def replay_readings(
    readings: Iterable[Envelope],
    index: RegistryIndex,
    rules: RuleSet,
    detectors: Sequence[Detector[Any]],
    config: EngineConfig | None = None,
    *,
    until: datetime | None = None,
) -> list[Envelope]:
    """The events ``readings`` (in log order) produce under ``rules``.

    At the end every buffered reading is judged and, with ``until``, event time moves on
    to it (silence and SLA timers fire as they would have).
    """
    engine = Engine(index, rules, detectors, config)
    stamp = datetime.now(UTC)
    out: list[Envelope] = []
    batch: list[Envelope] = []
    for reading in readings:
        batch.append(reading)
        if len(batch) >= _BATCH:
            out += engine.push(batch, stamp)
            batch = []
    out += engine.push(batch, stamp)
    out += engine.flush(stamp)
    if until is not None:
        out += engine.advance(until, stamp)
    return out


def log_readings(
    log: EventLog,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterable[Envelope]:
    """The readings of the log (every partition) with device time in ``[since, until)``."""
    seen = 0
    for partition in range(log.partitions(Stream.READINGS)):
        for record in log.iterate(Stream.READINGS, partition, batch=_BATCH):
            seen += 1
            if progress is not None and seen % 50_000 == 0:
                progress(seen)
            at = record.envelope.occurred_at
            if (since is None or at >= since) and (until is None or at < until):
                yield record.envelope


@dataclass(frozen=True, slots=True)
class AlertSpan:
    """One alert occurrence: raised at ``start``, cleared or resolved at ``end`` (or open)."""

    alert_id: str
    estate: str
    device: str
    condition: str
    detector: str
    severity: str
    start: datetime
    end: datetime | None
    explanation: str

    def overlaps(self, other: AlertSpan) -> bool:
        far = datetime.max.replace(tzinfo=UTC)
        return self.start < (other.end or far) and other.start < (self.end or far)


def alert_spans(events: Iterable[Envelope]) -> list[AlertSpan]:
    """Alert occurrences from lifecycle events (a cleared alert that comes back is a new
    occurrence)."""
    open_: dict[str, AlertSpan] = {}
    done: list[AlertSpan] = []
    for e in events:
        alert = str(e.payload.get("alert_id", ""))
        if e.kind == "AlertRaised":
            open_[alert] = AlertSpan(
                alert_id=alert,
                estate=e.estate or "",
                device=e.device or "",
                condition=str(e.payload.get("condition", "")),
                detector=str(e.payload.get("detector", "")),
                severity=str(e.payload.get("severity", "")),
                start=e.occurred_at,
                end=None,
                explanation=str(e.payload.get("explanation", "")),
            )
        elif e.kind in ("AlertCleared", "AlertResolved") and alert in open_:
            done.append(dataclasses.replace(open_.pop(alert), end=e.occurred_at))
    return sorted([*done, *open_.values()], key=lambda s: (s.start, s.alert_id))


@dataclass(slots=True)
class Difference:
    """How alerts of one (detector, estate) differ between two rule sets."""

    detector: str
    estate: str
    before: int = 0
    after: int = 0
    added: list[AlertSpan] = field(default_factory=list)
    removed: list[AlertSpan] = field(default_factory=list)


def compare(before: Sequence[AlertSpan], after: Sequence[AlertSpan]) -> list[Difference]:
    """Per (detector, estate): alerts only ``after`` has (added) and only ``before`` has
    (removed). Two alerts are the same when device and condition match and they overlap
    in time."""
    rows: dict[tuple[str, str], Difference] = {}

    def row(span: AlertSpan) -> Difference:
        key = (span.detector or span.condition, span.estate)
        if key not in rows:
            rows[key] = Difference(*key)
        return rows[key]

    def unmatched(spans: Sequence[AlertSpan], others: Sequence[AlertSpan]) -> list[AlertSpan]:
        by_key: dict[tuple[str, str, str], list[AlertSpan]] = {}
        for o in others:
            by_key.setdefault((o.estate, o.device, o.condition), []).append(o)
        return [
            s
            for s in spans
            if not any(s.overlaps(o) for o in by_key.get((s.estate, s.device, s.condition), ()))
        ]

    for span in before:
        row(span).before += 1
    for span in after:
        row(span).after += 1
    for span in unmatched(after, before):
        row(span).added.append(span)
    for span in unmatched(before, after):
        row(span).removed.append(span)
    return [rows[k] for k in sorted(rows)]


def difference_table(rows: Sequence[Difference]) -> str:
    """The comparison as a terminal table."""
    header = f"{'detector':28} {'estate':14} {'before':>7} {'after':>7} {'added':>7} {'removed':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.detector:28} {r.estate:14} {r.before:7} {r.after:7} "
            f"{len(r.added):7} {len(r.removed):8}"
        )
    if len(lines) == 2:
        lines.append("(no alerts under either rule set)")
    return "\n".join(lines)
