"""A named corpus of malformed MQTT messages, and the valid controls next to it.

Every corpus case is (topic, raw bytes, expected reason, expected field): the
pipeline must not raise, must refuse the message (or, in a gateway batch, the one
bad item) with exactly that reason, and must keep a well-formed dead letter. The
controls (every valid example of every kind and stream, unit normalisation,
hashing of credentials, dedup ids) must be accepted.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest

from devices.catalogue import CATALOGUE, HASHED_FIELDS, DeviceKind
from devices.codec import (
    FLAG_CLOCK_SKEW,
    FLAG_NO_DEVICE_TIME,
    FLAG_UNITS_NORMALISED,
    FLAGS_KEY,
    from_payload,
)
from devices.examples import VALID_EXAMPLES
from devices.profiles import BUILTIN_PROFILES
from devices.topics import batch_topic
from eventlog.envelope import Envelope
from ingest.pipeline import (
    Pipeline,
    Policy,
    Reason,
    hash_identifier,
)
from tests.ingest.conftest import (
    BATCH_TOPIC,
    DEVICE_OF_KIND,
    ESTATE,
    FRACTION_BIN,
    NOW_TS,
    OTHER_BIN,
    OTHER_ESTATE,
    OTHER_GATEWAY,
    RECEIVED_AT,
    SALT,
    SPECS,
    WH_METER,
    batch_item,
    check_dead_letter,
    check_invariants,
    check_reading,
    dumps,
    iso,
    near_now,
    reasons,
    topic,
)

K = DeviceKind
R = Reason
MAX = Policy().max_payload_bytes
MiB = 1024 * 1024
DROP = object()


@dataclass(frozen=True)
class Case:
    name: str
    topic: str
    raw: bytes
    reason: Reason
    field: str | None = None
    #: readings expected besides the refusal (the good items of a batch)
    accepted: int = 0
    #: position of the refused item in a gateway batch
    position: int | None = None
    policy: Policy | None = None
    #: the bytes the dead letter keeps, when not ``raw`` (redacted credentials)
    kept: bytes | None = None


CASES: list[Case] = []


def case(
    name: str, topic_name: str, raw: bytes, reason: Reason, field: str | None = None, **kw: Any
) -> None:
    CASES.append(Case(name, topic_name, raw, reason, field, **kw))


def full(kind: DeviceKind, stream: str) -> dict[str, Any]:
    """The full valid example of ``kind``/``stream`` with a device time near RECEIVED_AT."""
    return near_now(VALID_EXAMPLES[(kind, stream)][0])


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


BIN: dict[str, Any] = {"ts": NOW_TS, "seq": 40213, "fill_pct": 62.5, "category": "kitchen"}
T_BIN = topic(K.WASTE_BIN, "level")
T_FRAC = topic(K.WASTE_BIN, "level", FRACTION_BIN)
T_GATE = topic(K.ACCESS_GATE, "passage")
T_PARK = topic(K.PARKING_SENSOR, "occupancy")
T_GW_HB = topic(K.GATEWAY, "heartbeat")
GATE: dict[str, Any] = {"ts": NOW_TS, "seq": 7, "direction": "in", "result": "granted"}
GATE["method"] = "card"


def bin_raw(**changes: Any) -> bytes:
    return dumps(changed(BIN, **changes))


# --- size and emptiness ------------------------------------------------------------------------

case("empty_payload", T_BIN, b"", R.EMPTY_PAYLOAD)
case("whitespace_only_payload", T_BIN, b"  \n\t\r ", R.EMPTY_PAYLOAD)
case("single_newline_payload", T_BIN, b"\n", R.EMPTY_PAYLOAD)
case("empty_payload_on_batch_topic", BATCH_TOPIC, b"", R.EMPTY_PAYLOAD)
case("nul_byte_payload", T_BIN, b"\x00", R.INVALID_JSON)


def padded(document: dict[str, Any], size: int) -> bytes:
    raw = dumps(document)
    return raw + b" " * (size - len(raw))


case("payload_one_byte_above_max", T_BIN, padded(BIN, MAX + 1), R.TOO_LARGE)
case("payload_1_MiB_valid_json", T_BIN, padded(BIN, MiB), R.TOO_LARGE)
case(
    "payload_1_MiB_of_one_string",
    T_BIN,
    b'{"fill_pct": 1, "category": "' + b"x" * (MiB - 40) + b'"}',
    R.TOO_LARGE,
)
case("payload_1_MiB_of_invalid_utf8", T_BIN, b"\xff\xfe" * (MiB // 2), R.TOO_LARGE)
case("payload_1_MiB_on_a_bad_topic_is_too_large_first", "nowhere", padded(BIN, MiB), R.TOO_LARGE)
case(
    "payload_at_max_size_but_firmware_too_long",
    T_GW_HB,
    padded({"firmware": "x" * (MAX - 100)}, MAX),
    R.SCHEMA,
    "firmware",
)
case(
    "payload_above_a_small_policy_limit",
    T_BIN,
    padded(BIN, 101),
    R.TOO_LARGE,
    policy=Policy(max_payload_bytes=100),
)

# --- topics ------------------------------------------------------------------------------------

OK = dumps(BIN)
for name, bad_topic in [
    ("topic_empty", ""),
    ("topic_four_levels", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen"),
    ("topic_six_levels", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen/level/extra"),
    ("topic_wrong_root", f"estate/{ESTATE}/waste_bin/bin-cp01-kitchen/level"),
    ("topic_leading_slash", f"/estates/{ESTATE}/waste_bin/bin-cp01-kitchen/level"),
    ("topic_trailing_slash", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen/level/"),
    ("topic_sys", "$SYS/broker/load/messages/received"),
    ("topic_sys_five_levels", "$SYS/broker/clients/connected/x"),
    ("topic_plus_wildcard_estate", "estates/+/waste_bin/bin-cp01-kitchen/level"),
    ("topic_plus_wildcard_device", f"estates/{ESTATE}/waste_bin/+/level"),
    ("topic_hash_wildcard", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen/#"),
    ("topic_unknown_kind", f"estates/{ESTATE}/toaster/bin-cp01-kitchen/level"),
    ("topic_kind_upper_case", f"estates/{ESTATE}/WASTE_BIN/bin-cp01-kitchen/level"),
    ("topic_unknown_stream", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen/temperature"),
    ("topic_stream_of_another_kind", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen/register"),
    ("topic_batch_on_a_bin", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen/batch"),
    ("topic_empty_estate", "estates//waste_bin/bin-cp01-kitchen/level"),
    ("topic_empty_device", f"estates/{ESTATE}/waste_bin//level"),
    ("topic_unicode_estate", "estates/绿城花园/waste_bin/bin-cp01-kitchen/level"),
    ("topic_unicode_device", f"estates/{ESTATE}/waste_bin/垃圾桶-1/level"),
    ("topic_emoji_stream", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen/level🗑"),
    ("topic_space_in_device", f"estates/{ESTATE}/waste_bin/bin cp01/level"),
    ("topic_newline_after_device", f"estates/{ESTATE}/waste_bin/bin-cp01-kitchen\n/level"),
    ("topic_device_65_chars", f"estates/{ESTATE}/waste_bin/{'b' * 65}/level"),
    ("topic_nul_in_estate", "estates/lv\x00cheng/waste_bin/bin-cp01-kitchen/level"),
]:
    case(name, bad_topic, OK, R.BAD_TOPIC)

# --- UTF-8 -------------------------------------------------------------------------------------


def bin_with_category_bytes(category: bytes) -> bytes:
    return b'{"fill_pct": 50, "category": "' + category + b'"}'


for name, bad in [
    ("utf8_lone_continuation_byte", b"\x80"),
    ("utf8_overlong_slash", b"\xc0\xaf"),
    ("utf8_overlong_nul", b"\xc0\x80"),
    ("utf8_overlong_three_bytes", b"\xe0\x80\xaf"),
    ("utf8_encoded_high_surrogate", b"\xed\xa0\x80"),
    ("utf8_encoded_low_surrogate", b"\xed\xbf\xbf"),
    ("utf8_encoded_surrogate_pair_cesu8", b"\xed\xa0\xbd\xed\xb8\x80"),
    ("utf8_truncated_two_byte_sequence", b"\xc3"),
    ("utf8_truncated_three_byte_sequence", b"\xe6\xb2"),
    ("utf8_above_u10ffff", b"\xf4\x90\x80\x80"),
    ("utf8_five_byte_sequence", b"\xf8\x88\x80\x80\x80"),
    ("utf8_ff_byte", b"\xff"),
    ("latin1_text", b"caf\xe9"),
]:
    case(name, T_BIN, bin_with_category_bytes(bad), R.INVALID_UTF8)
case("utf8_truncated_at_the_very_end", T_BIN, dumps(BIN) + b"\xe6\xb2", R.INVALID_UTF8)
case(
    "utf16_le_with_bom",
    T_BIN,
    "\ufeff".encode("utf-16-le") + OK.decode().encode("utf-16-le"),
    R.INVALID_UTF8,
)
case("utf32_json", T_BIN, OK.decode().encode("utf-32"), R.INVALID_UTF8)

# --- JSON syntax -------------------------------------------------------------------------------

for name, text in [
    ("json_truncated_object", b'{"fill_pct": 50, "category": "kitchen"'),
    ("json_truncated_string", b'{"fill_pct": 50, "category": "kitch'),
    ("json_trailing_comma", b'{"fill_pct": 50, "category": "kitchen",}'),
    ("json_single_quotes", b"{'fill_pct': 50, 'category': 'kitchen'}"),
    ("json_unquoted_keys", b'{fill_pct: 50, category: "kitchen"}'),
    ("json_line_comment", b'{"fill_pct": 50, // full\n "category": "kitchen"}'),
    ("json_block_comment", b'{"fill_pct": 50, /* x */ "category": "kitchen"}'),
    ("json_leading_zero", b'{"fill_pct": 050, "category": "kitchen"}'),
    ("json_hex_number", b'{"fill_pct": 0x32, "category": "kitchen"}'),
    ("json_plus_sign", b'{"fill_pct": +50, "category": "kitchen"}'),
    ("json_bare_fraction", b'{"fill_pct": .5, "category": "kitchen"}'),
    ("json_trailing_dot", b'{"fill_pct": 5., "category": "kitchen"}'),
    ("json_lowercase_nan", b'{"fill_pct": nan, "category": "kitchen"}'),
    ("json_python_true", b'{"fill_pct": 50, "category": "kitchen", "tilted": True}'),
    ("json_python_none", b'{"fill_pct": 50, "category": "kitchen", "lid": None}'),
    ("json_two_objects", b'{"fill_pct": 50, "category": "kitchen"}{}'),
    ("json_plain_words", b"fill 50 percent"),
    ("json_raw_newline_in_string", b'{"fill_pct": 50, "category": "kit\nchen"}'),
    ("json_raw_tab_in_string", b'{"fill_pct": 50, "category": "kit\tchen"}'),
    ("json_invalid_escape", b'{"fill_pct": 50, "category": "kit\\xchen"}'),
    ("json_utf8_bom_then_object", b"\xef\xbb\xbf" + OK),
    ("json_lone_surrogate_escape_in_value", b'{"fill_pct": 50, "category": "\\ud800"}'),
    ("json_lone_low_surrogate_escape", b'{"fill_pct": 50, "category": "\\udc00x"}'),
    ("json_lone_surrogate_escape_in_key", b'{"fill_pct": 50, "category": "kitchen", "\\ud83d": 1}'),
    ("json_integer_of_5000_digits", b'{"fill_pct": ' + b"7" * 5000 + b', "category": "kitchen"}'),
    ("json_unclosed_array", b'{"fill_pct": [50, "category": "kitchen"}'),
    ("json_missing_colon", b'{"fill_pct" 50, "category": "kitchen"}'),
    ("json_key_not_a_string", b'{50: "fill_pct"}'),
]:
    case(name, T_BIN, text, R.INVALID_JSON)
case(
    "json_lone_surrogate_in_raw_credential",
    T_GATE,
    b'{"direction": "in", "result": "granted", "method": "card", "credential": "\\ud800"}',
    R.INVALID_JSON,
    kept=b'{"direction": "in", "result": "granted", "method": "card", "credential": "<redacted>"}',
)
case(
    "json_lone_surrogate_in_batch_item",
    BATCH_TOPIC,
    b'{"readings": [{"kind": "waste_bin\\udfff"}]}',
    R.INVALID_JSON,
)

# --- NaN / Infinity and huge numbers -----------------------------------------------------------

case("nan_fill", T_BIN, b'{"fill_pct": NaN, "category": "kitchen"}', R.NON_FINITE)
case("infinity_fill", T_BIN, b'{"fill_pct": Infinity, "category": "kitchen"}', R.NON_FINITE)
case("minus_infinity_fill", T_BIN, b'{"fill_pct": -Infinity, "category": "kitchen"}', R.NON_FINITE)
case("nan_seq", T_BIN, b'{"fill_pct": 1, "category": "kitchen", "seq": NaN}', R.NON_FINITE)
case("nan_top_level", T_BIN, b"NaN", R.NON_FINITE)
case("infinity_top_level", T_BIN, b"Infinity", R.NON_FINITE)
case("nan_nested_in_list", T_BIN, b'{"fill_pct": [1, [NaN]], "category": "x"}', R.NON_FINITE)
case(
    "nan_inside_batch_item",
    BATCH_TOPIC,
    dumps({"readings": [batch_item(K.WASTE_BIN, "level", changed(BIN, fill_pct=float("nan")))]}),
    R.NON_FINITE,
)
case(
    "overflowing_float_1e400",
    T_BIN,
    b'{"fill_pct": 1e400, "category": "kitchen"}',
    R.OUT_OF_RANGE,
    "fill_pct",
)
case(
    "overflowing_float_minus_1e400",
    T_BIN,
    b'{"fill_pct": -1e400, "category": "kitchen"}',
    R.OUT_OF_RANGE,
    "fill_pct",
)
case("nan_as_text_is_a_string", T_BIN, bin_raw(fill_pct="NaN"), R.SCHEMA, "fill_pct")
case("seq_2_pow_63", T_BIN, bin_raw(seq=2**63), R.OUT_OF_RANGE, "seq")
case("seq_2_pow_64", T_BIN, bin_raw(seq=2**64), R.OUT_OF_RANGE, "seq")
case("seq_10_pow_30", T_BIN, bin_raw(seq=10**30), R.OUT_OF_RANGE, "seq")
case("seq_below_int64", T_BIN, bin_raw(seq=-(2**63) - 1), R.OUT_OF_RANGE, "seq")
case("fill_10_pow_400", T_BIN, bin_raw(fill_pct=10**400), R.OUT_OF_RANGE, "fill_pct")
case("fill_minus_10_pow_400", T_BIN, bin_raw(fill_pct=-(10**400)), R.OUT_OF_RANGE, "fill_pct")
case(
    "persons_sensed_10_pow_20",
    T_GATE,
    dumps(changed(GATE, persons_sensed=10**20)),
    R.OUT_OF_RANGE,
    "persons_sensed",
)
case(
    "uptime_2_pow_64",
    T_GW_HB,
    dumps({"uptime_s": 2**64}),
    R.OUT_OF_RANGE,
    "uptime_s",
)

# --- not an object -----------------------------------------------------------------------------

for name, text in [
    ("top_level_empty_array", b"[]"),
    ("top_level_array_of_readings", b"[" + OK + b"]"),
    ("top_level_string", b'"fill 50"'),
    ("top_level_empty_string", b'""'),
    ("top_level_integer", b"42"),
    ("top_level_negative_zero", b"-0"),
    ("top_level_float", b"62.5"),
    ("top_level_true", b"true"),
    ("top_level_false", b"false"),
    ("top_level_null", b"null"),
]:
    case(name, T_BIN, text, R.NOT_AN_OBJECT)
case("batch_top_level_array", BATCH_TOPIC, b"[" + OK + b"]", R.NOT_AN_OBJECT)
case("batch_top_level_null", BATCH_TOPIC, b"null", R.NOT_AN_OBJECT)

# --- nesting depth (Policy.max_depth = 16 containers, the top-level object being 1) ----------


def nested_lists(levels: int) -> bytes:
    return b"[" * levels + b"1" + b"]" * levels


case(
    "depth_16_inside_a_field_is_a_schema_error",
    T_BIN,
    b'{"fill_pct": ' + nested_lists(15) + b', "category": "kitchen"}',
    R.SCHEMA,
    "fill_pct",
)
case(
    "depth_17",
    T_BIN,
    b'{"fill_pct": ' + nested_lists(16) + b', "category": "kitchen"}',
    R.TOO_DEEP,
)
case("depth_17_of_objects", T_BIN, b'{"a":' * 17 + b"1" + b"}" * 17, R.TOO_DEEP)
case("depth_1000_arrays", T_BIN, nested_lists(1000), R.TOO_DEEP)
case("depth_5000_arrays", T_BIN, nested_lists(5000), R.TOO_DEEP)
case("depth_100k_brackets", T_BIN, b"[" * 100_000 + b"]" * 100_000, R.TOO_DEEP)
case("depth_100k_unclosed_brackets", T_BIN, b"[" * 100_000, R.TOO_DEEP)
case("depth_40k_objects", T_BIN, b'{"a":' * 40_000 + b"1" + b"}" * 40_000, R.TOO_DEEP)
case(
    "depth_17_inside_a_batch_item",
    BATCH_TOPIC,
    b'{"readings": [{"kind": "waste_bin", "device": "bin-cp01-kitchen", "stream": "level", '
    b'"data": {"fill_pct": ' + nested_lists(13) + b', "category": "kitchen"}}]}',
    R.TOO_DEEP,
)
case(
    "depth_of_a_batch_above_a_policy_of_3",
    BATCH_TOPIC,
    dumps({"readings": [batch_item(K.WASTE_BIN, "level", BIN)]}),
    R.TOO_DEEP,
    policy=Policy(max_depth=3),
)

# --- duplicate keys ----------------------------------------------------------------------------

case(
    "duplicate_key_same_value",
    T_BIN,
    b'{"fill_pct": 50, "fill_pct": 50, "category": "kitchen"}',
    R.DUPLICATE_KEY,
    "fill_pct",
)
case(
    "duplicate_key_other_value",
    T_BIN,
    b'{"fill_pct": 5, "category": "kitchen", "fill_pct": 95}',
    R.DUPLICATE_KEY,
    "fill_pct",
)
case(
    "duplicate_key_spelled_with_an_escape",
    T_BIN,
    b'{"fill_pct": 5, "category": "kitchen", "fill\\u005fpct": 95}',
    R.DUPLICATE_KEY,
    "fill_pct",
)
case(
    "duplicate_key_ts",
    T_BIN,
    b'{"ts": "%s", "fill_pct": 5, "category": "kitchen", "ts": "%s"}'
    % (NOW_TS.encode(), NOW_TS.encode()),
    R.DUPLICATE_KEY,
    "ts",
)
case(
    "duplicate_key_nested_object",
    T_BIN,
    b'{"fill_pct": 5, "category": "kitchen", "extra": {"a": 1, "a": 2}}',
    R.DUPLICATE_KEY,
    "a",
)
case(
    "duplicate_key_in_object_inside_array",
    T_BIN,
    b'{"fill_pct": 5, "category": "kitchen", "extra": [{"b": 1}, {"c": 1, "c": 1}]}',
    R.DUPLICATE_KEY,
    "c",
)
case(
    "duplicate_key_heartbeat_seq",
    T_GW_HB,
    b'{"seq": 1, "seq": 2}',
    R.DUPLICATE_KEY,
    "seq",
)
case(
    "duplicate_key_batch_readings",
    BATCH_TOPIC,
    b'{"readings": [], "readings": []}',
    R.DUPLICATE_KEY,
    "readings",
)
case(
    "duplicate_key_in_batch_item",
    BATCH_TOPIC,
    b'{"readings": [{"kind": "waste_bin", "device": "bin-cp01-kitchen", "device": "gw-01", '
    b'"stream": "level", "data": {"fill_pct": 1, "category": "kitchen"}}]}',
    R.DUPLICATE_KEY,
    "device",
)
case(
    "duplicate_key_in_batch_item_data",
    BATCH_TOPIC,
    b'{"readings": [{"kind": "waste_bin", "device": "bin-cp01-kitchen", "stream": "level", '
    b'"data": {"fill_pct": 1, "category": "kitchen", "fill_pct": 2}}]}',
    R.DUPLICATE_KEY,
    "fill_pct",
)
case(
    "duplicate_key_in_a_string_lookalike_is_fine_but_real_one_not",
    T_BIN,
    b'{"category": "kitchen\\": 1, \\"x", "fill_pct": 5, "fill_pct": 5}',
    R.DUPLICATE_KEY,
    "fill_pct",
)

# --- registry ----------------------------------------------------------------------------------

case("unknown_device", topic(K.WASTE_BIN, "level", "bin-cp99-kitchen"), OK, R.UNKNOWN_DEVICE)
case(
    "unknown_estate_unknown_device",
    topic(K.WASTE_BIN, "level", "bin-x", estate="nowhere"),
    OK,
    R.UNKNOWN_DEVICE,
)
case(
    "unknown_estate_known_device", topic(K.WASTE_BIN, "level", estate="nowhere"), OK, R.WRONG_ESTATE
)
case(
    "unknown_device_heartbeat",
    topic(K.GATEWAY, "heartbeat", "gw-99"),
    b"{}",
    R.UNKNOWN_DEVICE,
)
case(
    "device_of_another_estate",
    topic(K.WASTE_BIN, "level", OTHER_BIN),
    OK,
    R.WRONG_ESTATE,
)
case(
    "device_of_this_estate_sent_to_the_other",
    topic(K.WASTE_BIN, "level", DEVICE_OF_KIND[K.WASTE_BIN], estate=OTHER_ESTATE),
    OK,
    R.WRONG_ESTATE,
)
case(
    "kind_mismatch_bin_on_water_topic",
    topic(K.WATER_METER, "register", DEVICE_OF_KIND[K.WASTE_BIN]),
    dumps(full(K.WATER_METER, "register")),
    R.KIND_MISMATCH,
)
case(
    "kind_mismatch_gateway_sending_bin_heartbeat",
    topic(K.WASTE_BIN, "heartbeat", DEVICE_OF_KIND[K.GATEWAY]),
    b"{}",
    R.KIND_MISMATCH,
)
case(
    "kind_mismatch_charger_as_ebike_port",
    topic(K.EBIKE_STATION, "port", DEVICE_OF_KIND[K.EV_CHARGER]),
    dumps(full(K.EBIKE_STATION, "port")),
    R.KIND_MISMATCH,
)
case("device_mismatch", T_BIN, bin_raw(device="bin-cp01-other"), R.DEVICE_MISMATCH, "device")
case("device_mismatch_case", T_BIN, bin_raw(device="BIN-CP01-KITCHEN"), R.DEVICE_MISMATCH, "device")
case("device_mismatch_number", T_BIN, bin_raw(device=5), R.DEVICE_MISMATCH, "device")
case("device_mismatch_null", T_BIN, bin_raw(device=None), R.DEVICE_MISMATCH, "device")
case(
    "device_mismatch_other_estate_device",
    T_BIN,
    bin_raw(device=OTHER_BIN),
    R.DEVICE_MISMATCH,
    "device",
)

# --- device time -------------------------------------------------------------------------------


def at(offset: timedelta, tz: timezone = timezone(timedelta(hours=8))) -> str:
    return iso(RECEIVED_AT + offset, tz)


for name, ts, reason in [
    ("ts_six_minutes_ahead", at(timedelta(minutes=6)), R.CLOCK_SKEW),
    ("ts_one_day_ahead", at(timedelta(days=1)), R.CLOCK_SKEW),
    ("ts_one_day_ahead_in_utc", at(timedelta(days=1), UTC), R.CLOCK_SKEW),
    ("ts_year_2999", "2999-01-01T00:00:00+08:00", R.CLOCK_SKEW),
    ("ts_year_9999", "9999-12-31T23:59:59Z", R.CLOCK_SKEW),
    ("ts_eight_days_old", at(-timedelta(days=8)), R.TOO_OLD),
    ("ts_unix_epoch", "1970-01-01T00:00:00Z", R.TOO_OLD),
    ("ts_year_1", "0001-01-01T00:00:00Z", R.TOO_OLD),
    ("ts_year_1_before_utc", "0001-01-01T00:00:00+01:00", R.SCHEMA),
    ("ts_year_9999_after_utc", "9999-12-31T23:59:59-14:00", R.SCHEMA),
    ("ts_naive", "2026-05-01T11:59:00", R.SCHEMA),
    ("ts_date_only", "2026-05-01", R.SCHEMA),
    ("ts_epoch_seconds_as_text", "1777607940", R.SCHEMA),
    ("ts_epoch_millis_as_text", "1777607940000", R.SCHEMA),
    ("ts_words", "yesterday", R.SCHEMA),
    ("ts_offset_out_of_range", "2026-05-01T11:59:00+25:00", R.SCHEMA),
    ("ts_month_13", "2026-13-01T11:59:00+08:00", R.SCHEMA),
    ("ts_empty_string", "", R.SCHEMA),
]:
    case(name, T_BIN, bin_raw(ts=ts), reason, "ts")
case("ts_epoch_number", T_BIN, bin_raw(ts=1777607940), R.SCHEMA, "ts")
case("ts_epoch_float", T_BIN, bin_raw(ts=1777607940.5), R.SCHEMA, "ts")
case("ts_as_object", T_BIN, bin_raw(ts={"$date": NOW_TS}), R.SCHEMA, "ts")
case(
    "ts_far_future_on_gateway_heartbeat",
    T_GW_HB,
    dumps({"ts": at(timedelta(hours=3))}),
    R.CLOCK_SKEW,
    "ts",
)
case(
    "changed_at_naive",
    T_PARK,
    dumps({"ts": NOW_TS, "occupied": True, "changed_at": "2026-05-01T11:58:00"}),
    R.SCHEMA,
    "changed_at",
)

# --- raw personal identifiers ------------------------------------------------------------------

for name, credential, field in [
    ("credential_number", 12345678, "credential"),
    ("credential_null", None, "credential"),
    ("credential_list", ["A", "B"], "credential"),
]:
    case(name, T_GATE, dumps(changed(GATE, credential=credential)), R.SCHEMA, field)


def redacted(document: dict[str, Any], **raw_values: str) -> tuple[bytes, bytes]:
    """The raw bytes of ``document`` with ``raw_values`` and the bytes kept when refused."""
    raw = dumps({**document, **raw_values})
    kept = dumps({**document, **dict.fromkeys(raw_values, "<redacted>")})
    return raw, kept


raw, kept = redacted(GATE, credential="")
case("credential_empty", T_GATE, raw, R.SCHEMA, "credential", kept=kept)
raw, kept = redacted(GATE, credential="C" * 300)
case("credential_300_chars", T_GATE, raw, R.SCHEMA, "credential", kept=kept)
raw, kept = redacted(changed(GATE, persons_sensed=51), credential="CARD-0042-7781")
case(
    "credential_with_persons_out_of_range", T_GATE, raw, R.OUT_OF_RANGE, "persons_sensed", kept=kept
)
raw, kept = redacted(BIN, credential="CARD-0042-7781")
case("credential_sent_by_a_bin", T_BIN, raw, R.SCHEMA, "credential_hash", kept=kept)
raw, kept = redacted(GATE, plate="沪A12345")
case("plate_sent_by_a_gate", T_GATE, raw, R.SCHEMA, "plate_hash", kept=kept)
raw, kept = redacted({"ts": NOW_TS, "occupied": "yes"}, plate="沪A12345")
case("plate_with_occupied_wrong_type", T_PARK, raw, R.SCHEMA, "occupied", kept=kept)
case(
    "credential_hash_not_hex",
    T_GATE,
    dumps(changed(GATE, credential_hash="CARD-0042")),
    R.SCHEMA,
    "credential_hash",
)
case(
    "plate_hash_too_short",
    T_PARK,
    dumps({"occupied": True, "plate_hash": "abc123"}),
    R.SCHEMA,
    "plate_hash",
)

# --- unit normalisation ------------------------------------------------------------------------

case("fraction_bin_sends_percent", T_FRAC, bin_raw(fill_pct=40), R.OUT_OF_RANGE, "fill_pct")
case("fraction_bin_above_one", T_FRAC, bin_raw(fill_pct=1.5), R.OUT_OF_RANGE, "fill_pct")
case("fraction_bin_negative", T_FRAC, bin_raw(fill_pct=-0.1), R.OUT_OF_RANGE, "fill_pct")
case("fraction_bin_text", T_FRAC, bin_raw(fill_pct="0.4"), R.SCHEMA, "fill_pct")
case("fraction_bin_bool", T_FRAC, bin_raw(fill_pct=True), R.SCHEMA, "fill_pct")
case("fraction_bin_10_pow_400", T_FRAC, bin_raw(fill_pct=10**400), R.OUT_OF_RANGE, "fill_pct")
T_WH = topic(K.ENERGY_METER, "register", WH_METER)
case("wh_meter_negative", T_WH, dumps({"energy_kwh": -5}), R.OUT_OF_RANGE, "energy_kwh")
case("wh_meter_above_range", T_WH, dumps({"energy_kwh": 1.5e13}), R.OUT_OF_RANGE, "energy_kwh")

# --- gateway batches: the envelope -------------------------------------------------------------

BIN_ITEM = batch_item(K.WASTE_BIN, "level", BIN)
GOOD_ITEMS: list[dict[str, Any]] = [
    BIN_ITEM,
    batch_item(K.WATER_METER, "register", full(K.WATER_METER, "register")),
    batch_item(K.PARKING_SENSOR, "occupancy", {"ts": NOW_TS, "seq": 5, "occupied": True}),
]

for name, document, field in [
    ("batch_empty", {"readings": []}, "readings"),
    ("batch_without_readings", {}, "readings"),
    ("batch_readings_null", {"readings": None}, "readings"),
    ("batch_readings_object", {"readings": BIN_ITEM}, "readings"),
    ("batch_readings_string", {"readings": "all of them"}, "readings"),
    ("batch_of_numbers", {"readings": [1, 2, 3]}, "readings.0"),
    ("batch_of_nulls", {"readings": [None]}, "readings.0"),
    ("batch_of_arrays", {"readings": [[BIN_ITEM]]}, "readings.0"),
    ("batch_one_non_object_among_objects", {"readings": [BIN_ITEM, "x"]}, "readings.1"),
    (
        "batch_unknown_envelope_field",
        {"readings": [BIN_ITEM], "gateway_time": NOW_TS},
        "gateway_time",
    ),
    ("batch_of_10001_items", {"readings": [{}] * 10_001}, "readings"),
]:
    case(name, BATCH_TOPIC, dumps(document), R.BAD_BATCH, field)
ONE_GOOD = dumps({"readings": [BIN_ITEM]})
case("batch_from_unregistered_gateway", batch_topic(ESTATE, "gw-99"), ONE_GOOD, R.UNKNOWN_DEVICE)
case(
    "batch_from_a_device_that_is_no_gateway",
    batch_topic(ESTATE, DEVICE_OF_KIND[K.WASTE_BIN]),
    ONE_GOOD,
    R.UNKNOWN_DEVICE,
)
case(
    "batch_from_the_gateway_of_another_estate",
    batch_topic(ESTATE, OTHER_GATEWAY),
    ONE_GOOD,
    R.UNKNOWN_DEVICE,
)
case("batch_to_an_unknown_estate", batch_topic("nowhere", "gw-01"), ONE_GOOD, R.UNKNOWN_DEVICE)

# --- gateway batches: one bad item among good ones ---------------------------------------------


def among_good(bad: Any, position: int) -> bytes:
    items: list[Any] = list(GOOD_ITEMS)
    items.insert(position, bad)
    return dumps({"readings": items})


def bin_item(**changes: Any) -> dict[str, Any]:
    return batch_item(K.WASTE_BIN, "level", changed(BIN, **changes))


for position, (name, bad, reason, field) in enumerate(
    [
        ("batch_item_fill_out_of_range", bin_item(fill_pct=130), R.OUT_OF_RANGE, "fill_pct"),
        ("batch_item_fill_wrong_type", bin_item(fill_pct="62"), R.SCHEMA, "fill_pct"),
        ("batch_item_missing_category", bin_item(category=DROP), R.SCHEMA, "category"),
        ("batch_item_unknown_field", bin_item(colour="green"), R.SCHEMA, "colour"),
        ("batch_item_ts_ahead", bin_item(ts=at(timedelta(hours=1))), R.CLOCK_SKEW, "ts"),
        ("batch_item_ts_too_old", bin_item(ts=at(-timedelta(days=30))), R.TOO_OLD, "ts"),
        ("batch_item_naive_ts", bin_item(ts="2026-05-01T11:59:00"), R.SCHEMA, "ts"),
        (
            "batch_item_data_names_other_device",
            bin_item(device="bin-cp01-other"),
            R.DEVICE_MISMATCH,
            "device",
        ),
        (
            "batch_item_unknown_device",
            batch_item(K.WASTE_BIN, "level", BIN, "bin-cp77-kitchen"),
            R.UNKNOWN_DEVICE,
            None,
        ),
        (
            "batch_item_device_of_another_estate",
            batch_item(K.WASTE_BIN, "level", BIN, OTHER_BIN),
            R.WRONG_ESTATE,
            None,
        ),
        (
            "batch_item_kind_mismatch",
            batch_item(K.WATER_METER, "register", full(K.WATER_METER, "register"), "ebk-01"),
            R.KIND_MISMATCH,
            None,
        ),
        (
            "batch_item_unknown_stream",
            {**BIN_ITEM, "stream": "port"},
            R.UNKNOWN_STREAM,
            "stream",
        ),
        (
            "batch_item_nested_batch_stream",
            batch_item(K.GATEWAY, "batch", {"readings": [BIN_ITEM]}),
            R.UNKNOWN_STREAM,
            "stream",
        ),
        ("batch_item_unknown_kind", {**BIN_ITEM, "kind": "toaster"}, R.BAD_BATCH, "kind"),
        ("batch_item_kind_number", {**BIN_ITEM, "kind": 3}, R.BAD_BATCH, "kind"),
        ("batch_item_without_data", {**BIN_ITEM, "data": DROP}, R.BAD_BATCH, "data"),
        ("batch_item_data_is_a_list", {**BIN_ITEM, "data": [BIN]}, R.BAD_BATCH, "data"),
        ("batch_item_without_kind", changed(BIN_ITEM, kind=DROP), R.BAD_BATCH, "kind"),
        ("batch_item_without_device", changed(BIN_ITEM, device=DROP), R.BAD_BATCH, "device"),
        ("batch_item_bad_device_id", {**BIN_ITEM, "device": "bin 1!"}, R.BAD_BATCH, "device"),
        ("batch_item_device_number", {**BIN_ITEM, "device": 7}, R.BAD_BATCH, "device"),
        ("batch_item_empty_stream", {**BIN_ITEM, "stream": ""}, R.BAD_BATCH, "stream"),
        ("batch_item_extra_field", {**BIN_ITEM, "rssi": -90}, R.BAD_BATCH, "rssi"),
        ("batch_item_empty_object", {}, R.BAD_BATCH, "kind"),
    ]
):
    where = position % (len(GOOD_ITEMS) + 1)
    bad_item = {k: v for k, v in bad.items() if v is not DROP}
    case(
        name,
        BATCH_TOPIC,
        among_good(bad_item, where),
        reason,
        field,
        accepted=len(GOOD_ITEMS),
        position=where,
    )

# --- generated: a wrong type for every field of every model, a value out of every range ---------

#: Two values of a wrong type for each JSON-schema type of a field.
WRONG_TYPES: dict[str, list[tuple[str, Any]]] = {
    "number": [("string", "12.5"), ("bool", True), ("list", [1])],
    "integer": [("float", 1.5), ("string", "3"), ("bool", False)],
    "string": [("number", 12345), ("list", ["in"]), ("object", {"v": "in"})],
    "boolean": [("string", "true"), ("number", 1)],
    "datetime": [("number", 1777607940), ("bool", True)],
}

#: Streams whose fields are exercised (the heartbeat once, on the gateway).
GENERATED_STREAMS = [key for key in CATALOGUE if key[1] != "heartbeat" or key[0] is K.GATEWAY]


def _beyond(limit: float, direction: int, integer: bool) -> float:
    if integer:
        return int(limit) + direction
    return limit + direction * max(0.5, abs(limit) * 0.5)


for kind, stream in GENERATED_STREAMS:
    base = full(kind, stream)
    target = topic(kind, stream)
    for spec in SPECS[(kind, stream)].values():
        if spec.name in ("ts", "seq") and (kind, stream) != (K.WASTE_BIN, "level"):
            continue
        label = f"{kind.value}_{stream}_{spec.name}"
        for type_name, value in WRONG_TYPES[spec.type]:
            case(
                f"wrong_type_{label}_{type_name}",
                target,
                dumps({**base, spec.name: value}),
                R.SCHEMA,
                spec.name,
            )
        integer = spec.type == "integer"
        if spec.minimum is not None:
            case(
                f"out_of_range_{label}_below_min",
                target,
                dumps({**base, spec.name: _beyond(spec.minimum, -1, integer)}),
                R.OUT_OF_RANGE,
                spec.name,
            )
        if spec.maximum is not None:
            case(
                f"out_of_range_{label}_above_max",
                target,
                dumps({**base, spec.name: _beyond(spec.maximum, +1, integer)}),
                R.OUT_OF_RANGE,
                spec.name,
            )
        if spec.enum is not None:
            case(
                f"not_in_enum_{label}",
                target,
                dumps({**base, spec.name: spec.enum[0].upper() + "_x"}),
                R.SCHEMA,
                spec.name,
            )
        if spec.required:
            case(
                f"missing_{label}",
                target,
                dumps({k: v for k, v in base.items() if k != spec.name}),
                R.SCHEMA,
                spec.name,
            )
    case(
        f"unknown_field_{kind.value}_{stream}",
        target,
        dumps({**base, "colour": "green"}),
        R.SCHEMA,
        "colour",
    )
    case(
        f"kind_field_in_payload_{kind.value}_{stream}",
        target,
        dumps({**base, "kind": kind.value}),
        R.SCHEMA,
        "kind",
    )


# === the corpus test ===========================================================================


def test_corpus_is_large_named_and_covers_every_reason():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    assert len(CASES) >= 150
    assert {c.reason for c in CASES} == set(Reason)
    batch_positions = {c.position for c in CASES if c.position is not None}
    assert batch_positions >= {0, 1, 2, 3}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case: Case, registry_index):
    pipeline = Pipeline(registry_index, SALT, case.policy)
    out = pipeline.judge(case.topic, case.raw, RECEIVED_AT)  # never raises

    assert reasons(out.rejected) == [case.reason.value]
    assert len(out.readings) == case.accepted
    for reading in out.readings:
        check_reading(reading)
    letter = out.rejected[0]
    if case.position is None:
        check_dead_letter(
            letter, case.topic, case.raw, case.reason.value, case.field, kept=case.kept
        )
        assert "batch_position" not in letter.payload
    else:
        item = json.loads(case.raw)["readings"][case.position]
        item_raw = json.dumps(item, ensure_ascii=False).encode()
        check_dead_letter(letter, case.topic, item_raw, case.reason.value, case.field)
        assert letter.payload["batch_position"] == case.position
        named = item.get("device")
        valid = isinstance(named, str) and re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", named)
        assert letter.device == (named if valid else DEVICE_OF_KIND[K.GATEWAY])
        assert letter.estate == ESTATE
    assert pipeline.rejected_by_reason == {case.reason.value: 1}
    assert pipeline.accepted == case.accepted


def test_dead_letter_kept_bytes_without_redaction_equal_the_raw(registry_index):
    """Refused bytes without credentials are kept verbatim (already checked per case)."""
    pipeline = Pipeline(registry_index, SALT)
    raw = b'{"fill_pct": 130, "category": "kitchen"}'
    letter = pipeline.judge(T_BIN, raw, RECEIVED_AT).rejected[0]
    assert base64.b64decode(str(letter.payload["raw_b64"])) == raw
    assert letter.estate == ESTATE
    assert letter.device == DEVICE_OF_KIND[K.WASTE_BIN]
    assert letter.building is None


def test_refusal_of_a_bad_topic_has_no_identity(registry_index):
    letter = Pipeline(registry_index, SALT).judge("$SYS/x", OK, RECEIVED_AT).rejected[0]
    assert letter.estate is None
    assert letter.device is None


def test_topic_with_a_lone_surrogate_is_refused_and_storable(registry_index):
    bad = f"estates/lv\ud800cheng/waste_bin/{DEVICE_OF_KIND[K.WASTE_BIN]}/level"
    out = Pipeline(registry_index, SALT).judge(bad, OK, RECEIVED_AT)
    assert reasons(out.rejected) == [R.BAD_TOPIC.value]
    letter = out.rejected[0]
    assert letter.payload["topic"] == bad.encode("utf-8", "backslashreplace").decode()
    assert Envelope.from_json(letter.to_json()) == letter


def test_batch_item_with_an_invalid_device_id_is_kept_without_device(registry_index):
    raw = among_good({**BIN_ITEM, "device": "bin 1!"}, 1)
    out = Pipeline(registry_index, SALT).judge(BATCH_TOPIC, raw, RECEIVED_AT)
    (letter,) = out.rejected
    assert letter.device == DEVICE_OF_KIND[K.GATEWAY]  # the topic's gateway, not the bad id
    assert letter.estate == ESTATE


def test_batch_item_letters_name_the_item_device(registry_index):
    raw = among_good(bin_item(fill_pct=130), 2)
    (letter,) = Pipeline(registry_index, SALT).judge(BATCH_TOPIC, raw, RECEIVED_AT).rejected
    assert letter.device == DEVICE_OF_KIND[K.WASTE_BIN]
    assert letter.payload["topic"] == BATCH_TOPIC


# === valid controls ============================================================================

EXAMPLES = [
    (kind, stream, i, example)
    for (kind, stream), examples in VALID_EXAMPLES.items()
    for i, example in enumerate(examples)
]


@pytest.mark.parametrize(
    ("kind", "stream", "i", "example"),
    EXAMPLES,
    ids=[f"{k.value}.{s}[{i}]" for k, s, i, _ in EXAMPLES],
)
def test_every_valid_example_is_accepted(kind, stream, i, example, registry_index):
    sent = near_now(example)
    raw = dumps(sent)
    t = topic(kind, stream)
    out = Pipeline(registry_index, SALT).judge(t, raw, RECEIVED_AT)
    assert out.rejected == []
    (reading,) = out.readings
    check_reading(reading)
    assert reading.kind == f"{kind.value}.{stream}"
    assert reading.estate == ESTATE
    assert reading.device == DEVICE_OF_KIND[kind]
    assert reading.received_at == RECEIVED_AT
    model = CATALOGUE[(kind, stream)].model
    expected = model.model_validate(sent)
    restored = from_payload(reading.kind, reading.payload)
    assert restored.model_dump(exclude={"ts"}) == expected.model_dump(exclude={"ts"})
    if expected.ts is None:
        assert reading.occurred_at == RECEIVED_AT
        assert reading.payload[FLAGS_KEY] == [FLAG_NO_DEVICE_TIME]
    else:
        assert reading.occurred_at == expected.ts
        assert FLAGS_KEY not in reading.payload
    assert "ts" not in reading.payload


def test_every_stream_of_every_kind_has_a_valid_control():
    assert set(VALID_EXAMPLES) == set(CATALOGUE)


@pytest.mark.parametrize(
    "example",
    VALID_EXAMPLES[(K.WASTE_BIN, "level")],
    ids=lambda e: f"fill_{e['fill_pct']}",
)
def test_fraction_bin_fill_is_normalised_to_percent(example, registry_index):
    sent = {**near_now(example), "fill_pct": example["fill_pct"] / 100}
    out = Pipeline(registry_index, SALT).judge(T_FRAC, dumps(sent), RECEIVED_AT)
    assert out.rejected == []
    (reading,) = out.readings
    assert reading.payload["fill_pct"] == pytest.approx(example["fill_pct"])
    assert FLAG_UNITS_NORMALISED in reading.payload[FLAGS_KEY]
    check_reading(reading)


def test_fraction_bin_zero_point_four_is_forty_percent(registry_index):
    out = Pipeline(registry_index, SALT).judge(T_FRAC, bin_raw(fill_pct=0.4), RECEIVED_AT)
    (reading,) = out.readings
    assert reading.payload["fill_pct"] == pytest.approx(40)
    assert reading.payload[FLAGS_KEY] == [FLAG_UNITS_NORMALISED]


def test_wh_meter_is_normalised_to_kwh(registry_index):
    sent = {"ts": NOW_TS, "seq": 3, "energy_kwh": 4_821_360, "power_w": 1830.5}
    out = Pipeline(registry_index, SALT).judge(T_WH, dumps(sent), RECEIVED_AT)
    (reading,) = out.readings
    assert reading.payload["energy_kwh"] == pytest.approx(4821.36)
    assert reading.payload["power_w"] == 1830.5  # the profile converts energy only
    assert reading.payload[FLAGS_KEY] == [FLAG_UNITS_NORMALISED]


def test_payload_exactly_at_max_size_is_accepted(registry_index):
    raw = padded(BIN, MAX)
    assert len(raw) == MAX
    out = Pipeline(registry_index, SALT).judge(T_BIN, raw, RECEIVED_AT)
    assert out.rejected == []
    assert len(out.readings) == 1


def test_depth_exactly_at_the_limit_is_accepted(registry_index):
    """A batch is 4 containers deep (object, list, item, data): accepted at max_depth=4."""
    raw = dumps({"readings": [batch_item(K.WASTE_BIN, "level", BIN)]})
    out = Pipeline(registry_index, SALT, Policy(max_depth=4)).judge(BATCH_TOPIC, raw, RECEIVED_AT)
    assert out.rejected == []
    assert len(out.readings) == 1
    too_deep = Pipeline(registry_index, SALT, Policy(max_depth=3)).judge(
        BATCH_TOPIC, raw, RECEIVED_AT
    )
    assert reasons(too_deep.rejected) == [R.TOO_DEEP.value]


def test_missing_ts_is_accepted_with_received_time(registry_index):
    out = Pipeline(registry_index, SALT).judge(T_BIN, bin_raw(ts=DROP), RECEIVED_AT)
    (reading,) = out.readings
    assert reading.occurred_at == RECEIVED_AT
    assert reading.payload[FLAGS_KEY] == [FLAG_NO_DEVICE_TIME]


def test_null_ts_is_accepted_as_missing(registry_index):
    out = Pipeline(registry_index, SALT).judge(T_BIN, bin_raw(ts=None), RECEIVED_AT)
    (reading,) = out.readings
    assert reading.payload[FLAGS_KEY] == [FLAG_NO_DEVICE_TIME]


@pytest.mark.parametrize(
    "offset",
    [
        timedelta(minutes=4, seconds=59),
        timedelta(minutes=5),
        timedelta(0),
        -timedelta(days=6, hours=23),
        -timedelta(days=7),
    ],
    ids=["ahead_4m59s", "ahead_5m_exactly", "now", "6d23h_old", "7d_old_exactly"],
)
def test_device_time_within_limits_is_kept(offset, registry_index):
    out = Pipeline(registry_index, SALT).judge(T_BIN, bin_raw(ts=at(offset, UTC)), RECEIVED_AT)
    assert out.rejected == []
    (reading,) = out.readings
    assert reading.occurred_at == RECEIVED_AT + offset
    assert FLAGS_KEY not in reading.payload


def test_payload_naming_its_own_device_is_accepted(registry_index):
    out = Pipeline(registry_index, SALT).judge(
        T_BIN, bin_raw(device=DEVICE_OF_KIND[K.WASTE_BIN]), RECEIVED_AT
    )
    (reading,) = out.readings
    assert "device" not in reading.payload


class _UntrustedClocks:
    """The registry index, but every profile's clock untrusted.

    No builtin profile has ``clock: untrusted`` and a registry cannot declare profiles,
    so this is the only way to exercise that branch of the pipeline.
    """

    def __init__(self, index):
        self._index = index

    def device(self, estate, device):
        ref = self._index.device(estate, device)
        if ref is None:
            return None
        untrusted = ref.profile.model_copy(update={"clock": "untrusted"})
        return dataclasses.replace(ref, profile=untrusted)

    def find_device(self, device):
        return self._index.find_device(device)


def test_untrusted_clock_far_ahead_is_accepted_with_flag(registry_index):
    pipeline = Pipeline(_UntrustedClocks(registry_index), SALT)
    ahead = at(timedelta(days=1))
    out = pipeline.judge(T_BIN, bin_raw(ts=ahead), RECEIVED_AT)
    assert out.rejected == []
    (reading,) = out.readings
    assert reading.occurred_at == RECEIVED_AT
    assert reading.payload[FLAGS_KEY] == [FLAG_CLOCK_SKEW]
    old = pipeline.judge(T_BIN, bin_raw(ts=at(-timedelta(days=30))), RECEIVED_AT)
    assert reasons(old.rejected) == [R.TOO_OLD.value]


def test_every_profile_is_trusted():
    """If a profile ever gets an untrusted clock, add it to the corpus registry."""
    assert {p.clock for p in BUILTIN_PROFILES.values()} == {"trusted"}


# --- gateway batches -------------------------------------------------------------------------


def test_valid_batch_is_all_accepted(registry_index):
    items = [
        *GOOD_ITEMS,
        batch_item(K.GATEWAY, "heartbeat", {"ts": NOW_TS, "seq": 1, "uptime_s": 10}),
        batch_item(K.EV_CHARGER, "connector", full(K.EV_CHARGER, "connector")),
    ]
    out = Pipeline(registry_index, SALT).judge(BATCH_TOPIC, dumps({"readings": items}), RECEIVED_AT)
    assert out.rejected == []
    assert [r.device for r in out.readings] == [item["device"] for item in items]
    assert [r.kind for r in out.readings] == [f"{i['kind']}.{i['stream']}" for i in items]
    for reading in out.readings:
        check_reading(reading)


def test_batch_with_several_bad_items_keeps_each_good_one(registry_index):
    items = [
        bin_item(fill_pct=-1),
        GOOD_ITEMS[0],
        {**BIN_ITEM, "stream": "port"},
        GOOD_ITEMS[1],
        batch_item(K.WASTE_BIN, "level", BIN, "nobody"),
    ]
    out = Pipeline(registry_index, SALT).judge(BATCH_TOPIC, dumps({"readings": items}), RECEIVED_AT)
    assert len(out.readings) == 2
    got = [(r.payload["reason"], r.payload["batch_position"]) for r in out.rejected]
    assert got == [("out_of_range", 0), ("unknown_stream", 2), ("unknown_device", 4)]
    check_invariants(out, BATCH_TOPIC, items=len(items))


def test_batch_of_only_bad_items_yields_only_letters(registry_index):
    items = [bin_item(fill_pct=101), bin_item(category="glass")]
    out = Pipeline(registry_index, SALT).judge(BATCH_TOPIC, dumps({"readings": items}), RECEIVED_AT)
    assert out.readings == []
    assert reasons(out.rejected) == ["out_of_range", "schema"]


# --- personal identifiers ----------------------------------------------------------------------


def test_raw_credential_is_hashed_and_stored_nowhere(registry_index):
    secret = "CARD-0042-7781-XYZ"
    sent = {**GATE, "credential": secret, "persons_sensed": 1}
    out = Pipeline(registry_index, SALT).judge(T_GATE, dumps(sent), RECEIVED_AT)
    (reading,) = out.readings
    hashed = reading.payload["credential_hash"]
    assert hashed == hash_identifier(SALT, secret)
    assert isinstance(hashed, str)
    assert len(hashed) == 32
    assert all(c in "0123456789abcdef" for c in hashed)
    assert "credential" not in reading.payload
    assert secret.encode() not in reading.to_json()
    check_reading(reading)


def test_raw_plate_is_hashed_and_stored_nowhere(registry_index):
    plate = "沪A·12345"
    sent = {"ts": NOW_TS, "seq": 9, "occupied": True, "plate": plate}
    out = Pipeline(registry_index, SALT).judge(T_PARK, dumps(sent), RECEIVED_AT)
    (reading,) = out.readings
    assert reading.payload["plate_hash"] == hash_identifier(SALT, plate)
    assert len(str(reading.payload["plate_hash"])) == 32
    assert "plate" not in reading.payload
    json_text = reading.to_json()
    assert plate.encode() not in json_text
    assert b"12345" not in json_text


def test_raw_credential_in_a_batch_item_is_hashed(registry_index):
    secret = "QR-TOKEN-99887766"
    item = batch_item(K.ACCESS_GATE, "passage", {**GATE, "credential": secret})
    out = Pipeline(registry_index, SALT).judge(
        BATCH_TOPIC, dumps({"readings": [item]}), RECEIVED_AT
    )
    (reading,) = out.readings
    assert reading.payload["credential_hash"] == hash_identifier(SALT, secret)
    assert secret.encode() not in reading.to_json()


@pytest.mark.parametrize(
    "topic_name",
    [T_GATE, BATCH_TOPIC],
    ids=["single", "batch_item"],
)
def test_raw_credential_of_a_refused_message_is_redacted(topic_name, registry_index):
    secret = "CARD-5555-0000-1111"
    data = {**GATE, "credential": secret, "persons_sensed": 99}
    if topic_name == BATCH_TOPIC:
        raw = among_good(batch_item(K.ACCESS_GATE, "passage", data), 1)
    else:
        raw = dumps(data)
    out = Pipeline(registry_index, SALT).judge(topic_name, raw, RECEIVED_AT)
    (letter,) = out.rejected
    assert letter.payload["reason"] == "out_of_range"
    kept = base64.b64decode(str(letter.payload["raw_b64"]))
    assert secret.encode() not in kept
    assert b'"<redacted>"' in kept
    assert secret.encode() not in letter.to_json()
    assert set(HASHED_FIELDS) == {"credential", "plate"}


def test_salt_must_be_long_enough(registry_index):
    with pytest.raises(ValueError, match="salt"):
        Pipeline(registry_index, b"short")


# --- dedup -------------------------------------------------------------------------------------


def test_same_message_twice_has_the_same_id(registry_index):
    first = Pipeline(registry_index, SALT).judge(T_BIN, OK, RECEIVED_AT)
    pipeline = Pipeline(registry_index, SALT)
    again = pipeline.judge(T_BIN, OK, RECEIVED_AT + timedelta(seconds=30))
    third = pipeline.judge(T_BIN, OK, RECEIVED_AT + timedelta(minutes=2))
    assert first.readings[0].id == again.readings[0].id == third.readings[0].id


def test_different_seq_has_a_different_id(registry_index):
    pipeline = Pipeline(registry_index, SALT)
    a = pipeline.judge(T_BIN, bin_raw(seq=1), RECEIVED_AT).readings[0]
    b = pipeline.judge(T_BIN, bin_raw(seq=2), RECEIVED_AT).readings[0]
    assert a.id != b.id


def test_same_instant_in_another_offset_has_the_same_id(registry_index):
    pipeline = Pipeline(registry_index, SALT)
    instant = RECEIVED_AT - timedelta(minutes=3)
    a = pipeline.judge(T_BIN, bin_raw(ts=iso(instant)), RECEIVED_AT).readings[0]
    b = pipeline.judge(T_BIN, bin_raw(ts=iso(instant, UTC)), RECEIVED_AT).readings[0]
    assert a.id == b.id


def test_without_seq_and_ts_same_content_same_id(registry_index):
    pipeline = Pipeline(registry_index, SALT)
    raw = dumps({"fill_pct": 35, "category": "kitchen"})
    respaced = b'{ "category" : "kitchen" , "fill_pct" : 35 }'
    a = pipeline.judge(T_BIN, raw, RECEIVED_AT).readings[0]
    b = pipeline.judge(T_BIN, respaced, RECEIVED_AT + timedelta(seconds=5)).readings[0]
    c = pipeline.judge(T_BIN, dumps({"fill_pct": 36, "category": "kitchen"}), RECEIVED_AT)
    assert a.id == b.id
    assert c.readings[0].id != a.id


def test_same_reading_on_two_streams_or_devices_differs(registry_index):
    pipeline = Pipeline(registry_index, SALT)
    hb = {"ts": NOW_TS, "seq": 5}
    a = pipeline.judge(topic(K.WASTE_BIN, "heartbeat"), dumps(hb), RECEIVED_AT).readings[0]
    b = pipeline.judge(topic(K.GATEWAY, "heartbeat"), dumps(hb), RECEIVED_AT).readings[0]
    c = pipeline.judge(
        topic(K.WASTE_BIN, "heartbeat", FRACTION_BIN), dumps(hb), RECEIVED_AT
    ).readings[0]
    assert len({a.id, b.id, c.id}) == 3


def test_batch_item_and_single_message_share_the_reading_id(registry_index):
    pipeline = Pipeline(registry_index, SALT)
    single = pipeline.judge(T_BIN, OK, RECEIVED_AT).readings[0]
    batch = pipeline.judge(BATCH_TOPIC, dumps({"readings": [BIN_ITEM]}), RECEIVED_AT)
    assert batch.readings[0].id == single.id


def test_same_refused_bytes_share_the_dead_letter_id(registry_index):
    pipeline = Pipeline(registry_index, SALT)
    raw = bin_raw(fill_pct=130)
    a = pipeline.judge(T_BIN, raw, RECEIVED_AT).rejected[0]
    b = pipeline.judge(T_BIN, raw, RECEIVED_AT + timedelta(seconds=1)).rejected[0]
    c = pipeline.judge(T_BIN, bin_raw(fill_pct=131), RECEIVED_AT).rejected[0]
    assert a.id == b.id
    assert c.id != a.id
    assert pipeline.rejected_by_reason == {"out_of_range": 3}
