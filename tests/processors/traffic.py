"""A small, seeded estate's traffic as accepted ``readings`` envelopes, for runner tests.

Messages are built as devices send them (topic + JSON bytes) and judged by the real
ingest pipeline, so the envelopes are exactly what the log holds. The traffic has
something for each pack: a kitchen bin that fills past the overflow threshold and is
never emptied, a household with a leak (flow all night), a building master meter with
its households, heartbeats with a failing battery, and a water meter that goes silent.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devices.demo_estate import dump_registry, generate_registry
from devices.registry import RegistryIndex, load_registry
from devices.topics import topic_for
from eventlog.envelope import Envelope
from ingest.pipeline import Pipeline

SALT = b"runner-tests-salt-0123456789"
#: 00:00 on 2026-11-20 in Shanghai.
T0 = datetime(2026, 11, 19, 16, 0, tzinfo=UTC)


def write_registry(directory: Path, households: int = 12) -> Path:
    path = directory / "estate.yaml"
    path.write_text(dump_registry(generate_registry(households=households)), encoding="utf-8")
    return path


def load_index(path: Path) -> RegistryIndex:
    return load_registry(path).index()


def _messages(
    index: RegistryIndex,
    hours: float,
    seed: int,
    meters: int,
    master_loss: float,
    silent: bool,
) -> Iterator[tuple[datetime, str, dict[str, Any]]]:
    rng, n_meters = random.Random(seed), meters
    refs = list(index.devices_of("lvcheng"))
    bins = [r for r in refs if r.kind.value == "waste_bin"][:2]
    meters = [r for r in refs if r.kind.value == "water_meter"]
    masters = [m for m in meters if m.spec.is_master_meter and m.spec.meter_of is not None][:1]
    households = [m for m in meters if m.spec.meter_of == masters[0].device][:n_meters]
    end = T0 + timedelta(hours=hours)
    silent_meter = households[-1].device if silent else None  # quiet after a third of the run
    leak = households[0].device
    volumes = {m.device: 100.0 + 10 * i for i, m in enumerate(households + masters)}
    seq: dict[str, int] = {}

    def body(device: str, at: datetime, **fields: Any) -> dict[str, Any]:
        seq[device] = seq.get(device, 0) + 1
        return {"ts": at.isoformat(), "seq": seq[device], **fields}

    t = T0
    fill = {b.device: 10.0 for b in bins}
    battery = 40.0
    step = timedelta(minutes=15)
    while t < end:
        hour = (t.hour + 8) % 24  # estate-local hour
        total = 0.0
        for m in households:
            if m.device == silent_meter and t > T0 + (end - T0) / 3:
                continue
            use_l_h = (30 if 6 <= hour < 23 else 0) * rng.random()
            if m.device == leak:
                use_l_h += 4.0
            litres = use_l_h * step.total_seconds() / 3600
            volumes[m.device] += litres / 1000
            total += litres
            at = t + timedelta(seconds=rng.randint(0, 30))
            yield (
                at,
                topic_for("lvcheng", m.kind, m.device, "register"),
                body(m.device, at, volume_m3=round(volumes[m.device], 4)),
            )
        for m in masters:
            volumes[m.device] += total / 1000 * (1 + master_loss)
            at = t + timedelta(seconds=rng.randint(0, 30))
            yield (
                at,
                topic_for("lvcheng", m.kind, m.device, "register"),
                body(m.device, at, volume_m3=round(volumes[m.device], 4)),
            )
        if t.minute == 0 and t.hour % 1 == 0:
            for i, b in enumerate(bins):
                fill[b.device] = min(100.0, fill[b.device] + (9.0 if i == 0 else 2.0))
                if i == 1 and hour == 7:
                    fill[b.device] = 5.0
                at = t + timedelta(seconds=rng.randint(0, 60))
                yield (
                    at,
                    topic_for("lvcheng", b.kind, b.device, "level"),
                    body(
                        b.device,
                        at,
                        fill_pct=round(fill[b.device], 1),
                        temperature_c=21.5,
                        battery_pct=battery,
                        category="kitchen",
                    ),
                )
            battery = max(0.0, battery - 3)
        t += step


def envelopes(
    index: RegistryIndex,
    hours: float = 30,
    seed: int = 7,
    meters: int = 4,
    master_loss: float = 0.02,
    silent: bool = True,
) -> list[Envelope]:
    """The accepted readings of ``hours`` of traffic (``meters`` household water meters of
    one building, whose master meter also counts ``master_loss`` × their use, the common
    pipes' share; with ``silent`` the last meter stops reporting after a third of the run),
    in device-time order."""
    pipeline = Pipeline(index, SALT)
    out: list[Envelope] = []
    for at, topic, payload in sorted(
        _messages(index, hours, seed, meters, master_loss, silent), key=lambda m: m[0]
    ):
        judged = pipeline.judge(topic, json.dumps(payload).encode(), at + timedelta(seconds=2))
        assert not judged.rejected, judged.rejected
        out.extend(judged.readings)
    return out
