"""The water pack: leak, burst, backflow and welfare detectors for water meters.

Every detector here watches ``water_meter.register`` readings
(:class:`devices.catalogue.WaterRegister`: ``volume_m3`` a cumulative register, optional
instantaneous ``flow_l_min``) of one meter and is pure: ``(state, reading, ctx)`` →
``(state, signals)``; no clock, no I/O. Thresholds come from ``ctx.rules`` (see
``docs/rules.md``), and every signal records its rule version
(:func:`processors.detector.signal`).

**Flow from a cumulative register.** A household meter reports its register about hourly;
the flow of an interval is the register difference divided by its length (L/h). The
register is read against a *baseline* (the last reading a flow was taken from):

* a reading at or before the last one seen (a duplicate, a late copy) changes nothing;
* a **decrease** is never consumption. It is a *reset* (meter exchanged, register
  restarted or rolled over, two registers interleaved) when the new value is below half
  the old one or when running back that far would need a reverse flow above the
  plausibility cap; otherwise the register *ran back* (possible backflow, see
  ``water_backflow``). Either way the baseline restarts at the new value;
* an **implausible jump** (a forward flow above :func:`plausible_l_min`, twice the
  overload flow of a household meter, or ten times the burst flow of a bigger meter)
  is a glitch: the baseline restarts, nothing is counted;
* a **gap** longer than :data:`MAX_SAMPLE` cannot say *when* the water flowed: the
  baseline restarts, nothing is attributed to any hour;
* readings closer than :data:`MIN_SAMPLE` to the baseline are accumulated (a 1 L
  register over 10 minutes says little), the flow is taken once the interval is long
  enough.

Resets, glitches and gaps are counted in the state and reported in signal ``values``.

**Ticks.** A register only tells what happened between two readings when the second
one arrives, so every verdict here is reached on a reading; ``tick`` changes nothing
(a meter that falls silent is ``device_offline``'s business). Hence ticks at any time
leave the signals unchanged.

``water_balance`` (master meter vs the sum of its sub-meters) needs several devices at
once and is not part of this per-device pack.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from devices.catalogue import DeviceKind
from devices.severity import Severity
from eventlog.envelope import UtcDatetime
from processors.alarm import AlarmPolicy, Signal
from processors.detector import BaseDetector, Detector, DeviceContext, ReadingView, signal

__all__ = [
    "MAX_SAMPLE",
    "MIN_SAMPLE",
    "WATER_DETECTORS",
    "Register",
    "Sample",
    "WaterBackflow",
    "WaterBurst",
    "WaterContinuousFlow",
    "WaterNightFlow",
    "WaterNoUse",
    "advance_register",
    "plausible_l_min",
]

KIND = "water_meter.register"
_CONSUMES = frozenset({KIND})
_FROZEN = ConfigDict(frozen=True, extra="forbid")

#: Readings closer than this to the baseline are accumulated before a flow is taken
#: (hourly detectors); the burst detector takes flows from one minute on.
MIN_SAMPLE = timedelta(minutes=45)
#: A longer interval between two readings is a gap: its volume is not attributed to hours.
MAX_SAMPLE = timedelta(hours=3)
_BURST_MIN_SAMPLE = timedelta(minutes=1)
#: Twice the overload flow Q4 of a DN20 household meter (5 m³/h): faster is a glitch.
_HOUSEHOLD_CAP_L_MIN = 10_000 / 60


def plausible_l_min(ctx: DeviceContext) -> float:
    """The fastest flow (L/min, either direction) the meter can plausibly register."""
    return max(_HOUSEHOLD_CAP_L_MIN, 10 * ctx.rules.water_burst.flow_l_min)


# --- the register -------------------------------------------------------------------------


class Register(BaseModel):
    """Where a meter's register stands: the baseline flows are measured from."""

    model_config = _FROZEN

    last_at: UtcDatetime | None = None
    base_at: UtcDatetime | None = None
    base_l: float = 0.0
    base_id: UUID | None = None
    resets: int = 0
    glitches: int = 0
    gaps: int = 0
    #: Running back (a plausible decrease, not a reset), as seen by water_backflow.
    runbacks: int = 0


