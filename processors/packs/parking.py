"""The parking pack: fire lanes kept clear, visitor bays' time limits, EV bays kept free.

Detectors over ``parking_sensor.occupancy`` readings (and, for ``ev_bay_blocked``, the
linked charger connector's ``ev_charger.connector`` readings). Every detector is pure
(see ``processors/detector.py``): a frozen slotted dataclass state that round-trips
through JSON, ``step`` per reading and ``tick`` for event time.

All three are *held conditions* (:class:`HeldCondition`, shared with the gate pack's
``door_held_open``): a condition that starts at a reading (a bay becomes occupied) and
must hold for a limit before it is reported.

* The detector keeps the persistence itself (the alarm machine raises at once), so
  the active signal can say how long: "occupied for 3 min (≥ 3 min)". Once event time
  is past the **due time** (start + limit) with the condition still holding, the
  active signal is emitted, stamped with the due time, by :meth:`HeldCondition.tick`
  or, if no tick came in between, by the next reading before that reading is applied:
  ticking more or less often (never past the next reading) changes no signal.
* Signals are emitted on transitions only: active once at the due time, inactive at
  the reading that ends a *reported* condition (a condition that ends before its due
  time is a blip: nothing is emitted).
* The condition starts at the reading that shows it (device time), not at the
  sensor's ``changed_at`` (shown in the explanation): back-dating a start would stamp
  a due time before a tick the runner may already have made.
* Idempotent: a reading older than the last one used, or already used (same id),
  changes nothing.
"""

from __future__ import annotations

import abc
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from devices.catalogue import DeviceKind
from eventlog.envelope import UtcDatetime
from processors.alarm import AlarmPolicy, Severity, Signal
from processors.detector import (
    STATE_CONFIG,
    BaseDetector,
    Detector,
    DeviceContext,
    ReadingView,
    Scope,
    replace,
    signal,
    span_h,
    span_min,
    state,
)
from processors.packs.health import format_duration

__all__ = [
    "CONNECTOR_KIND",
    "IN_SESSION",
    "OCCUPANCY_KIND",
    "PARKING_DETECTORS",
    "BayState",
    "EvBayBlocked",
    "EvBayState",
    "FireLaneBlocked",
    "HeldCondition",
    "HeldState",
    "Mark",
    "VisitorOverstay",
    "local_clock",
]

#: The envelope kind of a parking sensor's reading.
OCCUPANCY_KIND = "parking_sensor.occupancy"
#: The envelope kind of a charger connector's reading (``ev_bay_blocked``'s second source).
CONNECTOR_KIND = "ev_charger.connector"
#: OCPP connector states in which a vehicle is connected (a charging session exists).
IN_SESSION: frozenset[str] = frozenset(
    {"preparing", "charging", "suspended_ev", "suspended_evse", "finishing"}
)


def local_clock(at: datetime, ctx: DeviceContext) -> str:
    """``at`` as estate-local ``HH:MM``."""
    return at.astimezone(ctx.tz).strftime("%H:%M")


def _num(value: float) -> str:
    return f"{value:g}"


# --- the held-condition framework ----------------------------------------------------------------


@state
class Mark:
    """The last reading a state used: a reading not newer, or already used, is no news."""

    __pydantic_config__ = STATE_CONFIG

    last_at: UtcDatetime | None = None
    #: Ids of the readings used at ``last_at`` (a redelivery of one of them is ignored).
    seen: tuple[UUID, ...] = ()

    def is_new(self, reading: ReadingView) -> bool:
        last = self.last_at
        return (
            last is None
            or reading.at > last
            or (reading.at == last and reading.id not in self.seen)
        )

    def seen_after(self, reading: ReadingView) -> tuple[UUID, ...]:
        """``seen`` once ``reading`` (new) is used."""
        return (*self.seen, reading.id) if reading.at == self.last_at else (reading.id,)


@state
class HeldState(Mark):
    """The last reading used, and the condition's start while it holds."""

    #: The condition holds since this reading (``None``: it does not hold).
    since: UtcDatetime | None = None
    since_id: UUID | None = None
    #: The active signal of the current holding was emitted.
    reported: bool = False


