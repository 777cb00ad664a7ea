"""The energy pack: detectors over energy-meter registers (``energy_meter.register``:
cumulative ``energy_kwh`` and instantaneous ``power_w``).

* :class:`FlyingWire` (``flying_wire``): unsafe e-bike charging from a household,
  corridor or common-area socket (飞线充电), from the load signature of a charger.
* :class:`LightingDaylight` (``lighting_daylight``): public lighting on in daylight.
* :class:`EnergyAboveBaseline` (``energy_above_baseline``): an hour far above the same
  hour of the week in the meter's own past (median and MAD, robust z).
* :class:`CommonAreaPowerSpike` (``common_area_power_spike``): a common-area circuit's
  power jumping far above its recent median.

Every detector is pure (see ``processors/detector.py``), reports transitions only, and
ignores a reading not newer than the last one it used (redeliveries, stragglers).

**Sunrise and sunset** are computed here (:func:`sun_times`) with the NOAA "general
solar position" equations (fractional-year series for the equation of time and the
declination, refraction and the solar disc as a zenith of 90.833°): a dozen lines of
arithmetic, accurate to a minute or two at the latitudes of any estate, with no network
and no dependency (astral or skyfield would add a package for what ``margin_min`` makes
irrelevant anyway). Coordinates are the estate's registered location
(``DeviceContext.lat``/``lon``, from the registry).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, ClassVar
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
    span_s,
    state,
)
from processors.packs.health import format_duration
from processors.packs.water import _ids  # evidence ids, deduplicated, in order

__all__ = [
    "ENERGY_DETECTORS",
    "KIND",
    "CommonAreaPowerSpike",
    "EnergyAboveBaseline",
    "FlyingWire",
    "LightingDaylight",
    "in_window",
    "robust_z",
    "sun_times",
]

KIND = "energy_meter.register"
_CONSUMES = frozenset({KIND})
_ENERGY = frozenset({DeviceKind.ENERGY_METER})

#: ``flying_wire``: readings before a step that give the baseline (their median).
BASELINE_READINGS = 4
#: ``flying_wire``: another load on top of the charger (a kettle, a heater) may lift the
#: meter above the step's band this long without ending the candidate.
EXCURSION_MAX = timedelta(minutes=20)
#: ``flying_wire``: the load has ended once the step falls below this share of itself.
END_SHARE = 0.15
#: ``flying_wire``: a taper longer than this is not a charger's.
TAPER_MAX = timedelta(hours=4)
#: ``flying_wire``: a lasting rise of at most ``max_step_w`` on top of the charger that
#: starts this close to sunset is the circuit's lights coming on: the baseline moves up
#: (once) instead of the candidate ending. (Sunset at the estate's location.)
DUSK_MARGIN = timedelta(minutes=45)
#: ``energy_above_baseline``: samples longer than this are gaps, not consumption.
MAX_SAMPLE = timedelta(hours=1)
#: ``common_area_power_spike``: readings in the window needed for a median.
SPIKE_MIN_READINGS = 3
_HOUR = timedelta(hours=1)
#: MAD → standard deviation of a normal distribution.
MAD_SCALE = 1.4826


def _w(value: float) -> str:
    return f"{value:,.0f} W"


def _hhmm(at: datetime, ctx: DeviceContext) -> str:
    return at.astimezone(ctx.tz).strftime("%H:%M")


@state
class _State:
    """What every energy detector state holds: the last reading it used."""

    __pydantic_config__ = STATE_CONFIG

    last_at: UtcDatetime | None = None
    last_id: UUID | None = None

    def is_new(self, reading: ReadingView) -> bool:
        return reading.kind == KIND and (self.last_at is None or reading.at > self.last_at)


def in_window(at: datetime, ctx: DeviceContext, start: time, end: time) -> bool:
    """Whether ``at`` (estate-local) is in ``[start, end)``; the window may span midnight;
    ``start == end`` is the whole day."""
    local = at.astimezone(ctx.tz).time()
    if start == end:
        return True
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _is_lighting(ctx: DeviceContext) -> bool:
    return "lighting" in ctx.tags or ctx.profile.role == "lighting"


# --- the sun --------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def sun_times(day: date, lat: float, lon: float) -> tuple[datetime, datetime] | None:
    """(sunrise, sunset) in UTC of the local calendar ``day`` at ``lat``/``lon`` (degrees,
    east positive); ``None`` in polar day or night. NOAA general solar position equations."""
    gamma = 2 * math.pi / 365 * (day.timetuple().tm_yday - 1)  # at local noon: + 0 h
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    phi = math.radians(lat)
    cos_ha = math.cos(math.radians(90.833)) / (math.cos(phi) * math.cos(decl)) - math.tan(
        phi
    ) * math.tan(decl)
    if not -1 <= cos_ha <= 1:
        return None
    ha = math.degrees(math.acos(cos_ha))
    midnight = datetime.combine(day, time(0), tzinfo=UTC)
    rise = midnight + timedelta(minutes=720 - 4 * (lon + ha) - eqtime)
    sets = midnight + timedelta(minutes=720 - 4 * (lon - ha) - eqtime)
    return rise, sets


# --- flying_wire ------------------------------------------------------------------------------


def _near_sunset(at: datetime, ctx: DeviceContext) -> bool:
    """Whether ``at`` is within :data:`DUSK_MARGIN` of the local day's sunset."""
    sun = sun_times(at.astimezone(ctx.tz).date(), ctx.lat, ctx.lon)
    return sun is not None and abs(at - sun[1]) <= DUSK_MARGIN


