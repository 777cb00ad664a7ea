"""Hypothesis: over 10,000 generated payloads, the pipeline never raises and never lies.

* (a) arbitrary and corrupted bytes, arbitrary topics: no exception; every message
  yields readings or dead letters, never nothing; reason codes are known;
* (b) arbitrary JSON values: the same, and non-objects are ``not_an_object``;
* (c) mutations of valid examples (a required field dropped, a value of the wrong
  type, an unknown field, a number pushed out of range), alone or inside a gateway
  batch of good items: refused with exactly the expected reason and field, and no
  invalid reading;
* (d) readings with random in-range values built from the models' JSON schemas:
  accepted, and every accepted reading re-validates against its model;
* (e) every accepted and refused record survives ``Envelope.to_json``/``from_json``
  (checked on every judged message of every test, and on a mixture below).

Examples per test (``max_examples``) add up to 11,500.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.catalogue import CATALOGUE, HASHED_FIELDS, DeviceKind
from devices.codec import FLAG_NO_DEVICE_TIME, FLAGS_KEY, from_payload
from devices.examples import VALID_EXAMPLES
from eventlog.envelope import Envelope
from ingest.pipeline import Judgement, Pipeline, Reason, hash_identifier
from tests.ingest.conftest import (
    BATCH_TOPIC,
    DEVICE_OF_KIND,
    FRACTION_BIN,
    OTHER_BIN,
    REASONS,
    RECEIVED_AT,
    SALT,
    SPECS,
    WH_METER,
    FieldSpec,
    batch_item,
    check_reading,
    near_now,
    topic,
)

K = DeviceKind

#: max_examples of every property test of this module
BUDGETS: list[int] = []


def budget(n: int) -> settings:
    """Settings of a property test running ``n`` examples (counted into BUDGETS)."""
    BUDGETS.append(n)
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


STREAMS = list(CATALOGUE)
TOPICS = [
    *(topic(kind, stream) for kind, stream in STREAMS),
    BATCH_TOPIC,
    topic(K.WASTE_BIN, "level", FRACTION_BIN),
    topic(K.ENERGY_METER, "register", WH_METER),
    topic(K.WASTE_BIN, "level", OTHER_BIN),
    topic(K.WASTE_BIN, "level", "nobody"),
    "estates/lvcheng/waste_bin",
]


def is_batch(topic_name: str) -> bool:
    return topic_name.endswith("/gateway/gw-01/batch")


def check(out: Judgement, topic_name: str) -> None:
    """What holds for every message, valid or not."""
    assert out.readings or out.rejected, "a message vanished"
    whole = [r for r in out.rejected if "batch_position" not in r.payload]
    if not is_batch(topic_name) or whole:
        assert len(out.readings) + len(out.rejected) == 1, (out.readings, out.rejected)
    for letter in out.rejected:
        payload = letter.payload
        assert payload["reason"] in REASONS
        assert letter.kind == f"rejected.{payload['reason']}"
        assert str(payload["detail"]).strip()
        assert isinstance(payload["raw_size"], int)
        assert len(str(payload["raw_sha256"])) == 64
        round_trip(letter)
    for reading in out.readings:
        check_reading(reading)  # re-validates against the model; round-trips
        round_trip(reading)


def round_trip(envelope: Envelope) -> None:
    data = envelope.to_json()
    again = Envelope.from_json(data)
    assert again == envelope
    assert again.to_json() == data


def judge(index: Any, topic_name: str, raw: bytes) -> Judgement:
    out = Pipeline(index, SALT).judge(topic_name, raw, RECEIVED_AT)
    check(out, topic_name)
    return out


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


# --- (a) arbitrary bytes ------------------------------------------------------------------------

EXAMPLE_BYTES = [
    (topic(kind, stream), dumps(near_now(example)))
    for (kind, stream), examples in VALID_EXAMPLES.items()
    for example in examples
]


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid message with a few bytes flipped, inserted, deleted or cut off."""
    topic_name, valid = draw(st.sampled_from(EXAMPLE_BYTES))
    raw = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        if op == "flip":
            raw[at] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del raw[at]
        elif op == "truncate":
            del raw[at:]
        else:
            raw[at:at] = raw[at : at + draw(st.integers(1, 16))]
    return topic_name, bytes(raw)


@budget(3000)
@given(topic_name=st.sampled_from(TOPICS), raw=st.binary(max_size=512))
def test_arbitrary_bytes_never_crash(topic_name, raw, registry_index):
    judge(registry_index, topic_name, raw)


