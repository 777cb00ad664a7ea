"""Throughput and state memory of the detectors (pure, one process).

Run from the repository root::

    .venv/bin/python benchmarks/detectors_bench.py [--devices N] [--hours H] [--repeat R]

A demo registry of about ``--devices`` devices (:func:`devices.demo_estate.write_registry`,
one estate, ~3.4 devices per household) is written to a temporary file and loaded;
every device gets its :class:`DeviceContext` (``context_for`` with the shipped rules)
and the detectors of every pack (``ALL_DETECTORS`` below) that apply to it.

Readings are generated in memory before the clock starts: ``--hours`` of traffic, each
device reporting its main stream at its profile's ``reporting_interval_s`` (phase and a
few seconds of jitter per device) plus a heartbeat with ``battery_pct`` every 6 hours:

* water meters: cumulative ``volume_m3`` (households: a daily pattern of 0-60 L/h with
  a quiet night, 2 % with a small leak; building masters: ``flow_l_min`` as well);
* bins: ``fill_pct`` rising 1-4 %/h with noise, emptied by a daily collection round
  at 07:00 local (or when nearly full), ``temperature_c``, a slowly falling battery;
* energy meters: cumulative ``energy_kwh`` and ``power_w`` shaped by role: households
  by the hour with noise, corridors ~300 W plus night lights, common areas ~900 W (0.2 %
  of readings a 5 kW spike), lighting on until 06:40 local (5 % of circuits left on until
  09:00, in daylight); 2 % of household/corridor meters carry a flying-wire charger
  (380 W from 00:30-02:00 for 5 h, tapering over its last 30 %);
* parking bays: ``occupied`` (changes on one reading in four) with ``changed_at`` (the
  demo estate tags 1 % of its bays ``fire_lane``, 5 % ``visitor_bay``, 8 % ``ev_bay``);
* access gates: a cycle of a passage (3 % denied, 1-3 persons sensed, a credential hash),
  the door open 1 s later (0.5 % flagged forced) and closed 8 s after the passage (so a
  passage every 3 reporting intervals; denied passages open the door too: forced);
* EV chargers: two connectors read in turn, each with an overnight session (plugged in
  18:00-21:00 the evening before, charging at 7 kW for 1-4 h, ``suspended_ev`` until it
  leaves at 07:00-09:00; 5 % stay on, 1 % of connectors ``faulted``);
* e-bike stations: ten ports read in turn, each charging from 20:00-23:00 for 4-7 h at
  380 W with a taper, port temperature following the power (0.5 % of ports overheat by
  55 °C over 20 min), then ``finished``, ``available`` after 07:00.

What is timed is only ``state, signals = det.step(state, reading, ctx)`` for every
reading (in event-time order, all devices interleaved) and every applicable detector
whose ``consumes`` is empty or holds the reading's kind; states live in a dict keyed by
(device, detector). Which detectors a reading feeds, and their keys, are worked out
before the clock starts, once per (device, reading kind), as a runner caches its routes
(:func:`plan`); until 2026-11-22 the timed loop did that filtering itself, which cost
~0.7 s of the ~10 s run (see ``docs/performance.md``). The figure is *readings* per
second (one reading feeds 2-7 detectors); detector steps per second are shown as well.
A tick pass calls ``tick`` of every applicable detector of every device once (at the end
of the traffic). Each run starts from fresh initial states; the median of ``--repeat``
runs is reported.

State memory after the last run, scaled to 10,000 devices: (1) tracemalloc of building
the state dict from scratch (every state re-validated from its JSON, keyed as above;
snapshot difference), i.e. what a process holds after restoring a snapshot; (2) the
bytes of compact JSON of every state (``dump_state``, the data the runner snapshots),
what a snapshot or a faust table holds. States are rebuilt with each detector's
``load_state`` from the JSON-decoded ``dump_state`` data (decoded before the
measurement starts, so the decoded JSON itself is not counted).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from devices.catalogue import DeviceKind  # noqa: E402
from devices.demo_estate import write_registry  # noqa: E402
from devices.examples import example  # noqa: E402
from devices.registry import RegistryIndex, load_registry  # noqa: E402
from eventlog.envelope import deterministic_id  # noqa: E402
from processors.detector import Detector, DeviceContext, ReadingView, context_for  # noqa: E402
from processors.packs.charging import CHARGING_DETECTORS  # noqa: E402
from processors.packs.energy import ENERGY_DETECTORS  # noqa: E402
from processors.packs.gates import GATE_DETECTORS  # noqa: E402
from processors.packs.health import HEALTH_DETECTORS  # noqa: E402
from processors.packs.parking import PARKING_DETECTORS  # noqa: E402
from processors.packs.waste import WASTE_DETECTORS  # noqa: E402
from processors.packs.water import WATER_DETECTORS  # noqa: E402
from processors.rules import load_rules  # noqa: E402

ALL_DETECTORS: tuple[Detector[Any], ...] = (
    *HEALTH_DETECTORS,
    *WASTE_DETECTORS,
    *WATER_DETECTORS,
    *CHARGING_DETECTORS,
    *ENERGY_DETECTORS,
    *PARKING_DETECTORS,
    *GATE_DETECTORS,
)
#: Midnight in Shanghai (the demo estates' time zone), 2026-11-21.
T0 = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
DEVICES_PER_HOUSEHOLD = 3.42  # the demo estate: 3,000 households → 10,264 devices
HEARTBEAT_EVERY = timedelta(hours=6)
TARGET_READINGS_S = 100_000
TARGET_MB_PER_10K = 25.0

Key = tuple[str, str]
#: A device's context and the detectors that watch it.
Watched = tuple[DeviceContext, tuple[Detector[Any], ...]]


# --- setup (not timed) -----------------------------------------------------------------------


def build_index(devices: int, seed: int) -> RegistryIndex:
    """The registry of a demo estate of about ``devices`` devices."""
    households = max(1, round(devices / DEVICES_PER_HOUSEHOLD))
    with tempfile.TemporaryDirectory() as folder:
        files = write_registry(Path(folder) / "registry.yaml", households=households, seed=seed)
        return load_registry(files[0]).index()


def build_devices(devices: int, seed: int, index: RegistryIndex | None = None) -> list[Watched]:
    """Contexts and applicable detectors of a demo estate of about ``devices`` devices."""
    index = index or build_index(devices, seed)
    rules = load_rules(None)
    watched: list[Watched] = []
    for estate in index.estate_ids():
        for ref in index.devices_of(estate):
            ctx = context_for(index, ref, rules)
            watched.append((ctx, tuple(d for d in ALL_DETECTORS if d.applies_to(ctx))))
    return watched


class Traffic:
    """Generates the readings of one device (main stream + heartbeats), in time order."""

    def __init__(self, ctx: DeviceContext, rng: random.Random) -> None:
        self.ctx, self.rng = ctx, rng
        self.seq = 0
        self.battery = rng.uniform(15, 100) if rng.random() < 0.05 else rng.uniform(40, 100)
        self.leak_l_h = rng.uniform(3, 8) if rng.random() < 0.02 else 0.0
        self.volume_l = rng.uniform(10_000, 900_000)
        self.kwh = rng.uniform(100, 20_000)
        self.fill = rng.uniform(0, 60)
        self.rate = rng.uniform(1, 4)  # %/h
        self.temp = rng.uniform(12, 24)
        self.occupied, self.changed_at = rng.random() < 0.5, T0 - timedelta(hours=1)
        self.gate_step, self.passage_at = 0, T0  # passage, door open, door closed, ...
        # charging and energy (hours after T0, local midnight): see the module docstring
        self.units = [self._unit(rng) for _ in range(10)]
        self.turn = 0
        self.wire_h = rng.uniform(0.5, 2) if rng.random() < 0.02 else None
        self.lights_off_h = 9.0 if rng.random() < 0.05 else 6.67
        self.size = rng.uniform(0.7, 1.3)

    @staticmethod
    def _unit(rng: random.Random) -> tuple[float, float, float, bool]:
        """(plugged in, done, leaves, anomalous) of one connector or port, hours after T0."""
        plug = -rng.uniform(1, 6)
        return plug, plug + rng.uniform(1, 7), rng.uniform(7, 9), rng.random() < 0.03

    def _energy(self, h: float, hour: int) -> float:
        """The meter's power (W) at ``h`` hours after T0 (local ``hour``)."""
        ctx, rng = self.ctx, self.rng
        if ctx.profile.role == "lighting" or "lighting" in ctx.tags:
            return 1800.0 * self.size if h < self.lights_off_h else 6.0
        if "common_area" in ctx.tags:
            return 5000.0 if rng.random() < 0.002 else 900.0 * self.size * rng.uniform(0.95, 1.05)
        if ctx.profile.role == "household":
            watts = (160, 140, 130, 130, 130, 150, 260, 420, 330)[min(hour, 8)] * self.size
            watts *= rng.lognormvariate(0, 0.3)
        else:
            watts = (300.0 + (90.0 if hour < 7 else 0.0)) * self.size * rng.uniform(0.97, 1.03)
        if self.wire_h is not None and 0 <= (h - self.wire_h) < 5:
            share = (h - self.wire_h) / 5
            watts += 380.0 if share < 0.7 else 380.0 * (1 - 0.95 * (share - 0.7) / 0.3)
        return watts

    def _connector(self, h: float) -> dict[str, Any]:
        n = self.turn % 2 + 1
        plug, done, leave, odd = self.units[n - 1]
        done, leave = min(done, plug + 4), leave + (24 if odd and n == 1 else 0)
        if odd and n == 2:
            return {"connector": n, "status": "faulted", "power_kw": 0.0}
        if h >= leave:
            return {"connector": n, "status": "available", "power_kw": 0.0}
        charging = h < done
        return {
            "connector": n,
            "status": "charging" if charging else "suspended_ev",
            "power_kw": 7.0 if charging else 0.0,
            "session_energy_kwh": round(7.0 * (min(h, done) - plug), 3),
            "session_id": f"S{n}-{plug:.3f}",
        }

    def _gate(self, at: datetime) -> ReadingView:
        """One reading a call: a passage, then its door open 1 s and closed 8 s after it."""
        rng = self.rng
        self.gate_step += 1
        if self.gate_step % 3 == 1:
            self.passage_at = at
            granted = rng.random() >= 0.03
            payload: dict[str, Any] = {
                "direction": "in" if rng.random() < 0.5 else "out",
                "result": "granted" if granted else "denied",
                "method": "card",
                "credential_hash": f"{rng.getrandbits(64):016x}",
                "persons_sensed": rng.choice((1, 1, 1, 2, 3)) if granted else 0,
            }
            kind = "access_gate.passage"
        else:
            opening = self.gate_step % 3 == 2
            at = self.passage_at + timedelta(seconds=1 if opening else 8)
            payload = (
                {"state": "open", "forced": rng.random() < 0.005}
                if opening
                else {"state": "closed"}
            )
            kind = "access_gate.door"
        return self.reading(kind, at, {"ts": at.isoformat(), "seq": self.seq + 1, **payload})

    def _port(self, h: float) -> dict[str, Any]:
        n = self.turn % 10 + 1
        plug, done, leave, hot = self.units[n - 1]
        plug, done = plug + 2, done + 2  # 20:00-23:00 for 4-7 h
        if h >= leave or h < plug:
            return {"port": n, "status": "available", "power_w": 0.0, "temperature_c": 18.0}
        if h >= done:
            return {"port": n, "status": "finished", "power_w": 0.0, "temperature_c": 20.0}
        share = (h - plug) / (done - plug)
        watts = 380.0 if share < 0.7 else 380.0 * (1 - 0.95 * (share - 0.7) / 0.3)
        temp = 18.0 + watts / 38 + (min(55.0, 55 * (h - plug) * 3) if hot else 0.0)
        return {"port": n, "status": "charging", "power_w": round(watts, 1),
                "temperature_c": round(temp, 1), "session_id": f"P{n}"}  # fmt: skip

    def reading(self, kind: str, at: datetime, payload: Mapping[str, Any]) -> ReadingView:
        self.seq += 1
        rid = deterministic_id(kind, self.ctx.estate, self.ctx.device, self.seq)
        return ReadingView(id=rid, kind=kind, at=at, payload=payload)

    def main(self, at: datetime, span_h: float, shared: Mapping[str, Any]) -> ReadingView:
        ctx, rng = self.ctx, self.rng
        kind = f"{ctx.kind.value}.{main_stream(ctx.kind)}"
        ts = {"ts": at.isoformat(), "seq": self.seq + 1}
        hour = at.astimezone(ctx.tz).hour
        if ctx.kind is DeviceKind.WATER_METER:
            if ctx.profile.role == "master":
                l_h = rng.uniform(150, 400) * (0.2 if 1 <= hour < 5 else 1.0) * 10
                self.volume_l += l_h * span_h
                payload: Mapping[str, Any] = {
                    **ts,
                    "volume_m3": round(self.volume_l / 1000, 3),
                    "flow_l_min": round(l_h / 60 * rng.uniform(0.8, 1.2), 2),
                }
            else:
                peak = 7 <= hour < 9 or 18 <= hour < 22
                use = (
                    0.0
                    if 0 <= hour < 6 and rng.random() < 0.9
                    else rng.uniform(0, 60 if peak else 20)
                )
                self.volume_l += (use + self.leak_l_h) * span_h
                payload = {**ts, "volume_m3": round(self.volume_l / 1000, 3)}
        elif ctx.kind is DeviceKind.WASTE_BIN:
            if (hour == 7 and self.fill > 40) or self.fill > 97:  # collection round
                self.fill = rng.uniform(0, 5)
            else:
                self.fill = min(100.0, self.fill + self.rate * span_h + rng.uniform(-1, 1))
            self.battery = max(0.0, self.battery - 0.01 * span_h)
            day = 6 * math.sin((hour - 8) / 24 * 2 * math.pi)
            payload = {
                **ts,
                "fill_pct": round(max(0.0, self.fill), 1),
                "temperature_c": round(self.temp + day + rng.uniform(-0.5, 0.5), 1),
                "battery_pct": round(self.battery, 1),
                "lid": "closed",
                "tilted": False,
                "category": "other",
            }
        elif ctx.kind is DeviceKind.ENERGY_METER:
            power = self._energy((at - T0).total_seconds() / 3600, hour)
            self.kwh += power / 1000 * span_h
            payload = {**ts, "energy_kwh": round(self.kwh, 3), "power_w": round(power, 1)}
        elif ctx.kind is DeviceKind.PARKING_SENSOR:
            if rng.random() < 0.25:
                self.occupied, self.changed_at = not self.occupied, at
            payload = {**ts, "occupied": self.occupied, "changed_at": self.changed_at.isoformat()}
        elif ctx.kind is DeviceKind.ACCESS_GATE:
            return self._gate(at)
        elif ctx.kind is DeviceKind.EV_CHARGER:
            self.turn += 1
            payload = {**ts, **self._connector((at - T0).total_seconds() / 3600)}
        elif ctx.kind is DeviceKind.EBIKE_STATION:
            self.turn += 1
            payload = {**ts, **self._port((at - T0).total_seconds() / 3600)}
        else:
            payload = shared  # read by no detector
        return self.reading(kind, at, payload)

    def heartbeat(self, at: datetime) -> ReadingView:
        self.battery = max(0.0, self.battery - 0.05)
        payload = {
            "ts": at.isoformat(),
            "seq": self.seq + 1,
            "battery_pct": round(self.battery, 1),
            "rssi_dbm": round(self.rng.uniform(-110, -70), 1),
        }
        return self.reading(f"{self.ctx.kind.value}.heartbeat", at, payload)


