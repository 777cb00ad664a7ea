"""The detector engine of one partition: event-time order, watermark, ticks, alarms.

The engine is the pure core of the runner (``processors/runner.py`` does the I/O):
it is fed ``readings`` envelopes in log order and operator commands, and returns the
envelopes to append to the ``events`` stream. It keeps no clock of its own: time is
the **watermark**, the latest device time seen in the partition minus the allowed
lateness.

* A reading waits in a buffer until the watermark passes it, then is judged in
  ``(device time, id)`` order, so readings that arrive out of order within the
  allowed lateness are judged exactly as if they had arrived in order.
* A reading older than the watermark when it arrives is *late*: it is not judged
  (detectors see each device's readings in time order) and a ``ReadingNotJudged``
  event records it with the reason, so nothing is dropped silently. So is a reading
  of a device the registry no longer holds.
* Ticks (silence, SLAs, night windows) run on a grid of ``tick_every`` of event time:
  the tick at grid time ``G`` comes after every reading before ``G`` and before every
  reading at or after ``G``. Detectors and the alarm machine stamp timed events with
  their due time, so which grid points get a tick does not change the events. A
  ``scheduled`` detector (``device_offline``) says when its next tick can matter
  (``tick_due``): its states wait in a queue by due time and are ticked only from then on,
  instead of every state on every grid point (one state per device).

The same inputs in the same log order give the same events with the same ids, however
they are batched, and across a snapshot/restore (:meth:`Engine.snapshot`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from pydantic import TypeAdapter, ValidationError

from devices.catalogue import DeviceKind
from devices.registry import DeviceRef, RegistryIndex
from eventlog.envelope import Envelope, deterministic_id
from processors import alarm
from processors.alarm import AlarmBook, AlarmCommand, AlarmPolicy, CommandRejected, Signal
from processors.detector import BaseDetector, Detector, DeviceContext, ReadingView, context_for
from processors.rules import RuleSet

#: Event kind recording a reading the detectors did not judge, with the reason.
NOT_JUDGED: Final = "ReadingNotJudged"
#: Event kind recording an operator command the alarm machine refused, with the reason.
COMMAND_REJECTED: Final = "AlertCommandRejected"
#: Snapshot layout version; a snapshot of another version is refused, not misread.
SNAPSHOT_VERSION: Final = 1

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_COMMAND = TypeAdapter[Any](AlarmCommand)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How far back readings may arrive and how often event time ticks."""

    lateness: timedelta = timedelta(minutes=2)
    tick_every: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if self.lateness < timedelta(0):
            raise ValueError("allowed lateness must not be negative")
        if self.tick_every <= timedelta(0):
            raise ValueError("tick_every must be positive")


@dataclass(frozen=True, slots=True)
class _Route:
    """One detector fed by a device's readings, and whose state it updates."""

    owner: str  #: the device whose state this is (the master / bay for those scopes)
    detector: Detector[Any]
    ctx: DeviceContext
    policy: AlarmPolicy
    #: Only readings whose payload ``connector`` is this (a charger's route to one bay).
    connector: int | None = None


@dataclass(slots=True)
class EngineStats:
    judged: int = 0
    late: int = 0
    unregistered: int = 0
    ticks: int = 0
    commands: int = 0
    commands_rejected: int = 0


#: A buffered reading: (device time, id bytes, envelope); ids are unique in the buffer, so
#: tuples compare (in C) on time and id only, never on the envelope.
_Pending = tuple[datetime, bytes, Envelope]


def _ticks(detector: Detector[Any]) -> bool:
    return getattr(type(detector), "tick", None) is not BaseDetector.tick


