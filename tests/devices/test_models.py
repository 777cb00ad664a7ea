"""The reading models of the device catalogue: what they accept and what they refuse.

Every case is generated from ``devices.catalogue.CATALOGUE`` and the models' own JSON
schema, so a new kind, stream or field is covered without touching this file: it
needs valid examples in ``devices.examples`` (a full one and a minimal one) and a
row in the field tables of ``docs/data-model.md``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from devices.catalogue import CATALOGUE, DeviceKind, Reading, model_for, streams_of
from devices.examples import VALID_EXAMPLES, example

K = DeviceKind
KEYS = list(CATALOGUE)
MODELS = sorted({spec.model for spec in CATALOGUE.values()}, key=lambda m: m.__name__)
DOC = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"


def _key_id(key: tuple[DeviceKind, str]) -> str:
    return f"{key[0].value}/{key[1]}"


# --- schema introspection --------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of a reading model, as its JSON schema describes it."""

    name: str
    type: str  # number | integer | string | boolean | enum | date-time
    required: bool
    nullable: bool
    schema: dict[str, Any]


def _fields(model: type[BaseModel]) -> list[FieldSpec]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema["properties"].items():
        branches = prop.get("anyOf", [prop])
        inner = [b for b in branches if b.get("type") != "null"]
        assert len(inner) == 1, f"{model.__name__}.{name}: unexpected union {prop}"
        spec = inner[0]
        if "enum" in spec:
            kind = "enum"
        elif spec.get("format") == "date-time":
            kind = "date-time"
        else:
            kind = spec["type"]
        nullable = len(branches) > len(inner)
        out.append(FieldSpec(name, kind, name in required, nullable, spec))
    return out


def _full(key: tuple[DeviceKind, str]) -> dict[str, Any]:
    """The example of ``key`` that carries every field (the first one)."""
    return dict(VALID_EXAMPLES[key][0])


def _minimal(key: tuple[DeviceKind, str]) -> dict[str, Any]:
    required = {f.name for f in _fields(CATALOGUE[key].model) if f.required}
    return next(dict(e) for e in VALID_EXAMPLES[key] if set(e) == required)


def _validate(model: type[BaseModel], payload: Any, mode: str) -> BaseModel:
    if mode == "json":
        return model.model_validate_json(json.dumps(payload))
    return model.model_validate(payload)


def _rejection(model: type[BaseModel], payload: Any, mode: str) -> list[ErrorDetails]:
    with pytest.raises(ValidationError) as info:
        _validate(model, payload, mode)
    errors = info.value.errors()
    assert errors
    return errors


def _assert_names(errors: list[ErrorDetails], field: str) -> None:
    """Every error is about ``field``: its name is the first element of the ``loc``."""
    locs = [e["loc"] for e in errors]
    assert all(loc[:1] == (field,) for loc in locs), f"expected errors at {field!r}, got {locs}"


# --- the examples themselves -----------------------------------------------------------------


def test_examples_cover_exactly_the_catalogue() -> None:
    assert set(VALID_EXAMPLES) == set(CATALOGUE)


def test_every_kind_has_a_heartbeat_stream() -> None:
    for kind in DeviceKind:
        assert "heartbeat" in streams_of(kind)


@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_examples_have_a_full_first_and_a_minimal_one(key: tuple[DeviceKind, str]) -> None:
    examples = VALID_EXAMPLES[key]
    fields = _fields(CATALOGUE[key].model)
    assert len(examples) >= 2
    assert set(examples[0]) == {f.name for f in fields}, "the first example must be full"
    assert any(set(e) == {f.name for f in fields if f.required} for e in examples), (
        "one example must carry only the required fields"
    )


@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_examples_are_json_as_a_device_sends_it(key: tuple[DeviceKind, str]) -> None:
    offset = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
    for payload in VALID_EXAMPLES[key]:
        assert json.loads(json.dumps(payload, allow_nan=False)) == payload
        for f in _fields(CATALOGUE[key].model):
            value = payload.get(f.name)
            if f.type == "date-time" and value is not None:
                assert offset.match(value), f"{f.name}={value!r} must carry an offset"
            if f.name == "seq" and value is not None:
                assert type(value) is int


