"""The charging pack: EV charger connectors (``ev_charger.connector``, OCPP 1.6 statuses)
and e-bike station ports (``ebike_station.port``).

Every detector is pure (see ``processors/detector.py``) and judges each connector or
port of a device on its own: the state is a frozen slotted dataclass holding one small
record per connector/port (``units``), and every signal names its connector/port in its
*condition* (``ev_overstay.connector-2``, ``ebike_over_temperature.port-3``), so the
alarm machine keeps one alert per connector/port while ``detector`` stays the
detector's name (what the scores and the rule files use).

Decisions common to the pack:

* **Idempotent steps.** Each record keeps the time of the last reading it used; a
  reading not newer than that one (a redelivery, an out-of-order straggler) changes
  nothing and reports nothing.
* **Transitions only.** A condition is reported when it starts and when it ends; the
  alarm machine keeps the open alert.
* **Due times.** Time-based conditions (overstay, over-long sessions) are raised by
  ``tick`` or by the next reading, whichever comes first, always stamped with the *due
  time* (e.g. charging finished + grace), so how often the runner ticks changes nothing.
* A connector is *connected* from its first ``preparing``/``charging``/``suspended_*``/
  ``finishing`` status (or a new ``session_id``) until ``available`` or ``reserved``;
  ``faulted`` and ``unavailable`` say nothing about the car and change no session.
"""

from __future__ import annotations

import abc
from dataclasses import field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar
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
    replace,
    signal,
    span_h,
    span_min,
    state,
)
from processors.packs.health import format_duration
from processors.packs.waste import (
    FIRE_CLEAR_AFTER,
    FIRE_CLEAR_MARGIN_C,
    _num,  # the packs' number format (94, 93.5)
)
from processors.packs.water import _ids  # evidence ids, deduplicated, in order

__all__ = [
    "CHARGING_DETECTORS",
    "CONNECTED",
    "EBIKE_KIND",
    "EV_KIND",
    "EbikeOverTemperature",
    "EbikePowerAbnormal",
    "EbikeSessionTooLong",
    "EvChargerFaulted",
    "EvOverstay",
    "EvSessionTooLong",
]

EV_KIND = "ev_charger.connector"
EBIKE_KIND = "ebike_station.port"

#: OCPP statuses of a connector with a car plugged in.
CONNECTED = frozenset({"preparing", "charging", "suspended_ev", "suspended_evse", "finishing"})
#: OCPP statuses that say the car's charge is over (the car stopped drawing, or the session
#: is being closed while the cable is still in).
FINISHED = frozenset({"suspended_ev", "finishing"})
#: Statuses that end a session (the cable is out).
FREED = frozenset({"available", "reserved"})
#: A temperature rise is not computed across a gap longer than this (stale reference).
RISE_MAX_GAP = timedelta(hours=1)


def _clock(at: datetime, ctx: DeviceContext) -> str:
    return at.astimezone(ctx.tz).strftime("%m-%d %H:%M")


# --- per-connector / per-port plumbing --------------------------------------------------------


@state
class _Unit:
    """What every per-connector/port record holds: the reading of its last change (a
    reading that changes nothing leaves the record as it is)."""

    __pydantic_config__ = STATE_CONFIG

    last_at: UtcDatetime | None = None
    last_id: UUID | None = None


UnitT = TypeVar("UnitT", bound=_Unit)