HeldT = TypeVar("HeldT", bound=HeldState)


class HeldCondition(BaseDetector[HeldT], abc.ABC):
    """A condition started by a reading that raises once it has held for :meth:`limit`.

    A subclass says how a reading changes its state and whether the condition holds
    (:meth:`judge`), how long it must hold, and the texts and numbers of its signals.
    """

    #: The alarm severity of the condition.
    severity: ClassVar[str] = Severity.WARNING
    #: Whether a cleared alert is resolved by the system (nothing left for a person to do).
    auto_resolve: ClassVar[bool] = True
    scheduled: ClassVar[bool] = True

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=self.auto_resolve)

    # --- for subclasses ---

    @abc.abstractmethod
    def limit(self, ctx: DeviceContext) -> timedelta:
        """Given by each subclass."""

    @abc.abstractmethod
    def judge(
        self, state: HeldT, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[dict[str, Any], bool | None]:
        """The fields of ``state`` that ``reading`` changes (the subclass's own; not
        ``last_at``/``since``), and whether the condition holds after it (``None``: the
        reading says nothing about it). Returning changes rather than a state keeps a
        step to one state construction (a frozen dataclass costs microseconds each)."""

    @abc.abstractmethod
    def raised_text(self, state: HeldT, due: datetime, ctx: DeviceContext) -> str:
        """Given by each subclass."""

    @abc.abstractmethod
    def ended_text(self, state: HeldT, reading: ReadingView, ctx: DeviceContext) -> str:
        """Given by each subclass."""

    def values(self, state: HeldT, held: timedelta, ctx: DeviceContext) -> dict[str, Any]:
        return {"held_s": held.total_seconds(), "limit_s": self.limit(ctx).total_seconds()}

    # --- the contract ---

    def _active(self, state: HeldT, ctx: DeviceContext) -> tuple[HeldT, list[Signal]]:
        assert state.since is not None
        due = state.since + self.limit(ctx)
        out = signal(
            self.name,
            ctx,
            active=True,
            at=due,
            severity=self.severity,
            explanation=self.raised_text(state, due, ctx),
            evidence=() if state.since_id is None else (state.since_id,),
            values=self.values(state, due - state.since, ctx),
        )
        return replace(state, reported=True), [out]

    def tick_due(self, state: HeldT, ctx: DeviceContext) -> datetime | None:
        """The limit's end while the condition holds unreported (raised just after it)."""
        if state.since is None or state.reported:
            return None
        return state.since + self.limit(ctx)

    def tick(self, state: HeldT, now: datetime, ctx: DeviceContext) -> tuple[HeldT, list[Signal]]:
        """Held *longer* than the limit by ``now`` (a limit of zero: at once): the active
        signal, stamped with the due time. A condition that ends exactly at its due time
        (a door closed after 3:00 of a 3-min limit) is not reported."""
        if state.since is None or state.reported:
            return state, []
        held, limit = now - state.since, self.limit(ctx)
        if held < limit or (held == limit and limit):
            return state, []
        return self._active(state, ctx)

    def step(
        self, state: HeldT, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[HeldT, list[Signal]]:
        if not state.is_new(reading) or reading.kind not in self.consumes:
            return state, []  # a redelivery or a straggler: no news
        at = reading.at
        signals: list[Signal] = []
        if state.since is not None and not state.reported:
            state, signals = self.tick(state, at, ctx)  # a due time before this reading
        changes, holds = self.judge(state, reading, ctx)
        changes["last_at"], changes["seen"] = at, state.seen_after(reading)
        if holds and state.since is None:
            changes.update(since=at, since_id=reading.id, reported=False)
            state = replace(state, **changes)
            more: list[Signal]
            state, more = self.tick(state, at, ctx)  # a limit of zero raises at once
            return state, signals + more
        if holds is False and state.since is not None:
            if not state.reported:  # a blip
                changes.update(since=None, since_id=None, reported=False)
                return replace(state, **changes), signals
            ended = replace(state, **changes)
            signals.append(
                signal(
                    self.name,
                    ctx,
                    active=False,
                    at=at,
                    severity=self.severity,
                    explanation=self.ended_text(ended, reading, ctx),
                    evidence=(reading.id,),
                    values=self.values(ended, at - state.since, ctx),
                )
            )
            return replace(ended, since=None, since_id=None, reported=False), signals
        return replace(state, **changes), signals


# --- the bays -----------------------------------------------------------------------------------


@state
class BayState(HeldState):
    """A bay's held condition, with the sensor's own ``changed_at`` of the occupancy."""

    changed_at: UtcDatetime | None = None


BayT = TypeVar("BayT", bound=BayState)


def _time(value: object) -> datetime | None:
    """A payload time (ISO-8601 text with an offset, as ingest stores it), or ``None``."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _occupancy(state: BayState, reading: ReadingView) -> tuple[dict[str, Any], bool | None]:
    """What an occupancy reading changes of a bay state; whether the bay is occupied."""
    occupied = reading.payload.get("occupied")
    if not isinstance(occupied, bool):
        return {}, None
    changed_at = _time(reading.payload.get("changed_at"))
    return ({} if changed_at == state.changed_at else {"changed_at": changed_at}), occupied


def _sensed(state: BayState, ctx: DeviceContext) -> str:
    """The sensor's own ``changed_at``, where it says more than the reading's time."""
    if state.changed_at is None or state.since is None:
        return ""
    shown = local_clock(state.changed_at, ctx)
    return "" if shown == local_clock(state.since, ctx) else f" (sensor: occupied since {shown})"


class _BayDetector(HeldCondition[BayT]):
    """A held condition of a bay carrying :attr:`tag`: the bay is occupied."""

    consumes: ClassVar[frozenset[str]] = frozenset({OCCUPANCY_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.PARKING_SENSOR})
    #: The registry tag of the bays watched.
    tag: ClassVar[str]

    def applies_to(self, ctx: DeviceContext) -> bool:
        return self.tag in ctx.tags and super().applies_to(ctx)

    def judge(
        self, state: BayT, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[dict[str, Any], bool | None]:
        return _occupancy(state, reading)

    def ended_text(self, state: BayT, reading: ReadingView, ctx: DeviceContext) -> str:
        assert state.since is not None
        return (
            f"{ctx.device} free at {local_clock(reading.at, ctx)} after "
            f"{format_duration(reading.at - state.since)} occupied"
        )


class FireLaneBlocked(_BayDetector[BayState]):
    """``fire_lane_blocked`` (critical): a spot tagged ``fire_lane`` occupied for
    ``minutes``; clears when it is free again. Not auto-resolved: someone should
    confirm that the lane was cleared and by whom."""

    name: ClassVar[str] = "fire_lane_blocked"
    state_model = BayState
    tag: ClassVar[str] = "fire_lane"
    severity: ClassVar[str] = Severity.CRITICAL
    auto_resolve: ClassVar[bool] = False

    def limit(self, ctx: DeviceContext) -> timedelta:
        return span_min(ctx.rules.fire_lane_blocked.minutes)

    def raised_text(self, state: BayState, due: datetime, ctx: DeviceContext) -> str:
        assert state.since is not None
        return (
            f"fire lane blocked: {ctx.device} occupied since {local_clock(state.since, ctx)}"
            f"{_sensed(state, ctx)}, for {format_duration(due - state.since)} "
            f"(≥ {_num(ctx.rules.fire_lane_blocked.minutes)} min); the lane must stay clear"
        )


class VisitorOverstay(_BayDetector[BayState]):
    """``visitor_overstay``: a bay tagged ``visitor_bay`` occupied for longer than its
    ``limit_h``; clears when the car leaves (auto-resolved)."""

    name: ClassVar[str] = "visitor_overstay"
    state_model = BayState
    tag: ClassVar[str] = "visitor_bay"
    severity: ClassVar[str] = Severity.INFO

    def limit(self, ctx: DeviceContext) -> timedelta:
        return span_h(ctx.rules.visitor_overstay.limit_h)

    def raised_text(self, state: BayState, due: datetime, ctx: DeviceContext) -> str:
        assert state.since is not None
        return (
            f"visitor bay {ctx.device} occupied since {local_clock(state.since, ctx)}"
            f"{_sensed(state, ctx)}, for {format_duration(due - state.since)} "
            f"(limit {_num(ctx.rules.visitor_overstay.limit_h)} h)"
        )


# --- ev_bay_blocked -------------------------------------------------------------------------------


@state
class EvBayState(BayState):
    """The bay's occupancy and the linked connector's latest status."""

    occupied: bool | None = None
    status: str | None = None
    #: The charger whose connector status this is (``ReadingView.device``).
    charger: str | None = None


class EvBayBlocked(_BayDetector[EvBayState]):
    """``ev_bay_blocked``: a bay tagged ``ev_bay`` occupied while its linked charger
    connector has no charging session (status not in :data:`IN_SESSION`) for
    ``minutes``; clears when the bay is free or a session starts (auto-resolved).

    The state sees two sources: the bay's ``parking_sensor.occupancy`` readings
    (``reading.device`` is the bay, or empty in unit tests) and the linked connector's
    ``ev_charger.connector`` readings (from another device). **Routing is the
    runner's**: one state per bay, fed the bay's readings and the readings of the
    connector its registry ``connector: charger_id:n`` names, and only that connector's
    (a ``bay`` scope; see docs/rules.md, "Parking and access gates"). Until the runner
    routes the connector's readings, the connector's status is unknown, and a bay with an
    unknown connector status is never judged blocked (a car is not blamed for missing
    data).

    A car that parks and plugs in within ``minutes`` is fine; a car still connected
    after charging is the charging pack's overstay, not this.
    """

    name: ClassVar[str] = "ev_bay_blocked"
    scope: ClassVar[Scope] = "bay"
    consumes: ClassVar[frozenset[str]] = frozenset({OCCUPANCY_KIND, CONNECTOR_KIND})
    tag: ClassVar[str] = "ev_bay"
    state_model = EvBayState

    def limit(self, ctx: DeviceContext) -> timedelta:
        return span_min(ctx.rules.ev_bay_blocked.minutes)

    def judge(
        self, state: EvBayState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[dict[str, Any], bool | None]:
        occupied, status = state.occupied, state.status
        changes: dict[str, Any]
        if reading.kind == CONNECTOR_KIND:
            found = reading.payload.get("status")
            if not isinstance(found, str):
                return {}, None
            status, charger = found, reading.device or None
            changes = {}
            if status != state.status:
                changes["status"] = status
            if charger != state.charger:
                changes["charger"] = charger
        else:
            changes, occupied = _occupancy(state, reading)
            if occupied is None:
                return changes, None
            if occupied != state.occupied:
                changes["occupied"] = occupied
        if occupied is None or status is None:
            return changes, None  # one side unknown: no judgement
        return changes, occupied and status not in IN_SESSION

    def _connector(self, state: EvBayState) -> str:
        return f"{state.charger} " if state.charger else ""

    def raised_text(self, state: EvBayState, due: datetime, ctx: DeviceContext) -> str:
        assert state.since is not None
        return (
            f"EV bay {ctx.device} occupied with no charging session for "
            f"{format_duration(due - state.since)} (≥ {_num(ctx.rules.ev_bay_blocked.minutes)} "
            f"min) since {local_clock(state.since, ctx)}{_sensed(state, ctx)}; connector "
            f"{self._connector(state)}{state.status}"
        )

    def ended_text(self, state: EvBayState, reading: ReadingView, ctx: DeviceContext) -> str:
        assert state.since is not None
        held = format_duration(reading.at - state.since)
        if state.occupied:
            return (
                f"EV bay {ctx.device}: charging session started at "
                f"{local_clock(reading.at, ctx)} ({state.status}) after {held} blocked"
            )
        return f"EV bay {ctx.device} free at {local_clock(reading.at, ctx)} after {held} blocked"


#: One instance of each parking detector.
PARKING_DETECTORS: tuple[Detector[Any], ...] = (
    FireLaneBlocked(),
    VisitorOverstay(),
    EvBayBlocked(),
)