@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_examples_show_every_enum_value_and_both_booleans(key: tuple[DeviceKind, str]) -> None:
    """E.g. bins of all four sorting categories, every OCPP status, forced doors."""
    examples = VALID_EXAMPLES[key]
    for f in _fields(CATALOGUE[key].model):
        seen = {json.dumps(e[f.name]) for e in examples if f.name in e}
        if f.type == "enum":
            assert seen >= {json.dumps(v) for v in f.schema["enum"]}, f.name
        elif f.type == "boolean":
            assert seen >= {"true", "false"}, f.name


def test_example_returns_a_fresh_copy_of_the_first() -> None:
    first = example(K.WASTE_BIN, "level")
    assert first == VALID_EXAMPLES[(K.WASTE_BIN, "level")][0]
    first["fill_pct"] = 99
    assert example("waste_bin", "level")["fill_pct"] == 62.5


@pytest.mark.parametrize(("kind", "stream"), [("toaster", "level"), ("waste_bin", "register")])
def test_example_of_an_unknown_pair_is_a_clear_key_error(kind: str, stream: str) -> None:
    with pytest.raises(KeyError, match=rf"{kind}/{stream}.*known: .*waste_bin/level"):
        example(kind, stream)


# --- acceptance ------------------------------------------------------------------------------

EXAMPLE_CASES = [
    pytest.param(key, i, id=f"{_key_id(key)}#{i}")
    for key in KEYS
    for i in range(len(VALID_EXAMPLES[key]))
]


@pytest.mark.parametrize("mode", ["python", "json"])
@pytest.mark.parametrize(("key", "index"), EXAMPLE_CASES)
def test_valid_examples_are_accepted(key: tuple[DeviceKind, str], index: int, mode: str) -> None:
    payload = VALID_EXAMPLES[key][index]
    reading = _validate(CATALOGUE[key].model, payload, mode)
    assert isinstance(reading, Reading)
    for name, value in payload.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert getattr(reading, name) == value


@pytest.mark.parametrize(("key", "index"), EXAMPLE_CASES)
def test_device_times_are_normalised_to_utc(key: tuple[DeviceKind, str], index: int) -> None:
    payload = VALID_EXAMPLES[key][index]
    reading = CATALOGUE[key].model.model_validate(payload)
    for f in _fields(CATALOGUE[key].model):
        if f.type == "date-time" and f.name in payload:
            value = getattr(reading, f.name)
            assert value.tzinfo is UTC
            assert value == datetime.fromisoformat(payload[f.name])  # the same instant


@pytest.mark.parametrize(("key", "index"), EXAMPLE_CASES)
def test_a_dumped_reading_validates_again(key: tuple[DeviceKind, str], index: int) -> None:
    """What the log stores (``model_dump_json``) is itself a valid reading."""
    model = CATALOGUE[key].model
    reading = model.model_validate(VALID_EXAMPLES[key][index])
    text = reading.model_dump_json()
    assert model.model_validate_json(text) == reading
    if reading.ts is not None:
        assert json.loads(text)["ts"].endswith("Z")


def test_aware_python_datetimes_are_accepted_and_normalised() -> None:
    cst = timezone(timedelta(hours=8))
    reading = model_for(K.WASTE_BIN, "level").model_validate(
        {"ts": datetime(2026, 5, 1, 8, 0, tzinfo=cst), "fill_pct": 10, "category": "kitchen"}
    )
    assert reading.ts == datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    assert reading.ts is not None
    assert reading.ts.tzinfo is UTC


def test_integers_are_accepted_for_float_fields() -> None:
    reading = model_for(K.ENERGY_METER, "register").model_validate({"energy_kwh": 12, "power_w": 0})
    assert reading.model_dump()["energy_kwh"] == 12.0


# --- rejection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    key: tuple[DeviceKind, str]
    field: str
    label: str
    value: Any
    json_ok: bool = True  # False for Python objects JSON cannot carry

    @property
    def id(self) -> str:
        return f"{_key_id(self.key)}:{self.field}:{self.label}"


_NON_FINITE = [("nan", math.nan), ("+inf", math.inf), ("-inf", -math.inf)]


