"""Projections of the log for the control room: the alert book and device state.

Both are folds of the log and nothing else: :class:`Projections` reads ``events``
(alert lifecycle, operator events, what the engine did not judge or refused) and
``readings`` (last seen, latest values, battery), and can be dropped and rebuilt from
position zero at any time (``estate rebuild``) with an identical result. What comes
from ``readings`` and what comes from ``events`` never touch the same field, so the
interleaving of the two streams does not change the outcome.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

import orjson
from pydantic import BaseModel, Field, JsonValue

from devices.codec import FLAGS_KEY
from eventlog.envelope import Envelope, Stream, UtcDatetime
from eventlog.log import StoredRecord
from processors import alarm
from processors.alarm import AlertEventKind
from processors.engine import COMMAND_REJECTED, NOT_JUDGED
from processors.runner import Consumer

#: Alert status as the control room sees it.
RAISED, CLEARED, RESOLVED = "raised", "cleared", "resolved"
#: Conditions that say something about the device itself (shown on the health board).
HEALTH_CONDITIONS: Final = frozenset({"device_offline", "low_battery", "clock_skew"})
#: Refused commands kept for the console to show (the newest).
MAX_REJECTIONS: Final = 1000


class HistoryEntry(BaseModel):
    kind: str
    at: UtcDatetime
    event_id: str
    severity: str
    explanation: str = ""
    actor: str | None = None
    comment: str | None = None
    assignee: str | None = None


class AlertView(BaseModel):
    """One alert with its whole history, as the console and the API show it."""

    alert_id: str
    estate: str
    building: str | None = None
    device: str
    condition: str
    detector: str
    rule_version: str
    severity: str
    status: str = RAISED
    occurrence: int = 1
    explanation: str = ""
    values: dict[str, JsonValue] = Field(default_factory=dict)
    evidence: list[str] = Field(default_factory=list)
    raised_at: UtcDatetime
    updated_at: UtcDatetime
    cleared_at: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    acknowledged_at: UtcDatetime | None = None
    acknowledged_by: str | None = None
    assignee: str | None = None
    flapping: bool = False
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status != RESOLVED


class DeviceView(BaseModel):
    """What the log says about one device (the registry says the rest)."""

    estate: str
    device: str
    building: str | None = None
    kind: str
    last_seen: UtcDatetime | None = None  #: the latest device time of its readings
    last_received: UtcDatetime | None = None
    readings: int = 0
    latest: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)  #: per stream
    battery_pct: float | None = None
    flags: list[str] = Field(default_factory=list)  #: of the latest reading


def _apply_lifecycle(view: AlertView, event: alarm.AlertEvent) -> None:
    kind = event.kind
    view.updated_at = max(view.updated_at, event.at)
    view.severity = event.severity.value
    if kind is AlertEventKind.RAISED:
        view.status, view.occurrence = RAISED, event.occurrence
        view.explanation, view.values = event.explanation, dict(event.values)
        view.evidence = [str(i) for i in event.evidence]
        view.cleared_at = None
    elif kind is AlertEventKind.ESCALATED:
        view.explanation = event.explanation or view.explanation
    elif kind is AlertEventKind.ACKNOWLEDGED:
        view.acknowledged_at, view.acknowledged_by = event.at, event.actor
    elif kind is AlertEventKind.ASSIGNED:
        view.assignee = event.assignee
    elif kind is AlertEventKind.CLEARED:
        view.status, view.cleared_at = CLEARED, event.at
    elif kind is AlertEventKind.RESOLVED:
        view.status, view.resolved_at = RESOLVED, event.at
    elif kind is AlertEventKind.FLAPPING:
        view.flapping = True
    elif kind is AlertEventKind.FLAPPING_ENDED:
        view.flapping = False
    view.history.append(
        HistoryEntry(
            kind=kind.value,
            at=event.at,
            event_id=str(event.id),
            severity=event.severity.value,
            explanation=event.explanation,
            actor=event.actor,
            comment=event.comment,
            assignee=event.assignee,
        )
    )


class Projections(Consumer):
    """The alert book and device state, folded from ``events`` and ``readings``."""

    name = "projections"
    streams = (Stream.EVENTS.value, Stream.READINGS.value)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alerts: dict[str, AlertView] = {}
        self.devices: dict[str, DeviceView] = {}
        #: Open alerts per device ("estate/device" -> alert id -> condition).
        self.device_alerts: dict[str, dict[str, str]] = {}
        self.not_judged: Counter[str] = Counter()
        #: command id -> why the alarm machine refused it (the newest MAX_REJECTIONS).
        self.rejections: dict[str, str] = {}
        #: Called with each alert after an event changed it (live feeds subscribe here).
        self.listeners: list[Any] = []

    # --- folding -----------------------------------------------------------------------

    def handle(self, stream: str, partition: int, records: Sequence[StoredRecord]) -> None:
        if stream == Stream.READINGS:
            for record in records:
                self._reading(record.envelope)
        else:
            for record in records:
                self._event(record.envelope)

    def device(self, envelope: Envelope) -> DeviceView:
        key = f"{envelope.estate}/{envelope.device}"
        view = self.devices.get(key)
        if view is None:
            view = self.devices[key] = DeviceView(
                estate=envelope.estate or "",
                device=envelope.device or "",
                building=envelope.building,
                kind=envelope.kind.partition(".")[0],
            )
        return view

    def _reading(self, envelope: Envelope) -> None:
        view = self.device(envelope)
        view.readings += 1
        if view.last_seen is None or envelope.occurred_at >= view.last_seen:
            view.last_seen = envelope.occurred_at
            payload = dict(envelope.payload)
            flags = payload.pop(FLAGS_KEY, None)
            view.flags = [str(f) for f in flags] if isinstance(flags, list) else []
            view.latest[envelope.kind.partition(".")[2]] = payload
            battery = payload.get("battery_pct")
            if isinstance(battery, int | float) and not isinstance(battery, bool):
                view.battery_pct = float(battery)
        if view.last_received is None or envelope.received_at > view.last_received:
            view.last_received = envelope.received_at

    def _event(self, envelope: Envelope) -> None:
        if envelope.kind == NOT_JUDGED:
            self.not_judged[str(envelope.payload.get("reason"))] += 1
            return
        if envelope.kind == COMMAND_REJECTED:
            self.rejections[str(envelope.payload.get("command_id"))] = str(
                envelope.payload.get("reason")
            )
            while len(self.rejections) > MAX_REJECTIONS:
                del self.rejections[next(iter(self.rejections))]
            return
        try:
            event = alarm.from_envelope(envelope)
        except ValueError:
            return  # a kind this projection does not show (webhook deliveries, ...)
        key = str(event.alert_id)
        view = self.alerts.get(key)
        if view is None:
            view = self.alerts[key] = AlertView(
                alert_id=key,
                estate=event.estate,
                building=envelope.building,
                device=event.device,
                condition=event.condition,
                detector=event.detector,
                rule_version=event.rule_version,
                severity=event.severity.value,
                raised_at=event.at,
                updated_at=event.at,
            )
        _apply_lifecycle(view, event)
        open_alerts = self.device_alerts.setdefault(f"{event.estate}/{event.device}", {})
        if view.open:
            open_alerts[key] = view.condition
        else:
            open_alerts.pop(key, None)
        for listener in self.listeners:
            listener(view, event)

    # --- queries -----------------------------------------------------------------------

    def conditions(self, estate: str, device: str) -> set[str]:
        """The conditions of the device's open alerts (``device_offline``, ...)."""
        return set(self.device_alerts.get(f"{estate}/{device}", {}).values())

    def open_alerts(self, estate: str | None = None) -> list[AlertView]:
        return [
            a for a in self.alerts.values() if a.open and (estate is None or a.estate == estate)
        ]

    # --- snapshots ---------------------------------------------------------------------

    def state(self) -> Any:
        return {
            "alerts": {k: v.model_dump(mode="json") for k, v in self.alerts.items()},
            "devices": {k: v.model_dump(mode="json") for k, v in self.devices.items()},
            "device_alerts": self.device_alerts,
            "not_judged": dict(self.not_judged),
            "rejections": self.rejections,
        }

    def restore(self, data: Any) -> None:
        self.alerts = {k: AlertView.model_validate(v) for k, v in data["alerts"].items()}
        self.devices = {k: DeviceView.model_validate(v) for k, v in data["devices"].items()}
        self.device_alerts = {k: dict(v) for k, v in data["device_alerts"].items()}
        self.not_judged = Counter(data["not_judged"])
        self.rejections = dict(data["rejections"])

    def digest(self) -> str:
        """A fingerprint of the projected state (equal states, equal digests)."""
        blob = orjson.dumps(self.state(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()[:16]