def main_stream(kind: DeviceKind) -> str:
    return {
        DeviceKind.ACCESS_GATE: "door",
        DeviceKind.PARKING_SENSOR: "occupancy",
        DeviceKind.WASTE_BIN: "level",
        DeviceKind.WATER_METER: "register",
        DeviceKind.ENERGY_METER: "register",
        DeviceKind.EV_CHARGER: "connector",
        DeviceKind.EBIKE_STATION: "port",
        DeviceKind.GATEWAY: "heartbeat",
    }[kind]


def build_readings(
    watched: list[Watched], hours: float, seed: int
) -> list[tuple[ReadingView, Watched]]:
    """Every reading of ``hours`` of traffic with its device, in event-time order."""
    rng = random.Random(seed)
    end = T0 + timedelta(hours=hours)
    shared = {kind: example(kind, main_stream(kind)) for kind in DeviceKind}
    out: list[tuple[datetime, int, ReadingView, Watched]] = []
    for entry in watched:
        ctx = entry[0]
        traffic = Traffic(ctx, rng)
        interval = timedelta(seconds=ctx.profile.reporting_interval_s)
        span_h = interval.total_seconds() / 3600
        at = T0 + interval * rng.random()
        beat = T0 + HEARTBEAT_EVERY * rng.random()
        while at < end or beat < end:
            if beat < at and ctx.kind is not DeviceKind.GATEWAY:
                view = traffic.heartbeat(beat)
                beat += HEARTBEAT_EVERY
            else:
                view = traffic.main(at, span_h, shared[ctx.kind])
                at += interval + timedelta(seconds=rng.uniform(-2, 2))
                if beat < at and ctx.kind is DeviceKind.GATEWAY:
                    beat = end  # gateways only send heartbeats
            if view.at < end:
                out.append((view.at, len(out), view, entry))
    out.sort(key=lambda item: (item[0], item[1]))
    return [(view, entry) for _, _, view, entry in out]


