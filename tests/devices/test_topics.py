"""The MQTT topic scheme and the gateway batch message."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devices.catalogue import CATALOGUE, DeviceKind, model_for
from devices.examples import example
from devices.topics import (
    BATCH_STREAM,
    TOPIC_ROOT,
    BatchItem,
    BatchMessage,
    Topic,
    TopicError,
    batch_topic,
    parse_topic,
    subscription,
    topic_for,
)

K = DeviceKind
KEYS = list(CATALOGUE)
DOC = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"
IDENT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-."


def _key_id(key: tuple[DeviceKind, str]) -> str:
    return f"{key[0].value}/{key[1]}"


def _matches(filter_: str, topic: str) -> bool:
    """MQTT topic-filter matching (``+`` one level, ``#`` the rest), enough for these tests."""
    f_levels, t_levels = filter_.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels) or (level not in ("+", t_levels[i])):
            return False
    return len(f_levels) == len(t_levels)


# --- accepted topics -------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS, ids=_key_id)
def test_every_catalogue_stream_has_a_topic_that_round_trips(key: tuple[DeviceKind, str]) -> None:
    kind, stream = key
    text = topic_for("lvcheng-garden", kind, "dev-01.a_2", stream)
    assert text == f"estates/lvcheng-garden/{kind.value}/dev-01.a_2/{stream}"
    topic = parse_topic(text)
    assert topic == Topic("lvcheng-garden", kind, "dev-01.a_2", stream)
    assert topic.kind is kind
    assert not topic.is_batch
    assert str(topic) == text
    assert parse_topic(str(topic)) == topic
    assert topic_for("lvcheng-garden", kind.value, "dev-01.a_2", stream) == text


def test_the_gateway_batch_topic() -> None:
    text = batch_topic("lvcheng-garden", "gw-north-1")
    assert text == "estates/lvcheng-garden/gateway/gw-north-1/batch"
    topic = parse_topic(text)
    assert topic == Topic("lvcheng-garden", K.GATEWAY, "gw-north-1", BATCH_STREAM)
    assert topic.is_batch
    assert str(topic) == text


def test_a_gateway_heartbeat_is_not_a_batch() -> None:
    assert not parse_topic("estates/e1/gateway/gw1/heartbeat").is_batch


def test_the_subscription_matches_every_topic_of_the_scheme() -> None:
    assert subscription() == "estates/+/+/+/+"
    assert subscription("e1") == "estates/e1/+/+/+"
    for kind, stream in KEYS:
        assert _matches(subscription(), topic_for("e1", kind, "d1", stream))
        assert _matches(subscription("e1"), topic_for("e1", kind, "d1", stream))
        assert not _matches(subscription("e2"), topic_for("e1", kind, "d1", stream))
    assert _matches(subscription("e1"), batch_topic("e1", "gw1"))


@pytest.mark.parametrize("ident", ["a", "A" * 64, "bldg-3.unit_12", "0", "...", "-_-"])
def test_identifiers_of_1_to_64_allowed_characters_are_accepted(ident: str) -> None:
    topic = parse_topic(f"estates/{ident}/waste_bin/{ident}/level")
    assert (topic.estate, topic.device) == (ident, ident)


@settings(max_examples=200, deadline=None)
@given(
    estate=st.text(IDENT_CHARS, min_size=1, max_size=64),
    device=st.text(IDENT_CHARS, min_size=1, max_size=64),
    key=st.sampled_from(KEYS),
)
def test_any_valid_topic_round_trips(estate: str, device: str, key: tuple[DeviceKind, str]) -> None:
    text = topic_for(estate, key[0], device, key[1])
    assert str(parse_topic(text)) == text


# --- refused topics --------------------------------------------------------------------------

