"""The estate simulator: every device of a registry, merged in time order, as MQTT messages.

:class:`EstateSimulator` is the in-process API: :meth:`EstateSimulator.messages` yields
:class:`simulators.model.Message` (topic, payload bytes, simulated send time) in
time order, deterministic for a seed, without any broker. Device imperfections
(:class:`simulators.model.Imperfections`) are applied here, after the behaviours:
silences, clock skew, batching through gateways, retries and malformed payloads.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from devices.catalogue import DeviceKind
from devices.registry import DeviceRef, Registry, RegistryIndex
from devices.topics import batch_topic, topic_for
from simulators.behaviour import (
    BATTERY_KINDS,
    BEHAVIOURS,
    DAY,
    Data,
    Effect,
    Env,
    Event,
    rng_for,
)
from simulators.model import Imperfections, Label, Message

#: Fields holding a device time besides ``ts`` (behaviours give POSIX seconds).
_TIME_FIELDS = ("changed_at",)
#: Offline rule multiples of the reporting interval (processors/rulesets/default.yaml).
_OFFLINE_INTERVALS = {DeviceKind.EV_CHARGER: 5, DeviceKind.EBIKE_STATION: 5}
_MAX_BATCH = 10_000
#: A bin this full for this long is overflowing (bin_overflow's shipped high_pct and
#: persistence); the forecast should have seen it coming this long before (its horizon).
FULL_PCT, FULL_FOR_S, FORECAST_S = 90.0, 1800.0, 12 * 3600.0
#: A visit longer than this overstays a visitor bay (visitor_overstay's shipped limit_h).
VISITOR_LIMIT_S = 8 * 3600.0
#: A door open this long is held open (door_held_open's shipped minutes).
HELD_OPEN_S = 3 * 60.0


@dataclass(frozen=True, slots=True)
class Injection:
    """An anomaly put on one device, with the detectors expected to report it."""

    name: str
    kind: str
    estate: str
    device: str
    start: datetime
    end: datetime
    detectors: tuple[str, ...]
    params: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class SimStats:
    """What a run produced: messages, readings per stream, and the imperfections applied."""

    messages: int = 0
    readings: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    duplicates: int = 0
    #: Messages (or batch items) that ingest should refuse, by expected reason code.
    expected_rejects: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Device:
    ref: DeviceRef
    order: int
    skew_s: float
    gateway: str | None


# --- malformed payloads: (expected ingest reason, how to break the reading) ------------------


def _text_number(data: dict[str, object]) -> dict[str, object]:
    name = next(
        (k for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)),
        "seq",
    )
    return {**data, name: str(data.get(name, 1))}


_BREAK_FIELDS: tuple[tuple[str, Callable[[dict[str, object]], dict[str, object]]], ...] = (
    ("schema", lambda d: {**d, "device_id": "x"}),  # unknown field
    ("schema", _text_number),  # "12" is not 12
    ("out_of_range", lambda d: {**d, "seq": -1}),
    ("schema", lambda d: {**d, "ts": 1714521600}),  # epoch seconds, not ISO text
)
_BREAK_BYTES: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    ("invalid_json", lambda raw: raw[: len(raw) // 2]),
    ("empty_payload", lambda raw: b""),
    ("non_finite", lambda raw: raw[:-1] + b',"x":NaN}'),
)


def _dumps(data: dict[str, object]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class EstateSimulator:
    """Simulate every device of ``registry`` (or of ``estates``) over ``[start, end)``."""

    def __init__(
        self,
        registry: Registry,
        *,
        seed: int,
        start: datetime,
        end: datetime,
        imperfections: Imperfections | None = None,
        injections: Sequence[Injection] = (),
        estates: Sequence[str] | None = None,
        only: Callable[[DeviceRef], bool] | None = None,
    ) -> None:
        """``only`` simulates a subset of the devices: each of them sends exactly what it
        sends in the full run (without message-level imperfections: batching, retries
        and breakage draw per message), and ground truth is kept for them alone."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if end <= start:
            raise ValueError("end must be after start")
        self.index: RegistryIndex = registry.index()
        self.seed = seed
        self.start = start.astimezone(UTC)
        self.end = end.astimezone(UTC)
        self.imperfections = imperfections or Imperfections()
        self.injections = tuple(injections)
        self.estates = list(estates) if estates is not None else self.index.estate_ids()
        self.stats = SimStats()
        self._only = only
        self.labels: list[Label] = [
            Label(i.kind, d, i.estate, i.device, i.start, i.end, "scenario", i.name)
            for i in self.injections
            for d in i.detectors
            if self._selected(self.index.device(i.estate, i.device))
        ]
        self._envs: dict[str, Env] = {}
        self._devices: dict[str, list[_Device]] = {}
        self._silences: dict[tuple[str, str], list[tuple[float, float]]] = {}
        #: Per gate: when its door last opened, and opened doors whose ``closed`` was lost.
        self._door_opened: dict[tuple[str, str], float] = {}
        self._close_lost: dict[tuple[str, str], float] = {}
        for estate in self.estates:
            self._prepare(estate)

    # -- set-up: per-device draws (imperfections) and effects (injections) --------------------

    def _prepare(self, estate: str) -> None:
        ref = self.index.estate(estate)
        if ref is None:
            raise ValueError(f"estate {estate!r} is not in the registry")
        t0, t1 = self.start.timestamp(), self.end.timestamp()
        effects: dict[str, list[Effect]] = {}
        for i in self.injections:
            if i.estate == estate:
                effect = Effect(i.kind, i.start.timestamp(), i.end.timestamp(), dict(i.params))
                effects.setdefault(i.device, []).append(effect)
                if i.kind == "device_offline":
                    self._silences.setdefault((estate, i.device), []).append(
                        (effect.start, effect.end)
                    )
        rates = self.imperfections
        gateways = sorted(
            r.device for r in self.index.devices_of(estate) if r.kind is DeviceKind.GATEWAY
        )
        batteries: dict[str, float] = {}
        devices: list[_Device] = []
        for order, dev in enumerate(self.index.devices_of(estate)):
            if not self._selected(dev):
                continue
            rng = rng_for(self.seed, estate, dev.device, "imperfect")
            draws = [rng.random() for _ in range(4)]
            if dev.kind in BATTERY_KINDS:
                low = draws[0] < rates.low_battery
                batteries[dev.device] = rng.uniform(8, 18) if low else rng.uniform(55, 100)
                if low:
                    self._label("low_battery", "low_battery", dev, t0, t1)
            skew = 0.0
            if draws[1] < rates.clock_skew:
                skew = rng.uniform(360, 1800) * rng.choice((1, -1))
                if skew < 0:
                    self._label("clock_skew", "clock_skew", dev, t0, t1)
            gateway = None
            if gateways and dev.kind is not DeviceKind.GATEWAY and draws[2] < rates.batching:
                gateway = rng.choice(gateways)
            devices.append(_Device(dev, order, skew, gateway))
            if rates.offline:
                self._offline_periods(dev, t0, t1)
        self._devices[estate] = devices
        self._envs[estate] = Env(
            seed=self.seed,
            start=t0,
            end=t1,
            tz=ref.tz,
            estate=estate,
            index=self.index,
            effects=effects,
            batteries=batteries,
        )

    def _selected(self, ref: DeviceRef | None) -> bool:
        return ref is not None and (self._only is None or self._only(ref))

    def _offline_periods(self, dev: DeviceRef, t0: float, t1: float) -> None:
        r = rng_for(self.seed, dev.estate, dev.device, "offline")
        threshold = _OFFLINE_INTERVALS.get(dev.kind, 3) * dev.profile.reporting_interval_s
        day = t0
        while day < t1:
            if r.random() < self.imperfections.offline:
                start = day + r.uniform(0, DAY)
                end = start + threshold * r.uniform(2, 4)
                if start < t1:
                    self._silences.setdefault((dev.estate, dev.device), []).append((start, end))
                    self._label("device_offline", "device_offline", dev, start, min(end, t1))
            day += DAY

    def _label(
        self,
        kind: str,
        detector: str,
        dev: DeviceRef,
        t0: float,
        t1: float,
        source: str = "imperfection",
    ) -> None:
        self.labels.append(
            Label(
                kind,
                detector,
                dev.estate,
                dev.device,
                datetime.fromtimestamp(t0, UTC),
                datetime.fromtimestamp(t1, UTC),
                source,
                kind,
            )
        )

    def _natural_overflows(
        self, ref: DeviceRef, events: Iterable[tuple[float, str, Data]]
    ) -> Iterator[tuple[float, str, Data]]:
        """Pass a bin's readings through, labelling the times it really was full.

        Behaviour alone (a busy day, a round every other day) can fill a bin before its
        collection: that is an overflow a detector should report, so it is ground truth
        (source ``behaviour``) like an injected one: full from the first reading at
        ``FULL_PCT`` held for ``FULL_FOR_S`` until it is emptied, and the forecast's
        window before it — unless the bin was already full at its first reading of the
        run: with no history the forecast cannot have seen it coming.
        """
        fraction = ref.profile.units.get("fill_pct") == "fraction"
        since: float | None = None
        last_full = 0.0
        seen_filling = foreseeable = False  # a reading below full before (this) overflow
        for t, stream, data in events:
            yield t, stream, data
            value = data.get("fill_pct") if stream == "level" else None
            if not isinstance(value, int | float):
                continue
            fill = float(value) * (100 if fraction else 1)
            if fill >= FULL_PCT:
                if since is None:
                    since, foreseeable = t, seen_filling
                last_full = t
            else:
                seen_filling = True
                if since is not None:
                    self._overflow(ref, since, last_full, t, foreseeable=foreseeable)
                    since = None
        if since is not None:
            self._overflow(ref, since, last_full, last_full, foreseeable=foreseeable)

    def _natural_overstays(
        self, ref: DeviceRef, events: Iterable[tuple[float, str, Data]]
    ) -> Iterator[tuple[float, str, Data]]:
        """Pass a visitor bay's readings through, labelling visits longer than the limit
        (a long visit the behaviour drew is an overstay a detector should report)."""
        since: float | None = None
        for t, stream, data in events:
            yield t, stream, data
            occupied = data.get("occupied") if stream == "occupancy" else None
            if occupied is True and since is None:
                since = t
            elif occupied is False and since is not None:
                if t - since > VISITOR_LIMIT_S:
                    self._label(
                        "natural_overstay", "visitor_overstay", ref,
                        since + VISITOR_LIMIT_S, t, "behaviour",
                    )  # fmt: skip
                since = None

    def _overflow(
        self, ref: DeviceRef, since: float, last_full: float, until: float, *, foreseeable: bool
    ) -> None:
        if last_full - since >= FULL_FOR_S:
            self._label("natural_overflow", "bin_overflow", ref, since, until, "behaviour")
            if foreseeable:
                self._label(
                    "natural_overflow", "bin_fill_forecast", ref, since - FORECAST_S, since,
                    "behaviour",
                )  # fmt: skip

    # -- running ------------------------------------------------------------------------------

    @property
    def ground_truth(self) -> list[Label]:
        """The labelled intervals: injections (one per expected detector) and imperfections
        that a detector should report (offline periods, low batteries, clocks behind)."""
        return sorted(self.labels, key=lambda x: (x.start, x.estate, x.device, x.detector))

    def messages(self) -> Iterator[Message]:
        """Every message of the run, in send-time order (deterministic for the seed)."""
        streams: list[Iterable[tuple[float, int, str, _Device, str, Data]]] = []
        for estate in self.estates:
            env = self._envs[estate]
            for dev in self._devices[estate]:
                streams.append(self._device_events(env, dev))
        merged = heapq.merge(*streams, key=lambda e: (e[0], e[1]))
        yield from self._imperfect(self._encode(merged))

    def _device_events(
        self, env: Env, dev: _Device
    ) -> Iterator[tuple[float, int, str, _Device, str, Data]]:
        ref = dev.ref
        rng = rng_for(self.seed, ref.estate, ref.device)
        silent = self._silences.get((ref.estate, ref.device), [])
        events: Iterable[Event] = BEHAVIOURS[ref.kind](env, ref, rng)
        injected = {i.kind for i in self.injections if i.device == ref.device}
        if ref.kind is DeviceKind.WASTE_BIN and not injected & {"bin_overflow", "bin_not_emptied"}:
            events = self._natural_overflows(ref, events)
        if "visitor_bay" in ref.tags:
            events = self._natural_overstays(ref, events)
        for event in events:
            t, stream, data = event
            if not env.start <= t < env.end or any(a <= t < b for a, b in silent):
                continue
            yield t, dev.order, ref.estate, dev, stream, data

    def _encode(
        self, events: Iterable[tuple[float, int, str, _Device, str, Data]]
    ) -> Iterator[tuple[float, _Device, str, dict[str, object]]]:
        seqs: dict[tuple[str, str], int] = {}
        tzs = {estate: self._envs[estate].tz for estate in self.estates}
        for t, _, estate, dev, stream, data in events:
            key = (estate, dev.ref.device)
            seq = seqs.get(key)
            if seq is None:
                seq = rng_for(self.seed, estate, dev.ref.device, "seq").randrange(1, 100_000)
            seqs[key] = seq + 1
            tz = tzs[estate]
            body: dict[str, object] = {
                "ts": datetime.fromtimestamp(math.floor(t + dev.skew_s), tz).isoformat(),
                "seq": seq,
            }
            for name, value in data.items():
                if name in _TIME_FIELDS and isinstance(value, float | int):
                    when = math.floor(value + dev.skew_s)
                    body[name] = datetime.fromtimestamp(when, tz).isoformat()
                elif value is not None:
                    body[name] = value
            self.stats.readings[f"{dev.ref.kind.value}.{stream}"] += 1
            yield t, dev, stream, body

    def _imperfect(
        self, readings: Iterable[tuple[float, _Device, str, dict[str, object]]]
    ) -> Iterator[Message]:
        rates = self.imperfections
        breaks = rng_for(self.seed, "malformed")
        retries = rng_for(self.seed, "duplicates")
        window = rates.batch_s
        pending: dict[tuple[str, str], list[tuple[dict[str, object], str | None]]] = {}
        window_end = math.floor(self.start.timestamp() / window) * window + window
        for t, dev, stream, reading in readings:
            if t >= window_end:
                yield from self._flush(pending, window_end, retries)
                window_end = (math.floor(t / window) + 1) * window
            ref = dev.ref
            body, broken, reason = reading, None, None
            if dev.skew_s > 300 and ref.profile.clock == "trusted":
                reason = "clock_skew"
            if rates.malformed and breaks.random() < rates.malformed:
                if dev.gateway is not None or breaks.random() < 0.5:
                    reason, breaker = breaks.choice(_BREAK_FIELDS)
                    body = breaker(body)
                else:
                    reason, raw_breaker = breaks.choice(_BREAK_BYTES)
                    broken = raw_breaker(_dumps(body))
            if ref.kind is DeviceKind.ACCESS_GATE and stream == "door":
                self._door_message(ref, t, reading, refused=reason is not None)
            if dev.gateway is not None:
                items = pending.setdefault((ref.estate, dev.gateway), [])
                item: dict[str, object] = {
                    "kind": ref.kind.value,
                    "device": ref.device,
                    "stream": stream,
                    "data": body,
                }
                items.append((item, reason))
                if len(items) >= _MAX_BATCH:
                    yield from self._flush(pending, t, retries)
                continue
            payload = broken if broken is not None else _dumps(body)
            topic = topic_for(ref.estate, ref.kind, ref.device, stream)
            message = Message(topic, payload, datetime.fromtimestamp(t, UTC))
            yield from self._send(message, [reason], retries)
        yield from self._flush(pending, min(window_end, self.end.timestamp()), retries)
        for estate, device in list(self._close_lost):
            gate = self.index.device(estate, device)
            assert gate is not None
            self._door_message(gate, self.end.timestamp(), {}, refused=False)

    def _door_message(
        self, ref: DeviceRef, t: float, reading: dict[str, object], *, refused: bool
    ) -> None:
        """Follow a gate's door messages. A door whose ``closed`` message ingest refuses
        (a malformed payload) looks open until its next door message: if that is
        :data:`HELD_OPEN_S` or more after it opened, ``door_held_open`` should report it
        (nothing tells the service the door closed), so it is labelled ground truth."""
        key = (ref.estate, ref.device)
        opened = self._close_lost.pop(key, None)
        if opened is not None and t - opened >= HELD_OPEN_S:
            self._label("lost_door_close", "door_held_open", ref, opened + HELD_OPEN_S, t)
        state = reading.get("state")
        if state == "open" and not refused:
            self._door_opened[key] = t
        elif state == "closed" and refused and key in self._door_opened:
            self._close_lost[key] = self._door_opened[key]

    def _flush(
        self,
        pending: dict[tuple[str, str], list[tuple[dict[str, object], str | None]]],
        at: float,
        retries: random.Random,
    ) -> Iterator[Message]:
        for (estate, gateway), items in sorted(pending.items()):
            if items:
                self.stats.batches += 1
                message = Message(
                    batch_topic(estate, gateway),
                    _dumps({"readings": [item for item, _ in items]}),
                    datetime.fromtimestamp(at, UTC),
                )
                yield from self._send(message, [reason for _, reason in items], retries)
        pending.clear()

    def _send(
        self, message: Message, reasons: list[str | None], retries: random.Random
    ) -> Iterator[Message]:
        """``message``, and again when the device retries; counts what ingest will refuse."""
        copies = 1
        if self.imperfections.duplicates and retries.random() < self.imperfections.duplicates:
            copies = 2
            self.stats.duplicates += 1
        for _ in range(copies):
            self.stats.messages += 1
            self.stats.expected_rejects.update(r for r in reasons if r is not None)
            yield message