def initial_states(watched: list[Watched]) -> dict[Key, Any]:
    return {(ctx.device, d.name): d.initial(ctx) for ctx, dets in watched for d in dets}


# --- timed ------------------------------------------------------------------------------------


#: The detectors one reading feeds, each with the key of its state.
Route = tuple[tuple[Detector[Any], Key], ...]
#: A reading, its device's context and its route.
Planned = tuple[ReadingView, DeviceContext, Route]


def plan(readings: list[tuple[ReadingView, Watched]]) -> list[Planned]:
    """Route every reading (not timed): the applicable detectors that consume its kind and
    their state keys, computed once per (device, kind) as a runner caches its routes."""
    routes: dict[tuple[str, str], Route] = {}
    out: list[Planned] = []
    for reading, (ctx, dets) in readings:
        found = routes.get((ctx.device, reading.kind))
        if found is None:
            found = routes[(ctx.device, reading.kind)] = tuple(
                (det, (ctx.device, det.name))
                for det in dets
                if not det.consumes or reading.kind in det.consumes
            )
        out.append((reading, ctx, found))
    return out


def run_steps(planned: list[Planned], states: dict[Key, Any]) -> tuple[float, int, int]:
    """Seconds spent stepping every reading through its detectors; steps; signals."""
    steps = sum(len(route) for _, _, route in planned)
    signals = 0
    started = time.perf_counter()
    for reading, ctx, route in planned:
        for det, key in route:
            states[key], out = det.step(states[key], reading, ctx)
            if out:
                signals += len(out)
    return time.perf_counter() - started, steps, signals