class Sample(BaseModel):
    """The flow of one interval ``(start, end]`` of the register."""

    model_config = _FROZEN

    start: UtcDatetime
    end: UtcDatetime
    litres: float
    first_id: UUID | None
    last_id: UUID

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    @property
    def l_h(self) -> float:
        return self.litres / self.hours

    @property
    def l_min(self) -> float:
        return self.l_h / 60

    @property
    def mid(self) -> datetime:
        return self.start + (self.end - self.start) / 2


def _volume_l(reading: ReadingView) -> float | None:
    volume = reading.number("volume_m3")
    return None if volume is None else volume * 1000.0


def advance_register(
    reg: Register, reading: ReadingView, ctx: DeviceContext, min_sample: timedelta = MIN_SAMPLE
) -> tuple[Register, Sample | None, str | None]:
    """Move the register to ``reading``: the new register, the flow sample it closes (if
    any) and what happened (``None``, ``"duplicate"``, ``"reset"``, ``"runback"``,
    ``"glitch"``, ``"gap"``, ``"first"``, ``"wait"``)."""
    if reg.last_at is not None and reading.at <= reg.last_at:
        return reg, None, "duplicate"
    volume = _volume_l(reading)
    if volume is None:
        return reg.model_copy(update={"last_at": reading.at}), None, "wait"
    rebase = {"last_at": reading.at, "base_at": reading.at, "base_l": volume, "base_id": reading.id}
    if reg.base_at is None:
        return reg.model_copy(update=rebase), None, "first"
    elapsed = reading.at - reg.base_at
    minutes = elapsed.total_seconds() / 60
    delta = volume - reg.base_l
    cap = plausible_l_min(ctx)
    if delta < 0:
        if volume < reg.base_l / 2 or -delta / minutes > cap:
            return reg.model_copy(update={**rebase, "resets": reg.resets + 1}), None, "reset"
        return reg.model_copy(update={**rebase, "runbacks": reg.runbacks + 1}), None, "runback"
    if delta / minutes > cap:
        return reg.model_copy(update={**rebase, "glitches": reg.glitches + 1}), None, "glitch"
    if elapsed > MAX_SAMPLE:
        return reg.model_copy(update={**rebase, "gaps": reg.gaps + 1}), None, "gap"
    if elapsed < min_sample:
        return reg.model_copy(update={"last_at": reading.at}), None, "wait"
    sample = Sample(
        start=reg.base_at, end=reading.at, litres=delta, first_id=reg.base_id, last_id=reading.id
    )
    return reg.model_copy(update=rebase), sample, None


def _glitch_values(reg: Register) -> dict[str, float | int | str]:
    return {"register_resets": reg.resets, "register_glitches": reg.glitches, "gaps": reg.gaps}


def _ids(*ids: UUID | None) -> tuple[UUID, ...]:
    return tuple(dict.fromkeys(i for i in ids if i is not None))


def _is_water(ctx: DeviceContext) -> bool:
    return ctx.kind == DeviceKind.WATER_METER


# --- water_night_flow ---------------------------------------------------------------------


class NightFlowState(BaseModel):
    model_config = _FROZEN

    meter: Register = Register()
    #: The night being measured (estate-local date of the window's start).
    night: date | None = None
    night_min_l_h: float | None = None
    night_min_ids: tuple[UUID, ...] = ()
    #: Hours of the window covered by samples so far.
    night_covered_h: float = 0.0
    #: The last night judged, and the run of leak nights ending with it.
    last_night: date | None = None
    streak: int = 0
    streak_min_l_h: float | None = None
    streak_ids: tuple[UUID, ...] = ()
    nights_judged: int = 0
    nights_incomplete: int = 0
    longest_streak: int = 0