REFUSED: list[tuple[str, str, list[str]]] = [
    # (case, topic, fragments the reason must contain)
    ("4 levels", "estates/e1/waste_bin/bin-01", ["has 4 levels", "expected estates/{estate}"]),
    ("6 levels", "estates/e1/waste_bin/bin-01/level/x", ["has 6 levels"]),
    ("1 level", "estates", ["has 1 levels"]),
    ("empty topic", "", ["has 1 levels"]),
    ("leading slash", "/estates/e1/waste_bin/bin-01/level", ["has 6 levels"]),
    ("trailing slash", "estates/e1/waste_bin/bin-01/level/", ["has 6 levels"]),
    ("slash in device id", "estates/e1/waste_bin/bin/01/level", ["has 6 levels"]),
    ("wrong root", "estate/e1/waste_bin/bin-01/level", ["does not start with estates/"]),
    ("root upper case", "Estates/e1/waste_bin/bin-01/level", ["does not start with estates/"]),
    ("$SYS 5 levels", "$SYS/broker/clients/connected/x", ["does not start with estates/"]),
    ("$SYS", "$SYS/broker/uptime", ["has 3 levels"]),
    (
        "unknown kind",
        "estates/e1/toaster/t-01/level",
        ["unknown device kind 'toaster'", "waste_bin"],
    ),
    ("kind upper case", "estates/e1/WASTE_BIN/bin-01/level", ["unknown device kind 'WASTE_BIN'"]),
    ("kind empty", "estates/e1//bin-01/level", ["unknown device kind ''"]),
    (
        "stream of another kind",
        "estates/e1/waste_bin/bin-01/register",
        ["kind waste_bin has no stream 'register'", "known: level, heartbeat"],
    ),
    (
        "batch from a non-gateway",
        "estates/e1/waste_bin/bin-01/batch",
        ["kind waste_bin has no stream 'batch'"],
    ),
    (
        "unknown gateway stream",
        "estates/e1/gateway/gw1/level",
        ["kind gateway has no stream 'level'"],
    ),
    ("stream empty", "estates/e1/waste_bin/bin-01/", ["has no stream ''"]),
    ("estate empty", "estates//waste_bin/bin-01/level", ["estate '' is not 1-64 characters"]),
    ("device empty", "estates/e1/waste_bin//level", ["device '' is not 1-64 characters"]),
    ("all empty", "////", ["does not start with estates/"]),
    ("+ as estate", "estates/+/waste_bin/bin-01/level", ["estate '+' is not"]),
    ("+ as kind", "estates/e1/+/bin-01/level", ["unknown device kind '+'"]),
    ("+ as device", "estates/e1/waste_bin/+/level", ["device '+' is not"]),
    ("+ as stream", "estates/e1/waste_bin/bin-01/+", ["has no stream '+'"]),
    ("# as device", "estates/e1/waste_bin/#/level", ["device '#' is not"]),
    ("# as stream", "estates/e1/waste_bin/bin-01/#", ["has no stream '#'"]),
    ("+ inside an id", "estates/e1/waste_bin/bin+1/level", ["device 'bin+1' is not"]),
    ("space in device", "estates/e1/waste_bin/bin 01/level", ["device 'bin 01' is not"]),
    (
        "space in estate",
        "estates/green garden/waste_bin/b1/level",
        ["estate 'green garden' is not"],
    ),
    ("leading space", "estates/ e1/waste_bin/b1/level", ["estate ' e1' is not"]),
    ("chinese estate", "estates/绿城花园/waste_bin/b1/level", ["estate '绿城花园' is not"]),
    ("accented device", "estates/e1/waste_bin/café-1/level", ["device 'café-1' is not"]),
    ("fullwidth digit", "estates/e1/waste_bin/bin１/level", ["device 'bin１' is not"]),
    ("65-char device", f"estates/e1/waste_bin/{'d' * 65}/level", ["is not 1-64 characters"]),
    ("65-char estate", f"estates/{'e' * 65}/waste_bin/b1/level", ["is not 1-64 characters"]),
    ("newline after device", "estates/e1/waste_bin/bin-01\n/level", ["device 'bin-01\\n' is not"]),
    ("NUL in device", "estates/e1/waste_bin/bin\x0001/level", ["device 'bin\\x0001' is not"]),
]


@pytest.mark.parametrize(("topic", "fragments"), [pytest.param(t, f, id=c) for c, t, f in REFUSED])
def test_topics_outside_the_scheme_are_refused_with_a_reason(
    topic: str, fragments: list[str]
) -> None:
    with pytest.raises(TopicError) as info:
        parse_topic(topic)
    reason = str(info.value)
    assert repr(topic) in reason  # the reason quotes the topic as received
    for fragment in fragments:
        assert fragment in reason
    assert isinstance(info.value, ValueError)