def run_ticks(watched: list[Watched], states: dict[Key, Any], now: datetime) -> tuple[float, int]:
    """Seconds for one tick of every applicable detector of every device; ticks."""
    ticks = 0
    started = time.perf_counter()
    for ctx, dets in watched:
        for det in dets:
            det.tick(states[(ctx.device, det.name)], now, ctx)
            ticks += 1
    return time.perf_counter() - started, ticks


# --- memory -----------------------------------------------------------------------------------


def traced(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    return snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])


def state_memory(
    watched: list[Watched], states: dict[Key, Any]
) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """Bytes allocated building the state dict from JSON, bytes of JSON of all states,
    and both per detector (built one detector at a time)."""
    detectors = {d.name: d for _, dets in watched for d in dets}
    dumped = {
        key: json.loads(json.dumps(detectors[key[1]].dump_state(state)))
        for key, state in states.items()
    }
    sizes = {
        key: len(json.dumps(data, separators=(",", ":")).encode()) for key, data in dumped.items()
    }
    json_bytes = sum(sizes.values())
    keys = [(ctx.device, d.name) for ctx, dets in watched for d in dets]

    def rebuild(mine: list[Key]) -> tuple[dict[Key, Any], int]:
        gc.collect()
        tracemalloc.start()
        before = traced(tracemalloc.take_snapshot())
        built = {key: detectors[key[1]].load_state(dumped[key]) for key in mine}
        after = traced(tracemalloc.take_snapshot())
        tracemalloc.stop()
        return built, sum(stat.size_diff for stat in after.compare_to(before, "filename"))

    rebuilt, allocated = rebuild(keys)
    assert rebuilt == states
    del rebuilt
    per: dict[str, tuple[int, int]] = {}
    for name in dict.fromkeys(key[1] for key in keys):
        mine = [key for key in keys if key[1] == name]
        part, size = rebuild(mine)
        per[name] = (size, sum(sizes[key] for key in mine))
        del part
    return allocated, json_bytes, per


