"""The time-series schema: how log records become InfluxDB line protocol.

``docs/timeseries.md`` describes it for people; this module is the source of truth.

* One measurement per device family and stream (``waste_level``, ``gate_passage``,
  ...), ``device_health`` for the heartbeats of every kind, and ``events`` for the
  alert lifecycle (the boards' annotations).
* Tags are bounded identity only: ``estate``, ``building``, ``device``, ``kind``,
  ``zone`` and, from the registry, ``office`` (street office) and ``role`` (what the
  device serves: ``fire_lane``, ``master``, ``lighting``, ...); plus the few bounded
  sub-identities that keep two series apart (``connector``, ``port``, a bin's
  ``category``; an alert's ``condition``, ``severity`` and lifecycle ``event``).
  Nothing person-related: no credential or plate hashes, no session ids, no
  ``elderly_alone`` tag, never as tag nor field.
* Fields are numbers, always written as floats (so that no two writers can disagree
  on a field's type); enums and booleans become 0/1 fields. The only string field
  is ``events.text``, the annotation text.
* The point time is the record's ``occurred_at`` in nanoseconds, so rewriting a
  record (a retry, a rebuild) overwrites the same point: writes are idempotent.

One set of rules, two entry points: :func:`encode` takes a parsed envelope,
:func:`encode_stored` the envelope JSON as the log stores it (the writer's path: no
pydantic parse per record).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson
from pydantic import JsonValue

from devices.registry import RegistryIndex
from devices.severity import Severity
from eventlog.envelope import Envelope

__all__ = [
    "EVENTS_MEASUREMENT",
    "MEASUREMENTS",
    "ROLES",
    "DeviceTags",
    "Measurement",
    "TagLookup",
    "encode",
    "encode_stored",
    "registry_lookup",
]

#: The measurement of the alert lifecycle (annotations on every board).
EVENTS_MEASUREMENT: Final = "events"

#: Registry tags that become the ``role`` tag, first match wins. ``elderly_alone`` is
#: deliberately absent: it describes a person, not a device.
ROLES: Final = (
    "fire_lane",
    "ev_bay",
    "visitor_bay",
    "master",
    "lighting",
    "corridor",
    "common_area",
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

Fields = dict[str, float]
Payload = Mapping[str, JsonValue]


@dataclass(frozen=True, slots=True)
class DeviceTags:
    """What the registry adds to a device's points (all bounded identity)."""

    building: str | None = None
    kind: str | None = None
    zone: str | None = None
    office: str | None = None
    role: str | None = None


#: ``(estate, device) -> DeviceTags`` or None for a device the registry does not know. The
#: same question must get the same answer: the encoder asks once per device and series.
TagLookup = Callable[[str, str], DeviceTags | None]


def registry_lookup(index: RegistryIndex) -> TagLookup:
    """A :data:`TagLookup` over a loaded registry."""
    cache: dict[tuple[str, str], DeviceTags | None] = {}

    def lookup(estate: str, device: str) -> DeviceTags | None:
        key = (estate, device)
        if key not in cache:
            ref = index.device(estate, device)
            if ref is None:
                cache[key] = None
            else:
                estate_ref = index.estate(estate)
                cache[key] = DeviceTags(
                    building=ref.building,
                    kind=ref.kind.value,
                    zone=ref.zone,
                    office=None if estate_ref is None else estate_ref.street_office.id,
                    role=next((role for role in ROLES if role in ref.tags), None),
                )
        return cache[key]

    return lookup


def _flag(value: object) -> float:
    return 1.0 if value else 0.0


#: isinstance() with a tuple: ``int | float`` would build a union object on every call
_NUMBER: Final = (int, float)
_TAG_VALUE: Final = (str, int)


def _numbers(payload: Payload, *names: str) -> Fields:
    """The numeric fields ``names`` that the payload holds, as floats."""
    out: Fields = {}
    for name in names:
        value = payload.get(name)
        if isinstance(value, _NUMBER) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _gate_passage(p: Payload) -> Fields:
    fields = {
        "passages": 1.0,
        "granted": _flag(p.get("result") == "granted"),
        "denied": _flag(p.get("result") == "denied"),
        "inbound": _flag(p.get("direction") == "in"),
    }
    if isinstance(p.get("persons_sensed"), int):
        fields["persons"] = float(p["persons_sensed"])  # type: ignore[arg-type]
    return fields