@settings(max_examples=200, deadline=None)
@given(
    device=st.text(min_size=1, max_size=80).filter(
        lambda s: "/" not in s and not (len(s) <= 64 and all(c in IDENT_CHARS for c in s))
    )
)
def test_any_device_id_outside_the_alphabet_is_refused(device: str) -> None:
    with pytest.raises(TopicError, match="is not 1-64 characters"):
        parse_topic(f"estates/e1/water_meter/{device}/register")


def test_the_root_is_the_documented_one() -> None:
    assert TOPIC_ROOT == "estates"


# --- the gateway batch -----------------------------------------------------------------------


def _items() -> list[dict[str, Any]]:
    return [
        {
            "kind": kind.value,
            "device": f"{kind.value}-01",
            "stream": stream,
            "data": example(kind, stream),
        }
        for kind, stream in KEYS
    ]


def test_a_batch_of_every_catalogue_stream_is_accepted() -> None:
    raw = json.dumps({"readings": _items()})
    message = BatchMessage.model_validate_json(raw)
    assert len(message.readings) == len(KEYS)
    for raw_item in message.readings:
        item = BatchItem.model_validate(raw_item)
        model_for(item.kind, item.stream).model_validate(item.data)


def test_batch_items_accept_kinds_as_text_and_as_enum() -> None:
    item = BatchItem.model_validate(
        {"kind": "waste_bin", "device": "bin-01", "stream": "level", "data": {"fill_pct": 1}}
    )
    assert item.kind is K.WASTE_BIN
    same = BatchItem(kind=K.WASTE_BIN, device="bin-01", stream="level", data={"fill_pct": 1})
    assert same == item