def report_memory(watched: list[Watched], states: dict[Key, Any], hours: float) -> None:
    """Print the state footprint per 10,000 devices (see the module docstring)."""
    allocated, json_bytes, per = state_memory(watched, states)
    devices = len(watched)
    scale = 10_000 / devices
    print(f"state after {hours:g} h, per 10,000 devices ({len(states):,} states):")
    for label, size in (
        ("state in memory (tracemalloc)", allocated),
        ("state as JSON", json_bytes),
    ):
        mb = size * scale / 1e6
        verdict = "met" if mb <= TARGET_MB_PER_10K else "NOT met"
        print(
            f"{label:<34} {mb:>10,.1f} MB/10k dev   "
            f"target ≤ {TARGET_MB_PER_10K:g} MB: {verdict:<7} "
            f"({size / devices:,.0f} B/device, {size / len(states):,.0f} B/state)"
        )
    print("  by detector (MB per 10,000 devices in memory / as JSON, states, B/state):")
    for name, (size, text) in sorted(per.items(), key=lambda item: -item[1][0]):
        count = sum(1 for _, n in states if n == name)
        print(
            f"    {name:<22} {size * scale / 1e6:>6.2f} / {text * scale / 1e6:>5.2f} MB"
            f"  {count:>6,}  {size / count:>7,.0f} B"
        )