def _gate_door(p: Payload) -> Fields:
    return {"open": _flag(p.get("state") == "open"), "forced": _flag(p.get("forced"))}


def _parking(p: Payload) -> Fields:
    return {"occupied": _flag(p.get("occupied"))}


def _waste(p: Payload) -> Fields:
    fields = _numbers(p, "fill_pct", "temperature_c", "battery_pct")
    if "lid" in p:
        fields["lid_open"] = _flag(p["lid"] == "open")
    if "tilted" in p:
        fields["tilted"] = _flag(p["tilted"])
    return fields


def _water(p: Payload) -> Fields:
    return _numbers(p, "volume_m3", "flow_l_min")


def _energy(p: Payload) -> Fields:
    return _numbers(p, "energy_kwh", "power_w")


_IDLE_CONNECTOR: Final = frozenset({"available", "unavailable", "faulted"})


def _ev(p: Payload) -> Fields:
    status = p.get("status")
    return {
        **_numbers(p, "power_kw", "session_energy_kwh"),
        "charging": _flag(status == "charging"),
        "in_use": _flag(status not in _IDLE_CONNECTOR),
        "faulted": _flag(status == "faulted"),
    }


def _ebike(p: Payload) -> Fields:
    status = p.get("status")
    return {
        **_numbers(p, "power_w", "temperature_c"),
        "charging": _flag(status == "charging"),
        "faulted": _flag(status == "faulted"),
    }


def _health(p: Payload) -> Fields:
    return {"alive": 1.0, **_numbers(p, "battery_pct", "rssi_dbm", "uptime_s")}


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measurement: its name, how a payload becomes fields, its extra tags and rollups."""

    name: str
    fields: Callable[[Payload], Fields]
    #: payload keys that become tags (bounded sub-identities: a connector, a port)
    payload_tags: tuple[str, ...] = ()
    #: InfluxQL aggregates of the hourly rollup (continuous query)
    rollup: tuple[str, ...] = ("mean", "max")


#: Log kind (``{device kind}.{stream}``) -> measurement; heartbeats of every kind share one.
MEASUREMENTS: Final[Mapping[str, Measurement]] = {
    "access_gate.passage": Measurement("gate_passage", _gate_passage, rollup=("sum",)),
    "access_gate.door": Measurement("gate_door", _gate_door, rollup=("sum", "max")),
    "parking_sensor.occupancy": Measurement("parking_occupancy", _parking),
    "waste_bin.level": Measurement("waste_level", _waste, ("category",), ("mean", "max", "last")),
    "water_meter.register": Measurement("water_register", _water, rollup=("max", "min", "mean")),
    "energy_meter.register": Measurement("energy_register", _energy, rollup=("max", "mean")),
    "ev_charger.connector": Measurement("ev_connector", _ev, ("connector",)),
    "ebike_station.port": Measurement("ebike_port", _ebike, ("port",)),
    "heartbeat": Measurement("device_health", _health, rollup=("mean", "min")),
}

#: The lifecycle kinds of :class:`processors.alarm.AlertEventKind` (kept as text: the
#: schema reads the log, it does not depend on the alarm machine).
_ALERT_OPENED: Final = "AlertRaised"
_ALERT_RESOLVED: Final = "AlertResolved"
_ALERT_KINDS: Final = frozenset(
    {
        "AlertRaised",
        "AlertEscalated",
        "AlertAcknowledged",
        "AlertAssigned",
        "AlertCommented",
        "AlertCleared",
        "AlertResolved",
        "AlertFlapping",
        "AlertFlappingEnded",
    }
)
_SEVERITY_RANK: Final = {severity.value: severity.rank for severity in Severity}

_TAG_ESCAPES: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def _string_field(value: str) -> str:
    text = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{text}"'


def _timestamp(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND * 1000


#: Tags a measurement adds to a device's identity (a connector, a port; an alert's condition).
Tags = tuple[tuple[str, str], ...]

_UNKNOWN: Final = DeviceTags()


@functools.lru_cache(maxsize=1 << 16)
def _series(
    measurement: str,
    estate: str | None,
    building: str | None,
    device: str | None,
    kind: str | None,
    lookup: TagLookup | None,
    extra: Tags,
) -> str:
    """Measurement and sorted, escaped tags (the series key): the same for every point of a
    device, so it is built (and the registry asked) once per device and series, not once per
    point. ``kind`` None: the registry's device kind."""
    known = None if lookup is None or estate is None or device is None else lookup(estate, device)
    known = known or _UNKNOWN
    tags = {
        "estate": estate,
        "building": building or known.building,
        "device": device,
        "kind": known.kind if kind is None else kind,
        "zone": known.zone,
        "office": known.office,
        "role": known.role,
        **dict(extra),
    }
    tag_text = "".join(f",{key}={_tag(value)}" for key, value in sorted(tags.items()) if value)
    return f"{measurement}{tag_text}"