@pytest.mark.parametrize("mode", ["python", "json"])
def test_an_empty_batch_is_refused(mode: str) -> None:
    with pytest.raises(ValidationError) as info:
        if mode == "json":
            BatchMessage.model_validate_json('{"readings": []}')
        else:
            BatchMessage.model_validate({"readings": []})
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("readings",)]
    assert errors[0]["type"] == "too_short"


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({}, ("readings",)),
        ({"readings": None}, ("readings",)),
        ({"readings": {"kind": "waste_bin"}}, ("readings",)),  # an object where a list belongs
        ({"readings": "[]"}, ("readings",)),
        ({"readings": [["waste_bin", "b1", "level", {}]]}, ("readings", 0)),
        ({"readings": [{"kind": "gateway"}], "gateway": "gw1"}, ("gateway",)),
        ({"readings": [{"kind": "gateway"}], "sent_at": "2026-05-01T08:00:00+08:00"}, ("sent_at",)),
    ],
    ids=[
        "missing",
        "null",
        "object",
        "string",
        "item not an object",
        "extra gateway",
        "extra sent_at",
    ],
)
def test_malformed_batch_messages_are_refused(
    payload: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    for mode in ("python", "json"):
        with pytest.raises(ValidationError) as info:
            if mode == "json":
                BatchMessage.model_validate_json(json.dumps(payload))
            else:
                BatchMessage.model_validate(payload)
        assert loc in [e["loc"] for e in info.value.errors()]


def test_a_batch_above_10000_readings_is_refused() -> None:
    item = {"kind": "gateway", "device": "gw1", "stream": "heartbeat", "data": {}}
    BatchMessage.model_validate({"readings": [item] * 10_000})
    with pytest.raises(ValidationError) as info:
        BatchMessage.model_validate({"readings": [item] * 10_001})
    assert info.value.errors()[0]["loc"] == ("readings",)


def test_a_batch_keeps_items_raw_so_one_bad_item_does_not_sink_the_others() -> None:
    """Items are checked one by one with :class:`BatchItem` (and the kind's model) by ingest."""
    bad = {"kind": "toaster", "device": "t 1", "stream": "level", "data": {}, "extra": 1}
    message = BatchMessage.model_validate({"readings": [*_items(), bad]})
    assert message.readings[-1] == bad
    accepted, refused = [], []
    for raw in message.readings:
        try:
            accepted.append(BatchItem.model_validate(raw))
        except ValidationError:
            refused.append(raw)
    assert len(accepted) == len(KEYS)
    assert refused == [bad]


GOOD_ITEM: dict[str, Any] = {"kind": "waste_bin", "device": "bin-01", "stream": "level", "data": {}}

BAD_ITEMS = [
    ("extra field", {"estate": "e1"}, "estate"),
    ("extra ts beside data", {"ts": "2026-05-01T08:00:00+08:00"}, "ts"),
    ("unknown kind", {"kind": "toaster"}, "kind"),
    ("kind as enum name", {"kind": "WASTE_BIN"}, "kind"),
    ("kind as number", {"kind": 3}, "kind"),
    ("device with space", {"device": "bin 01"}, "device"),
    ("device with slash", {"device": "b/01"}, "device"),
    ("device with unicode", {"device": "垃圾桶-1"}, "device"),
    ("device 65 chars", {"device": "d" * 65}, "device"),
    ("device empty", {"device": ""}, "device"),
    ("device with newline", {"device": "bin-01\n"}, "device"),
    ("device as number", {"device": 101}, "device"),
    ("stream empty", {"stream": ""}, "stream"),
    ("stream 33 chars", {"stream": "s" * 33}, "stream"),
    ("stream as list", {"stream": ["level"]}, "stream"),
    ("data as list", {"data": [{"fill_pct": 1}]}, "data"),
    ("data as text", {"data": '{"fill_pct": 1}'}, "data"),
    ("data null", {"data": None}, "data"),
]


@pytest.mark.parametrize("mode", ["python", "json"])
@pytest.mark.parametrize(("change", "field"), [pytest.param(c, f, id=i) for i, c, f in BAD_ITEMS])
def test_bad_batch_items_are_refused_naming_the_field(
    change: dict[str, Any], field: str, mode: str
) -> None:
    payload = {**GOOD_ITEM, **change}
    with pytest.raises(ValidationError) as info:
        if mode == "json":
            BatchItem.model_validate_json(json.dumps(payload))
        else:
            BatchItem.model_validate(payload)
    assert {e["loc"][0] for e in info.value.errors()} == {field}


@pytest.mark.parametrize("field", ["kind", "device", "stream", "data"])
def test_batch_items_need_every_field(field: str) -> None:
    payload = dict(GOOD_ITEM)
    del payload[field]
    with pytest.raises(ValidationError) as info:
        BatchItem.model_validate(payload)
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [((field,), "missing")]


def test_batch_models_are_frozen() -> None:
    item = BatchItem.model_validate(GOOD_ITEM)
    message = BatchMessage.model_validate({"readings": [GOOD_ITEM]})
    with pytest.raises(ValidationError):
        item.device = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        message.readings = []  # type: ignore[misc]


def test_a_batch_item_data_is_checked_by_the_kinds_model_not_by_the_item() -> None:
    """``BatchItem`` accepts any object as ``data``; the catalogue model decides."""
    item = BatchItem.model_validate({**GOOD_ITEM, "data": {"fill_pct": 130, "category": "kitchen"}})
    with pytest.raises(ValidationError) as info:
        model_for(item.kind, item.stream).model_validate(item.data)
    assert info.value.errors()[0]["loc"] == ("fill_pct",)


def test_the_documented_batch_example_is_valid() -> None:
    """The batch message shown in docs/data-model.md validates, item by item."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    body = next(b for b in blocks if '"readings"' in b)
    message = BatchMessage.model_validate_json(body)
    kinds = set()
    for raw in message.readings:
        item = BatchItem.model_validate(raw)
        model_for(item.kind, item.stream).model_validate_json(json.dumps(item.data))
        kinds.add(item.kind)
    assert K.GATEWAY in kinds and len(kinds) >= 3


def test_the_documented_single_readings_are_valid() -> None:
    """Every one-line ``json`` example of our side in docs/data-model.md is a valid reading."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    singles = [json.loads(b) for b in blocks if '"readings"' not in b]
    assert singles
    for payload in singles:
        assert any(_accepts(key, payload) for key in KEYS), payload


def _accepts(key: tuple[DeviceKind, str], payload: dict[str, Any]) -> bool:
    try:
        CATALOGUE[key].model.model_validate(payload)
    except ValidationError:
        return False
    return True
