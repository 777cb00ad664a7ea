"""Shared fixtures of the ingest pipeline tests: a small two-estate registry and helpers.

The registry is hand-written (one device of every kind and of every profile with unit
conversions, plus a second estate for ``wrong_estate``), written to a temporary YAML
file and loaded by :func:`devices.registry.load_registry` once per session.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from devices.catalogue import CATALOGUE, DeviceKind, Reading
from devices.codec import FLAGS_KEY, split_event_kind
from devices.demo_estate import dump_registry
from devices.registry import RegistryIndex, load_registry
from devices.topics import batch_topic, topic_for
from eventlog.envelope import Envelope
from ingest.pipeline import RAW_KEEP_BYTES, Judgement, Reason

K = DeviceKind

#: The instant every test judges at: 2026-05-01 12:00 in Shanghai.
RECEIVED_AT = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))
SALT = b"ingest-tests-salt-0123456789"

ESTATE = "lvcheng"
OTHER_ESTATE = "cuihu"

#: One registered device per kind in ESTATE (bins report percent, energy kWh).
DEVICE_OF_KIND: dict[DeviceKind, str] = {
    K.ACCESS_GATE: "gate-east-1",
    K.PARKING_SENSOR: "p-S1-001",
    K.WASTE_BIN: "bin-cp01-kitchen",
    K.WATER_METER: "wm-01-101",
    K.ENERGY_METER: "em-01-101",
    K.EV_CHARGER: "evc-001",
    K.EBIKE_STATION: "ebk-01",
    K.GATEWAY: "gw-01",
}
#: A bin on profile bin_ultrasonic_fraction (fill 0-1) and an energy meter on energy_wh.
FRACTION_BIN = "bin-cp01-other"
WH_METER = "em-01-102"
#: Devices of OTHER_ESTATE only.
OTHER_BIN = "bin-cuihu-01"
OTHER_GATEWAY = "gw-cuihu"


def _device(ident: str, kind: str, profile: str, **extra: Any) -> dict[str, Any]:
    return {"id": ident, "kind": kind, "profile": profile, **extra}


REGISTRY_DATA: dict[str, Any] = {
    "version": 1,
    "districts": [
        {
            "id": "pudong",
            "name": "浦东新区",
            "street_offices": [
                {
                    "id": "huamu",
                    "name": "花木街道",
                    "webhooks": [],
                    "estates": [
                        {
                            "id": ESTATE,
                            "name": "绿城花园",
                            "timezone": "Asia/Shanghai",
                            "location": {"lat": 31.2155, "lon": 121.552},
                            "buildings": [
                                {
                                    "id": "b01",
                                    "name": "1号楼",
                                    "households": 2,
                                    "floors": 1,
                                    "devices": [
                                        _device(
                                            "wm-01-101",
                                            "water_meter",
                                            "water_household",
                                            household="101",
                                        ),
                                        _device(
                                            "em-01-101",
                                            "energy_meter",
                                            "energy_household",
                                            household="101",
                                        ),
                                        _device(
                                            "em-01-102",
                                            "energy_meter",
                                            "energy_wh",
                                            household="102",
                                        ),
                                        _device("gate-01-a", "access_gate", "gate_standard"),
                                    ],
                                }
                            ],
                            "devices": [
                                _device("gate-east-1", "access_gate", "gate_standard", zone="east"),
                                _device("p-S1-001", "parking_sensor", "parking_geomagnetic"),
                                _device(
                                    "p-S1-002",
                                    "parking_sensor",
                                    "parking_geomagnetic",
                                    tags=["fire_lane"],
                                ),
                                _device(
                                    "bin-cp01-kitchen",
                                    "waste_bin",
                                    "bin_ultrasonic",
                                    zone="cp01",
                                    category="kitchen",
                                ),
                                _device(
                                    "bin-cp01-other",
                                    "waste_bin",
                                    "bin_ultrasonic_fraction",
                                    zone="cp01",
                                    category="other",
                                ),
                                _device("evc-001", "ev_charger", "ev_ac7", ports=2),
                                _device("ebk-01", "ebike_station", "ebike_10port", ports=10),
                                _device("gw-01", "gateway", "gateway_lora"),
                            ],
                        },
                        {
                            "id": OTHER_ESTATE,
                            "name": "翠湖苑",
                            "timezone": "Asia/Shanghai",
                            "location": {"lat": 31.21, "lon": 121.55},
                            "devices": [
                                _device(OTHER_BIN, "waste_bin", "bin_ultrasonic", category="other"),
                                _device(OTHER_GATEWAY, "gateway", "gateway_lora"),
                            ],
                        },
                    ],
                }
            ],
        }
    ],
}


@pytest.fixture(scope="session")
def registry_index(tmp_path_factory: pytest.TempPathFactory) -> RegistryIndex:
    path: Path = tmp_path_factory.mktemp("registry") / "estate.yaml"
    path.write_text(dump_registry(REGISTRY_DATA), encoding="utf-8")
    return load_registry(path).index()


# --- topics and payloads -------------------------------------------------------------------


def topic(
    kind: DeviceKind | str, stream: str, device: str | None = None, estate: str = ESTATE
) -> str:
    """The topic of ``kind``/``stream`` for ``device`` (default: the registered one)."""
    return topic_for(estate, kind, device or DEVICE_OF_KIND[DeviceKind(kind)], stream)


BATCH_TOPIC = batch_topic(ESTATE, DEVICE_OF_KIND[K.GATEWAY])


def iso(moment: datetime, tz: timezone = CST) -> str:
    return moment.astimezone(tz).isoformat()


#: A device time that passes the time checks (one minute before RECEIVED_AT).
NOW_TS = iso(RECEIVED_AT - timedelta(minutes=1))


def near_now(payload: dict[str, Any], offset: timedelta = timedelta(minutes=-1)) -> dict[str, Any]:
    """A copy of ``payload`` whose ``ts`` (when it has one) is RECEIVED_AT + ``offset``."""
    out = dict(payload)
    if out.get("ts") is not None:
        out["ts"] = iso(RECEIVED_AT + offset)
    return out


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode()


def batch_item(
    kind: DeviceKind | str, stream: str, data: Any, device: str | None = None
) -> dict[str, Any]:
    return {
        "kind": DeviceKind(kind).value,
        "device": device or DEVICE_OF_KIND[DeviceKind(kind)],
        "stream": stream,
        "data": data,
    }


# --- what the model says about its fields ---------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of a reading model, read from its JSON schema."""

    name: str
    type: str  # number | integer | string | boolean | datetime
    required: bool
    nullable: bool
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None


