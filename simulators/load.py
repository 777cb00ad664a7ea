"""Load mode for benchmarks: ``devices`` meters publishing ``rate`` readings per second.

Round-robin over the first ``devices`` household water and energy meters of the
registry (alternating), each reading a growing register stamped with its send time,
so every message is a valid, distinct reading that ingest accepts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from devices.catalogue import DeviceKind
from devices.registry import DeviceRef, Registry
from devices.topics import topic_for
from simulators.model import Message

_KINDS = (DeviceKind.WATER_METER, DeviceKind.ENERGY_METER)


def load_devices(registry: Registry, devices: int) -> list[DeviceRef]:
    """``devices`` household meters, water and energy alternating (``ValueError`` if short)."""
    index = registry.index()
    pools = [
        [
            ref
            for estate in index.estate_ids()
            for ref in index.devices_of(estate)
            if ref.kind is kind and ref.profile.role == "household" and not ref.profile.units
        ]
        for kind in _KINDS
    ]
    chosen = [ref for pair in zip(*pools, strict=False) for ref in pair][:devices]
    if len(chosen) < devices:
        raise ValueError(
            f"the registry has {len(chosen)} household meters for load mode, not {devices}; "
            f"use --households {devices // 2 + 1} or more"
        )
    return chosen


def load_messages(
    registry: Registry, devices: int, rate: float, start: datetime, duration: timedelta
) -> Iterator[Message]:
    """Readings at ``rate`` per second from ``start`` for ``duration``, devices in turn."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    refs = load_devices(registry, devices)
    topics = [
        topic_for(r.estate, r.kind, r.device, "register" if r.kind in _KINDS else "heartbeat")
        for r in refs
    ]
    total = int(duration.total_seconds() * rate)
    for n in range(total):
        k, rnd = n % len(refs), n // len(refs)
        at = start.astimezone(UTC) + timedelta(seconds=n / rate)
        body: dict[str, object] = {"ts": at.isoformat(timespec="milliseconds"), "seq": rnd}
        if refs[k].kind is DeviceKind.WATER_METER:
            body["volume_m3"] = round(100 + rnd * 0.001, 3)
        else:
            body["energy_kwh"] = round(1000 + rnd * 0.01, 3)
        yield Message(topics[k], json.dumps(body, separators=(",", ":")).encode(), at)
