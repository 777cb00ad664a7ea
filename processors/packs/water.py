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
one arrives, so every verdict of the per-device detectors is reached on a reading;
their ``tick`` changes nothing (a meter that falls silent is ``device_offline``'s
business). Hence ticks at any time leave the signals unchanged.

``water_balance`` (:class:`WaterBalance`: master meter vs the sum of its sub-meters per
estate-local day) needs several meters at once: it is master-scoped and exported in
:data:`WATER_MASTER_DETECTORS`, apart from the per-device :data:`WATER_DETECTORS`. It is
judged by event time (a reading or a tick past the day's end + a margin).

States are frozen slotted dataclasses (``processors/detector.py``); parts that change
rarely (a register's counts, the nights judged) are nested so that a step rebuilds few
fields.
"""

from __future__ import annotations

from dataclasses import field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from devices.catalogue import DeviceKind
from devices.severity import Severity
from eventlog.envelope import UtcDatetime
from processors.alarm import AlarmPolicy, Signal
from processors.detector import (
    STATE_CONFIG,
    BaseDetector,
    Detector,
    DeviceContext,
    ReadingView,
    Scope,
    replace,
    signal,
    state,
)

__all__ = [
    "BALANCE_FORGET_AFTER",
    "BALANCE_MIN_COVERAGE",
    "BALANCE_SETTLE",
    "MAX_SAMPLE",
    "MIN_SAMPLE",
    "WATER_DETECTORS",
    "WATER_MASTER_DETECTORS",
    "BalanceState",
    "Register",
    "Sample",
    "WaterBackflow",
    "WaterBalance",
    "WaterBurst",
    "WaterContinuousFlow",
    "WaterNightFlow",
    "WaterNoUse",
    "advance_register",
    "plausible_l_min",
]

KIND = "water_meter.register"
_CONSUMES = frozenset({KIND})

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


@state
class RegisterCounts:
    """What a register went through: resets, implausible jumps, gaps, running back."""

    __pydantic_config__ = STATE_CONFIG

    resets: int = 0
    glitches: int = 0
    gaps: int = 0
    #: Running back (a plausible decrease, not a reset), as seen by water_backflow.
    runbacks: int = 0


@state
class Register:
    """Where a meter's register stands: the baseline flows are measured from."""

    __pydantic_config__ = STATE_CONFIG

    last_at: UtcDatetime | None = None
    base_at: UtcDatetime | None = None
    base_l: float = 0.0
    base_id: UUID | None = None
    #: Kept apart: it changes rarely, so moving the register rebuilds four fields, not eight.
    counts: RegisterCounts = RegisterCounts()

    @property
    def resets(self) -> int:
        return self.counts.resets

    @property
    def glitches(self) -> int:
        return self.counts.glitches

    @property
    def gaps(self) -> int:
        return self.counts.gaps

    @property
    def runbacks(self) -> int:
        return self.counts.runbacks


class Sample(NamedTuple):
    """The flow of one interval ``(start, end]`` of the register (not kept in states; a
    named tuple: built on every sample, it is the cheapest immutable record)."""

    start: datetime
    end: datetime
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
    at = reading.at
    if reg.last_at is not None and at <= reg.last_at:
        return reg, None, "duplicate"
    volume = _volume_l(reading)
    base_at = reg.base_at
    if volume is None:
        return Register(at, base_at, reg.base_l, reg.base_id, reg.counts), None, "wait"
    counts = reg.counts
    sample: Sample | None = None
    what: str | None = None
    if base_at is None:
        what = "first"
    else:
        elapsed = at - base_at
        minutes = elapsed.total_seconds() / 60
        delta = volume - reg.base_l
        cap = plausible_l_min(ctx)
        if delta < 0:
            if volume < reg.base_l / 2 or -delta / minutes > cap:
                what, counts = "reset", replace(counts, resets=counts.resets + 1)
            else:
                what, counts = "runback", replace(counts, runbacks=counts.runbacks + 1)
        elif delta / minutes > cap:
            what, counts = "glitch", replace(counts, glitches=counts.glitches + 1)
        elif elapsed > MAX_SAMPLE:
            what, counts = "gap", replace(counts, gaps=counts.gaps + 1)
        elif elapsed < min_sample:
            return Register(at, base_at, reg.base_l, reg.base_id, counts), None, "wait"
        else:
            sample = Sample(base_at, at, delta, reg.base_id, reading.id)
    return Register(at, at, volume, reading.id, counts), sample, what


def _glitch_values(reg: Register) -> dict[str, float | int | str]:
    counts = reg.counts
    return {
        "register_resets": counts.resets,
        "register_glitches": counts.glitches,
        "gaps": counts.gaps,
    }


def _ids(*ids: UUID | None) -> tuple[UUID, ...]:
    return tuple(dict.fromkeys(i for i in ids if i is not None))


def _is_water(ctx: DeviceContext) -> bool:
    return ctx.kind == DeviceKind.WATER_METER


# --- water_night_flow ---------------------------------------------------------------------


@state
class NightWindow:
    """The night being measured: its lowest sample so far and how much of it is covered."""

    __pydantic_config__ = STATE_CONFIG

    #: Estate-local date of the window's start.
    night: date
    min_l_h: float
    min_ids: tuple[UUID, ...]
    #: Hours of the window covered by samples so far.
    covered_h: float


@state
class NightRecord:
    """The nights judged: the last one, the run of leak nights ending with it, tallies."""

    __pydantic_config__ = STATE_CONFIG

    last_night: date | None = None
    streak: int = 0
    streak_min_l_h: float | None = None
    streak_ids: tuple[UUID, ...] = ()
    nights_judged: int = 0
    nights_incomplete: int = 0
    longest_streak: int = 0


@state
class NightFlowState:
    """The register, the night being measured, the nights judged (kept apart: a reading
    outside the night window rebuilds three fields, not thirteen)."""

    __pydantic_config__ = STATE_CONFIG

    meter: Register = Register()
    window: NightWindow | None = None
    record: NightRecord = NightRecord()

    @property
    def night(self) -> date | None:
        return None if self.window is None else self.window.night

    @property
    def last_night(self) -> date | None:
        return self.record.last_night

    @property
    def streak(self) -> int:
        return self.record.streak

    @property
    def nights_judged(self) -> int:
        return self.record.nights_judged

    @property
    def nights_incomplete(self) -> int:
        return self.record.nights_incomplete

    @property
    def longest_streak(self) -> int:
        return self.record.longest_streak


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
        window, record = state.window, state.record
        start, end = rule.night_start, rule.night_end
        signals: list[Signal] = []
        if sample is not None:
            mid = sample.mid
            if window is not None and mid >= _night_end(window.night, ctx, start, end):
                record, window = self._judge(window, record, reg, reading, ctx, signals), None
            night = _night_of(mid, ctx, start, end)
            if night is not None:
                window = self._add(window, night, sample)
        if (
            window is not None
            and reg.base_at is not None
            and reg.base_at >= _night_end(window.night, ctx, start, end)
        ):
            record, window = self._judge(window, record, reg, reading, ctx, signals), None
        return NightFlowState(reg, window, record), signals

    @staticmethod
    def _add(window: NightWindow | None, night: date, sample: Sample) -> NightWindow:
        flow = sample.l_h
        if window is None or window.night != night:  # the first sample of a night
            return NightWindow(night, flow, _ids(sample.first_id, sample.last_id), sample.hours)
        covered = window.covered_h + sample.hours
        if flow < window.min_l_h:
            return NightWindow(night, flow, _ids(sample.first_id, sample.last_id), covered)
        return NightWindow(night, window.min_l_h, window.min_ids, covered)

    def _judge(
        self,
        window: NightWindow,
        record: NightRecord,
        reg: Register,
        reading: ReadingView,
        ctx: DeviceContext,
        signals: list[Signal],
    ) -> NightRecord:
        rule = ctx.rules.water_night_flow
        night, minimum = window.night, window.min_l_h
        span = f"{rule.night_start:%H:%M} and {rule.night_end:%H:%M}"
        if window.covered_h < rule.window_h / 2:
            return replace(
                record,
                last_night=night,
                streak=0,
                streak_min_l_h=None,
                streak_ids=(),
                nights_incomplete=record.nights_incomplete + 1,
            )
        consecutive = record.last_night is not None and night - record.last_night == timedelta(
            days=1
        )
        run: int
        run_min: float | None
        ids: tuple[UUID, ...]
        if minimum >= rule.min_flow_l_h:
            run = record.streak + 1 if consecutive else 1
            prior = record.streak_min_l_h if consecutive and record.streak else None
            run_min = minimum if prior is None else min(prior, minimum)
            ids = ((*record.streak_ids, *window.min_ids) if run > 1 else window.min_ids)[
                -2 * rule.nights :
            ]
        else:
            run, run_min, ids = 0, None, ()
        record = NightRecord(
            last_night=night,
            streak=run,
            streak_min_l_h=run_min,
            streak_ids=ids,
            nights_judged=record.nights_judged + 1,
            nights_incomplete=record.nights_incomplete,
            longest_streak=max(record.longest_streak, run),
        )
        values: dict[str, float | int | str] = {
            "night": night.isoformat(),
            "night_min_l_h": round(minimum, 3),
            "min_flow_l_h": rule.min_flow_l_h,
            "consecutive_nights": run,
            "nights": rule.nights,
            **_glitch_values(reg),
        }
        if run >= rule.nights:
            assert run_min is not None
            explanation = (
                f"leak suspected: flow never fell below {run_min:.1f} L/h between {span} "
                f"on {run} consecutive nights (threshold {rule.min_flow_l_h:g} L/h, "
                f"{rule.nights} nights)"
            )
            evidence = ids
            active = True
        elif run:
            explanation = (
                f"night of {night}: flow never fell below {minimum:.1f} L/h between {span}; "
                f"{run} of {rule.nights} consecutive nights needed"
            )
            evidence, active = ids, False
        else:
            explanation = (
                f"night of {night}: flow fell to {minimum:.1f} L/h between {span} "
                f"(below {rule.min_flow_l_h:g} L/h): no leak"
            )
            evidence, active = _ids(reading.id), False
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
        return record


# --- water_continuous_flow ----------------------------------------------------------------


@state
class ContinuousFlowState:
    __pydantic_config__ = STATE_CONFIG

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

    @staticmethod
    def _values(flow_l_h: float, reg: Register, ctx: DeviceContext) -> dict[str, float | int | str]:
        rule = ctx.rules.water_continuous_flow
        return {
            "flow_l_h": round(flow_l_h, 3),
            "min_flow_l_h": rule.min_flow_l_h,
            "hours": rule.hours,
            **_glitch_values(reg),
        }

    def step(
        self, state: ContinuousFlowState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[ContinuousFlowState, list[Signal]]:
        rule = ctx.rules.water_continuous_flow
        reg, sample, what = advance_register(state.meter, reading, ctx)
        if reg is state.meter:
            return state, []
        if what in ("reset", "runback", "glitch", "gap"):
            return ContinuousFlowState(reg, active=state.active), []
        if sample is None:
            since, run_min_l_h, run_ids = state.flowing_since, state.run_min_l_h, state.run_ids
            return ContinuousFlowState(reg, since, run_min_l_h, run_ids, state.active), []
        flow = sample.l_h
        if flow < rule.min_flow_l_h:
            if not state.active:
                return ContinuousFlowState(reg), []
            values = self._values(flow, reg, ctx)
            return ContinuousFlowState(reg), [
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
        run_min = flow if state.run_min_l_h is None else min(state.run_min_l_h, flow)
        ids = (
            (*state.run_ids, sample.last_id)[-3:]
            if state.run_ids
            else _ids(sample.first_id, sample.last_id)
        )
        hours = (sample.end - since).total_seconds() / 3600
        if state.active or hours < rule.hours:
            return ContinuousFlowState(reg, since, run_min, ids, state.active), []
        values = self._values(flow, reg, ctx)
        values.update({"flowing_h": round(hours, 2), "lowest_l_h": round(run_min, 3)})
        return ContinuousFlowState(reg, since, run_min, ids, active=True), [
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


@state
class BurstState:
    __pydantic_config__ = STATE_CONFIG

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

    @staticmethod
    def _values(
        flow_l_min: float, reg: Register, ctx: DeviceContext
    ) -> dict[str, float | int | str]:
        rule = ctx.rules.water_burst
        return {
            "flow_l_min": round(flow_l_min, 3),
            "threshold_l_min": rule.flow_l_min,
            "minutes": rule.minutes,
            **_glitch_values(reg),
        }

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(escalate_after=timedelta(minutes=30))

    def step(
        self, state: BurstState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[BurstState, list[Signal]]:
        rule = ctx.rules.water_burst
        reg, sample, what = advance_register(state.meter, reading, ctx, _BURST_MIN_SAMPLE)
        if reg is state.meter:
            return state, []
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
            return BurstState(reg, active=state.active), []
        else:
            since, ids, peak = state.flow_since, state.flow_ids, state.peak_l_min
            return BurstState(reg, since, ids, peak, state.active), []
        if not high:
            if not state.active:
                return BurstState(reg), []
            values = self._values(flow, reg, ctx)
            return BurstState(reg), [
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
        lasted = (reading.at - since).total_seconds() / 60
        if state.active or lasted < rule.minutes:
            return BurstState(reg, since, run_ids, peak, state.active), []
        values = self._values(flow, reg, ctx)
        values.update({"lasted_min": round(lasted, 1), "peak_l_min": round(peak, 3)})
        return BurstState(reg, since, run_ids, peak, active=True), [
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


@state
class BackflowState:
    __pydantic_config__ = STATE_CONFIG

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
        flow = reading.number("flow_l_min")
        reverse = flow is not None and flow <= -rule.min_flow_l_min
        forward = (flow is not None and flow > -rule.min_flow_l_min) or (
            sample is not None and sample.litres > 0
        )
        if forward and not reverse and not state.active and what != "runback":
            return BackflowState(reg), []  # the usual case: flowing forward, nothing to say
        state = replace(state, meter=reg)
        values: dict[str, float | int | str] = {
            "min_flow_l_min": rule.min_flow_l_min,
            "register_drop_l": rule.register_drop_l,
            **_glitch_values(reg),
        }
        if what == "runback":
            drop = before.base_l - reg.base_l
            values["drop_l"] = round(drop, 3)
            if drop > rule.register_drop_l and not state.active:
                return replace(state, active=True), [
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
        if reverse and flow is not None:
            since = state.reverse_since or reading.at
            ids = (*state.reverse_ids, reading.id)[-4:]
            state = replace(state, reverse_since=since, reverse_ids=ids)
            lasted = (reading.at - since).total_seconds() / 60
            if state.active or lasted < rule.persist_min:
                return state, []
            values.update({"flow_l_min": flow, "lasted_min": round(lasted, 1)})
            return replace(state, active=True), [
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
        if not forward:
            return state, []
        was_active = state.active
        state = replace(state, reverse_since=None, reverse_ids=(), active=False)
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


@state
class NoUseState:
    __pydantic_config__ = STATE_CONFIG

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
        state = replace(state, meter=reg)
        volume = _volume_l(reading)
        if volume is None:
            return state, []
        if state.quiet_since is None or what == "first":
            return replace(
                state, quiet_since=reading.at, quiet_base_l=volume, quiet_id=reading.id
            ), []
        if what in ("reset", "runback", "glitch"):
            # not use: keep the quiet period, measure from the new register value
            return replace(state, quiet_base_l=volume), []
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
            state = replace(
                state,
                quiet_since=reading.at,
                quiet_base_l=volume,
                quiet_id=reading.id,
                active=False,
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
        return replace(state, active=True), [
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


# --- water_balance ------------------------------------------------------------------------

#: A day is judged once event time is this far past its local midnight: every sample that
#: ends by then (an interval is at most :data:`MAX_SAMPLE` long) has arrived.
BALANCE_SETTLE = MAX_SAMPLE
#: Every meter heard before a day ended must be covered by samples for at least this share
#: of the day for the day to be judged (a meter first heard during the day cannot be).
BALANCE_MIN_COVERAGE = 0.9
#: A sub-meter not heard for this long is forgotten (removed, or replaced under another id).
BALANCE_FORGET_AFTER = timedelta(days=7)


@state
class DayUse:
    """One meter's consumption in one estate-local day, from the samples that fall in it."""

    __pydantic_config__ = STATE_CONFIG

    litres: float = 0.0
    #: Seconds of the day covered by samples.
    covered_s: float = 0.0
    #: The first and last readings of the samples (evidence).
    first_id: UUID | None = None
    last_id: UUID | None = None


@state
class BalanceMeter:
    """A meter the balance has heard from: its register, and since when it is known."""

    __pydantic_config__ = STATE_CONFIG

    register: Register
    since: UtcDatetime


@state
class BalanceState:
    """Every meter of the balance (the master under its own id), the use per open day and
    meter, and the run of lossy days."""

    __pydantic_config__ = STATE_CONFIG

    meters: dict[str, BalanceMeter] = field(default_factory=dict)
    #: Days not judged yet (estate-local dates) → meter id → use.
    days: dict[date, dict[str, DayUse]] = field(default_factory=dict)
    #: The last day judged (complete or not), the run of lossy days ending with it.
    last_day: date | None = None
    streak: int = 0
    streak_ids: tuple[UUID, ...] = ()
    active: bool = False
    days_judged: int = 0
    days_incomplete: int = 0


_NO_USE = DayUse()


def _day_end(day: date, ctx: DeviceContext) -> datetime:
    """The local midnight that ends ``day``, in UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ctx.tz).astimezone(UTC)


def _split_by_day(
    start: datetime, end: datetime, ctx: DeviceContext
) -> list[tuple[date, float, float]]:
    """``(day, share of the interval, seconds)`` for each estate-local day ``(start, end]``
    overlaps; the volume of an interval is spread evenly over its time."""
    total = (end - start).total_seconds()
    out: list[tuple[date, float, float]] = []
    day = start.astimezone(ctx.tz).date()
    while start < end:
        stop = min(_day_end(day, ctx), end)
        seconds = (stop - start).total_seconds()
        if seconds > 0:
            out.append((day, seconds / total, seconds))
        start, day = stop, day + timedelta(days=1)
    return out


class WaterBalance(BaseDetector[BalanceState]):
    """``water_balance``: a master meter against the sum of its sub-meters, per estate-local
    day (losses in common pipes, unmetered draws).

    Master-scoped (see :attr:`BaseDetector.scope`): one state per master, fed the master's
    readings and those of every meter whose ``meter_of`` names it; ``ReadingView.device``
    tells them apart (a reading without it counts as the master's). Which meters are
    masters is the runner's routing (the registry), so ``applies_to`` only asks for a
    water meter whose rule is enabled.

    * Each meter's register goes through :func:`advance_register`: duplicates change
      nothing; resets, rollovers, run-backs, implausible jumps and gaps longer than
      :data:`MAX_SAMPLE` are never consumption (their interval is simply not covered).
      A sample's volume is spread over the local days it overlaps, in proportion to time.
    * A day is judged once event time (a reading of any of the meters, or a tick) reaches
      its local midnight + :data:`BALANCE_SETTLE`; the signal is stamped with that due
      time, so tick placement does not change it.
    * *Incomplete* (no signal; the run of days restarts; ``days_incomplete`` counts it): a
      meter heard before the day ended covered less than :data:`BALANCE_MIN_COVERAGE` of
      the day (so the first day of a meter, or of the state, is never judged), or no
      sub-meter reported at all.
      A silent household would otherwise count as water lost. Days where the master used
      less than ``min_volume_m3`` are skipped the same way.
    * A complete day is *lossy* when master − sum of sub-meters ≥ ``loss_m3`` and ≥
      ``loss_pct`` % of the master. Each complete day emits one signal: active once
      ``windows`` lossy days in a row are reached (and on every lossy day after that),
      inactive otherwise: only a balanced day clears. Evidence: the master's first and
      last readings of the day (of the lossy days in a row when active).
    * A sub-meter not heard for :data:`BALANCE_FORGET_AFTER` is forgotten (until then,
      its silence makes the days incomplete).
    """

    name: ClassVar[str] = "water_balance"
    consumes: ClassVar[frozenset[str]] = _CONSUMES
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WATER_METER})
    scope: ClassVar[Scope] = "master"
    state_model = BalanceState
    scheduled: ClassVar[bool] = True

    def step(
        self, state: BalanceState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[BalanceState, list[Signal]]:
        device = reading.device or ctx.device
        known = state.meters.get(device)
        before = Register() if known is None else known.register
        reg, sample, _ = advance_register(before, reading, ctx, timedelta(0))
        if reg is before:
            return state, []  # a duplicate or a straggler: nothing new
        state, signals = self.tick(state, reading.at, ctx)  # days due before this reading
        since = reading.at if known is None else known.since
        meters = {**state.meters, device: BalanceMeter(register=reg, since=since)}
        days = state.days
        if sample is not None:
            days = dict(days)
            for day, share, seconds in _split_by_day(sample.start, sample.end, ctx):
                if state.last_day is not None and day <= state.last_day:
                    continue  # already judged (only a straggler can reach back that far)
                use = days.get(day, {})
                was = use.get(device, _NO_USE)
                days[day] = {
                    **use,
                    device: DayUse(
                        litres=was.litres + sample.litres * share,
                        covered_s=was.covered_s + seconds,
                        first_id=was.first_id or sample.first_id,
                        last_id=sample.last_id,
                    ),
                }
        return replace(state, meters=meters, days=days), signals

    def tick_due(self, state: BalanceState, ctx: DeviceContext) -> datetime | None:
        """When the earliest open day can be judged."""
        return _day_end(min(state.days), ctx) + BALANCE_SETTLE if state.days else None

    def tick(
        self, state: BalanceState, now: datetime, ctx: DeviceContext
    ) -> tuple[BalanceState, list[Signal]]:
        signals: list[Signal] = []
        for day in sorted(state.days):
            due = _day_end(day, ctx) + BALANCE_SETTLE
            if now < due:
                break
            state = self._judge(state, day, due, ctx, signals)
        return state, signals

    def _judge(
        self,
        state: BalanceState,
        day: date,
        due: datetime,
        ctx: DeviceContext,
        signals: list[Signal],
    ) -> BalanceState:
        rule = ctx.rules.water_balance
        use = state.days[day]
        days = {d: u for d, u in state.days.items() if d != day}
        meters = {
            device: meter
            for device, meter in state.meters.items()
            if device == ctx.device
            or (
                meter.register.last_at is not None
                and due - meter.register.last_at < BALANCE_FORGET_AFTER
            )
        }
        start, end = _day_end(day - timedelta(days=1), ctx), _day_end(day, ctx)
        master = use.get(ctx.device)
        subs = {d: u for d, u in use.items() if d != ctx.device}
        day_s = (end - start).total_seconds()  # 23 or 25 h on a daylight-saving change
        short = [
            device
            for device, meter in meters.items()
            if meter.since < end
            and use.get(device, _NO_USE).covered_s < BALANCE_MIN_COVERAGE * day_s
        ]
        master_m3 = 0.0 if master is None else master.litres / 1000
        skipped = master is None or not subs or bool(short) or master_m3 < rule.min_volume_m3
        base = replace(state, meters=meters, days=days, last_day=day)
        if skipped:
            return replace(base, streak=0, streak_ids=(), days_incomplete=state.days_incomplete + 1)
        assert master is not None
        subs_m3 = sum(u.litres for u in subs.values()) / 1000
        loss_m3 = master_m3 - subs_m3
        loss_pct = 100 * loss_m3 / master_m3
        lossy = loss_m3 >= rule.loss_m3 and loss_pct >= rule.loss_pct
        consecutive = state.last_day == day - timedelta(days=1)
        ids = _ids(master.first_id, master.last_id)
        run = (state.streak + 1 if consecutive else 1) if lossy else 0
        run_ids = ((*state.streak_ids, *ids) if run > 1 else ids)[-2 * rule.windows :]
        active = run >= rule.windows or (state.active and lossy)  # only a balanced day clears
        numbers = (
            f"master {master_m3:.1f} m³, sub-meters {subs_m3:.1f} m³ on {day.isoformat()}: "
            f"{loss_m3:.1f} m³ ({loss_pct:.0f} %) unaccounted"
        )
        limits = f"≥ {rule.loss_m3:g} m³ and ≥ {rule.loss_pct:g} % of the master"
        if active:
            explanation = (
                f"{numbers} ({limits}; {run} day{'s' if run > 1 else ''} in a row): "
                "a loss in common pipes or an unmetered draw"
            )
        elif lossy:
            explanation = f"{numbers} ({limits}); {run} of {rule.windows} days in a row needed"
        else:
            explanation = f"{numbers}: balanced (a loss is {limits})"
        signals.append(
            signal(
                self.name,
                ctx,
                active=active,
                at=due,
                explanation=explanation,
                evidence=run_ids if active else ids,
                values={
                    "day": day.isoformat(),
                    "master_m3": round(master_m3, 3),
                    "submeters_m3": round(subs_m3, 3),
                    "submeters": len(subs),
                    "loss_m3": round(loss_m3, 3),
                    "loss_pct": round(loss_pct, 2),
                    "consecutive_days": run,
                    "windows": rule.windows,
                },
            )
        )
        return replace(
            base,
            streak=run,
            streak_ids=run_ids if run else (),
            active=active,
            days_judged=state.days_judged + 1,
        )


WATER_DETECTORS: tuple[Detector[Any], ...] = (
    WaterNightFlow(),
    WaterContinuousFlow(),
    WaterBurst(),
    WaterBackflow(),
    WaterNoUse(),
)

#: Master-scoped water detectors (one state per master meter, fed its sub-meters too): a
#: runner must route them by scope (``processors/engine.py`` does), so they are kept out
#: of :data:`WATER_DETECTORS`, which every per-device loop can run as it is.
WATER_MASTER_DETECTORS: tuple[Detector[Any], ...] = (WaterBalance(),)
