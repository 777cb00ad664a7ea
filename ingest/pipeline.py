"""The validation pipeline: one MQTT message in, accepted readings and dead letters out.

:func:`judge` is pure (no I/O, no clock: ``received_at`` is given), so the
gateway, the tests and the benchmarks run exactly the same decisions.

Order of checks for a message: size → topic → UTF-8 → JSON (duplicate keys,
NaN/Infinity, nesting depth) → for a gateway batch, the batch envelope, then
each item alone → registry (unknown device, wrong estate, kind mismatch) →
privacy (raw credentials and plates hashed) → unit normalisation (profile) →
model (schema / out of range) → device time (clock skew / too old / missing).
"""

from __future__ import annotations

import base64
import codecs
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from devices.catalogue import CATALOGUE, HASHED_FIELDS, DeviceKind
from devices.codec import (
    FLAG_CLOCK_SKEW,
    FLAG_NO_DEVICE_TIME,
    FLAG_UNITS_NORMALISED,
    to_payload,
)
from devices.profiles import UNIT_FACTORS
from devices.registry import DeviceRef, RegistryIndex
from devices.topics import BatchItem, BatchMessage, Topic, TopicError, parse_topic
from eventlog.envelope import Envelope, deterministic_id


class Reason(StrEnum):
    """Stable reason codes of dead letters (documented in docs/ingest.md)."""

    TOO_LARGE = "too_large"
    EMPTY_PAYLOAD = "empty_payload"
    BAD_TOPIC = "bad_topic"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    DUPLICATE_KEY = "duplicate_key"
    NON_FINITE = "non_finite"
    TOO_DEEP = "too_deep"
    NOT_AN_OBJECT = "not_an_object"
    BAD_BATCH = "bad_batch"
    UNKNOWN_DEVICE = "unknown_device"
    WRONG_ESTATE = "wrong_estate"
    KIND_MISMATCH = "kind_mismatch"
    DEVICE_MISMATCH = "device_mismatch"
    UNKNOWN_STREAM = "unknown_stream"
    SCHEMA = "schema"
    OUT_OF_RANGE = "out_of_range"
    CLOCK_SKEW = "clock_skew"
    TOO_OLD = "too_old"


#: pydantic error types that mean "a value of the right type, outside its range".
_RANGE_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "finite_number",
        "too_long",
        "too_short",
        "string_too_long",
        "string_too_short",
    }
)


#: Bytes of a refused payload kept in its dead letter (plus its size and SHA-256).
RAW_KEEP_BYTES = 64 * 1024

_IDENT = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True, slots=True)
class Policy:
    """Limits of the pipeline; defaults suit a residential estate."""

    max_payload_bytes: int = 256 * 1024
    max_depth: int = 16
    max_future_skew: timedelta = timedelta(minutes=5)
    horizon: timedelta = timedelta(days=7)


@dataclass(slots=True)
class Judgement:
    """What one message became."""

    readings: list[Envelope] = field(default_factory=list)
    rejected: list[Envelope] = field(default_factory=list)


