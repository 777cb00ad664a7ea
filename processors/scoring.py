"""Scoring detectors against labelled ground truth (scenarios with injected anomalies).

A **label** says: this device had this anomaly from ``start`` to ``end`` and detector
``detector`` should report it. An alert of that detector on that device *detects* the
label when it is raised in ``[start − 1 min, end + grace]`` (device times are whole
seconds); its delay is ``raised − start``.

Per detector:

* recall = labels detected / labels;
* precision = alerts that detect some label / alerts;
* detection delay, median and 95th percentile, over detected labels (first alert);
* false alarms per 1,000 device-days = alerts detecting no label / (devices the
  detector watches × simulated days) × 1,000.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from processors.replay import AlertSpan

DEFAULT_GRACE = timedelta(hours=6)
#: Devices stamp whole seconds: an alert this much before a label's start still detects it.
EARLY = timedelta(minutes=1)
#: Detectors whose alerts are advice for planning, not alarms: a forecast that a bin will
#: be full "unless a round comes" is not wrong when the round comes. Their precision is
#: reported but not held to the alarm floor (recall is).
ADVISORY = frozenset({"bin_fill_forecast"})


class Label(Protocol):
    """A labelled anomaly (the simulators' ground truth, ``simulators.model.Label``)."""

    @property
    def estate(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def detector(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Score:
    detector: str
    labels: int
    detected: int
    alerts: int
    true_alerts: int
    false_alarms: int
    device_days: float
    delays_s: tuple[float, ...]

    @property
    def recall(self) -> float | None:
        return self.detected / self.labels if self.labels else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None

    @property
    def delay_median_s(self) -> float | None:
        return statistics.median(self.delays_s) if self.delays_s else None

    @property
    def delay_p95_s(self) -> float | None:
        if not self.delays_s:
            return None
        ordered = sorted(self.delays_s)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def false_alarms_per_1000_device_days(self) -> float | None:
        return 1000 * self.false_alarms / self.device_days if self.device_days else None

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "labels": self.labels,
            "detected": self.detected,
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
            "false_alarms": self.false_alarms,
            "device_days": round(self.device_days, 2),
            "precision": self.precision,
            "recall": self.recall,
            "delay_median_s": self.delay_median_s,
            "delay_p95_s": self.delay_p95_s,
            "false_alarms_per_1000_device_days": self.false_alarms_per_1000_device_days,
        }


def _detects(span: AlertSpan, label: Label, grace: timedelta) -> bool:
    return (
        span.estate == label.estate
        and span.device == label.device
        and (span.detector or span.condition) == label.detector
        and label.start - EARLY <= span.start <= label.end + grace
    )


def score(
    labels: Sequence[Label],
    spans: Sequence[AlertSpan],
    device_days: Mapping[str, float],
    *,
    grace: timedelta = DEFAULT_GRACE,
) -> list[Score]:
    """One :class:`Score` per detector named by a label, an alert or ``device_days``."""
    names = sorted(
        {lb.detector for lb in labels}
        | {s.detector or s.condition for s in spans}
        | set(device_days)
    )
    out = []
    for name in names:
        mine = [lb for lb in labels if lb.detector == name]
        alerts = [s for s in spans if (s.detector or s.condition) == name]
        delays: list[float] = []
        for label in mine:
            hits = [s.start for s in alerts if _detects(s, label, grace)]
            if hits:
                delays.append((min(hits) - label.start).total_seconds())
        true_alerts = sum(1 for s in alerts if any(_detects(s, lb, grace) for lb in mine))
        out.append(
            Score(
                detector=name,
                labels=len(mine),
                detected=len(delays),
                alerts=len(alerts),
                true_alerts=true_alerts,
                false_alarms=len(alerts) - true_alerts,
                device_days=device_days.get(name, 0.0),
                delays_s=tuple(delays),
            )
        )
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def score_table(scores: Sequence[Score]) -> str:
    """Scores as a terminal table."""
    header = (
        f"{'detector':26} {'labels':>6} {'found':>6} {'recall':>7} {'alerts':>7} "
        f"{'precision':>9} {'delay p50':>10} {'delay p95':>10} {'FA/1k dev-days':>15}"
    )
    lines = [header, "-" * len(header)]
    for s in scores:
        fa = s.false_alarms_per_1000_device_days
        lines.append(
            f"{s.detector:26} {s.labels:6} {s.detected:6} {_pct(s.recall):>7} {s.alerts:7} "
            f"{_pct(s.precision):>9} {_dur(s.delay_median_s):>10} {_dur(s.delay_p95_s):>10} "
            f"{'-' if fa is None else f'{fa:.2f}':>15}"
        )
    return "\n".join(lines)


def side_by_side(
    before: Sequence[Score], after: Sequence[Score], before_name: str, after_name: str
) -> str:
    """Two rule sets' scores per detector: recall, precision, delay p50, false alarms."""
    old = {s.detector: s for s in before}
    new = {s.detector: s for s in after}
    header = (
        f"{'detector':26} {'recall':>15} {'precision':>15} {'delay p50':>19} {'FA/1k dev-days':>17}"
    )
    lines = [f"before: {before_name}   after: {after_name}", header, "-" * len(header)]
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)

        def pair(fmt: Any, attr: str, a: Score | None = a, b: Score | None = b) -> str:
            return (
                f"{fmt(getattr(a, attr) if a else None)} → {fmt(getattr(b, attr) if b else None)}"
            )

        def fa(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        lines.append(
            f"{name:26} {pair(_pct, 'recall'):>15} {pair(_pct, 'precision'):>15} "
            f"{pair(_dur, 'delay_median_s'):>19} "
            f"{pair(fa, 'false_alarms_per_1000_device_days'):>17}"
        )
    return "\n".join(lines)