def _wrong_types(f: FieldSpec) -> Iterator[tuple[str, Any]]:
    if f.type == "number":
        yield from [("string", "12"), ("bool", True), ("list", [1]), ("object", {"value": 1})]
    elif f.type == "integer":
        yield from [("string", "3"), ("bool", True), ("float", 1.5), ("integral float", 3.0)]
        yield from [("list", [1]), ("object", {"value": 1})]
    elif f.type == "string":
        yield from [("number", 12), ("bool", True), ("list", ["x"]), ("object", {"x": "y"})]
    elif f.type == "boolean":
        yield from [("int 1", 1), ("int 0", 0), ("string", "true"), ("yes", "yes")]
        yield from [("list", [True]), ("object", {"value": True})]
    elif f.type == "enum":
        first = f.schema["enum"][0]
        yield from [("number", 1), ("bool", True), ("unknown value", "bogus")]
        yield from [("upper case", first.upper()), ("list", [first]), ("object", {"v": first})]
    elif f.type == "date-time":
        yield from [("list", ["2026-05-01T08:00:00+08:00"]), ("object", {"ts": 1})]
        yield from [("bool", True)]
    if not f.nullable:
        yield ("null", None)


def _numbers_as_time() -> Iterator[tuple[str, Any]]:
    yield from [("unix s", 1714521600), ("unix s float", 1714521600.5)]
    yield from [("unix ms", 1714521600000), ("unix s text", "1714521600")]
    yield from [("unix ms text", "1714521600000"), ("unix float text", "1714521600.5")]


def _naive_times() -> Iterator[tuple[str, Any]]:
    yield from [("naive", "2026-05-01T08:00:00"), ("naive space", "2026-05-01 08:00:00")]
    yield from [("naive fraction", "2026-05-01T08:00:00.250"), ("date only", "2026-05-01")]
    yield from [("words", "yesterday"), ("empty", ""), ("trailing text", "2026-05-01T08:00Z!")]


def _out_of_range(f: FieldSpec) -> Iterator[tuple[str, Any]]:
    step = 1 if f.type == "integer" else 0.001
    if "minimum" in f.schema:
        yield (f"below {f.schema['minimum']}", f.schema["minimum"] - step)
        yield ("far below", f.schema["minimum"] - 1_000_000)
    if "maximum" in f.schema:
        yield (f"above {f.schema['maximum']}", f.schema["maximum"] + step)
        yield ("far above", f.schema["maximum"] * 10 + 1_000_000)
    if "minLength" in f.schema:
        yield ("too short", "x" * (f.schema["minLength"] - 1))
    if "maxLength" in f.schema:
        yield ("too long", "x" * (f.schema["maxLength"] + 1))
    if f.schema.get("pattern", "").startswith("^[0-9a-f]"):  # salted hash: lower-case hex
        yield from [("upper-case hex", "ABCDEF0123456789"), ("15 digits", "a" * 15)]
        yield from [("129 digits", "a" * 129), ("not hex", "g" * 16), ("raw card id", "0012345678")]
        yield ("trailing newline", "0123456789abcdef\n")
    elif "pattern" in f.schema:  # printable ASCII identifiers (firmware, session id)
        yield from [("control character", "v1\x07"), ("too long", "x" * 65), ("empty", "")]
        yield ("trailing newline", "v1.2\n")


def _bad_values() -> Iterator[Bad]:
    for key in KEYS:
        for f in _fields(CATALOGUE[key].model):
            for label, value in _wrong_types(f):
                yield Bad(key, f.name, f"type/{label}", value)
            for label, value in _out_of_range(f):
                yield Bad(key, f.name, f"range/{label}", value)
            if f.type in ("number", "integer"):
                for label, value in _NON_FINITE:
                    yield Bad(key, f.name, label, value)
            if f.type == "date-time":
                for label, value in [*_numbers_as_time(), *_naive_times()]:
                    yield Bad(key, f.name, label, value)
                yield Bad(key, f.name, "naive object", datetime(2026, 5, 1, 8), json_ok=False)
                yield Bad(key, f.name, "date object", date(2026, 5, 1), json_ok=False)
            if f.type == "number":
                yield Bad(key, f.name, "decimal nan", Decimal("NaN"), json_ok=False)


