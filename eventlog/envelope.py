"""The record envelope shared by every stream of the log.

Every record carries a deterministic ``id``: a uuid5 of what makes the fact
unique, so a redelivered MQTT message or a replay yields the same id and an
idempotent append stores it once.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

#: Namespace of every id the estate monitor derives (uuid5 over it).
ID_NAMESPACE = uuid.UUID("6f1d3c52-6a0e-5c55-9d0b-6d6f6e69746f")

_NAMESPACE_BYTES = ID_NAMESPACE.bytes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Stream(StrEnum):
    """The streams (Kafka topics, SQLite stream names) of the log."""

    READINGS = "readings"
    REJECTED = "rejected"
    EVENTS = "events"


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: a ValueError is a validation error
        raise ValueError("datetime out of range once converted to UTC") from None


#: A timezone-aware datetime, normalised to UTC. Naive datetimes are refused.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

#: An identifier of an estate, building or device: letters, digits, ``_``, ``-`` and ``.``.
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


def _finite_json(payload: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """Refuse NaN and infinities anywhere in a payload (JSON has no such numbers)."""
    stack: list[object] = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("payload holds NaN or an infinity; JSON numbers must be finite")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return payload


def utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; refuse naive datetimes (they are ambiguous)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: a timezone is required")
    return _to_utc(value)


def deterministic_id(kind: str, *parts: object) -> uuid.UUID:
    """The uuid5 of ``kind`` and ``parts``: same inputs, same id, in every process.

    Each part is rendered length-prefixed (so ``("a\x1fb",)`` and ``("a", "b")``
    differ); datetimes as whole microseconds since the epoch, so that equal
    instants in other offsets give the same id; ``None`` distinctly from ``""``.
    """
    rendered = [kind]
    for part in parts:
        if part is None:
            rendered.append("-")
            continue
        if isinstance(part, datetime):
            if part.utcoffset() is None:
                raise ValueError("naive datetime: a timezone is required")
            # whole microseconds since the epoch: exact, and the same for every offset
            text = f"@{(part - _EPOCH) // _MICROSECOND}"
        else:
            text = str(part)
        rendered.append(f"{len(text)}:{text}")  # length-prefixed: no two splits collide
    name = "\x1f".join(rendered).encode("utf-8", "surrogatepass")
    digest = hashlib.sha1(_NAMESPACE_BYTES + name).digest()  # noqa: S324 - uuid5 is SHA-1
    return uuid.UUID(bytes=digest[:16], version=5)


class Envelope(BaseModel):
    """One immutable fact in the log."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    id: uuid.UUID
    kind: Annotated[str, Field(min_length=1, max_length=128)]
    schema_version: Annotated[int, Field(ge=1)] = 1
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    estate: Ident | None = None
    building: Ident | None = None
    device: Ident | None = None
    payload: Annotated[dict[str, JsonValue], AfterValidator(_finite_json)] = Field(
        default_factory=dict
    )

    @property
    def key(self) -> str:
        """The partition key: every fact of one device lands in one partition, in order."""
        if self.device is not None:
            return f"{self.estate or ''}/{self.device}"
        return str(self.id)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        return cls.model_validate_json(data)

    def with_payload(self, **changes: Any) -> Envelope:
        """A copy whose payload has ``changes`` merged in (the original is untouched)."""
        return self.model_copy(update={"payload": {**self.payload, **changes}})