@budget(2000)
@given(message=corrupted())
def test_corrupted_valid_messages_never_crash(message, registry_index):
    topic_name, raw = message
    out = judge(registry_index, topic_name, raw)
    if not raw.strip():
        assert out.rejected[0].payload["reason"] == Reason.EMPTY_PAYLOAD


LEVELS = [
    "estates",
    "lvcheng",
    "cuihu",
    "waste_bin",
    "gateway",
    "gw-01",
    "level",
    "batch",
    "+",
    "#",
]


@budget(500)
@given(
    topic_name=st.one_of(
        st.text(max_size=80),
        st.lists(st.sampled_from(LEVELS) | st.text(max_size=6), max_size=7).map("/".join),
    ),
    raw=st.sampled_from([raw for _, raw in EXAMPLE_BYTES[:10]] + [b"", b"{}", b"[]"]),
)
def test_arbitrary_topics_never_crash(topic_name, raw, registry_index):
    out = Pipeline(registry_index, SALT).judge(topic_name, raw, RECEIVED_AT)
    assert out.readings or out.rejected
    for envelope in [*out.readings, *out.rejected]:
        round_trip(envelope)


# --- (b) arbitrary JSON values ------------------------------------------------------------------

FIELD_NAMES = sorted({name for specs in SPECS.values() for name in specs})
KEYS = st.sampled_from(
    [*FIELD_NAMES, "device", *HASHED_FIELDS, "readings", "kind", "stream", "data"]
) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=10)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=6,
)
TOP_LEVEL = st.dictionaries(KEYS, JSON_VALUES, max_size=6) | JSON_VALUES


def _finite_and_unicode(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return all(_finite_and_unicode(v) for v in value)
    if isinstance(value, dict):
        return all(_finite_and_unicode(k) and _finite_and_unicode(v) for k, v in value.items())
    return True


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@budget(1500)
@given(
    topic_name=st.sampled_from(TOPICS[:-1]),
    value=TOP_LEVEL,
    ascii_only=st.booleans(),
)
def test_arbitrary_json_never_crashes(topic_name, value, ascii_only, registry_index):
    raw = json.dumps(value, allow_nan=True, ensure_ascii=ascii_only).encode(
        "utf-8", "surrogatepass"
    )
    out = judge(registry_index, topic_name, raw)
    clean = _finite_and_unicode(value) and _depth(value) <= 16
    if clean and not isinstance(value, dict) and raw.strip():
        assert [r.payload["reason"] for r in out.rejected] == [Reason.NOT_AN_OBJECT]
    if not _finite_and_unicode(value):
        assert out.readings == []


# --- value strategies from the models' JSON schemas ---------------------------------------------

NO_SURROGATES = st.characters(exclude_categories=("Cs",))
TEXT = st.text(NO_SURROGATES, max_size=12)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
OFFSETS = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))


#: Faster equivalents of the models' string patterns (from_regex is slow to generate).
PATTERNS: dict[str, st.SearchStrategy[str]] = {
    "^[0-9a-f]{16,128}$": st.text("0123456789abcdef", min_size=16, max_size=128),
    "^[\\x21-\\x7e]{1,64}$": st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
    ),
    "^[\\x20-\\x7e]{1,64}$": st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64
    ),
}


