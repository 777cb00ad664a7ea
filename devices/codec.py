"""Readings in and out of envelope payloads: the one place that knows the payload layout.

An accepted reading is stored as an envelope whose ``kind`` is
``"{device kind}.{stream}"``, whose ``occurred_at`` is the device time, and whose
payload holds the reading's fields except ``ts`` (``occurred_at`` carries it),
without ``None`` values, plus ``flags`` when ingest noted anything (e.g.
``no_device_time``).
"""

from __future__ import annotations

from typing import Any

from devices.catalogue import CATALOGUE, DeviceKind, Reading

FLAGS_KEY = "flags"

#: Flags ingest puts in a reading's payload (under ``flags``) for detectors to see.
FLAG_NO_DEVICE_TIME = "no_device_time"  #: the device sent no time; received time is used
FLAG_CLOCK_SKEW = "clock_skew"  #: an untrusted clock ran ahead; received time is used
FLAG_UNITS_NORMALISED = "units_normalised"  #: the profile's units were converted to ours


def split_event_kind(event_kind: str) -> tuple[DeviceKind, str]:
    """``"waste_bin.level"`` → ``(DeviceKind.WASTE_BIN, "level")``; ``KeyError`` otherwise."""
    kind, _, stream = event_kind.partition(".")
    try:
        key = (DeviceKind(kind), stream)
    except ValueError:
        raise KeyError(f"{event_kind!r} is not a reading kind") from None
    if key not in CATALOGUE:
        raise KeyError(f"{event_kind!r} is not a reading kind")
    return key


def to_payload(reading: Reading, flags: list[str] | None = None) -> dict[str, Any]:
    payload = reading.model_dump(mode="json", exclude_none=True, exclude={"ts"})
    if flags:
        payload[FLAGS_KEY] = list(flags)
    return payload


def from_payload(event_kind: str, payload: dict[str, Any]) -> Reading:
    """Rebuild the typed reading of a stored payload (``ts`` is not restored)."""
    model = CATALOGUE[split_event_kind(event_kind)].model
    fields = {k: v for k, v in payload.items() if k != FLAGS_KEY}
    return model.model_validate(fields, strict=False)