def field_specs(model: type[Reading]) -> dict[str, FieldSpec]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    specs: dict[str, FieldSpec] = {}
    for name, prop in schema["properties"].items():
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        (inner,) = options
        kind = "datetime" if inner.get("format") == "date-time" else inner["type"]
        enum = inner.get("enum")
        specs[name] = FieldSpec(
            name=name,
            type=kind,
            required=name in required,
            nullable=len(options) < len(prop.get("anyOf", [prop])),
            minimum=inner.get("minimum"),
            maximum=inner.get("maximum"),
            enum=tuple(enum) if enum else None,
            pattern=inner.get("pattern"),
        )
    return specs


#: (kind, stream) → field specs, for every catalogued stream.
SPECS: dict[tuple[DeviceKind, str], dict[str, FieldSpec]] = {
    key: field_specs(spec.model) for key, spec in CATALOGUE.items()
}

REASONS = frozenset(r.value for r in Reason)


# --- checks ---------------------------------------------------------------------------------


def stored_fields(envelope: Envelope) -> dict[str, Any]:
    return {k: v for k, v in envelope.payload.items() if k != FLAGS_KEY}


def check_reading(envelope: Envelope) -> Reading:
    """An accepted reading re-validates against its model, strictly, and round-trips."""
    kind, stream = split_event_kind(envelope.kind)
    model = CATALOGUE[(kind, stream)].model
    reading = model.model_validate(stored_fields(envelope))
    assert envelope.occurred_at.tzinfo is not None
    assert envelope.estate is not None
    assert envelope.device is not None
    assert Envelope.from_json(envelope.to_json()) == envelope
    return reading


def check_dead_letter(
    letter: Envelope,
    topic_name: str,
    raw: bytes,
    reason: str,
    field: str | None = None,
    *,
    kept: bytes | None = None,
) -> None:
    """The shape every dead letter has; it keeps ``kept`` (default ``raw``), size and hash."""
    payload = letter.payload
    assert payload["reason"] == reason
    assert letter.kind == f"rejected.{reason}"
    detail = payload["detail"]
    assert isinstance(detail, str)
    assert detail.strip()
    if field is not None:
        assert payload.get("field") == field, payload
        assert field in detail, (field, detail)
    assert payload["topic"] == topic_name
    expected = raw if kept is None else kept
    assert base64.b64decode(str(payload["raw_b64"])) == expected[:RAW_KEEP_BYTES]
    assert payload["raw_size"] == len(raw)
    assert payload["raw_sha256"] == hashlib.sha256(raw).hexdigest()
    assert letter.occurred_at == letter.received_at == RECEIVED_AT
    assert Envelope.from_json(letter.to_json()) == letter


def check_invariants(out: Judgement, topic_name: str, *, items: int | None = None) -> None:
    """What holds for every message: something comes out, all of it is well formed.

    ``items``: for a gateway batch whose envelope is valid, the number of items (each
    item then yields exactly one reading or one dead letter).
    """
    assert out.readings or out.rejected
    for letter in out.rejected:
        assert letter.payload["reason"] in REASONS
        assert letter.kind == f"rejected.{letter.payload['reason']}"
        assert str(letter.payload["detail"]).strip()
        assert letter.payload["topic"] == topic_name or "\\u" in str(letter.payload["topic"])
        assert isinstance(letter.payload["raw_size"], int)
        assert len(str(letter.payload["raw_sha256"])) == 64
        assert Envelope.from_json(letter.to_json()) == letter
    for reading in out.readings:
        check_reading(reading)
    total = len(out.readings) + len(out.rejected)
    if items is None:
        assert total == 1, (out.readings, out.rejected)
    else:
        assert total in (1, items)


def reasons(letters: Iterable[Envelope]) -> list[str]:
    return [str(letter.payload["reason"]) for letter in letters]