def write_signals(planned: list[Planned], states: dict[Key, Any], path: Path) -> None:
    """Every signal of a pass over ``planned`` (not timed), one JSON object a line."""
    with path.open("w", encoding="utf-8") as out:
        for reading, ctx, route in planned:
            for det, key in route:
                states[key], signals = det.step(states[key], reading, ctx)
                for sig in signals:
                    out.write(sig.model_dump_json() + "\n")
    print(f"signals written to {path}")


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000, help="devices (approximate)")
    parser.add_argument("--hours", type=float, default=8, help="simulated hours of traffic")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--signals",
        type=Path,
        help="also write every signal of one (untimed) pass as JSON lines, to compare "
        "what two versions of the detectors decide",
    )
    args = parser.parse_args(argv)

    print(
        f"detectors (pure, one process), Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    started = time.perf_counter()
    watched = build_devices(args.devices, args.seed)
    readings = build_readings(watched, args.hours, args.seed)
    planned = plan(readings)
    setup = time.perf_counter() - started
    gc.collect()
    gc.freeze()  # the pre-built readings are the benchmark's, not the runner's: keep them out
    # of the collector's full passes
    devices = len(watched)
    per_device = Counter(len(dets) for _, dets in watched)
    kinds = Counter(view.kind for view, _ in readings)
    print(
        f"{devices:,} devices, {sum(per_device.elements()):,} (device, detector) states, "
        f"{args.hours:g} h of traffic: {len(readings):,} readings "
        f"({len(readings) / args.hours:,.0f}/h; setup {setup:.1f} s, not timed)"
    )
    print("  readings: " + ", ".join(f"{k} {n:,}" for k, n in kinds.most_common()))

    step_rates: list[float] = []
    call_rates: list[float] = []
    tick_rates: list[float] = []
    states: dict[Key, Any] = {}
    steps = signals = ticks = 0
    tick_seconds: list[float] = []
    end = T0 + timedelta(hours=args.hours)
    for _ in range(args.repeat):
        states = initial_states(watched)
        seconds, steps, signals = run_steps(planned, states)
        step_rates.append(len(readings) / seconds)
        call_rates.append(steps / seconds)
        tick_s, ticks = run_ticks(watched, states, end)
        tick_seconds.append(tick_s)
        tick_rates.append(ticks / tick_s)

    def show(label: str, values: list[float], unit: str, target: str = "") -> None:
        runs = ", ".join(f"{v:,.0f}" for v in values)
        line = f"{label:<34} {statistics.median(values):>10,.0f} {unit:<14}"
        print(f"{line} {target:<22} (runs: {runs})")

    median_rate = statistics.median(step_rates)
    verdict = "met" if median_rate >= TARGET_READINGS_S else "NOT met"
    print(f"median of {args.repeat} runs; {signals:,} signals per run")
    show(
        "readings through all detectors",
        step_rates,
        "readings/s",
        f"target ≥ {TARGET_READINGS_S:,}: {verdict}",
    )
    show(f"detector steps ({steps / len(readings):.2f}/reading)", call_rates, "steps/s")
    show(f"tick pass ({ticks:,} ticks)", tick_rates, "ticks/s")
    tick_ms = statistics.median(tick_seconds) * 1000
    print(f"{'  one pass over all devices':<34} {tick_ms:>10,.1f} ms")

    report_memory(watched, states, args.hours)
    if args.signals is not None:
        write_signals(planned, initial_states(watched), args.signals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