def _night_of(at: datetime, ctx: DeviceContext, start: time, end: time) -> date | None:
    """The night (local date of the window start) whose window contains ``at``, if any."""
    local = at.astimezone(ctx.tz)
    t = local.time().replace(tzinfo=None)
    if start < end:
        return local.date() if start <= t < end else None
    if t >= start:
        return local.date()
    if t < end:
        return local.date() - timedelta(days=1)
    return None


def _night_end(night: date, ctx: DeviceContext, start: time, end: time) -> datetime:
    day = night if start < end else night + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=ctx.tz)


class WaterNightFlow(BaseDetector[NightFlowState]):
    """Leak suspected: the night minimum flow stays ≥ ``min_flow_l_h`` ``nights`` nights in a row.

    Each flow sample belongs to the night whose window (estate-local
    ``night_start``-``night_end``) contains its midpoint; the night's minimum is the lowest
    sample. A night is judged once the register has moved past its end. A night covered by
    samples for less than half its window is *incomplete*: no verdict, and the run of
    consecutive nights restarts. A night without any sample (no data, or only glitches)
    breaks the run too. A complete night emits one signal: active when the run reaches
    ``nights``, inactive otherwise (a night whose minimum fell below the threshold clears).
    """

    name: ClassVar[str] = "water_night_flow"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WATER_METER})
    state_model = NightFlowState

    def step(
        self, state: NightFlowState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[NightFlowState, list[Signal]]:
        rule = ctx.rules.water_night_flow
        reg, sample, _ = advance_register(state.meter, reading, ctx)
        if reg is state.meter:
            return state, []
        state = state.model_copy(update={"meter": reg})
        signals: list[Signal] = []
        if sample is not None:
            if state.night is not None and sample.mid >= _night_end(
                state.night, ctx, rule.night_start, rule.night_end
            ):
                state = self._judge(state, reading, ctx, signals)
            night = _night_of(sample.mid, ctx, rule.night_start, rule.night_end)
            if night is not None:
                state = self._add(state, night, sample)
        if (
            state.night is not None
            and reg.base_at is not None
            and reg.base_at >= _night_end(state.night, ctx, rule.night_start, rule.night_end)
        ):
            state = self._judge(state, reading, ctx, signals)
        return state, signals

    @staticmethod
    def _add(state: NightFlowState, night: date, sample: Sample) -> NightFlowState:
        if state.night != night:  # the first sample of a night
            state = state.model_copy(
                update={
                    "night": night,
                    "night_min_l_h": None,
                    "night_min_ids": (),
                    "night_covered_h": 0.0,
                }
            )
        flow = sample.l_h
        update: dict[str, Any] = {"night_covered_h": state.night_covered_h + sample.hours}
        if state.night_min_l_h is None or flow < state.night_min_l_h:
            update["night_min_l_h"] = flow
            update["night_min_ids"] = _ids(sample.first_id, sample.last_id)
        return state.model_copy(update=update)

    def _judge(
        self,
        state: NightFlowState,
        reading: ReadingView,
        ctx: DeviceContext,
        signals: list[Signal],
    ) -> NightFlowState:
        rule = ctx.rules.water_night_flow
        night, minimum = state.night, state.night_min_l_h
        assert night is not None and minimum is not None
        cleared: dict[str, Any] = {
            "night": None,
            "night_min_l_h": None,
            "night_min_ids": (),
            "night_covered_h": 0.0,
            "last_night": night,
        }
        window = f"{rule.night_start:%H:%M} and {rule.night_end:%H:%M}"
        if state.night_covered_h < rule.window_h / 2:
            return state.model_copy(
                update={
                    **cleared,
                    "streak": 0,
                    "streak_min_l_h": None,
                    "streak_ids": (),
                    "nights_incomplete": state.nights_incomplete + 1,
                }
            )
        consecutive = state.last_night is not None and night - state.last_night == timedelta(days=1)
        if minimum >= rule.min_flow_l_h:
            run = state.streak + 1 if consecutive else 1
            prior = state.streak_min_l_h if consecutive and state.streak else None
            run_min = minimum if prior is None else min(prior, minimum)
            ids = ((*state.streak_ids, *state.night_min_ids) if run > 1 else state.night_min_ids)[
                -2 * rule.nights :
            ]
        else:
            run, run_min, ids = 0, None, ()
        state = state.model_copy(
            update={
                **cleared,
                "streak": run,
                "streak_min_l_h": run_min,
                "streak_ids": ids,
                "nights_judged": state.nights_judged + 1,
                "longest_streak": max(state.longest_streak, run),
            }
        )
        values: dict[str, float | int | str] = {
            "night": night.isoformat(),
            "night_min_l_h": round(minimum, 3),
            "min_flow_l_h": rule.min_flow_l_h,
            "consecutive_nights": run,
            "nights": rule.nights,
            **_glitch_values(state.meter),
        }
        if run >= rule.nights:
            assert run_min is not None
            explanation = (
                f"leak suspected: flow never fell below {run_min:.1f} L/h between {window} "
                f"on {run} consecutive nights (threshold {rule.min_flow_l_h:g} L/h, "
                f"{rule.nights} nights)"
            )
            evidence = ids
            active = True
        elif run:
            explanation = (
                f"night of {night}: flow never fell below {minimum:.1f} L/h between {window}; "
                f"{run} of {rule.nights} consecutive nights needed"
            )
            evidence, active = state.night_min_ids or ids, False
        else:
            explanation = (
                f"night of {night}: flow fell to {minimum:.1f} L/h between {window} "
                f"(below {rule.min_flow_l_h:g} L/h): no leak"
            )
            evidence, active = state.night_min_ids or _ids(reading.id), False
        if not evidence:
            evidence = _ids(reading.id)
        signals.append(
            signal(
                self.name,
                ctx,
                active=active,
                at=reading.at,
                explanation=explanation,
                evidence=evidence,
                values=values,
                severity=Severity.WARNING,
            )
        )
        return state


# --- water_continuous_flow ----------------------------------------------------------------


class ContinuousFlowState(BaseModel):
    model_config = _FROZEN

    meter: Register = Register()
    flowing_since: UtcDatetime | None = None
    run_min_l_h: float | None = None
    run_ids: tuple[UUID, ...] = ()
    active: bool = False


class WaterContinuousFlow(BaseDetector[ContinuousFlowState]):
    """Water flowed (≥ ``min_flow_l_h``) in every sample for ``hours`` hours.

    A sample below the threshold (a zero-flow hour) ends the run and clears. A reset,
    glitch or gap restarts the run without clearing (it says nothing about the flow).
    """

    name: ClassVar[str] = "water_continuous_flow"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WATER_METER})
    state_model = ContinuousFlowState

    def step(
        self, state: ContinuousFlowState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[ContinuousFlowState, list[Signal]]:
        rule = ctx.rules.water_continuous_flow
        reg, sample, what = advance_register(state.meter, reading, ctx)
        if reg is state.meter:
            return state, []
        state = state.model_copy(update={"meter": reg})
        if what in ("reset", "runback", "glitch", "gap"):
            return state.model_copy(
                update={"flowing_since": None, "run_min_l_h": None, "run_ids": ()}
            ), []
        if sample is None:
            return state, []
        values: dict[str, float | int | str] = {
            "flow_l_h": round(sample.l_h, 3),
            "min_flow_l_h": rule.min_flow_l_h,
            "hours": rule.hours,
            **_glitch_values(reg),
        }
        if sample.l_h < rule.min_flow_l_h:
            was_active = state.active
            state = state.model_copy(
                update={"flowing_since": None, "run_min_l_h": None, "run_ids": (), "active": False}
            )
            if not was_active:
                return state, []
            return state, [
                signal(
                    self.name,
                    ctx,
                    active=False,
                    at=reading.at,
                    explanation=(
                        f"flow fell to {sample.l_h:.1f} L/h (below {rule.min_flow_l_h:g} L/h) "
                        f"between {sample.start:%Y-%m-%d %H:%M} and {sample.end:%H:%M} UTC"
                    ),
                    evidence=_ids(sample.first_id, sample.last_id),
                    values=values,
                )
            ]
        since = state.flowing_since or sample.start
        run_min = sample.l_h if state.run_min_l_h is None else min(state.run_min_l_h, sample.l_h)
        ids = (
            (*state.run_ids, sample.last_id)[-3:]
            if state.run_ids
            else _ids(sample.first_id, sample.last_id)
        )
        state = state.model_copy(
            update={"flowing_since": since, "run_min_l_h": run_min, "run_ids": ids}
        )
        hours = (sample.end - since).total_seconds() / 3600
        if state.active or hours < rule.hours:
            return state, []
        values.update({"flowing_h": round(hours, 2), "lowest_l_h": round(run_min, 3)})
        return state.model_copy(update={"active": True}), [
            signal(
                self.name,
                ctx,
                active=True,
                at=reading.at,
                explanation=(
                    f"water flowed every hour for {hours:.1f} h (lowest hour {run_min:.1f} L/h, "
                    f"threshold {rule.min_flow_l_h:g} L/h for {rule.hours:g} h)"
                ),
                evidence=ids,
                values=values,
            )
        ]


# --- water_burst --------------------------------------------------------------------------


class BurstState(BaseModel):
    model_config = _FROZEN

    meter: Register = Register()
    #: Start of the current run of flow ≥ flow_l_min (instantaneous readings).
    flow_since: UtcDatetime | None = None
    flow_ids: tuple[UUID, ...] = ()
    peak_l_min: float = 0.0
    active: bool = False


class WaterBurst(BaseDetector[BurstState]):
    """Burst suspected: flow ≥ ``flow_l_min`` for ``minutes`` (severity critical).

    From instantaneous ``flow_l_min`` readings (the run lasts from the first reading at or
    above the threshold to the latest one), or from register intervals of one minute or
    more whose average flow is at or above the threshold (consecutive such intervals add
    up). A reading below the threshold, or an interval averaging below it, clears.
    """

    name: ClassVar[str] = "water_burst"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WATER_METER})
    state_model = BurstState

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(escalate_after=timedelta(minutes=30))

    def step(
        self, state: BurstState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[BurstState, list[Signal]]:
        rule = ctx.rules.water_burst
        reg, sample, what = advance_register(state.meter, reading, ctx, _BURST_MIN_SAMPLE)
        if reg is state.meter:
            return state, []
        state = state.model_copy(update={"meter": reg})
        flow = reading.number("flow_l_min")
        since: datetime | None
        if flow is not None:  # the meter's own flow wins over register differences
            high, start, ids = flow >= rule.flow_l_min, reading.at, _ids(reading.id)
        elif sample is not None:
            flow = sample.l_min
            high, start, ids = (
                flow >= rule.flow_l_min,
                sample.start,
                _ids(sample.first_id, sample.last_id),
            )
        elif what in ("reset", "runback", "glitch", "gap"):
            return state.model_copy(
                update={"flow_since": None, "flow_ids": (), "peak_l_min": 0.0}
            ), []
        else:
            return state, []
        values: dict[str, float | int | str] = {
            "flow_l_min": round(flow, 3),
            "threshold_l_min": rule.flow_l_min,
            "minutes": rule.minutes,
            **_glitch_values(reg),
        }
        if not high:
            was_active = state.active
            state = state.model_copy(
                update={"flow_since": None, "flow_ids": (), "peak_l_min": 0.0, "active": False}
            )
            if not was_active:
                return state, []
            return state, [
                signal(
                    self.name,
                    ctx,
                    active=False,
                    at=reading.at,
                    explanation=f"flow back to {flow:.1f} L/min (below {rule.flow_l_min:g} L/min)",
                    evidence=ids,
                    values=values,
                    severity=Severity.CRITICAL,
                )
            ]
        since = state.flow_since or start
        peak = max(state.peak_l_min, flow)
        run_ids = (*state.flow_ids, *ids)[-4:]
        state = state.model_copy(
            update={"flow_since": since, "flow_ids": run_ids, "peak_l_min": peak}
        )
        lasted = (reading.at - since).total_seconds() / 60
        if state.active or lasted < rule.minutes:
            return state, []
        values.update({"lasted_min": round(lasted, 1), "peak_l_min": round(peak, 3)})
        return state.model_copy(update={"active": True}), [
            signal(
                self.name,
                ctx,
                active=True,
                at=reading.at,
                explanation=(
                    f"burst suspected: flow ≥ {rule.flow_l_min:g} L/min for {lasted:.0f} min "
                    f"(peak {peak:.1f} L/min; threshold {rule.minutes:g} min)"
                ),
                evidence=run_ids,
                values=values,
                severity=Severity.CRITICAL,
            )
        ]


# --- water_backflow -----------------------------------------------------------------------


class BackflowState(BaseModel):
    model_config = _FROZEN

    meter: Register = Register()
    reverse_since: UtcDatetime | None = None
    reverse_ids: tuple[UUID, ...] = ()
    active: bool = False


class WaterBackflow(BaseDetector[BackflowState]):
    """Backflow: reverse flow ≤ -``min_flow_l_min`` for ``persist_min``, or the register ran back.

    Separating running back from a reset (see the module docstring): a decrease is
    *running back* when the register keeps at least half its value and the reverse flow it
    implies is plausible (below :func:`plausible_l_min`); only running back by more than
    ``register_drop_l`` raises. A reset (to less than half, or faster than any meter can
    turn) is a meter exchange or glitch and raises nothing. Forward flow (a reading with
    ``flow_l_min`` > -``min_flow_l_min``, or a register that rose again) clears.
    """

    name: ClassVar[str] = "water_backflow"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WATER_METER})
    state_model = BackflowState

    def step(
        self, state: BackflowState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[BackflowState, list[Signal]]:
        rule = ctx.rules.water_backflow
        before = state.meter
        reg, sample, what = advance_register(before, reading, ctx, _BURST_MIN_SAMPLE)
        if reg is before:
            return state, []
        state = state.model_copy(update={"meter": reg})
        values: dict[str, float | int | str] = {
            "min_flow_l_min": rule.min_flow_l_min,
            "register_drop_l": rule.register_drop_l,
            **_glitch_values(reg),
        }
        if what == "runback":
            drop = before.base_l - reg.base_l
            values["drop_l"] = round(drop, 3)
            if drop > rule.register_drop_l and not state.active:
                return state.model_copy(update={"active": True}), [
                    signal(
                        self.name,
                        ctx,
                        active=True,
                        at=reading.at,
                        explanation=(
                            f"backflow: the register ran back by {drop:.0f} L "
                            f"(from {before.base_l / 1000:.3f} to {reg.base_l / 1000:.3f} m³; "
                            f"more than {rule.register_drop_l:g} L, not a reset)"
                        ),
                        evidence=_ids(before.base_id, reading.id),
                        values=values,
                    )
                ]
            return state, []
        flow = reading.number("flow_l_min")
        if flow is not None and flow <= -rule.min_flow_l_min:
            since = state.reverse_since or reading.at
            ids = (*state.reverse_ids, reading.id)[-4:]
            state = state.model_copy(update={"reverse_since": since, "reverse_ids": ids})
            lasted = (reading.at - since).total_seconds() / 60
            if state.active or lasted < rule.persist_min:
                return state, []
            values.update({"flow_l_min": flow, "lasted_min": round(lasted, 1)})
            return state.model_copy(update={"active": True}), [
                signal(
                    self.name,
                    ctx,
                    active=True,
                    at=reading.at,
                    explanation=(
                        f"backflow: reverse flow {flow:.1f} L/min for {lasted:.0f} min "
                        f"(≥ {rule.min_flow_l_min:g} L/min for {rule.persist_min:g} min)"
                    ),
                    evidence=ids,
                    values=values,
                )
            ]
        forward = (flow is not None and flow > -rule.min_flow_l_min) or (
            sample is not None and sample.litres > 0
        )
        if not forward:
            return state, []
        was_active = state.active
        state = state.model_copy(update={"reverse_since": None, "reverse_ids": (), "active": False})
        if not was_active:
            return state, []
        return state, [
            signal(
                self.name,
                ctx,
                active=False,
                at=reading.at,
                explanation="water flows forward again",
                evidence=_ids(reading.id),
                values=values,
            )
        ]


# --- water_no_use -------------------------------------------------------------------------


class NoUseState(BaseModel):
    model_config = _FROZEN

    meter: Register = Register()
    #: Since when less than min_use_l was used, and the register (L) then.
    quiet_since: UtcDatetime | None = None
    quiet_base_l: float = 0.0
    quiet_id: UUID | None = None
    active: bool = False


class WaterNoUse(BaseDetector[NoUseState]):
    """Welfare check (meters tagged ``elderly_alone``): less than ``min_use_l`` in ``hours``.

    The quiet period starts at the last reading by which at least ``min_use_l`` had been
    used; a reset or glitch moves the register baseline but is not use. While the alarm is
    active any use (the register rising at all) clears it. Severity major.
    """

    name: ClassVar[str] = "water_no_use"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WATER_METER})
    state_model = NoUseState

    def applies_to(self, ctx: DeviceContext) -> bool:
        return _is_water(ctx) and "elderly_alone" in ctx.tags and ctx.rules.water_no_use.enabled

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(escalate_after=timedelta(hours=2))

    def step(
        self, state: NoUseState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[NoUseState, list[Signal]]:
        rule = ctx.rules.water_no_use
        reg, _, what = advance_register(state.meter, reading, ctx, timedelta(0))
        if reg is state.meter:
            return state, []
        state = state.model_copy(update={"meter": reg})
        volume = _volume_l(reading)
        if volume is None:
            return state, []
        if state.quiet_since is None or what == "first":
            return state.model_copy(
                update={"quiet_since": reading.at, "quiet_base_l": volume, "quiet_id": reading.id}
            ), []
        if what in ("reset", "runback", "glitch"):
            # not use: keep the quiet period, measure from the new register value
            return state.model_copy(update={"quiet_base_l": volume}), []
        used = volume - state.quiet_base_l
        quiet_h = (reading.at - state.quiet_since).total_seconds() / 3600
        values: dict[str, float | int | str] = {
            "used_l": round(used, 3),
            "quiet_h": round(quiet_h, 2),
            "min_use_l": rule.min_use_l,
            "hours": rule.hours,
            **_glitch_values(reg),
        }
        if (state.active and used > 0) or (not state.active and used >= rule.min_use_l):
            was_active = state.active
            state = state.model_copy(
                update={
                    "quiet_since": reading.at,
                    "quiet_base_l": volume,
                    "quiet_id": reading.id,
                    "active": False,
                }
            )
            if not was_active:
                return state, []
            return state, [
                signal(
                    self.name,
                    ctx,
                    active=False,
                    at=reading.at,
                    explanation=f"water used again: {used:.0f} L after {quiet_h:.1f} h",
                    evidence=_ids(reading.id),
                    values=values,
                    severity=Severity.MAJOR,
                )
            ]
        if state.active or quiet_h < rule.hours:
            return state, []
        return state.model_copy(update={"active": True}), [
            signal(
                self.name,
                ctx,
                active=True,
                at=reading.at,
                explanation=(
                    f"welfare check: only {used:.0f} L used in {quiet_h:.1f} h "
                    f"(less than {rule.min_use_l:g} L in {rule.hours:g} h)"
                ),
                evidence=_ids(state.quiet_id, reading.id),
                values=values,
                severity=Severity.MAJOR,
            )
        ]


WATER_DETECTORS: tuple[Detector[Any], ...] = (
    WaterNightFlow(),
    WaterContinuousFlow(),
    WaterBurst(),
    WaterBackflow(),
    WaterNoUse(),
)
