"""Properties of the envelope: JSON round trip, deterministic ids, what is refused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from eventlog.envelope import Envelope, deterministic_id, utc

# --- strategies ---------------------------------------------------------------------------------

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
zones = st.one_of(st.just(UTC), offsets, st.timezones())
#: Aware datetimes whose UTC instant is representable (years 2..9998).
aware = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=zones)
naive = st.datetimes()
idents = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=20), json_values, max_size=8)
envelopes = st.builds(
    Envelope,
    id=st.uuids(),
    kind=st.text(min_size=1, max_size=128),
    schema_version=st.integers(min_value=1, max_value=2**31),
    occurred_at=aware,
    received_at=aware,
    estate=st.none() | idents,
    building=st.none() | idents,
    device=st.none() | idents,
    payload=payloads,
)
#: Text that cannot contain the separators deterministic_id renders with (see below).
plain_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00\x1f"))


def envelope_dict(**changes: object) -> dict[str, object]:
    return {
        "id": "0c1a7448-1585-42af-9cd9-aba5c948310a",
        "kind": "reading.water_meter",
        "occurred_at": "2026-11-22T08:00:00+08:00",
        "received_at": "2026-11-22T00:00:01Z",
        "device": "dev-1",
        **changes,
    }


# --- round trip ---------------------------------------------------------------------------------


@given(envelopes)
def test_json_round_trip(envelope: Envelope) -> None:
    data = envelope.to_json()
    again = Envelope.from_json(data)
    assert again == envelope
    assert again.to_json() == data
    assert Envelope.from_json(data.decode()) == envelope


@given(envelopes)
def test_datetimes_are_utc(envelope: Envelope) -> None:
    for value in (envelope.occurred_at, envelope.received_at):
        assert value.utcoffset() == timedelta(0)
    stored = json.loads(envelope.to_json())
    assert stored["occurred_at"].endswith("Z")


@given(st.datetimes(timezones=zones))
def test_any_aware_datetime_is_kept_or_refused_cleanly(when: datetime) -> None:
    """Near year 1 or 9999 the UTC instant may not exist: a validation error, never a crash."""
    try:
        envelope = Envelope(id=uuid.uuid4(), kind="k", occurred_at=when, received_at=when)
    except ValidationError:
        return
    # not ``== when``: a local time in a DST gap never compares equal across zones (PEP 495)
    offset = when.utcoffset()
    assert offset is not None
    assert envelope.occurred_at.replace(tzinfo=None) == when.replace(tzinfo=None) - offset
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_out_of_range_instant_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="out of range"):
        Envelope.model_validate_json(
            json.dumps(envelope_dict(occurred_at="0001-01-01T00:00+01:00"))
        )
    with pytest.raises(ValueError, match="out of range"):
        utc(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))))


# --- deterministic ids --------------------------------------------------------------------------


def test_deterministic_id_is_pinned() -> None:
    """Stored logs and replays depend on it: once logs exist, the derivation must not change.

    (Pinned to the length-prefixed derivation with datetimes as microseconds since the epoch.)
    """
    when = datetime(2026, 1, 1, tzinfo=UTC)
    expected = uuid.UUID("9e74ef22-9753-59f7-a949-2426526bd5dd")
    assert deterministic_id("reading", "estate-1", "dev-1", when) == expected
    assert deterministic_id("reading", "estate-1", "dev-1", when).version == 5


@given(st.text(), st.lists(st.one_of(st.none(), st.text(), st.integers(), aware)))
def test_same_inputs_same_id(kind: str, parts: list[object]) -> None:
    assert deterministic_id(kind, *parts) == deterministic_id(kind, *list(parts))


@given(st.text(), aware, offsets)
def test_equal_instants_in_other_offsets_give_the_same_id(
    kind: str, when: datetime, offset: timezone
) -> None:
    try:
        elsewhere = when.astimezone(offset)
    except OverflowError:
        assume(False)
    assert deterministic_id(kind, "dev-1", when) == deterministic_id(kind, "dev-1", elsewhere)


@given(plain_text, st.lists(plain_text), st.lists(plain_text))
def test_none_and_empty_text_differ(kind: str, before: list[str], after: list[str]) -> None:
    assert deterministic_id(kind, *before, None, *after) != deterministic_id(
        kind, *before, "", *after
    )


@given(st.lists(plain_text | st.none(), min_size=1), st.lists(plain_text | st.none(), min_size=1))
def test_different_parts_give_different_ids(a: list[str | None], b: list[str | None]) -> None:
    # Parts are rendered as text joined by "\\x1f" and None as "\\x00", so inputs
    # containing those two characters could collide; identifiers cannot contain them.
    assume(a != b)
    assert deterministic_id("k", *a) != deterministic_id("k", *b)


@given(plain_text, plain_text, st.lists(plain_text))
def test_different_kinds_give_different_ids(kind: str, other: str, parts: list[str]) -> None:
    assume(kind != other)
    assert deterministic_id(kind, *parts) != deterministic_id(other, *parts)


# --- what is refused ----------------------------------------------------------------------------


@given(naive)
def test_naive_datetimes_are_refused(when: datetime) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Envelope(id=uuid.uuid4(), kind="k", occurred_at=when, received_at=datetime.now(UTC))
    with pytest.raises(ValidationError, match="timezone"):
        Envelope(id=uuid.uuid4(), kind="k", occurred_at=datetime.now(UTC), received_at=when)
    with pytest.raises(ValueError, match="naive"):
        utc(when)
    with pytest.raises(ValueError, match="naive"):
        deterministic_id("k", when)


def test_naive_datetime_text_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Envelope.from_json(json.dumps(envelope_dict(occurred_at="2026-11-22T08:00:00")))


@given(st.text(min_size=1).filter(lambda name: name not in Envelope.model_fields), json_values)
def test_unknown_fields_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Envelope.model_validate(envelope_dict(**{name: value}))
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Envelope.from_json(json.dumps(envelope_dict(**{name: value})))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_in_payload_are_refused(bad: float) -> None:
    with pytest.raises(ValidationError):
        Envelope.model_validate(envelope_dict(payload={"x": bad}))
    with pytest.raises(ValidationError):
        Envelope.model_validate(envelope_dict(payload={"x": {"y": [bad]}}))


def test_non_finite_tokens_in_payload_json_are_refused() -> None:
    with pytest.raises(ValidationError):
        Envelope.from_json(json.dumps(envelope_dict(payload={"x": float("nan")})))


def test_envelopes_are_frozen() -> None:
    envelope = Envelope.model_validate(envelope_dict())
    with pytest.raises(ValidationError):
        envelope.kind = "other"  # type: ignore[misc]
    changed = envelope.with_payload(a=1)
    assert envelope.payload == {} and changed.payload == {"a": 1} and changed.id == envelope.id