def in_range(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Valid values of ``spec`` (``ts`` within the time checks)."""
    if spec.type == "integer":
        return st.integers(int(spec.minimum), int(spec.maximum))
    if spec.type == "number":
        low, high = spec.minimum, spec.maximum
        floats = st.floats(low, high, allow_nan=False, allow_infinity=False)
        lo = math.ceil(low) if low is not None else None
        hi = math.floor(high) if high is not None else None
        return floats | st.integers(lo, hi)
    if spec.enum is not None:
        return st.sampled_from(spec.enum)
    if spec.type == "boolean":
        return st.booleans()
    if spec.type == "string":
        assert spec.pattern is not None
        if spec.pattern in PATTERNS:
            return PATTERNS[spec.pattern]
        return st.from_regex(spec.pattern, fullmatch=True)
    if spec.name == "ts":
        micros = st.integers(-7 * 86_400 * 10**6, 300 * 10**6)
        return st.builds(
            lambda us, tz: (RECEIVED_AT + timedelta(microseconds=us)).astimezone(tz).isoformat(),
            micros,
            OFFSETS,
        )
    return st.builds(
        lambda moment, tz: moment.replace(tzinfo=UTC).astimezone(tz).isoformat(),
        st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)),
        OFFSETS,
    )


def wrong_type(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Values of another JSON type than ``spec`` allows (null only where it is not allowed)."""
    containers = st.lists(st.integers(), max_size=2) | st.dictionaries(
        TEXT, st.integers(), max_size=2
    )
    null = st.nothing() if spec.nullable else st.none()
    if spec.type == "number":
        return TEXT | st.booleans() | containers | null
    if spec.type == "integer":
        return FINITE | TEXT | st.booleans() | containers | null
    if spec.type == "boolean":
        return st.integers() | FINITE | TEXT | containers | null
    return st.integers() | FINITE | st.booleans() | containers | null


def out_of_range(spec: FieldSpec) -> st.SearchStrategy[Any] | None:
    options = []
    integer = spec.type == "integer"
    for limit, sign in ((spec.minimum, -1), (spec.maximum, +1)):
        if limit is None:
            continue
        if integer:
            options.append(
                st.integers(1, 10**30).map(lambda d, lim=limit, s=sign: int(lim) + s * d)
            )
        else:
            smallest = max(1e-3, abs(limit) * 1e-6)
            options.append(
                st.floats(smallest, 1e15).map(lambda d, lim=limit, s=sign: lim + s * d)
                | st.integers(1, 10**30).map(lambda d, lim=limit, s=sign: int(lim) + s * d)
            )
    return st.one_of(options) if options else None


def valid_fields(kind: DeviceKind, stream: str) -> st.SearchStrategy[dict[str, Any]]:
    specs = SPECS[(kind, stream)]
    required = {name: in_range(spec) for name, spec in specs.items() if spec.required}
    optional = {
        name: in_range(spec) | st.none() if spec.nullable else in_range(spec)
        for name, spec in specs.items()
        if not spec.required
    }
    return st.fixed_dictionaries(required, optional=optional)


#: Strategies built once: valid fields per stream, wrong types and out-of-range values per field.
VALID_FIELDS = {key: valid_fields(*key) for key in STREAMS}
WRONG_TYPE = {(key, n): wrong_type(spec) for key in STREAMS for n, spec in SPECS[key].items()}
OUT_OF_RANGE = {
    (key, n): strategy
    for key in STREAMS
    for n, spec in SPECS[key].items()
    if (strategy := out_of_range(spec)) is not None
}


# --- (c) mutations of valid examples -----------------------------------------------------------

#: Streams to mutate; heartbeats are one model, exercised on the gateway.
MUTABLE = [key for key in STREAMS if key[1] != "heartbeat" or key[0] is K.GATEWAY]
GOOD_ITEM = batch_item(
    K.WATER_METER, "register", near_now(VALID_EXAMPLES[(K.WATER_METER, "register")][0])
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[DeviceKind, str, dict[str, Any], str, str]:
    """(kind, stream, payload, expected reason, expected field)."""
    kind, stream = draw(st.sampled_from(MUTABLE))
    specs = SPECS[(kind, stream)]
    payload = near_now(draw(st.sampled_from(VALID_EXAMPLES[(kind, stream)])))
    choices = ["wrong_type", "unknown_field"]
    if any(s.required for s in specs.values()):
        choices.append("drop_required")
    if any(s.minimum is not None or s.maximum is not None for s in specs.values()):
        choices.append("out_of_range")
    mutation = draw(st.sampled_from(choices))
    if mutation == "drop_required":
        name = draw(st.sampled_from([n for n, s in specs.items() if s.required]))
        del payload[name]
        return kind, stream, payload, Reason.SCHEMA, name
    if mutation == "wrong_type":
        name = draw(st.sampled_from(sorted(specs)))
        payload[name] = draw(WRONG_TYPE[((kind, stream), name)])
        return kind, stream, payload, Reason.SCHEMA, name
    if mutation == "unknown_field":
        forbidden = {*specs, "device", *HASHED_FIELDS}
        name = draw(
            st.text(NO_SURROGATES, min_size=1, max_size=16).filter(lambda n: n not in forbidden)
        )
        payload[name] = draw(st.none() | st.booleans() | FINITE | TEXT | st.integers())
        return kind, stream, payload, Reason.SCHEMA, name
    bounded = [n for n, s in specs.items() if s.minimum is not None or s.maximum is not None]
    name = draw(st.sampled_from(bounded))
    payload[name] = draw(OUT_OF_RANGE[((kind, stream), name)])
    return kind, stream, payload, Reason.OUT_OF_RANGE, name


@budget(2000)
@given(mutation=mutated(), in_batch=st.booleans(), position=st.integers(0, 2))
def test_mutated_examples_are_refused_with_the_expected_reason(
    mutation, in_batch, position, registry_index
):
    kind, stream, payload, reason, field = mutation
    if in_batch:
        items = [GOOD_ITEM, GOOD_ITEM]
        items.insert(position, batch_item(kind, stream, payload))
        out = judge(registry_index, BATCH_TOPIC, dumps({"readings": items}))
        assert len(out.readings) == 2
        (letter,) = out.rejected
        assert letter.payload["batch_position"] == position
    else:
        out = judge(registry_index, topic(kind, stream), dumps(payload))
        assert out.readings == []
        (letter,) = out.rejected
    assert letter.payload["reason"] == reason, letter.payload
    assert letter.payload["field"] == field, letter.payload
    assert field in str(letter.payload["detail"])


# --- (d) valid readings with random in-range values ---------------------------------------------


@st.composite
def valid_message(draw: st.DrawFn) -> tuple[DeviceKind, str, dict[str, Any]]:
    kind, stream = draw(st.sampled_from(STREAMS))
    fields = draw(VALID_FIELDS[(kind, stream)])
    if draw(st.booleans()):
        fields["device"] = DEVICE_OF_KIND[kind]
    if (kind, stream) in ((K.ACCESS_GATE, "passage"), (K.PARKING_SENSOR, "occupancy")) and draw(
        st.booleans()
    ):
        raw_name = "credential" if kind is K.ACCESS_GATE else "plate"
        fields.pop(f"{raw_name}_hash", None)
        fields[raw_name] = draw(st.text(NO_SURROGATES, min_size=1, max_size=256))
    return kind, stream, fields


@budget(2000)
@given(message=valid_message(), in_batch=st.booleans())
def test_valid_random_readings_are_accepted(message, in_batch, registry_index):
    kind, stream, fields = message
    if in_batch:
        raw = dumps({"readings": [batch_item(kind, stream, fields)]})
        out = judge(registry_index, BATCH_TOPIC, raw)
    else:
        out = judge(registry_index, topic(kind, stream), dumps(fields))
    assert out.rejected == [], out.rejected[0].payload if out.rejected else None
    (reading,) = out.readings
    assert reading.device == DEVICE_OF_KIND[kind]
    expected_fields = {k: v for k, v in fields.items() if k != "device"}
    for raw_name, hashed_name in HASHED_FIELDS.items():
        if raw_name in expected_fields:
            secret = expected_fields.pop(raw_name)
            expected_fields[hashed_name] = hash_identifier(SALT, secret)
            assert raw_name not in reading.payload
            if len(secret) >= 12:
                assert json.dumps(secret, ensure_ascii=False).encode() not in reading.to_json()
    model = CATALOGUE[(kind, stream)].model
    expected = model.model_validate(expected_fields)
    restored = from_payload(reading.kind, reading.payload)
    assert restored.model_dump(exclude={"ts"}) == expected.model_dump(exclude={"ts"})
    if expected.ts is None:
        assert reading.occurred_at == RECEIVED_AT
        assert reading.payload[FLAGS_KEY] == [FLAG_NO_DEVICE_TIME]
    else:
        assert reading.occurred_at == expected.ts
        assert FLAGS_KEY not in reading.payload


# --- (e) the envelope round trip over a mixture of everything -----------------------------------


@st.composite
def any_message(draw: st.DrawFn) -> tuple[str, bytes]:
    source = draw(st.sampled_from(["valid", "mutated", "corrupted", "json"]))
    if source == "valid":
        kind, stream, fields = draw(valid_message())
        return topic(kind, stream), dumps(fields)
    if source == "mutated":
        kind, stream, payload, _, _ = draw(mutated())
        return topic(kind, stream), dumps(payload)
    if source == "corrupted":
        return draw(corrupted())
    return draw(st.sampled_from(TOPICS)), dumps(draw(TOP_LEVEL))


@budget(500)
@given(messages=st.lists(any_message(), min_size=1, max_size=3))
def test_every_record_round_trips_through_json(messages, registry_index):
    pipeline = Pipeline(registry_index, SALT)
    for topic_name, raw in messages:
        out = pipeline.judge(topic_name, raw, RECEIVED_AT)
        check(out, topic_name)
    assert pipeline.accepted + sum(pipeline.rejected_by_reason.values()) >= len(messages)


def test_the_generated_examples_add_up_to_ten_thousand():
    assert sum(BUDGETS) >= 10_000
