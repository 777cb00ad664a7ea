"""The time-series schema: readings and alert events as line protocol (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from devices.catalogue import CATALOGUE, model_for
from devices.codec import to_payload
from devices.examples import VALID_EXAMPLES
from eventlog.envelope import Envelope, deterministic_id
from eventlog.sqlite import SqliteEventLog
from processors.alarm import AlertEventKind
from processors.influx_schema import (
    MEASUREMENTS,
    DeviceTags,
    encode,
    encode_stored,
    registry_lookup,
)
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


def _alert_envelopes() -> list[Envelope]:
    """Every alert lifecycle kind, with the payload variants the rules look at, and events
    that have no point (another kind, a missing severity)."""
    east = timezone(timedelta(hours=8))  # stored in UTC: the time must not move
    out = []
    for n, kind in enumerate(AlertEventKind):
        for occurrence, extra in ((1, {}), (2, {"detector": "ebike_over_temperature"})):
            out.append(
                Envelope(
                    id=deterministic_id("alert", kind, occurrence),
                    kind=kind.value,
                    occurred_at=datetime(2026, 5, 1, 9, 30, n, 7, tzinfo=east),
                    received_at=AT,
                    estate="lvcheng",
                    building=None if occurrence == 1 else "b3",
                    device="bin-1",
                    payload={
                        "condition": "ebike_over_temperature.port-3",
                        "severity": "major",
                        "occurrence": occurrence,
                        **extra,
                        "explanation": 'fill "95 %"\nover 90 \\ %, =x',
                    },
                )
            )
    for kind, payload in (("LeakSuspected", {"severity": "major", "condition": "c"}),
                          ("AlertRaised", {"condition": "c"})):  # fmt: skip
        out.append(Envelope(id=deterministic_id("other", kind), kind=kind, occurred_at=AT,
                            received_at=AT, device="d", payload=payload))  # fmt: skip
    return out


def test_stored_records_encode_to_the_same_lines_as_envelopes(tmp_path) -> None:
    """The writer's path (``read_json`` + ``encode_stored``) against the envelope path, on
    every example reading, a generated log with the registry's tags, every alert kind and
    records without a point."""
    index = demo_index()
    readings, events = generated_records(index, AT, hours=2)
    examples = [_reading(k.value, s, d) for (k, s), found in VALID_EXAMPLES.items() for d in found]
    unknown = examples[0].model_copy(update={"kind": "toaster.level", "id": deterministic_id("t")})
    empty = _reading("energy_meter", "register", {"energy_kwh": 1.0}).model_copy(
        update={"payload": {}, "id": deterministic_id("e")}
    )
    escaped = DeviceTags(building="b 9", zone="gate north,1=a", role="fire_lane")
    with SqliteEventLog(tmp_path / "log.sqlite") as log:
        log.append("readings", [*examples, *readings, unknown, empty])
        log.append("events", [*events, *_alert_envelopes()])
        log.append("rejected", examples[:3])
        for stream in ("readings", "events", "rejected"):
            records = log.read(stream, limit=100_000)
            stored = log.read_json(stream, limit=100_000)
            assert [p for p, _ in stored] == [r.position for r in records]
            for lookup in (None, registry_lookup(index), lambda _e, _d: escaped):
                lines = [encode(stream, r.envelope, lookup) for r in records]
                assert [encode_stored(stream, s, lookup) for _, s in stored] == lines
                if stream == "readings":
                    assert lines.count(None) == 2  # the unknown kind and the empty payload
                elif stream == "events":
                    assert lines.count(None) == 2 and len(lines) > 2 * len(AlertEventKind)
                else:
                    assert set(lines) == {None}