BAD_VALUES = list(_bad_values())

#: The cases named in the brief, spelled out (the generated ones cover them too).
NAMED = [
    Bad((K.WASTE_BIN, "level"), "fill_pct", "fill 130 %", 130),
    Bad((K.WASTE_BIN, "level"), "fill_pct", "fill -1 %", -1),
    Bad((K.WASTE_BIN, "level"), "fill_pct", "fill as text", "85"),
    Bad((K.WASTE_BIN, "level"), "category", "unsorted category", "glass"),
    Bad((K.WATER_METER, "register"), "volume_m3", "negative volume", -0.5),
    Bad((K.WATER_METER, "register"), "flow_l_min", "backflow beyond range", -1200),
    Bad((K.ENERGY_METER, "register"), "power_w", "negative power", -15.0),
    Bad((K.ENERGY_METER, "register"), "energy_kwh", "negative energy", -1),
    Bad((K.EV_CHARGER, "connector"), "power_kw", "negative charging power", -0.1),
    Bad((K.EV_CHARGER, "connector"), "status", "OCPP 1.6 CamelCase", "Charging"),
    Bad((K.EV_CHARGER, "connector"), "connector", "connector 0 (the whole charger)", 0),
    Bad((K.EBIKE_STATION, "port"), "power_w", "negative port power", -400),
    Bad((K.EBIKE_STATION, "port"), "power_w", "port power beyond 5 kW", 5200),
    Bad((K.EBIKE_STATION, "port"), "temperature_c", "port at 300 °C", 300),
    Bad((K.GATEWAY, "heartbeat"), "battery_pct", "battery 101", 101),
    Bad((K.PARKING_SENSOR, "heartbeat"), "rssi_dbm", "rssi +5", 5),
    Bad((K.ACCESS_GATE, "passage"), "persons_sensed", "crowd of 51", 51),
    Bad((K.ACCESS_GATE, "door"), "forced", "forced as 1", 1),
    Bad((K.PARKING_SENSOR, "occupancy"), "occupied", "occupied as 'true'", "true"),
    Bad((K.WASTE_BIN, "level"), "ts", "no offset", "2026-05-01T08:00:00"),
    Bad((K.WASTE_BIN, "level"), "ts", "epoch seconds", 1777593600),
    Bad((K.WASTE_BIN, "level"), "seq", "negative seq", -1),
    Bad((K.WASTE_BIN, "level"), "seq", "seq beyond int64", 2**63),
]


BAD_CASES = [
    pytest.param(bad, mode, id=f"{bad.id}:{mode}")
    for bad in BAD_VALUES + NAMED
    for mode in ("python", "json")
    if mode == "python" or bad.json_ok
]


@pytest.mark.parametrize(("bad", "mode"), BAD_CASES)
def test_bad_values_are_refused_naming_the_field(bad: Bad, mode: str) -> None:
    payload = {**_full(bad.key), bad.field: bad.value}
    if mode == "json" and isinstance(bad.value, float) and not math.isfinite(bad.value):
        assert re.search(r"NaN|Infinity", json.dumps(payload))  # the JSON text form
    _assert_names(_rejection(CATALOGUE[bad.key].model, payload, mode), bad.field)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_non_finite_json_literals_are_refused(key: tuple[DeviceKind, str], text: str) -> None:
    model = CATALOGUE[key].model
    for f in _fields(model):
        if f.type != "number":
            continue
        body = json.dumps({**_full(key), f.name: 0}).replace(
            f'"{f.name}": 0', f'"{f.name}": {text}'
        )
        assert text in body
        with pytest.raises(ValidationError) as info:
            model.model_validate_json(body)
        _assert_names(info.value.errors(), f.name)


def _unknown_fields(key: tuple[DeviceKind, str]) -> Iterator[str]:
    yield from ["unexpected", "timestamp", "device_id", "unit"]
    for f in _fields(CATALOGUE[key].model):
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), f.name)
        if camel != f.name:
            yield camel  # e.g. fillPct: a device speaking camelCase is refused, not guessed


