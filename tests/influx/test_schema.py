"""The time-series schema: readings and alert events as line protocol (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devices.catalogue import CATALOGUE, model_for
from devices.codec import to_payload
from devices.examples import VALID_EXAMPLES
from eventlog.envelope import Envelope, deterministic_id
from processors.influx_schema import MEASUREMENTS, DeviceTags, encode, registry_lookup
from tests.support.influx import demo_index, generated_records

AT = datetime(2026, 5, 1, 1, 30, 0, 123456, tzinfo=UTC)
ALLOWED_TAGS = {
    "estate", "building", "device", "kind", "zone", "office", "role",
    "category", "connector", "port", "event", "condition", "severity",
}  # fmt: skip


def _reading(kind: str, stream: str, data: dict[str, object]) -> Envelope:
    reading = model_for(kind, stream).model_validate(data)
    return Envelope(
        id=deterministic_id("reading", kind, stream, str(data)),
        kind=f"{kind}.{stream}",
        occurred_at=AT,
        received_at=AT,
        estate="lvcheng",
        building="b3",
        device="dev-1",
        payload=to_payload(reading),
    )


def _parse(line: str) -> tuple[str, dict[str, str], dict[str, str], int]:
    head, fields, stamp = line.rsplit(" ", 2) if '"' not in line else _split_quoted(line)
    measurement, *tags = head.split(",")
    tag_map = dict(tag.split("=", 1) for tag in tags)
    field_map = dict(field.split("=", 1) for field in fields.split(","))
    return measurement, tag_map, field_map, int(stamp)


def _split_quoted(line: str) -> tuple[str, str, str]:
    head, rest = line.split(" ", 1)
    fields, stamp = rest.rsplit(" ", 1)
    return head, fields, stamp


@pytest.mark.parametrize(
    ("kind", "stream", "data"),
    [(k.value, s, d) for (k, s), examples in VALID_EXAMPLES.items() for d in examples],
)
def test_every_example_reading_becomes_one_point_with_bounded_tags(
    kind: str, stream: str, data: dict[str, object]
) -> None:
    line = encode("readings", _reading(kind, stream, data))
    assert line is not None
    measurement, tags, fields, stamp = _parse(line)
    expected = MEASUREMENTS["heartbeat" if stream == "heartbeat" else f"{kind}.{stream}"].name
    assert measurement == expected
    assert set(tags) <= ALLOWED_TAGS
    assert tags["estate"] == "lvcheng" and tags["device"] == "dev-1" and tags["kind"] == kind
    assert stamp == 1777599000123456000  # occurred_at in ns, microseconds kept
    for value in fields.values():
        float(value)  # every reading field is a number (written as a float)
        assert not value.endswith("i")
    for secret in ("hash", "session_id", "plate", "firmware", "seq"):
        assert not any(secret in name for name in (*tags, *fields)), line


def test_every_catalogue_stream_has_a_measurement() -> None:
    for kind, stream in CATALOGUE:
        key = "heartbeat" if stream == "heartbeat" else f"{kind.value}.{stream}"
        assert key in MEASUREMENTS, key


def test_values_and_sub_identities() -> None:
    line = encode(
        "readings",
        _reading("ev_charger", "connector", {"connector": 2, "status": "charging",
                                             "power_kw": 6.9, "session_id": "TX-1"}),
    )  # fmt: skip
    assert line is not None
    _, tags, fields, _ = _parse(line)
    assert tags["connector"] == "2"
    assert fields == {"power_kw": "6.9", "charging": "1.0", "in_use": "1.0", "faulted": "0.0"}
    gate = encode(
        "readings",
        _reading("access_gate", "passage", {"direction": "in", "result": "denied",
                                            "method": "card", "credential_hash": "ab" * 16}),
    )  # fmt: skip
    assert gate is not None and "abab" not in gate
    assert _parse(gate)[2] == {"passages": "1.0", "granted": "0.0", "denied": "1.0",
                               "inbound": "1.0"}  # fmt: skip


def test_registry_tags_are_added_but_never_elderly_alone() -> None:
    index = demo_index()
    lookup = registry_lookup(index)
    readings, events = generated_records(index, AT, hours=1)
    seen_roles: set[str] = set()
    for record in readings:
        line = encode("readings", record, lookup)
        assert line is not None
        _, tags, _, _ = _parse(line)
        assert tags["office"] in {"huamu", "gumei"}
        seen_roles.add(tags.get("role", ""))
        assert "elderly" not in line
    assert {"fire_lane", "master", "lighting", "common_area", ""} <= seen_roles
    parking = next(r for r in readings if r.kind == "parking_sensor.occupancy")
    line = encode("readings", parking, lookup)
    assert line is not None and _parse(line)[1]["zone"]
    for record in events:
        line = encode("events", record, lookup)
        assert line is not None
        measurement, tags, fields, _ = _parse(line)
        assert measurement == "events" and set(tags) <= ALLOWED_TAGS
        assert tags["event"] == record.kind and tags["condition"] == record.payload["condition"]
        assert fields["text"].startswith('"') and "generated" in fields["text"]


def test_escaping_and_unknown_records() -> None:
    lookup_tags = DeviceTags(zone="gate north,1=a")
    envelope = _reading("parking_sensor", "occupancy", {"occupied": True})
    line = encode("readings", envelope, lambda _e, _d: lookup_tags)
    assert line is not None and r",zone=gate\ north\,1\=a " in line
    assert encode("readings", envelope.model_copy(update={"kind": "toaster.level"})) is None
    assert encode("rejected", envelope) is None
    alert = Envelope(
        id=deterministic_id("x"), kind="AlertRaised", occurred_at=AT, received_at=AT,
        estate="e", device="d",
        payload={"condition": "bin_overflow", "severity": "major", "occurrence": 1,
                 "explanation": 'fill "95 %"\nover 90 \\ %'},
    )  # fmt: skip
    line = encode("events", alert)
    assert line is not None
    assert r"fill \"95 %\" over 90 \\ %" in line and "\n" not in line
    assert "opened=1.0" in line and "open_change=1.0" in line
    assert encode("events", alert.model_copy(update={"kind": "LeakSuspected"})) is None