@state
class WireState(_State):
    #: The last powers before a step (its baseline), while no candidate runs.
    recent: tuple[float, ...] = ()
    #: The candidate: baseline, step, start, the last reading on the plateau.
    base_w: float | None = None
    step_w: float = 0.0
    since: UtcDatetime | None = None
    since_id: UUID | None = None
    plateau_at: UtcDatetime | None = None
    plateau_id: UUID | None = None
    above_since: UtcDatetime | None = None
    #: Time spent off the band (above it, or below it and back) so far.
    off_band_s: float = 0.0
    #: The baseline moved up by this much at dusk (lights on: see ``DUSK_MARGIN``).
    dusk_w: float = 0.0
    taper_since: UtcDatetime | None = None
    taper_from_w: float = 0.0
    taper_low_w: float = 0.0
    active: bool = False


class FlyingWire(BaseDetector[WireState]):
    """``flying_wire``: an e-bike charger's load on a household, corridor or common-area
    meter (not lighting).

    * **Step**: a reading ``min_step_w``–``max_step_w`` above the median of the
      :data:`BASELINE_READINGS` readings before it, starting (estate-local) in
      ``window_start``–``window_end``.
    * **Plateau**: then every reading within ± ``tolerance_pct`` % of the step above the
      baseline; excursions off the band (another appliance on top, a dip) may last
      :data:`EXCURSION_MAX` in all, more ends the candidate (the level wanders: it is
      not one steady charger).
    * **Dusk**: a lasting rise (at most ``max_step_w``) on top, starting within
      :data:`DUSK_MARGIN` of sunset, is the circuit's lights: the baseline moves up once.
    * **Taper**: readings below the band but above :data:`END_SHARE` of the step are the
      charger's taper (constant-voltage phase), for up to :data:`TAPER_MAX`; a reading back
      on the band ends the taper (a dip). Below that share the load has ended.
    * **Active** once the plateau lasted ``min_h`` (the alert comes while the charge
      runs, not at its end); **inactive** when the load ends, with the whole evidence:
      step, start, duration and taper.
    """

    name: ClassVar[str] = "flying_wire"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = _ENERGY
    state_model = WireState

    def applies_to(self, ctx: DeviceContext) -> bool:
        return (
            ctx.kind is DeviceKind.ENERGY_METER
            and not _is_lighting(ctx)
            and ctx.rules.flying_wire.enabled
        )

    def _values(self, state: WireState, at: datetime) -> dict[str, float | int | str]:
        assert state.since is not None and state.base_w is not None
        values: dict[str, float | int | str] = {
            "step_w": round(state.step_w, 1),
            "base_w": round(state.base_w, 1),
            "dusk_w": round(state.dusk_w, 1),
            "since": state.since.astimezone(UTC).isoformat(),
            "sustained_h": round((at - state.since).total_seconds() / 3600, 2),
        }
        if state.taper_since is not None:
            values["taper_from_w"] = round(state.taper_from_w, 1)
            values["taper_to_w"] = round(state.taper_low_w, 1)
            values["taper_min"] = round((at - state.taper_since).total_seconds() / 60, 1)
        return values

    def _end(
        self,
        state: WireState,
        reading: ReadingView,
        power: float,
        ctx: DeviceContext,
        *,
        gone: bool = True,
    ) -> tuple[WireState, list[Signal]]:
        """The candidate is over: the load is ``gone``, or its level changed (it no longer
        looks like one charger). Inactive if it was active."""
        fresh = WireState(last_at=reading.at, last_id=reading.id, recent=(power,))
        if not state.active:
            return fresh, []
        assert state.since is not None
        lasted = format_duration(reading.at - state.since)
        if not gone:
            taper = (
                f"changed level to {_w(power - (state.base_w or 0.0))} above the baseline: "
                "no longer one steady charger"
            )
        elif state.taper_since is not None:
            taper = (
                f"tapered from {_w(state.taper_from_w)} to {_w(state.taper_low_w)} over "
                f"{format_duration(reading.at - state.taper_since)} before ending"
            )
        else:
            taper = "ended without a taper"
        text = (
            f"the {_w(state.step_w)} load that started at {_hhmm(state.since, ctx)} "
            + (
                f"ended at {_hhmm(reading.at, ctx)} after {lasted}"
                if gone
                else f"was followed until {_hhmm(reading.at, ctx)} ({lasted})"
            )
            + f"; it {taper}"
        )
        out = signal(
            self.name,
            ctx,
            active=False,
            at=reading.at,
            explanation=text,
            evidence=_ids(state.since_id, reading.id),
            values={
                **self._values(state, reading.at),
                "tapered": int(state.taper_since is not None),
            },
        )
        return fresh, [out]

    def step(
        self, state: WireState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[WireState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        power = reading.number("power_w")
        if power is None:
            return replace(state, last_at=reading.at, last_id=reading.id), []
        rule, at = ctx.rules.flying_wire, reading.at
        if state.base_w is None and (
            len(state.recent) < BASELINE_READINGS - 1 or power - min(state.recent) < rule.min_step_w
        ):  # the hot path: no step
            # (without a candidate every other field has its default)
            return WireState(at, reading.id, (*state.recent, power)[-BASELINE_READINGS:]), []
        state = replace(state, last_at=at, last_id=reading.id)
        if state.base_w is None:
            recent = state.recent
            if len(recent) >= BASELINE_READINGS - 1:
                base = statistics.median(recent)
                step = power - base
                if rule.min_step_w <= step <= rule.max_step_w and in_window(
                    at, ctx, rule.window_start, rule.window_end
                ):
                    return replace(
                        state,
                        recent=(),
                        base_w=base,
                        step_w=step,
                        since=at,
                        since_id=reading.id,
                        plateau_at=at,
                        plateau_id=reading.id,
                    ), []
            return replace(state, recent=(*recent, power)[-BASELINE_READINGS:]), []
        base, since = state.base_w, state.since
        assert since is not None
        delta = power - base
        band = state.step_w * rule.tolerance_pct / 100
        off = span_s(state.off_band_s)
        if delta > state.step_w + band:  # another load on top
            above = state.above_since or at
            if off + (at - above) <= EXCURSION_MAX:
                return replace(state, above_since=above), []
            excess = delta - state.step_w
            if state.dusk_w or excess > rule.max_step_w or not _near_sunset(above, ctx):
                return self._end(state, reading, power, ctx, gone=False)
            state = replace(state, base_w=base + excess, dusk_w=excess, above_since=None)
            return replace(state, plateau_at=at, plateau_id=reading.id), []
        if delta >= state.step_w - band:  # on the plateau (a taper that came back was a dip)
            for left in (state.above_since, state.taper_since):
                off += timedelta(0) if left is None else at - left
            if off > EXCURSION_MAX:  # the level wanders: not one steady charger
                return self._end(state, reading, power, ctx, gone=False)
            state = replace(
                state,
                plateau_at=at,
                plateau_id=reading.id,
                above_since=None,
                taper_since=None,
                taper_from_w=0.0,
                off_band_s=off.total_seconds(),
            )
        elif delta >= END_SHARE * state.step_w:  # the taper (or a dip)
            if state.above_since is not None:
                off += at - state.above_since
                state = replace(state, above_since=None, off_band_s=off.total_seconds())
            if state.taper_since is None:
                state = replace(state, taper_since=at, taper_from_w=state.step_w, taper_low_w=delta)
            elif at - state.taper_since > TAPER_MAX:
                return self._end(state, reading, power, ctx)
            state = replace(state, taper_low_w=min(state.taper_low_w, delta))
        else:
            return self._end(state, reading, power, ctx)
        assert state.plateau_at is not None
        sustained = state.plateau_at - since
        if state.active or sustained < span_h(rule.min_h):
            return state, []
        text = (
            f"e-bike charging from a socket suspected: a {_w(state.step_w)} step above "
            f"{_w(base)} started at {_hhmm(since, ctx)} (window "
            f"{rule.window_start:%H:%M}-{rule.window_end:%H:%M}) and held within "
            f"±{rule.tolerance_pct:g} % for {format_duration(sustained)} (≥ {rule.min_h:g} h; "
            f"steps of {rule.min_step_w:g}-{rule.max_step_w:g} W)"
        )
        if state.dusk_w:
            text += f"; the baseline includes {_w(state.dusk_w)} of lights that came on at dusk"
        out = signal(
            self.name,
            ctx,
            active=True,
            at=at,
            explanation=text,
            evidence=_ids(state.since_id, state.plateau_id),
            values=self._values(state, at),
            severity=Severity.MAJOR,
        )
        return replace(state, active=True), [out]


# --- lighting_daylight ------------------------------------------------------------------------


@state
class LightState(_State):
    since: UtcDatetime | None = None
    since_id: UUID | None = None
    active: bool = False


class LightingDaylight(BaseDetector[LightState]):
    """``lighting_daylight``: a lighting meter (tag or profile role ``lighting``) drawing
    ≥ ``on_w`` between sunrise + ``margin_min`` and sunset − ``margin_min`` (estate-local
    day, :func:`sun_times` at the estate's location) for ``persist_min`` (from the
    first such reading to the latest). A reading off (< ``on_w``), or outside that daylight
    window (lamps are expected at dusk), ends it."""

    name: ClassVar[str] = "lighting_daylight"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = _ENERGY
    state_model = LightState

    def applies_to(self, ctx: DeviceContext) -> bool:
        return (
            ctx.kind is DeviceKind.ENERGY_METER
            and _is_lighting(ctx)
            and ctx.rules.lighting_daylight.enabled
        )

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def step(
        self, state: LightState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[LightState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        power = reading.number("power_w")
        at = reading.at
        if power is None:
            return replace(state, last_at=at, last_id=reading.id), []
        rule = ctx.rules.lighting_daylight
        sun = sun_times(at.astimezone(ctx.tz).date(), ctx.lat, ctx.lon)
        margin = timedelta(minutes=rule.margin_min)
        day = sun is not None and sun[0] + margin <= at <= sun[1] - margin
        on = power >= rule.on_w
        base = LightState(last_at=at, last_id=reading.id)
        if not (day and on):
            if not state.active:
                return base, []
            why = f"off ({_w(power)})" if not on else "dusk: lamps expected"
            assert state.since is not None
            text = (
                f"lighting {why} at {_hhmm(at, ctx)} after {format_duration(at - state.since)} "
                "on in daylight"
            )
            out = signal(
                self.name,
                ctx,
                active=False,
                at=at,
                explanation=text,
                evidence=(reading.id,),
                values={"power_w": power, "on_w": rule.on_w},
            )
            return base, [out]
        assert sun is not None
        since, since_id = state.since or at, state.since_id or reading.id
        state = replace(base, since=since, since_id=since_id, active=state.active)
        lasted = at - since
        if state.active or lasted < timedelta(minutes=rule.persist_min):
            return state, []
        text = (
            f"lighting on in daylight: {_w(power)} (≥ {_w(rule.on_w)}) at {_hhmm(at, ctx)}, on "
            f"since {_hhmm(since, ctx)} ({format_duration(lasted)}); sunrise "
            f"{_hhmm(sun[0], ctx)}, sunset {_hhmm(sun[1], ctx)} at {ctx.lat:g}°, {ctx.lon:g}° "
            f"(daylight counted from {format_duration(margin)} after sunrise to "
            f"{format_duration(margin)} before sunset)"
        )
        out = signal(
            self.name,
            ctx,
            active=True,
            at=at,
            explanation=text,
            evidence=_ids(since_id, reading.id),
            values={
                "power_w": power,
                "on_w": rule.on_w,
                "on_s": lasted.total_seconds(),
                "sunrise": sun[0].isoformat(),
                "sunset": sun[1].isoformat(),
            },
        )
        return replace(state, active=True), [out]


# --- energy_above_baseline --------------------------------------------------------------------


def robust_z(value: float, history: tuple[float, ...]) -> tuple[float, float, float]:
    """(median, MAD, robust z) of ``value`` against ``history``. The MAD is floored at
    5 % of the median and 0.01 (a meter whose hours were identical is not infinitely
    sure of itself)."""
    med = statistics.median(history)
    mad = statistics.median(abs(x - med) for x in history)
    scale = MAD_SCALE * max(mad, 0.05 * abs(med), 0.01)
    return med, mad, (value - med) / scale


def _hour_of_week(at: datetime, ctx: DeviceContext) -> tuple[datetime, int]:
    """The start (UTC) of ``at``'s estate-local hour, and its hour of the week (0 = Mon 0 h)."""
    local = at.astimezone(ctx.tz)
    start = local.replace(minute=0, second=0, microsecond=0)
    return start.astimezone(UTC), local.weekday() * 24 + local.hour


@state
class BaselineState(_State):
    last_kwh: float | None = None
    #: The open hour: its start (UTC), hour of week, energy so far, first reading.
    hour_start: UtcDatetime | None = None
    hour_of_week: int = 0
    hour_kwh: float = 0.0
    hour_id: UUID | None = None
    #: An hour with a gap, a reset or a run-back is not judged (nor learnt).
    hour_broken: bool = False
    #: Hour of week → the last ``weeks`` complete hours' kWh.
    history: dict[int, tuple[float, ...]] = field(default_factory=dict)
    active: bool = False


class EnergyAboveBaseline(BaseDetector[BaselineState]):
    """``energy_above_baseline``: an estate-local hour whose consumption (register
    differences, each sample counted in the hour it ends in) has a robust z ≥ ``min_z``
    against the same hour of the week in the last ``weeks`` weeks (median and MAD, at
    least ``min_weeks`` of them) and exceeds that median by ``min_excess_kwh``. Judged when
    the next hour's first reading arrives; the next normal hour clears. Hours with a gap
    over :data:`MAX_SAMPLE`, a register reset or a run-back are neither judged nor learnt.
    Every energy meter but lighting (which ``lighting_daylight`` judges)."""

    name: ClassVar[str] = "energy_above_baseline"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = _ENERGY
    state_model = BaselineState

    def applies_to(self, ctx: DeviceContext) -> bool:
        return (
            ctx.kind is DeviceKind.ENERGY_METER
            and not _is_lighting(ctx)
            and ctx.rules.energy_above_baseline.enabled
        )

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def _judge(
        self, state: BaselineState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[BaselineState, list[Signal]]:
        """Close the open hour: judge it against its history, then learn it."""
        rule = ctx.rules.energy_above_baseline
        how, used = state.hour_of_week, state.hour_kwh
        past = state.history.get(how, ())
        if state.hour_broken or state.hour_start is None:
            return state, []
        history = {**state.history, how: (*past, round(used, 4))[-rule.weeks :]}
        learnt = replace(state, history=history)
        if len(past) < rule.min_weeks:
            return learnt, []
        med, mad, z = robust_z(used, past)
        high = z >= rule.min_z and used - med >= rule.min_excess_kwh
        if high == state.active:
            return learnt, []
        local = state.hour_start.astimezone(ctx.tz)
        hour = f"{local:%a %H}:00-{(local + timedelta(hours=1)):%H}:00"
        numbers = (
            f"{used:.2f} kWh in {hour} against a median of {med:.2f} kWh (MAD {mad:.2f}) over "
            f"the same hour of {len(past)} past weeks: robust z {z:.1f}"
        )
        if high:
            text = f"{numbers} (≥ {rule.min_z:g}, and ≥ {rule.min_excess_kwh:g} kWh above)"
        else:
            text = f"back to normal: {numbers}"
        out = signal(
            self.name,
            ctx,
            active=high,
            at=reading.at,
            explanation=text,
            evidence=_ids(state.hour_id, reading.id),
            values={
                "kwh": round(used, 4),
                "median_kwh": round(med, 4),
                "mad_kwh": round(mad, 4),
                "z": round(z, 2),
                "weeks": len(past),
                "hour_of_week": how,
            },
        )
        return replace(learnt, active=high), [out]

    def step(
        self, state: BaselineState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[BaselineState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        kwh = reading.number("energy_kwh")
        if kwh is None:
            return replace(state, last_at=reading.at, last_id=reading.id), []
        at, last_kwh, opened = reading.at, state.last_kwh, state.hour_start
        sample_ok = (
            last_kwh is not None
            and state.last_at is not None
            and kwh >= last_kwh
            and at - state.last_at <= MAX_SAMPLE
        )
        if sample_ok and opened is not None and opened <= at < opened + _HOUR:  # the hot path
            assert last_kwh is not None
            used = state.hour_kwh + kwh - last_kwh
            return BaselineState(  # positional: ~2x cheaper than replace
                at, reading.id, kwh, opened, state.hour_of_week, used, state.hour_id,
                state.hour_broken, state.history, state.active,
            ), []  # fmt: skip
        signals: list[Signal] = []
        start, how = _hour_of_week(at, ctx)
        if state.hour_start != start:
            if state.hour_start is not None and start - state.hour_start == timedelta(hours=1):
                state, signals = self._judge(state, reading, ctx)
            state = replace(
                state,
                hour_start=start,
                hour_of_week=how,
                hour_kwh=0.0,
                hour_id=reading.id,
                hour_broken=not sample_ok,
            )
        if sample_ok:
            assert state.last_kwh is not None
            state = replace(state, hour_kwh=state.hour_kwh + kwh - state.last_kwh)
        else:
            state = replace(state, hour_broken=True)
        return replace(state, last_at=reading.at, last_id=reading.id, last_kwh=kwh), signals


# --- common_area_power_spike ------------------------------------------------------------------


@state
class SpikeState(_State):
    #: (time, power) of the recent readings that were not spikes, within the window.
    recent: tuple[tuple[UtcDatetime, float], ...] = ()
    since: UtcDatetime | None = None
    active: bool = False


class CommonAreaPowerSpike(BaseDetector[SpikeState]):
    """``common_area_power_spike``: a ``common_area``-tagged meter's power ≥ ``ratio`` ×
    the median of its non-spike readings of the last ``window_min`` (at least
    :data:`SPIKE_MIN_READINGS` of them) and ≥ ``min_excess_w`` above it: a pump or fan
    failing, a short, unauthorised equipment. Spike readings do not enter the median, so a
    lasting new level stays active until the power falls back below the ratio."""

    name: ClassVar[str] = "common_area_power_spike"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = _ENERGY
    state_model = SpikeState

    def applies_to(self, ctx: DeviceContext) -> bool:
        return (
            ctx.kind is DeviceKind.ENERGY_METER
            and "common_area" in ctx.tags
            and ctx.rules.common_area_power_spike.enabled
        )

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def step(
        self, state: SpikeState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[SpikeState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        power = reading.number("power_w")
        at = reading.at
        if power is None:
            return replace(state, last_at=at, last_id=reading.id), []
        rule = ctx.rules.common_area_power_spike
        cutoff = at - span_min(rule.window_min)
        recent = tuple(p for p in state.recent if p[0] >= cutoff)
        state = replace(state, last_at=at, last_id=reading.id, recent=recent)
        if len(recent) < SPIKE_MIN_READINGS:
            return replace(state, recent=(*recent, (at, power))), []
        med = statistics.median(p[1] for p in recent)
        spike = power >= rule.ratio * med and power - med >= rule.min_excess_w
        if not spike:
            state = replace(state, recent=(*recent, (at, power)))
        if spike == state.active:
            return state, []
        if spike:
            text = (
                f"power spike: {_w(power)} at {_hhmm(at, ctx)}, {power / max(med, 1e-9):.1f} × "
                f"the median {_w(med)} of the last {format_duration(at - recent[0][0])} "
                f"(≥ {rule.ratio:g} × and ≥ {_w(rule.min_excess_w)} above)"
            )
            since: datetime | None = at
        else:
            assert state.since is not None
            text = (
                f"power back to {_w(power)} (median {_w(med)}) after "
                f"{format_duration(at - state.since)}"
            )
            since = None
        out = signal(
            self.name,
            ctx,
            active=spike,
            at=at,
            explanation=text,
            evidence=(reading.id,),
            values={"power_w": power, "median_w": round(med, 1), "ratio": rule.ratio},
        )
        return replace(state, since=since, active=spike), [out]


ENERGY_DETECTORS: tuple[Detector[Any], ...] = (
    FlyingWire(),
    LightingDaylight(),
    EnergyAboveBaseline(),
    CommonAreaPowerSpike(),
)