class _PerUnit(BaseDetector[Any], Generic[UnitT], abc.ABC):
    """A detector judging each connector (``connector``) or port (``port``) of a device.

    A subclass sets ``unit_model`` (the record), ``field`` and ``consumes``, and writes
    :meth:`update` (one new reading of one unit) and, if time-based, :meth:`due`.
    The state model is built per subclass: ``units: dict[int, unit_model]``.
    """

    unit_model: type[UnitT]
    #: The payload field numbering the units (``connector`` / ``port``).
    field: ClassVar[str]
    label: ClassVar[str]

    def condition(self, number: int) -> str:
        return f"{self.name}.{self.label}-{number}"

    @abc.abstractmethod
    def update(
        self, unit: UnitT, number: int, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[UnitT, list[Signal]]:
        """Given by each subclass."""

    def due(
        self, unit: UnitT, number: int, now: datetime, ctx: DeviceContext
    ) -> tuple[UnitT, Signal] | None:
        """The unit's time-based signal if it is due at ``now`` (default: none)."""
        return None

    def step(
        self, state: Any, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[Any, list[Signal]]:
        number = reading.payload.get(self.field)
        if reading.kind not in self.consumes or not isinstance(number, int):
            return state, []
        units: dict[int, UnitT] = state.units
        unit = units.get(number) or self.unit_model()
        if unit.last_at is not None and reading.at <= unit.last_at:
            return state, []
        signals: list[Signal] = []
        caught = self.due(unit, number, reading.at, ctx)  # due before this reading
        if caught is not None:
            unit = caught[0]
            signals.append(caught[1])
        before = unit
        unit, more = self.update(unit, number, reading, ctx)
        if unit is before and not signals and not more:
            # Nothing changed (the hot path: a connector reporting the same status). The
            # record keeps the time of its last change, which is all the duplicate check
            # needs: a repeated reading that changes nothing is harmless.
            return state, []
        unit = self.stamped(unit, reading)
        return self.state_model(units={**units, number: unit}), signals + more

    def stamped(self, unit: UnitT, reading: ReadingView) -> UnitT:
        """``unit`` with ``reading`` as its last one."""
        return replace(unit, last_at=reading.at, last_id=reading.id)


class _TimedUnits(_PerUnit[UnitT]):
    """A per-unit detector with a time-based condition: :meth:`due` is asked on ticks too
    (the others are not ticked at all: the runner ticks only detectors overriding tick).
    Scheduled: a subclass gives each unit's due time (:meth:`unit_due`)."""

    scheduled: ClassVar[bool] = True

    @abc.abstractmethod
    def unit_due(self, unit: UnitT, ctx: DeviceContext) -> datetime | None:
        """When :meth:`due` would first report ``unit`` (``None``: not before a reading)."""

    def tick_due(self, state: Any, ctx: DeviceContext) -> datetime | None:
        units: dict[int, UnitT] = state.units
        times = [t for t in (self.unit_due(u, ctx) for u in units.values()) if t is not None]
        return min(times, default=None)

    def tick(self, state: Any, now: datetime, ctx: DeviceContext) -> tuple[Any, list[Signal]]:
        units: dict[int, UnitT] = state.units
        changed: dict[int, UnitT] = {}
        signals: list[Signal] = []
        for number, unit in units.items():
            caught = self.due(unit, number, now, ctx)
            if caught is not None:
                changed[number] = caught[0]
                signals.append(caught[1])
        if not changed:
            return state, []
        return replace(state, units={**units, **changed}), signals


# --- EV connectors: session tracking (ev_overstay, ev_session_too_long) -----------------------


@state
class Plug(_Unit):
    """One connector's session: connected since, charging done since, and what was reported."""

    since: UtcDatetime | None = None
    since_id: UUID | None = None
    session: str | None = None
    #: Charging finished (status, or power low since ``low_since`` for ``idle_min``).
    done_since: UtcDatetime | None = None
    done_id: UUID | None = None
    done_how: str = ""
    low_since: UtcDatetime | None = None
    low_id: UUID | None = None
    energy_kwh: float | None = None
    reported: bool = False

    def stamped(self, at: datetime, reading: UUID) -> Plug:
        """This record with its last reading set (positional: ~2x cheaper than replace)."""
        return Plug(
            at, reading, self.since, self.since_id, self.session, self.done_since, self.done_id,
            self.done_how, self.low_since, self.low_id, self.energy_kwh, self.reported,
        )  # fmt: skip


_FREE = Plug()


@state
class PlugState:
    __pydantic_config__ = STATE_CONFIG

    units: dict[int, Plug] = field(default_factory=dict)


def track_plug(plug: Plug, reading: ReadingView, ctx: DeviceContext) -> Plug:
    """``plug`` after one connector reading (session start/end, charging done). A reading
    that changes nothing (the same status again) returns ``plug`` itself: the hot path."""
    payload = reading.payload
    status = payload.get("status")
    if status in FREED:
        return _FREE
    if status not in CONNECTED:
        return plug  # faulted / unavailable: nothing known about the car
    at, rid = reading.at, reading.id
    session = payload.get("session_id")
    session = session if isinstance(session, str) else None
    if plug.since is None or (session is not None and plug.session not in (None, session)):
        plug = Plug(since=at, since_id=rid, session=session)
    elif session is not None and plug.session is None:
        plug = replace(plug, session=session)
    if status in FINISHED:
        if plug.done_since is None:
            energy = reading.number("session_energy_kwh")
            how = f"status {status}"
            plug = replace(plug, done_since=at, done_id=rid, done_how=how, energy_kwh=energy)
        return plug
    rule = ctx.rules.ev_overstay
    power = reading.number("power_kw")
    if status == "charging" and power is not None and power < rule.idle_kw:
        if plug.low_since is None:
            plug = replace(plug, low_since=at, low_id=rid)
        low_since = plug.low_since
        assert low_since is not None
        if plug.done_since is None and at - low_since >= span_min(rule.idle_min):
            how = f"power below {_num(rule.idle_kw)} kW since {_clock(low_since, ctx)}"
            energy = reading.number("session_energy_kwh")
            plug = replace(
                plug, done_since=low_since, done_id=plug.low_id, done_how=how, energy_kwh=energy
            )
        return plug
    # preparing, suspended_evse, or charging at power: not done (any more)
    if plug.done_since is None and plug.low_since is None:
        return plug
    return replace(plug, done_since=None, done_id=None, done_how="", low_since=None, low_id=None)


class _PlugDetector(_TimedUnits[Plug]):
    """A time-based condition on a connector's session: raised at :meth:`deadline`."""

    consumes: ClassVar[frozenset[str]] = frozenset({EV_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.EV_CHARGER})
    state_model = PlugState
    unit_model = Plug
    field: ClassVar[str] = "connector"
    label: ClassVar[str] = "connector"

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    @abc.abstractmethod
    def deadline(self, plug: Plug, ctx: DeviceContext) -> datetime | None:
        """Given by each subclass."""

    def stamped(self, unit: Plug, reading: ReadingView) -> Plug:
        return unit.stamped(reading.at, reading.id)

    @abc.abstractmethod
    def raised(self, plug: Plug, number: int, due: datetime, ctx: DeviceContext) -> Signal:
        """Given by each subclass."""

    def unit_due(self, unit: Plug, ctx: DeviceContext) -> datetime | None:
        return None if unit.reported else self.deadline(unit, ctx)

    def due(
        self, unit: Plug, number: int, now: datetime, ctx: DeviceContext
    ) -> tuple[Plug, Signal] | None:
        if unit.reported:
            return None
        deadline = self.deadline(unit, ctx)
        if deadline is None or now < deadline:
            return None
        return replace(unit, reported=True), self.raised(unit, number, deadline, ctx)

    def update(
        self, unit: Plug, number: int, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[Plug, list[Signal]]:
        after = track_plug(unit, reading, ctx)
        if not unit.reported:
            return after, []
        if after.since == unit.since and self.deadline(after, ctx) is not None:
            return replace(after, reported=True), []  # still the same condition
        status = str(reading.payload.get("status", ""))
        assert unit.since is not None
        stayed = format_duration(reading.at - unit.since)
        text = f"connector {number} {status} at {_clock(reading.at, ctx)} after {stayed} connected"
        if unit.done_since is not None and after.done_since is None and after.since:
            text = f"connector {number} charging again at {_clock(reading.at, ctx)}"
        out = signal(
            self.name,
            ctx,
            condition=self.condition(number),
            active=False,
            at=reading.at,
            explanation=text,
            evidence=(reading.id,),
            values={"connector": number, "connected_s": (reading.at - unit.since).total_seconds()},
        )
        return replace(after, reported=False), [out]


class EvOverstay(_PlugDetector):
    """``ev_overstay``: the car's charge finished (``suspended_ev``/``finishing``, or
    ``charging`` below ``idle_kw`` for ``idle_min``, counted from when the power fell) and
    the car is still connected ``grace_h`` later. Raised at finished + grace; cleared when
    the connector is ``available`` (or the car draws power again)."""

    name: ClassVar[str] = "ev_overstay"

    def deadline(self, plug: Plug, ctx: DeviceContext) -> datetime | None:
        if plug.done_since is None:
            return None
        return plug.done_since + span_h(ctx.rules.ev_overstay.grace_h)

    def raised(self, plug: Plug, number: int, due: datetime, ctx: DeviceContext) -> Signal:
        assert plug.since is not None and plug.done_since is not None
        grace = timedelta(hours=ctx.rules.ev_overstay.grace_h)
        energy = "" if plug.energy_kwh is None else f", {_num(plug.energy_kwh)} kWh delivered"
        text = (
            f"connector {number}: charging finished at {_clock(plug.done_since, ctx)} "
            f"({plug.done_how}) and the car is still connected {format_duration(grace)} later "
            f"(plugged in at {_clock(plug.since, ctx)}{energy}; grace {format_duration(grace)})"
        )
        values: dict[str, float | int | str] = {
            "connector": number,
            "idle_s": grace.total_seconds(),
            "connected_s": (due - plug.since).total_seconds(),
            "grace_h": ctx.rules.ev_overstay.grace_h,
        }
        if plug.session is not None:
            values["session_id"] = plug.session
        return signal(
            self.name,
            ctx,
            condition=self.condition(number),
            active=True,
            at=due,
            explanation=text,
            evidence=_ids(plug.since_id, plug.done_id),
            values=values,
        )


class EvSessionTooLong(_PlugDetector):
    """``ev_session_too_long``: a car connected for ``max_h`` (charging or not). Raised at
    plug-in + ``max_h``; cleared when the connector is ``available``."""

    name: ClassVar[str] = "ev_session_too_long"

    def deadline(self, plug: Plug, ctx: DeviceContext) -> datetime | None:
        if plug.since is None:
            return None
        return plug.since + span_h(ctx.rules.ev_session_too_long.max_h)

    def raised(self, plug: Plug, number: int, due: datetime, ctx: DeviceContext) -> Signal:
        assert plug.since is not None
        limit = timedelta(hours=ctx.rules.ev_session_too_long.max_h)
        state = (
            "charging" if plug.done_since is None else f"done since {_clock(plug.done_since, ctx)}"
        )
        text = (
            f"connector {number}: car connected since {_clock(plug.since, ctx)}, "
            f"{format_duration(limit)} (limit {format_duration(limit)}; {state})"
        )
        return signal(
            self.name,
            ctx,
            condition=self.condition(number),
            active=True,
            at=due,
            explanation=text,
            evidence=_ids(plug.since_id),
            values={"connector": number, "max_h": ctx.rules.ev_session_too_long.max_h},
        )


# --- ev_charger_faulted -----------------------------------------------------------------------


@state
class Fault(_Unit):
    since: UtcDatetime | None = None
    since_id: UUID | None = None


@state
class FaultState:
    __pydantic_config__ = STATE_CONFIG

    units: dict[int, Fault] = field(default_factory=dict)


class EvChargerFaulted(_PerUnit[Fault]):
    """``ev_charger_faulted`` (major): a connector reports ``faulted``; raised after
    ``persist_min`` (alarm persistence), cleared by any other status. (A charger that says
    nothing at all is ``device_offline``'s.)"""

    name: ClassVar[str] = "ev_charger_faulted"
    consumes: ClassVar[frozenset[str]] = frozenset({EV_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.EV_CHARGER})
    state_model = FaultState
    unit_model = Fault
    field: ClassVar[str] = "connector"
    label: ClassVar[str] = "connector"

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        minutes = ctx.rules.ev_charger_faulted.persist_min
        return AlarmPolicy(raise_after=timedelta(minutes=minutes), auto_resolve_on_clear=True)

    def update(
        self, unit: Fault, number: int, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[Fault, list[Signal]]:
        status = str(reading.payload.get("status", ""))
        faulted = status == "faulted"
        if faulted == (unit.since is not None):
            return unit, []
        if faulted:
            text = f"connector {number} reports faulted at {_clock(reading.at, ctx)}"
            after = Fault(since=reading.at, since_id=reading.id)
            values: dict[str, float | int | str] = {"connector": number}
        else:
            assert unit.since is not None
            lasted = format_duration(reading.at - unit.since)
            text = f"connector {number} {status} after {lasted} faulted"
            after = Fault()
            values = {"connector": number, "faulted_s": (reading.at - unit.since).total_seconds()}
        out = signal(
            self.name,
            ctx,
            condition=self.condition(number),
            active=faulted,
            at=reading.at,
            explanation=text,
            evidence=(reading.id,),
            values=values,
            severity=Severity.MAJOR,
        )
        return after, [out]


# --- ebike_over_temperature -------------------------------------------------------------------


@state
class Heat(_Unit):
    temp_c: float | None = None
    temp_at: UtcDatetime | None = None
    temp_id: UUID | None = None
    #: While hot: the temperature below which the risk ends.
    clear_below_c: float | None = None
    since: UtcDatetime | None = None


@state
class HeatState:
    __pydantic_config__ = STATE_CONFIG

    units: dict[int, Heat] = field(default_factory=dict)


class EbikeOverTemperature(_PerUnit[Heat]):
    """``ebike_over_temperature`` (critical): a port at ≥ ``temp_c``, or rising by
    ``rise_c_per_10min`` (between consecutive temperature readings of the port, at most
    ``RISE_MAX_GAP`` apart; gaps under 10 min count as 10 min so that jitter is not
    magnified). Stays active until the port is ``FIRE_CLEAR_MARGIN_C`` below the level
    that raised it; the alert clears after ``FIRE_CLEAR_AFTER`` below it (as bin fires)."""

    name: ClassVar[str] = "ebike_over_temperature"
    consumes: ClassVar[frozenset[str]] = frozenset({EBIKE_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.EBIKE_STATION})
    state_model = HeatState
    unit_model = Heat
    field: ClassVar[str] = "port"
    label: ClassVar[str] = "port"

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(clear_after=FIRE_CLEAR_AFTER)

    def update(
        self, unit: Heat, number: int, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[Heat, list[Signal]]:
        temp = reading.number("temperature_c")
        if temp is None:
            return unit, []
        rule, at = ctx.rules.ebike_over_temperature, reading.at
        rise: float | None = None
        if (
            unit.temp_c is not None
            and unit.temp_at is not None
            and at - unit.temp_at <= RISE_MAX_GAP
        ):
            minutes = max((at - unit.temp_at).total_seconds() / 60, 10.0)
            rise = (temp - unit.temp_c) * 10 / minutes
        hot = temp >= rule.temp_c
        rising = rise is not None and rise >= rule.rise_c_per_10min
        was = unit.clear_below_c is not None
        clear_below, since = unit.clear_below_c, unit.since
        if hot or rising:
            level = (rule.temp_c if hot else min(rule.temp_c, temp)) - FIRE_CLEAR_MARGIN_C
            clear_below = level if clear_below is None else max(clear_below, level)
            since = since or at
        elif clear_below is not None and temp < clear_below:
            clear_below, since = None, None
        after = replace(
            unit,
            temp_c=temp,
            temp_at=at,
            temp_id=reading.id,
            clear_below_c=clear_below,
            since=since,
        )
        active = clear_below is not None
        if active == was:
            return after, []
        power = reading.number("power_w")
        load = "" if power is None else f", drawing {_num(power)} W"
        if active:
            parts = [f"{_num(temp)} °C" + (f" (≥ {_num(rule.temp_c)} °C)" if hot else "")]
            if rising:
                assert rise is not None and unit.temp_c is not None
                parts.append(
                    f"rising {_num(rise)} °C/10 min (≥ {_num(rule.rise_c_per_10min)}) from "
                    f"{_num(unit.temp_c)} °C"
                )
            text = f"port {number} fire risk: " + ", ".join(parts) + load
            evidence = _ids(unit.temp_id if rising else None, reading.id)
        else:
            assert unit.clear_below_c is not None
            text = f"port {number} cooled to {_num(temp)} °C (< {_num(unit.clear_below_c)} °C)"
            evidence = (reading.id,)
        values: dict[str, float | int | str] = {
            "port": number,
            "temperature_c": temp,
            "temp_c": rule.temp_c,
        }
        if rise is not None:
            values["rise_c_per_10min"] = round(rise, 3)
        out = signal(
            self.name,
            ctx,
            condition=self.condition(number),
            active=active,
            at=at,
            explanation=text,
            evidence=evidence,
            values=values,
            severity=Severity.CRITICAL,
        )
        return after, [out]


# --- ebike_session_too_long -------------------------------------------------------------------


@state
class Charge(_Unit):
    """A port's charge: charging since, its peak and last power, what was reported."""

    since: UtcDatetime | None = None
    since_id: UUID | None = None
    peak_w: float = 0.0
    last_w: float | None = None
    last_w_id: UUID | None = None
    reported: bool = False
    #: ebike_power_abnormal: above max_w since, and the no-taper condition reported.
    over_since: UtcDatetime | None = None
    no_taper: bool = False


@state
class ChargeState:
    __pydantic_config__ = STATE_CONFIG

    units: dict[int, Charge] = field(default_factory=dict)


def track_charge(unit: Charge, reading: ReadingView) -> Charge:
    """``unit`` after one port reading: a charge runs while the status is ``charging``."""
    status = reading.payload.get("status")
    if status != "charging":
        if unit.since is None and unit.last_w is None:
            return unit
        return replace(unit, since=None, since_id=None, peak_w=0.0, last_w=None, last_w_id=None)
    power = reading.number("power_w")
    if unit.since is None:
        unit = replace(unit, since=reading.at, since_id=reading.id, peak_w=0.0, reported=False)
    if power is not None:
        unit = replace(unit, peak_w=max(unit.peak_w, power), last_w=power, last_w_id=reading.id)
    return unit


class EbikeSessionTooLong(_TimedUnits[Charge]):
    """``ebike_session_too_long``: a port ``charging`` for ``max_h`` (raised at the due
    time, by tick or the next reading); cleared by any other status."""

    name: ClassVar[str] = "ebike_session_too_long"
    consumes: ClassVar[frozenset[str]] = frozenset({EBIKE_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.EBIKE_STATION})
    state_model = ChargeState
    unit_model = Charge
    field: ClassVar[str] = "port"
    label: ClassVar[str] = "port"

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def unit_due(self, unit: Charge, ctx: DeviceContext) -> datetime | None:
        if unit.reported or unit.since is None:
            return None
        return unit.since + span_h(ctx.rules.ebike_session_too_long.max_h)

    def due(
        self, unit: Charge, number: int, now: datetime, ctx: DeviceContext
    ) -> tuple[Charge, Signal] | None:
        if unit.reported or unit.since is None:
            return None
        limit = span_h(ctx.rules.ebike_session_too_long.max_h)
        if now < unit.since + limit:
            return None
        last = "" if unit.last_w is None else f", last {_num(unit.last_w)} W"
        text = (
            f"port {number} charging since {_clock(unit.since, ctx)}: {format_duration(limit)} "
            f"(limit {format_duration(limit)}; peak {_num(unit.peak_w)} W{last})"
        )
        out = signal(
            self.name,
            ctx,
            condition=self.condition(number),
            active=True,
            at=unit.since + limit,
            explanation=text,
            evidence=_ids(unit.since_id, unit.last_w_id),
            values={"port": number, "max_h": ctx.rules.ebike_session_too_long.max_h},
        )
        return replace(unit, reported=True), out

    def update(
        self, unit: Charge, number: int, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[Charge, list[Signal]]:
        after = track_charge(unit, reading)
        if not unit.reported or after.since is not None:
            return after, []
        assert unit.since is not None
        lasted = format_duration(reading.at - unit.since)
        out = signal(
            self.name,
            ctx,
            condition=self.condition(number),
            active=False,
            at=reading.at,
            explanation=f"port {number} {reading.payload.get('status')} after {lasted} charging",
            evidence=(reading.id,),
            values={"port": number, "charged_s": (reading.at - unit.since).total_seconds()},
        )
        return replace(after, reported=False), [out]


# --- ebike_power_abnormal ---------------------------------------------------------------------


class EbikePowerAbnormal(_PerUnit[Charge]):
    """``ebike_power_abnormal`` (major), two conditions per port:

    * ``ebike_power_abnormal.port-N``: power above ``max_w`` (the port's rating with a
      tolerance); raised after ``persist_min`` (alarm persistence), cleared at or below it.
    * ``ebike_power_abnormal.port-N.no-taper``: a charge of at least ``min_session_h`` that
      the port reports ``finished`` while its last charging power was still ≥
      ``taper_pct`` % of the charge's peak: a battery charge ends with a taper (constant
      voltage), a heater, a motor or a charger with its cut-off defeated does not. Cleared
      when the port is next ``available`` or charging. A charge cut by a fault or an unplug
      is not judged.
    """

    name: ClassVar[str] = "ebike_power_abnormal"
    consumes: ClassVar[frozenset[str]] = frozenset({EBIKE_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.EBIKE_STATION})
    state_model = ChargeState
    unit_model = Charge
    field: ClassVar[str] = "port"
    label: ClassVar[str] = "port"

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        minutes = ctx.rules.ebike_power_abnormal.persist_min
        return AlarmPolicy(raise_after=timedelta(minutes=minutes), auto_resolve_on_clear=True)

    def update(
        self, unit: Charge, number: int, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[Charge, list[Signal]]:
        rule, at = ctx.rules.ebike_power_abnormal, reading.at
        status = reading.payload.get("status")
        power = reading.number("power_w")
        after = track_charge(unit, reading)
        signals: list[Signal] = []

        def emit(active: bool, text: str, suffix: str = "", **values: float | int | str) -> None:
            signals.append(
                signal(
                    self.name,
                    ctx,
                    condition=self.condition(number) + suffix,
                    active=active,
                    at=at,
                    explanation=text,
                    evidence=_ids(after.last_w_id if active else None, reading.id),
                    values={"port": number, "max_w": rule.max_w, **values},
                    severity=Severity.MAJOR,
                )
            )

        over = power is not None and power > rule.max_w
        if over and after.over_since is None:
            assert power is not None
            after = replace(after, over_since=at)
            emit(
                True,
                f"port {number} drawing {_num(power)} W (> {_num(rule.max_w)} W rating)",
                power_w=power,
            )
        elif not over and power is not None and after.over_since is not None:
            lasted = format_duration(at - after.over_since)
            after = replace(after, over_since=None)
            emit(
                False,
                f"port {number} back to {_num(power)} W after {lasted} above {_num(rule.max_w)} W",
                power_w=power,
            )
        if (
            status == "finished"
            and unit.since is not None
            and unit.last_w is not None
            and unit.peak_w > 0
            and at - unit.since >= span_h(rule.min_session_h)
            and unit.last_w >= unit.peak_w * rule.taper_pct / 100
        ):
            share = 100 * unit.last_w / unit.peak_w
            after = replace(after, no_taper=True)
            emit(
                True,
                f"port {number} finished a {format_duration(at - unit.since)} charge without a "
                f"taper: last {_num(unit.last_w)} W = {share:.0f} % of its peak "
                f"{_num(unit.peak_w)} W (a battery charge ends below {_num(rule.taper_pct)} %)",
                ".no-taper",
                last_w=unit.last_w,
                peak_w=unit.peak_w,
            )
        elif unit.no_taper and status in ("available", "charging"):
            after = replace(after, no_taper=False)
            emit(False, f"port {number} {status}: next charge", ".no-taper")
        return after, signals


CHARGING_DETECTORS: tuple[Detector[Any], ...] = (
    EvOverstay(),
    EvSessionTooLong(),
    EvChargerFaulted(),
    EbikeOverTemperature(),
    EbikeSessionTooLong(),
    EbikePowerAbnormal(),
)