UNKNOWN = [
    pytest.param(key, name, id=f"{_key_id(key)}:{name}")
    for key in KEYS
    for name in _unknown_fields(key)
]


@pytest.mark.parametrize("mode", ["python", "json"])
@pytest.mark.parametrize(("key", "name"), UNKNOWN)
def test_unknown_fields_are_refused(key: tuple[DeviceKind, str], name: str, mode: str) -> None:
    errors = _rejection(CATALOGUE[key].model, {**_full(key), name: 1}, mode)
    _assert_names(errors, name)
    assert {e["type"] for e in errors} == {"extra_forbidden"}


REQUIRED = [
    pytest.param(key, f.name, id=f"{_key_id(key)}:{f.name}")
    for key in KEYS
    for f in _fields(CATALOGUE[key].model)
    if f.required
]


@pytest.mark.parametrize("mode", ["python", "json"])
@pytest.mark.parametrize(("key", "name"), REQUIRED)
def test_missing_required_fields_are_refused(
    key: tuple[DeviceKind, str], name: str, mode: str
) -> None:
    payload = _minimal(key)
    del payload[name]
    errors = _rejection(CATALOGUE[key].model, payload, mode)
    _assert_names(errors, name)
    assert {e["type"] for e in errors} == {"missing"}


@pytest.mark.parametrize("mode", ["python", "json"])
@pytest.mark.parametrize("payload", [[], [{"fill_pct": 1}], "fill_pct=1", 42, None, True])
def test_a_payload_that_is_not_an_object_is_refused(payload: Any, mode: str) -> None:
    errors = _rejection(model_for(K.WASTE_BIN, "level"), payload, mode)
    assert [e["loc"] for e in errors] == [()]


def test_every_offending_field_is_named_when_several_are_bad() -> None:
    payload = {"fill_pct": 130, "category": "glass", "battery_pct": "90", "colour": "green"}
    errors = _rejection(model_for(K.WASTE_BIN, "level"), payload, "json")
    assert {e["loc"][0] for e in errors} == {"fill_pct", "category", "battery_pct", "colour"}


def test_time_errors_say_what_is_expected() -> None:
    errors = _rejection(
        model_for(K.WASTE_BIN, "level"),
        {"ts": "1714521600", "fill_pct": 1, "category": "other"},
        "json",
    )
    assert "ISO-8601" in errors[0]["msg"] and "+08:00" in errors[0]["msg"]


# --- immutability ----------------------------------------------------------------------------

FIELD_CASES = [
    pytest.param(key, f.name, id=f"{_key_id(key)}:{f.name}")
    for key in KEYS
    for f in _fields(CATALOGUE[key].model)
]


@pytest.mark.parametrize(("key", "name"), FIELD_CASES)
def test_readings_are_frozen(key: tuple[DeviceKind, str], name: str) -> None:
    reading = CATALOGUE[key].model.model_validate(_full(key))
    before = reading.model_dump()
    with pytest.raises(ValidationError) as info:
        setattr(reading, name, getattr(reading, name))
    assert info.value.errors()[0]["type"] == "frozen_instance"
    assert reading.model_dump() == before


# --- model_for -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_model_for_finds_every_catalogue_entry(key: tuple[DeviceKind, str]) -> None:
    assert model_for(*key) is CATALOGUE[key].model
    assert model_for(key[0].value, key[1]) is CATALOGUE[key].model
    assert CATALOGUE[key].event_kind == f"{key[0].value}.{key[1]}"


@pytest.mark.parametrize(
    ("kind", "stream"),
    [
        ("toaster", "level"),  # unknown kind
        ("waste_bin", "register"),  # a stream of another kind
        ("waste_bin", ""),
        ("", "heartbeat"),
        ("gateway", "batch"),  # a topic, not a reading model
        ("WASTE_BIN", "level"),  # kinds are lower-case values, not enum names
    ],
)
def test_model_for_unknown_pair_is_a_clear_key_error(kind: str, stream: str) -> None:
    with pytest.raises(KeyError) as info:
        model_for(kind, stream)
    message = str(info.value)
    assert f"no stream {kind}/{stream}" in message
    assert "known: " in message
    for key in KEYS:
        assert _key_id(key) in message