def _reading(
    kind: str,
    estate: str | None,
    building: str | None,
    device: str | None,
    payload: Payload,
    lookup: TagLookup | None,
) -> str | None:
    device_kind, _, stream = kind.partition(".")
    spec = MEASUREMENTS.get("heartbeat" if stream == "heartbeat" else kind)
    if spec is None:
        return None
    fields = spec.fields(payload)
    if not fields:
        return None
    extra: Tags = ()
    for key in spec.payload_tags:
        value = payload.get(key)
        if isinstance(value, _TAG_VALUE) and not isinstance(value, bool):
            extra = (*extra, (key, str(value)))
    series = _series(spec.name, estate, building, device, device_kind, lookup, extra)
    return f"{series} {_fields(fields)}"


def _alert(
    kind: str,
    estate: str | None,
    building: str | None,
    device: str | None,
    payload: Payload,
    lookup: TagLookup | None,
) -> str | None:
    if kind not in _ALERT_KINDS:
        return None
    severity = payload.get("severity")
    # The tag is the detector: a per-port condition (``ebike_over_temperature.port-3``)
    # would scatter one detector over many series and miss the boards' filters.
    condition = payload.get("detector") or payload.get("condition")
    if not isinstance(severity, str) or not isinstance(condition, str):
        return None
    occurrence = payload.get("occurrence")
    opened = kind == _ALERT_OPENED and occurrence == 1
    resolved = kind == _ALERT_RESOLVED
    extra: Tags = (("event", kind), ("condition", condition), ("severity", severity))
    series = _series(EVENTS_MEASUREMENT, estate, building, device, None, lookup, extra)
    explanation = payload.get("explanation")
    text = f"{kind} {payload.get('condition')} on {device} ({severity})"
    if isinstance(explanation, str) and explanation:
        text = f"{text}: {explanation}"
    fields: Fields = {
        "count": 1.0,
        "opened": _flag(opened),
        "resolved": _flag(resolved),
        "open_change": 1.0 if opened else -1.0 if resolved else 0.0,
        "severity_rank": float(_SEVERITY_RANK.get(severity, 0)),
    }
    return f"{series} {_fields(fields)},text={_string_field(text)}"


def _fields(fields: Fields) -> str:
    return ",".join([f"{key}={value!r}" for key, value in fields.items()])


_BY_STREAM: Final = {"readings": _reading, "events": _alert}


def _encode(
    stream: str,
    kind: str,
    estate: str | None,
    building: str | None,
    device: str | None,
    payload: Payload,
    occurred_at: datetime,
    lookup: TagLookup | None,
) -> str | None:
    """The encoding rules (their one place), over the fields of an envelope."""
    point = _BY_STREAM.get(stream)
    head = None if point is None else point(kind, estate, building, device, payload, lookup)
    return None if head is None else f"{head} {_timestamp(occurred_at)}"


def encode(stream: str, record: Envelope, lookup: TagLookup | None = None) -> str | None:
    """The line of ``record`` of ``stream``, or None when it has no time-series point."""
    return _encode(
        stream,
        record.kind,
        record.estate,
        record.building,
        record.device,
        record.payload,
        record.occurred_at,
        lookup,
    )


def encode_stored(stream: str, stored: str | bytes, lookup: TagLookup | None = None) -> str | None:
    """:func:`encode` of a record as the log stores it (the envelope's JSON), unvalidated.

    The log validated the envelope on append, so this trusts it and skips pydantic (~12 µs a
    record): orjson decodes it and ``occurred_at`` is read back with ``fromisoformat``.
    The line is the one :func:`encode` gives for the envelope (``test_schema`` checks it).
    (orjson reads an integer beyond 64 bits as a float; no device model allows one.)
    """
    data = orjson.loads(stored)
    return _encode(
        stream,
        data["kind"],
        data.get("estate"),
        data.get("building"),
        data.get("device"),
        data["payload"],
        datetime.fromisoformat(data["occurred_at"]),
        lookup,
    )