class _Refused(Exception):
    def __init__(self, reason: Reason, detail: str, field_name: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.field_name = field_name


class _DuplicateKey(ValueError):
    pass


class _NonFinite(ValueError):
    pass


#: A lone UTF-16 surrogate: JSON may spell one (``"\\ud800"``), but it is no character and
#: cannot be encoded as UTF-8 (so it could be neither hashed, stored nor echoed).
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _lone_surrogate() -> _Refused:
    return _Refused(
        Reason.INVALID_JSON,
        "invalid JSON: a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff "
        "without its pair), which is not a Unicode character",
    )


def _refuse_lone_surrogates(value: Any) -> None:
    """String values at every level (keys are checked by :func:`_no_duplicates`)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _lone_surrogate()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if _SURROGATE.search(key):
            raise _lone_surrogate()
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise _NonFinite(name)


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


#: Raw personal identifiers are blanked in dead letters too (``"credential": "…"``).
_REDACT = re.compile(
    rb'("(?:' + b"|".join(k.encode() for k in HASHED_FIELDS) + rb')"\s*:\s*)"(?:[^"\\]|\\.)*"'
)
#: orjson reads integers beyond 64 bits (19+ digits) as floats; the standard library keeps them
#: exact, so that a huge ``seq`` is out of range rather than "not an integer".
_LONG_DIGITS = re.compile(rb"[0-9]{19,}")


def _count_keys_and_check_depth(value: Any, limit: int) -> int:
    """Object keys in ``value`` (all levels); raises when nested deeper than ``limit``."""
    if isinstance(value, dict) and limit >= 1:  # fast path: a flat object, the usual reading
        for child in value.values():
            if isinstance(child, dict | list):
                break
        else:
            return len(value)
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            keys += len(item)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise _Refused(Reason.TOO_DEEP, f"JSON nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)
    return keys


def _parse_json_strictly(raw: bytes, max_depth: int) -> Any:
    if raw.startswith(codecs.BOM_UTF8):
        raise _Refused(
            Reason.INVALID_JSON, "invalid JSON: payload starts with a UTF-8 byte order mark (BOM)"
        )
    try:
        value = _decoder.decode(raw.decode("utf-8"))
    except _DuplicateKey as exc:
        raise _Refused(Reason.DUPLICATE_KEY, f"key {exc} appears twice", str(exc)) from None
    except _NonFinite as exc:
        raise _Refused(Reason.NON_FINITE, f"{exc} is not a finite number") from None
    except RecursionError:
        raise _Refused(Reason.TOO_DEEP, f"JSON nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise _Refused(Reason.INVALID_JSON, f"invalid JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits: int() refuses it
        raise _Refused(Reason.INVALID_JSON, f"invalid JSON: {str(exc)[:120]}") from None
    _count_keys_and_check_depth(value, max_depth)
    _refuse_lone_surrogates(value)
    return value


def parse_json(raw: bytes, max_depth: int) -> Any:
    """Parse UTF-8 JSON strictly: no duplicate keys, no NaN/Infinity, depth ≤ ``max_depth``.

    The fast path is orjson, which would silently keep the last of duplicate keys:
    when the text holds more ``"key":`` tokens than the parsed value has keys, or
    orjson refuses the text, the standard library's decoder with hooks decides
    (and names the precise reason).
    """
    if _LONG_DIGITS.search(raw):
        return _parse_json_strictly(raw, max_depth)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _parse_json_strictly(raw, max_depth)
    keys = _count_keys_and_check_depth(value, max_depth)
    if raw.count(b'":') != keys:  # `"key" :` with a space also lands on the strict path
        return _parse_json_strictly(raw, max_depth)
    return value


#: Devices publish on the same few thousand topics again and again.
_parse_topic = functools.lru_cache(maxsize=65_536)(parse_topic)


def count_reasons(letters: Iterable[Envelope], into: dict[str, int]) -> None:
    """Add the dead letters' reason codes to the counters ``into``."""
    for letter in letters:
        reason = str(letter.payload["reason"])
        into[reason] = into.get(reason, 0) + 1


def hash_identifier(salt: bytes, value: str) -> str:
    """Salted hash of a credential or plate (HMAC-SHA256, hex, 32 digits)."""
    return hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()[:32]


def _is_range_error(error: ErrorDetails) -> bool:
    if error["type"] in _RANGE_ERRORS:
        return True
    # an integer too large for a float (hundreds of digits) is out of range, not of a wrong type
    value = error.get("input")
    return error["type"] == "float_type" and isinstance(value, int) and not isinstance(value, bool)


def _describe(exc: ValidationError) -> tuple[Reason, str, str | None]:
    errors = exc.errors(include_url=False)
    reason = Reason.OUT_OF_RANGE if all(_is_range_error(e) for e in errors) else Reason.SCHEMA
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "(payload)"
        got = "" if e["type"] == "missing" else f" (got {e['input']!r:.60})"
        parts.append(f"field {loc}: {e['msg']}{got}")
    first = ".".join(str(p) for p in errors[0]["loc"]) if errors else None
    return reason, "; ".join(parts), first or None


class Pipeline:
    """Judges messages against a registry; hold one per gateway (it keeps counters)."""

    def __init__(self, index: RegistryIndex, salt: bytes, policy: Policy | None = None) -> None:
        if len(salt) < 16:
            raise ValueError("hash salt must be at least 16 bytes")
        self.index = index
        self.policy = policy or Policy()
        self._salt = salt
        self.accepted = 0
        self.rejected_by_reason: dict[str, int] = {}

    # -- the entry point ---------------------------------------------------------------------

    def judge(self, topic: str, raw: bytes, received_at: datetime) -> Judgement:
        out = Judgement()
        try:
            parsed_topic, document = self._open(topic, raw)
            if parsed_topic.is_batch:
                self._judge_batch(parsed_topic, document, raw, received_at, out)
            else:
                self._judge_one(
                    parsed_topic,
                    parsed_topic.kind,
                    parsed_topic.device,
                    parsed_topic.stream,
                    document,
                    raw,
                    received_at,
                    None,
                    out,
                )
        except _Refused as refused:
            out.rejected.append(self._dead_letter(topic, raw, received_at, refused, None, None))
        self.accepted += len(out.readings)
        count_reasons(out.rejected, self.rejected_by_reason)
        return out

    # -- steps -------------------------------------------------------------------------------

    def _open(self, topic: str, raw: bytes) -> tuple[Topic, Any]:
        if len(raw) > self.policy.max_payload_bytes:
            raise _Refused(
                Reason.TOO_LARGE,
                f"payload of {len(raw)} bytes exceeds {self.policy.max_payload_bytes} bytes",
            )
        try:
            parsed = _parse_topic(topic)
        except TopicError as exc:
            raise _Refused(Reason.BAD_TOPIC, str(exc)) from None
        if not raw.strip():
            raise _Refused(Reason.EMPTY_PAYLOAD, "payload is empty; expected a JSON object")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refused(
                Reason.INVALID_UTF8, f"payload is not UTF-8 (byte {exc.start}: {exc.reason})"
            ) from None
        document = parse_json(raw, self.policy.max_depth)
        if not isinstance(document, dict):
            raise _Refused(
                Reason.NOT_AN_OBJECT, f"payload is a JSON {type(document).__name__}, not an object"
            )
        return parsed, document

    def _judge_batch(
        self,
        topic: Topic,
        document: dict[str, Any],
        raw: bytes,
        received_at: datetime,
        out: Judgement,
    ) -> None:
        try:
            batch = BatchMessage.model_validate(document)
        except ValidationError as exc:
            _, detail, field_name = _describe(exc)
            raise _Refused(Reason.BAD_BATCH, detail, field_name) from None
        gateway = self.index.device(topic.estate, topic.device)
        if gateway is None or gateway.kind is not DeviceKind.GATEWAY:
            raise _Refused(
                Reason.UNKNOWN_DEVICE,
                f"gateway {topic.device!r} is not registered in estate {topic.estate!r}",
            )
        for position, item_doc in enumerate(batch.readings):
            try:
                try:
                    item = BatchItem.model_validate(item_doc)
                except ValidationError as exc:
                    _, detail, field_name = _describe(exc)
                    raise _Refused(Reason.BAD_BATCH, detail, field_name) from None
                if (item.kind, item.stream) not in CATALOGUE:
                    raise _Refused(
                        Reason.UNKNOWN_STREAM,
                        f"kind {item.kind.value} has no stream {item.stream!r}",
                        "stream",
                    )
                self._judge_one(
                    topic,
                    item.kind,
                    item.device,
                    item.stream,
                    item.data,
                    raw,
                    received_at,
                    position,
                    out,
                )
            except _Refused as refused:
                item_raw = json.dumps(item_doc, ensure_ascii=False, default=str).encode()
                named = item_doc.get("device")
                device = named if isinstance(named, str) and _IDENT.fullmatch(named) else None
                out.rejected.append(
                    self._dead_letter(str(topic), item_raw, received_at, refused, position, device)
                )

    def _device(self, topic: Topic, kind: DeviceKind, device: str) -> DeviceRef:
        ref = self.index.device(topic.estate, device)
        if ref is None:
            elsewhere = self.index.find_device(device)
            if elsewhere:
                estates = ", ".join(sorted({r.estate for r in elsewhere}))
                raise _Refused(
                    Reason.WRONG_ESTATE,
                    f"device {device!r} is registered in estate(s) {estates}, "
                    f"not in {topic.estate!r}",
                )
            raise _Refused(
                Reason.UNKNOWN_DEVICE,
                f"device {device!r} is not registered in estate {topic.estate!r}",
            )
        if ref.kind is not kind:
            raise _Refused(
                Reason.KIND_MISMATCH,
                f"device {device!r} is registered as {ref.kind.value}, message says {kind.value}",
            )
        return ref

    def _judge_one(
        self,
        topic: Topic,
        kind: DeviceKind,
        device: str,
        stream: str,
        data: dict[str, Any],
        raw: bytes,
        received_at: datetime,
        position: int | None,
        out: Judgement,
    ) -> None:
        ref = self._device(topic, kind, device)
        fields = dict(data)
        claimed = fields.pop("device", device)
        if claimed != device:
            raise _Refused(
                Reason.DEVICE_MISMATCH,
                f"payload names device {claimed!r} but the topic names {device!r}",
                "device",
            )
        flags: list[str] = []
        for raw_name, hashed_name in HASHED_FIELDS.items():
            if raw_name in fields:
                value = fields.pop(raw_name)
                if not isinstance(value, str) or not value or len(value) > 256:
                    raise _Refused(
                        Reason.SCHEMA, f"field {raw_name}: must be a non-empty string", raw_name
                    )
                fields[hashed_name] = hash_identifier(self._salt, value)
        if ref.profile.units:
            self._normalise_units(ref, fields, flags)
        spec = CATALOGUE[(kind, stream)]
        model = spec.model
        try:
            reading = model.model_validate(fields)
        except ValidationError as exc:
            reason, detail, field_name = _describe(exc)
            raise _Refused(reason, detail, field_name) from None
        occurred_at = reading.ts
        if occurred_at is None:
            occurred_at = received_at
            flags.append(FLAG_NO_DEVICE_TIME)
        elif occurred_at - received_at > self.policy.max_future_skew:
            if ref.profile.clock == "trusted":
                raise _Refused(
                    Reason.CLOCK_SKEW,
                    f"field ts: device time {occurred_at.isoformat()} is "
                    f"{(occurred_at - received_at).total_seconds():.0f} s ahead of received time "
                    f"(limit {self.policy.max_future_skew.total_seconds():.0f} s)",
                    "ts",
                )
            flags.append(FLAG_CLOCK_SKEW)
            occurred_at = received_at
        elif received_at - occurred_at > self.policy.horizon:
            raise _Refused(
                Reason.TOO_OLD,
                f"field ts: device time {occurred_at.isoformat()} is older than the horizon "
                f"of {self.policy.horizon.days} days",
                "ts",
            )
        identity: tuple[object, ...] = (topic.estate, device, stream, reading.ts, reading.seq)
        if reading.ts is None or reading.seq is None:
            canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
            identity += (hashlib.sha256(canonical.encode()).hexdigest(),)
        out.readings.append(
            Envelope(
                id=deterministic_id("reading", *identity),
                kind=spec.event_kind,
                schema_version=1,
                occurred_at=occurred_at,
                received_at=received_at,
                estate=topic.estate,
                building=ref.building,
                device=device,
                payload=to_payload(reading, flags),
            )
        )

    @staticmethod
    def _normalise_units(ref: DeviceRef, fields: dict[str, Any], flags: list[str]) -> None:
        for name, unit in ref.profile.units.items():
            value = fields.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    fields[name] = value * UNIT_FACTORS[name][unit]
                except OverflowError:  # an integer of hundreds of digits
                    raise _Refused(
                        Reason.OUT_OF_RANGE, f"field {name}: {value!r:.40} is out of range", name
                    ) from None
                if FLAG_UNITS_NORMALISED not in flags:
                    flags.append(FLAG_UNITS_NORMALISED)

    def _dead_letter(
        self,
        topic: str,
        raw: bytes,
        received_at: datetime,
        refused: _Refused,
        position: int | None,
        device: str | None,
    ) -> Envelope:
        digest = hashlib.sha256(raw).hexdigest()
        size = len(raw)
        raw = _REDACT.sub(rb'\1"<redacted>"', raw)
        try:
            topic.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: keep the topic storable
            topic = topic.encode("utf-8", "backslashreplace").decode("utf-8")
        try:
            parsed: Topic | None = parse_topic(topic)
        except TopicError:
            parsed = None
        estate = parsed.estate if parsed else None
        device = device or (parsed.device if parsed else None)
        payload: dict[str, Any] = {
            "reason": refused.reason.value,
            "detail": refused.detail,
            "topic": topic,
            "raw_b64": base64.b64encode(raw[:RAW_KEEP_BYTES]).decode(),
            "raw_size": size,
            "raw_sha256": digest,
        }
        if refused.field_name:
            payload["field"] = refused.field_name
        if position is not None:
            payload["batch_position"] = position
        return Envelope(
            id=deterministic_id("rejected", topic, digest, position, refused.reason.value),
            kind=f"rejected.{refused.reason.value}",
            schema_version=1,
            occurred_at=received_at,
            received_at=received_at,
            estate=estate,
            building=None,
            device=device,
            payload=payload,
        )