class Engine:
    """Detectors and the alarm book of one partition (see the module docstring)."""

    def __init__(
        self,
        index: RegistryIndex,
        rules: RuleSet,
        detectors: Sequence[Detector[Any]],
        config: EngineConfig | None = None,
    ) -> None:
        self.index = index
        self.rules = rules
        self.detectors = tuple(detectors)
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique: {names}")
        self._by_name = {d.name: d for d in self.detectors}
        self.config = config or EngineConfig()
        self.book = AlarmBook()
        self.stats = EngineStats()
        #: (owner device key, detector name) -> state
        self.states: dict[tuple[str, str], Any] = {}
        self.max_seen: datetime | None = None
        self.watermark: datetime | None = None
        self.next_tick: datetime | None = None
        self._buffer: list[_Pending] = []
        self._buffered: set[UUID] = set()
        self._routes: dict[tuple[str, str], tuple[_Route, ...] | None] = {}
        #: (estate, device, reading kind) -> the routes that consume the kind, with the
        #: key of their state (``None``: the device is not registered).
        self._feeds: dict[
            tuple[str, str, str], tuple[tuple[_Route, tuple[str, str]], ...] | None
        ] = {}
        #: The states whose detector has a time-based rule, with their route: ticked on
        #: every grid point, or (a ``scheduled`` detector) from its ``tick_due`` time on.
        self._tickers: dict[tuple[str, str], _Route] = {}
        self._scheduled: dict[tuple[str, str], _Route] = {}
        #: (due, state key) of scheduled states, a heap. ``_queued`` holds each state's
        #: live entry time, which may be earlier than the state's due time now (readings
        #: moved it on; checked when the entry comes up) but never later: an entry whose
        #: time is not its key's live one is stale and skipped.
        self._queue: list[tuple[datetime, tuple[str, str]]] = []
        self._queued: dict[tuple[str, str], datetime] = {}
        self._contexts: dict[tuple[str, str], DeviceContext] = {}

    # --- routing -----------------------------------------------------------------------

    def _context(self, ref: DeviceRef) -> DeviceContext:
        key = (ref.estate, ref.device)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = context_for(self.index, ref, self.rules)
        return ctx

    def _owners(self, ref: DeviceRef) -> list[tuple[str, DeviceRef, int | None]]:
        """Whose states a device's readings feed: (scope, owner, connector filter).

        ``device``: its own. ``master``: its master meter's (and a master's own).
        ``bay``: an ev_bay's own, and for a charger the bay linked to each connector
        (only that connector's readings).
        """
        owners: list[tuple[str, DeviceRef, int | None]] = [("device", ref, None)]
        spec = ref.spec
        if spec.is_master_meter:
            owners.append(("master", ref, None))
        if spec.meter_of is not None:
            master = self.index.device(ref.estate, spec.meter_of)
            owners += [("master", master, None)] if master is not None else []
        if spec.connector_ref is not None:
            owners.append(("bay", ref, None))
        if ref.kind is DeviceKind.EV_CHARGER:
            for n in range(1, (spec.ports or 16) + 1):
                bay = self.index.bay_for_connector(ref.estate, ref.device, n)
                owners += [("bay", bay, n)] if bay is not None else []
        return owners

    def routes(self, estate: str, device: str) -> tuple[_Route, ...] | None:
        """The detectors a device's readings feed (``None``: the device is not registered)."""
        key = (estate, device)
        if key in self._routes:
            return self._routes[key]
        ref = self.index.device(estate, device)
        routes: tuple[_Route, ...] | None = None
        if ref is not None:
            found = []
            for scope, owner, connector in self._owners(ref):
                ctx = self._context(owner)
                found += [
                    _Route(f"{estate}/{owner.device}", d, ctx, d.policy(ctx), connector)
                    for d in self.detectors
                    if d.scope == scope and d.applies_to(ctx)
                ]
            routes = tuple(found)
        self._routes[key] = routes
        return routes

    def feeds(
        self, estate: str, device: str, kind: str
    ) -> tuple[tuple[_Route, tuple[str, str]], ...] | None:
        """The routes of a device that consume ``kind``, each with its state key (cached:
        asked for every reading)."""
        key = (estate, device, kind)
        found = self._feeds.get(key)
        if found is None and key not in self._feeds:
            routes = self.routes(estate, device)
            found = self._feeds[key] = (
                None
                if routes is None
                else tuple(
                    (route, (route.owner, route.detector.name))
                    for route in routes
                    if not route.detector.consumes or kind in route.detector.consumes
                )
            )
        return found

    # --- input -------------------------------------------------------------------------

    def push(self, readings: Iterable[Envelope], received_at: datetime) -> list[Envelope]:
        """Take readings in log order; judge what the watermark releases; the events."""
        out: list[Envelope] = []
        lateness = self.config.lateness
        for envelope in readings:
            at = envelope.occurred_at
            if self.watermark is not None and at < self.watermark:
                self.stats.late += 1
                out.append(
                    self._not_judged(
                        envelope,
                        "late",
                        f"device time {at.isoformat()} is {self.watermark - at} before the "
                        f"watermark {self.watermark.isoformat()} (allowed lateness {lateness})",
                        received_at,
                    )
                )
                continue
            if envelope.id in self._buffered:
                continue  # the same reading twice (the log deduplicates; a replayed batch)
            heapq.heappush(self._buffer, (at, envelope.id.bytes, envelope))
            self._buffered.add(envelope.id)
            if self.max_seen is None or at > self.max_seen:
                self.max_seen = at
                watermark = at - lateness
                if self.watermark is None or watermark > self.watermark:
                    self.watermark = watermark
        self._release(out, received_at)
        return out

    def flush(self, received_at: datetime) -> list[Envelope]:
        """Judge every buffered reading now, as if the allowed lateness had passed.

        For the end of a finite input (a replay, an evaluation): the watermark moves to
        the latest device time seen, so nothing older can be judged afterwards.
        """
        out: list[Envelope] = []
        if self.max_seen is not None:
            self.watermark = self.max_seen + timedelta(microseconds=1)
            self._release(out, received_at)
        return out

    def advance(self, now: datetime, received_at: datetime) -> list[Envelope]:
        """Move event time to ``now`` with no reading (the end of a replay: a final tick)."""
        out: list[Envelope] = []
        if self.watermark is None or now > self.watermark:
            self.watermark = now
            self._release(out, received_at)
        return out

    def command(self, envelope: Envelope, received_at: datetime) -> list[Envelope]:
        """Apply an operator command record (from the ``commands`` stream); the events."""
        self.stats.commands += 1
        try:
            command = _COMMAND.validate_python(envelope.payload)
        except ValidationError as exc:
            return self._rejected(envelope, None, f"not a valid command: {exc}", received_at)
        try:
            self.book, events = alarm.apply_command(self.book, command)
        except CommandRejected as exc:
            return self._rejected(envelope, exc.alert_id, exc.reason, received_at)
        return [alarm.to_envelope(e, received_at) for e in events]

    # --- judging -----------------------------------------------------------------------

    def _release(self, out: list[Envelope], received_at: datetime) -> None:
        watermark = self.watermark
        if watermark is None:
            return
        buffer = self._buffer
        while buffer and buffer[0][0] < watermark:
            at, _, envelope = heapq.heappop(buffer)
            self._buffered.discard(envelope.id)
            if self.next_tick is None or at >= self.next_tick:
                self._tick(self._grid(at), out, received_at)
            self._judge(envelope, out, received_at)
        if self.next_tick is None or watermark >= self.next_tick:
            self._tick(self._grid(watermark), out, received_at)

    def _grid(self, at: datetime) -> datetime:
        step = self.config.tick_every
        return at - (at - _EPOCH) % step

    def _judge(self, envelope: Envelope, out: list[Envelope], received_at: datetime) -> None:
        estate, device = envelope.estate or "", envelope.device or ""
        feeds = self.feeds(estate, device, envelope.kind)
        if feeds is None:
            self.stats.unregistered += 1
            out.append(
                self._not_judged(
                    envelope,
                    "unregistered",
                    f"device {estate}/{device} is not in the registry",
                    received_at,
                )
            )
            return
        self.stats.judged += 1
        reading = ReadingView.from_envelope(envelope)
        states = self.states
        for route, key in feeds:
            if route.connector is not None and reading.payload.get("connector") != route.connector:
                continue
            detector = route.detector
            state = states.get(key)
            if state is None:
                state = detector.initial(route.ctx)
                if detector.scheduled:
                    self._scheduled[key] = route
                elif _ticks(detector):
                    self._tickers[key] = route
            before = state
            state, signals = detector.step(state, reading, route.ctx)
            states[key] = state
            if detector.scheduled and state is not before:
                self._enqueue(key, route, state)
            if signals:
                self._signal(signals, route.policy, out, received_at)

    def _signal(
        self,
        signals: list[Signal],
        policy: AlarmPolicy,
        out: list[Envelope],
        received_at: datetime,
    ) -> None:
        for signal in signals:
            self.book, events = alarm.apply_signal(self.book, signal, policy)
            out.extend(alarm.to_envelope(e, received_at) for e in events)

    def _enqueue(self, key: tuple[str, str], route: _Route, state: Any) -> None:
        """Queue a scheduled state by its due time (none due: until its next reading),
        unless it is queued for that time or earlier already."""
        due = route.detector.tick_due(state, route.ctx)
        if due is not None:
            queued = self._queued.get(key)
            if queued is None or due < queued:
                heapq.heappush(self._queue, (due, key))
                self._queued[key] = due

    def _tick(self, now: datetime, out: list[Envelope], received_at: datetime) -> None:
        self.stats.ticks += 1
        states = self.states
        for key, route in self._tickers.items():
            states[key], signals = route.detector.tick(states[key], now, route.ctx)
            if signals:
                self._signal(signals, route.policy, out, received_at)
        # Scheduled states due by now, ticked in (due, key) order whatever the queue's
        # history (a queued time may be stale: readings since moved the due time on).
        queue, queued, due_now = self._queue, self._queued, []
        while queue and queue[0][0] <= now:
            at, key = heapq.heappop(queue)
            if queued.get(key) != at:
                continue  # stale: the state was queued again for an earlier time
            del queued[key]
            route = self._scheduled[key]
            due = route.detector.tick_due(states[key], route.ctx)
            if due is not None and due <= now:
                due_now.append((due, key))
            elif due is not None:
                heapq.heappush(queue, (due, key))
                queued[key] = due
        for _, key in sorted(due_now):
            route = self._scheduled[key]
            states[key], signals = route.detector.tick(states[key], now, route.ctx)
            if signals:
                self._signal(signals, route.policy, out, received_at)
            self._enqueue(key, route, states[key])
        self.book, events = alarm.tick(self.book, now)
        out.extend(alarm.to_envelope(e, received_at) for e in events)
        self.next_tick = now + self.config.tick_every

    def _owner_route(self, owner: str, name: str) -> _Route | None:
        """The route of a state restored from a snapshot (``None``: no longer routed)."""
        estate, _, device = owner.partition("/")
        for route in self.routes(estate, device) or ():
            if route.detector.name == name and route.owner == owner:
                return route
        return None

    # --- records -----------------------------------------------------------------------

    @staticmethod
    def _not_judged(
        envelope: Envelope, reason: str, detail: str, received_at: datetime
    ) -> Envelope:
        return Envelope(
            id=deterministic_id(NOT_JUDGED, envelope.id),
            kind=NOT_JUDGED,
            occurred_at=envelope.occurred_at,
            received_at=received_at,
            estate=envelope.estate,
            building=envelope.building,
            device=envelope.device,
            payload={
                "reading_id": str(envelope.id),
                "reading_kind": envelope.kind,
                "reason": reason,
                "detail": detail,
            },
        )

    @staticmethod
    def _rejected(
        envelope: Envelope, alert_id: UUID | None, reason: str, received_at: datetime
    ) -> list[Envelope]:
        return [
            Envelope(
                id=deterministic_id(COMMAND_REJECTED, envelope.id),
                kind=COMMAND_REJECTED,
                occurred_at=envelope.occurred_at,
                received_at=received_at,
                estate=envelope.estate,
                device=envelope.device,
                payload={
                    "command_id": str(envelope.id),
                    "command": envelope.kind,
                    "alert_id": str(alert_id) if alert_id else None,
                    "reason": reason,
                },
            )
        ]

    # --- snapshots ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the engine knows, as JSON-compatible data (see :meth:`restore`)."""
        states: dict[str, dict[str, Any]] = {}
        for (owner, name), state in self.states.items():
            states.setdefault(owner, {})[name] = self._by_name[name].dump_state(state)
        return {
            "version": SNAPSHOT_VERSION,
            "detectors": sorted(self._by_name),
            "max_seen": self.max_seen.isoformat() if self.max_seen else None,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "next_tick": self.next_tick.isoformat() if self.next_tick else None,
            "buffer": [p[2].model_dump(mode="json") for p in sorted(self._buffer)],
            "states": states,
            "book": self.book.model_dump(mode="json"),
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot` (``ValueError`` if it does not fit)."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"snapshot version {data.get('version')!r}, expected {SNAPSHOT_VERSION}"
            )
        self.max_seen = _time(data["max_seen"])
        self.watermark = _time(data["watermark"])
        self.next_tick = _time(data["next_tick"])
        self._buffer = [
            (e.occurred_at, e.id.bytes, e)
            for e in (Envelope.model_validate(item) for item in data["buffer"])
        ]
        heapq.heapify(self._buffer)
        self._buffered = {p[2].id for p in self._buffer}
        self.states, self._tickers, self._scheduled = {}, {}, {}
        self._queue, self._queued = [], {}
        for owner, by_name in data["states"].items():
            for name, state in by_name.items():
                route = self._owner_route(owner, name)
                if route is None:  # detector removed or device unregistered: state dropped
                    continue
                key = (owner, name)
                self.states[key] = route.detector.load_state(state)
                if route.detector.scheduled:
                    self._scheduled[key] = route
                    self._enqueue(key, route, self.states[key])
                elif _ticks(route.detector):
                    self._tickers[key] = route
        self.book = AlarmBook.model_validate(data["book"])


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None