# --- docs stay faithful ----------------------------------------------------------------------


def _doc_table(model: type[BaseModel]) -> dict[str, str]:
    """``field → required cell`` of the table under the heading naming ``model``."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith("#") and f"`{model.__name__}`" in line
    )
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header = [cell.lower() for cell in rows[0]]
    column = header.index("required")
    return {row[0].strip("`"): row[column] for row in rows[2:]}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_docs_field_tables_match_the_catalogue(model: type[Reading]) -> None:
    table = _doc_table(model)
    assert list(table) == list(model.model_fields)
    for name, info in model.model_fields.items():
        assert table[name] == ("yes" if info.is_required() else "no"), name


# --- properties ------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(fill=st.floats(min_value=0, max_value=100) | st.integers(0, 100))
def test_any_fill_within_0_to_100_is_accepted(fill: float) -> None:
    model = model_for(K.WASTE_BIN, "level")
    for mode in ("python", "json"):
        reading = _validate(model, {"fill_pct": fill, "category": "kitchen"}, mode)
        assert reading.model_dump()["fill_pct"] == fill


@settings(max_examples=200, deadline=None)
@given(
    fill=finite.filter(lambda x: not 0 <= x <= 100)
    | st.sampled_from(_NON_FINITE).map(lambda p: p[1])
)
def test_any_fill_outside_0_to_100_is_refused(fill: float) -> None:
    for mode in ("python", "json"):
        errors = _rejection(
            model_for(K.WASTE_BIN, "level"), {"fill_pct": fill, "category": "other"}, mode
        )
        _assert_names(errors, "fill_pct")


BOUNDED = [
    pytest.param(key, f, id=f"{_key_id(key)}:{f.name}")
    for key in KEYS
    for f in _fields(CATALOGUE[key].model)
    if f.type in ("number", "integer") and ("minimum" in f.schema or "maximum" in f.schema)
]


def _in_range(f: FieldSpec) -> st.SearchStrategy[Any]:
    low, high = f.schema.get("minimum"), f.schema.get("maximum")
    if f.type == "integer":
        return st.integers(min_value=low, max_value=high)
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@pytest.mark.parametrize(("key", "f"), BOUNDED)
@given(data=st.data())
def test_any_value_within_a_fields_range_is_accepted_and_outside_refused(
    key: tuple[DeviceKind, str], f: FieldSpec, data: st.DataObject
) -> None:
    model = CATALOGUE[key].model
    inside = data.draw(_in_range(f), label="inside")
    reading = _validate(model, {**_full(key), f.name: inside}, "json")
    assert getattr(reading, f.name) == inside

    low, high = f.schema.get("minimum"), f.schema.get("maximum")
    numbers = st.integers() if f.type == "integer" else finite
    outside = data.draw(
        numbers.filter(lambda x: (low is not None and x < low) or (high is not None and x > high)),
        label="outside",
    )
    _assert_names(_rejection(model, {**_full(key), f.name: outside}, "json"), f.name)


offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))


@settings(max_examples=200, deadline=None)
@given(local=instants, tz=offsets)
def test_any_aware_device_time_is_normalised_to_the_same_instant_in_utc(
    local: datetime, tz: timezone
) -> None:
    aware = local.replace(tzinfo=tz)
    reading = model_for(K.GATEWAY, "heartbeat").model_validate_json(
        json.dumps({"ts": aware.isoformat()})
    )
    assert reading.ts is not None
    assert reading.ts.tzinfo is UTC
    assert reading.ts == aware


@settings(max_examples=100, deadline=None)
@given(local=instants)
def test_any_naive_device_time_is_refused(local: datetime) -> None:
    for value in (local.isoformat(), local.isoformat(sep=" ")):
        errors = _rejection(model_for(K.GATEWAY, "heartbeat"), {"ts": value}, "json")
        _assert_names(errors, "ts")


@settings(max_examples=100, deadline=None)
@given(seq=st.integers(min_value=0, max_value=2**63 - 1))
def test_any_int64_sequence_number_is_accepted(seq: int) -> None:
    assert (
        model_for(K.GATEWAY, "heartbeat").model_validate_json(json.dumps({"seq": seq})).seq == seq
    )
