"""The waste pack: detectors over smart-bin fill readings (``waste_bin.level``).

Every detector here is pure (see ``processors/detector.py``): ``step`` for each
reading, ``tick`` for event time, a frozen slotted dataclass state that round-trips
through JSON (``dump_state`` / ``load_state``), and an :class:`AlarmPolicy` derived
from the device's resolved rules.

Decisions common to the pack:

* **One signal per evaluation.** ``step`` reports the condition (active or not) for
  every accepted reading that carries what the detector needs; the alarm machine
  deduplicates. ``tick`` only reports what time alone changes (``bin_not_emptied``'s
  deadline), stamped with the due time, never with ``now``: ticking more or less
  often, at any time not after the next reading, yields the same signals.
* **Idempotent steps.** Each state keeps the time and id of the last reading it
  used; a reading not newer than that one (a redelivery, the same id twice, an
  out-of-order straggler) changes nothing and reports nothing.
* **Fill levels are percent** (ingest normalises ``bin_ultrasonic_fraction``).
  Times in explanations are estate-local ``HH:MM`` (``MM-DD HH:MM`` when the day
  differs from the reading's).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from devices.catalogue import DeviceKind
from eventlog.envelope import UtcDatetime
from processors.alarm import AlarmPolicy, Signal
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
from processors.rules import BinOverflowRule

__all__ = [
    "EMPTIED_DROP_PCT",
    "FIRE_CLEAR_MARGIN_C",
    "JUMP_PCT",
    "JUMP_WITHIN",
    "KIND",
    "WASTE_DETECTORS",
    "BinFillForecast",
    "BinFireRisk",
    "BinNotEmptied",
    "BinOverflow",
    "BinStuckSensor",
]

#: The envelope kind every waste detector consumes.
KIND = "waste_bin.level"

#: A drop of at least this many percentage points between two readings is a collection
#: (partial or full emptying): the fill forecast starts a new history. Compaction and
#: ultrasonic noise move a reading by a few points only.
EMPTIED_DROP_PCT = 20.0
#: ``bin_fire_risk`` clears only once the temperature is this far below the level that
#: triggered it (``temp_c``, or the temperature at a rapid rise if lower).
FIRE_CLEAR_MARGIN_C = 5.0
#: How long ``bin_fire_risk`` must stay below its clearing level before the alert clears.
FIRE_CLEAR_AFTER = timedelta(minutes=30)
#: ``bin_stuck_sensor``'s implausible-value check: a fill rising by more than ``JUMP_PCT``
#: percentage points within ``JUMP_WITHIN`` (nobody fills half a bin in minutes; a lid
#: left open, an object on the transducer or a reflection does).
JUMP_PCT = 50.0
JUMP_WITHIN = timedelta(minutes=10)
#: ``bin_stuck_sensor`` clears after an hour of plausible, changing readings.
STUCK_CLEAR_AFTER = timedelta(hours=1)


# --- helpers ----------------------------------------------------------------------------------


def _num(value: float) -> str:
    """``94.0`` → ``94``, ``93.46`` → ``93.5``."""
    return f"{value:.1f}".removesuffix(".0")


def _clock(at: datetime, ctx: DeviceContext, ref: datetime | None = None) -> str:
    """Estate-local time of ``at``; with the date when it differs from ``ref``'s."""
    local = at.astimezone(ctx.tz)
    if ref is not None and ref.astimezone(ctx.tz).date() != local.date():
        return local.strftime("%m-%d %H:%M")
    return local.strftime("%H:%M")


@state
class _State:
    """What every waste detector state holds: the last reading it used."""

    __pydantic_config__ = STATE_CONFIG

    last_at: UtcDatetime | None = None
    last_id: UUID | None = None

    def is_new(self, reading: ReadingView) -> bool:
        return reading.kind == KIND and (self.last_at is None or reading.at > self.last_at)


# --- fullness (shared by bin_overflow and bin_not_emptied) -------------------------------------


@state
class Fullness:
    """Whether a bin is full, with hysteresis.

    A run of readings ≥ ``high_pct`` starts at ``since``; a reading still ≥ ``high_pct``
    at least ``persist_min`` after it *confirms* the bin full. Before confirmation a
    reading below ``high_pct`` ends the run (a blip); once confirmed only a reading
    below ``low_pct`` does (the bin was emptied): compaction or a sensor dip to 80 %
    does not count as a collection.
    """

    __pydantic_config__ = STATE_CONFIG

    since: UtcDatetime | None = None
    since_id: UUID | None = None
    confirmed: bool = False
    fill: float | None = None

    def update(self, fill: float, at: datetime, reading: UUID, rule: BinOverflowRule) -> Fullness:
        if fill < rule.low_pct:
            return Fullness(fill=fill)
        if fill >= rule.high_pct:
            since, since_id = (self.since, self.since_id) if self.since else (at, reading)
            confirmed = self.confirmed or at - since >= span_min(rule.persist_min)
            return Fullness(since=since, since_id=since_id, confirmed=confirmed, fill=fill)
        if self.confirmed:
            return replace(self, fill=fill)
        return Fullness(fill=fill)

    @property
    def full(self) -> bool:
        """Full now: confirmed, or in a run that is not confirmed yet."""
        return self.since is not None


# --- bin_overflow ------------------------------------------------------------------------------


@state
class OverflowState(_State):
    fullness: Fullness = Fullness()


class BinOverflow(BaseDetector[OverflowState]):
    """``bin_overflow``: fill ≥ ``high_pct`` (raised after ``persist_min`` by the alarm
    machine); stays active until the bin is emptied below ``low_pct``."""

    name: ClassVar[str] = "bin_overflow"
    consumes: ClassVar[frozenset[str]] = frozenset({KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WASTE_BIN})
    state_model = OverflowState

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(raise_after=timedelta(minutes=ctx.rules.bin_overflow.persist_min))

    def step(
        self, state: OverflowState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[OverflowState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        fill = reading.number("fill_pct")
        if fill is None:
            return replace(state, last_at=reading.at, last_id=reading.id), []
        rule, before = ctx.rules.bin_overflow, state.fullness
        after = before.update(fill, reading.at, reading.id, rule)
        where, at = ctx.device, reading.at
        if after.since is not None:
            since = _clock(after.since, ctx, at)
            if fill >= rule.high_pct:
                text = f"{where} at {_num(fill)} % (≥ {_num(rule.high_pct)} %) since {since}"
            else:
                text = (
                    f"{where} at {_num(fill)} % (full since {since}; "
                    f"clears below {_num(rule.low_pct)} %)"
                )
            evidence = tuple(dict.fromkeys(i for i in (after.since_id, reading.id) if i))
        elif before.full and fill < rule.low_pct:
            text = (
                f"{where} emptied at {_clock(at, ctx)}: {_num(fill)} % (< {_num(rule.low_pct)} %)"
            )
            evidence = (reading.id,)
        else:
            text = f"{where} at {_num(fill)} % (< {_num(rule.high_pct)} %)"
            evidence = (reading.id,)
        out = signal(
            self.name,
            ctx,
            active=after.full,
            at=at,
            explanation=text,
            evidence=evidence,
            values={"fill_pct": fill, "high_pct": rule.high_pct, "low_pct": rule.low_pct},
            severity="warning",
        )
        return replace(state, last_at=reading.at, last_id=reading.id, fullness=after), [out]


# --- bin_not_emptied ---------------------------------------------------------------------------


@state
class NotEmptiedState(_State):
    fullness: Fullness = Fullness()
    #: The overdue signal of the current full period was reported (by tick or step).
    overdue_reported: bool = False


class BinNotEmptied(BaseDetector[NotEmptiedState]):
    """``bin_not_emptied``: a bin confirmed full (``bin_overflow``'s thresholds) was not
    emptied (below ``bin_overflow.low_pct``) within ``sla_h`` of becoming full."""

    name: ClassVar[str] = "bin_not_emptied"
    consumes: ClassVar[frozenset[str]] = frozenset({KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WASTE_BIN})
    state_model = NotEmptiedState
    scheduled: ClassVar[bool] = True

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        sla = timedelta(hours=ctx.rules.bin_not_emptied.sla_h)
        return AlarmPolicy(escalate_after=sla / 2)

    def _due(self, state: NotEmptiedState, ctx: DeviceContext) -> datetime | None:
        full = state.fullness
        if not full.confirmed or full.since is None:
            return None
        return full.since + span_h(ctx.rules.bin_not_emptied.sla_h)

    def _overdue(
        self, state: NotEmptiedState, due: datetime, ctx: DeviceContext, at: datetime | None = None
    ) -> Signal:
        """The overdue signal (at ``due``, or at ``at``: the reading that noticed it)."""
        full = state.fullness
        assert full.since is not None and full.fill is not None
        sla = ctx.rules.bin_not_emptied.sla_h
        return signal(
            self.name,
            ctx,
            active=True,
            at=at or due,
            explanation=(
                f"{ctx.device} full since {_clock(full.since, ctx, due)} and not emptied within "
                f"{_num(sla)} h (last {_num(full.fill)} %)"
            ),
            evidence=tuple(i for i in (full.since_id, state.last_id) if i),
            values={"fill_pct": full.fill, "sla_h": sla},
            severity="major",
        )

    def tick_due(self, state: NotEmptiedState, ctx: DeviceContext) -> datetime | None:
        return None if state.overdue_reported else self._due(state, ctx)

    def tick(
        self, state: NotEmptiedState, now: datetime, ctx: DeviceContext
    ) -> tuple[NotEmptiedState, list[Signal]]:
        due = self._due(state, ctx)
        if due is None or state.overdue_reported or now < due:
            return state, []
        out = self._overdue(state, due, ctx)
        return replace(state, overdue_reported=True), [out]

    def step(
        self, state: NotEmptiedState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[NotEmptiedState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        fill = reading.number("fill_pct")
        state, signals = self.tick(state, reading.at, ctx)  # a deadline before this reading
        if fill is None:
            return replace(state, last_at=reading.at, last_id=reading.id), signals
        rule, sla = ctx.rules.bin_overflow, ctx.rules.bin_not_emptied.sla_h
        before = state.fullness
        after = before.update(fill, reading.at, reading.id, rule)
        state = replace(state, last_at=reading.at, last_id=reading.id, fullness=after)
        due, at = self._due(state, ctx), reading.at
        overdue = due is not None and at >= due
        if after.since is None:
            state = replace(state, overdue_reported=False)
        if overdue:
            assert due is not None
            signals.append(self._overdue(state, due, ctx, at))
            return replace(state, overdue_reported=True), signals
        if after.since is not None:
            by = after.since + span_h(sla)
            text = (
                f"{ctx.device} at {_num(fill)} %: full since {_clock(after.since, ctx, at)}, "
                f"to be emptied by {_clock(by, ctx, at)}"
            )
        elif before.confirmed and after.since is None and fill < rule.low_pct:
            text = f"{ctx.device} emptied at {_clock(at, ctx)}: {_num(fill)} %"
        else:
            text = f"{ctx.device} at {_num(fill)} %: not full"
        signals.append(
            signal(
                self.name,
                ctx,
                active=False,
                at=at,
                explanation=text,
                evidence=(reading.id,),
                values={"fill_pct": fill, "sla_h": sla},
                severity="major",
            )
        )
        return state, signals


# --- bin_fill_forecast -------------------------------------------------------------------------


@state
class FillPoint:
    __pydantic_config__ = STATE_CONFIG

    at: UtcDatetime
    fill: float
    id: UUID


@state
class ForecastState(_State):
    #: Readings since the last emptying, within the rule's window.
    points: tuple[FillPoint, ...] = ()


def _slope_per_h(points: tuple[FillPoint, ...]) -> float | None:
    """Least-squares slope of fill over time, in percentage points per hour."""
    t0 = points[0].at
    xs = [(p.at - t0).total_seconds() / 3600 for p in points]
    ys = [p.fill for p in points]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


class BinFillForecast(BaseDetector[ForecastState]):
    """``bin_fill_forecast``: the fill rate (least squares over the readings of the last
    ``window_h`` since the last emptying) predicts ``bin_overflow.high_pct`` within
    ``horizon_h`` for a bin at least ``min_fill_pct`` full: an info signal for planning the
    collection round (a rate measured in the day overstates the night's, so emptier bins
    are left to the daily round).

    Emptying (a drop of ``EMPTIED_DROP_PCT`` points, or below ``bin_overflow.low_pct``
    after having been higher) starts a new history, so the rate never spans a
    collection. A bin already at ``high_pct`` is ``bin_overflow``'s business: inactive.
    """

    name: ClassVar[str] = "bin_fill_forecast"
    consumes: ClassVar[frozenset[str]] = frozenset({KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WASTE_BIN})
    state_model = ForecastState

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def step(
        self, state: ForecastState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[ForecastState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        fill = reading.number("fill_pct")
        if fill is None:
            return replace(state, last_at=reading.at, last_id=reading.id), []
        rule, high = ctx.rules.bin_fill_forecast, ctx.rules.bin_overflow.high_pct
        low = ctx.rules.bin_overflow.low_pct
        at, points = reading.at, state.points
        emptied = bool(points) and (
            points[-1].fill - fill >= EMPTIED_DROP_PCT or (fill < low <= points[-1].fill)
        )
        start = at - span_h(rule.window_h)
        old = 0  # points are in time order (is_new): the window drops a prefix
        while old < len(points) and points[old].at < start:
            old += 1
        kept = () if emptied else points[old:]
        points = (*kept, FillPoint(at=at, fill=fill, id=reading.id))
        state = replace(state, last_at=reading.at, last_id=reading.id, points=points)
        values: dict[str, float | int | str] = {"fill_pct": fill, "high_pct": high}
        active, hours, rate = False, None, None
        if emptied:
            text = f"{ctx.device} emptied at {_clock(at, ctx)}: {_num(fill)} %"
        elif fill >= high:
            text = f"{ctx.device} already full at {_num(fill)} % (≥ {_num(high)} %)"
        elif len(points) < rule.min_readings:
            text = (
                f"{ctx.device} at {_num(fill)} %: {len(points)} of {rule.min_readings} "
                "readings needed for a forecast"
            )
        else:
            rate = _slope_per_h(points)
            if rate is None or rate < max(rule.min_rate_pct_h, 1e-9):
                shown = _num(rate) if rate is not None else "0"
                text = f"{ctx.device} at {_num(fill)} %: not filling ({shown} %/h)"
            else:
                hours = (high - fill) / rate
                active = hours <= rule.horizon_h and fill >= rule.min_fill_pct
                verb = "full within" if active else "full in"
                text = (
                    f"{ctx.device} {verb} {hours:.1f} h at {rate:.1f} %/h "
                    f"(now {_num(fill)} %, full at {_num(high)} %)"
                )
        if rate is not None:
            values["rate_pct_h"] = round(rate, 3)
        if hours is not None:
            values["hours_to_full"] = round(hours, 2)
        out = signal(
            self.name,
            ctx,
            active=active,
            at=at,
            explanation=text,
            evidence=tuple(p.id for p in points) if active else (reading.id,),
            values=values,
            severity="info",
        )
        return state, [out]


# --- bin_fire_risk -----------------------------------------------------------------------------


@state
class FireState(_State):
    last_temp_c: float | None = None
    last_temp_at: UtcDatetime | None = None
    last_temp_id: UUID | None = None
    #: While at risk: the temperature below which the risk ends.
    clear_below_c: float | None = None
    since: UtcDatetime | None = None


class BinFireRisk(BaseDetector[FireState]):
    """``bin_fire_risk``: temperature ≥ ``temp_c``, or a rise of ``rise_c_per_10min``
    scaled to 10 minutes (between consecutive temperature readings; gaps shorter than 10
    minutes count as 10 minutes, so jitter between close readings is not magnified).
    Critical. Stays active until the temperature is ``FIRE_CLEAR_MARGIN_C`` below the
    level that triggered it; the alert clears after ``FIRE_CLEAR_AFTER`` below it.
    """

    name: ClassVar[str] = "bin_fire_risk"
    consumes: ClassVar[frozenset[str]] = frozenset({KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WASTE_BIN})
    state_model = FireState

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(clear_after=FIRE_CLEAR_AFTER)

    def step(
        self, state: FireState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[FireState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        temp = reading.number("temperature_c")
        if temp is None:
            return replace(state, last_at=reading.at, last_id=reading.id), []
        rule, at, where = ctx.rules.bin_fire_risk, reading.at, ctx.device
        rise: float | None = None
        if state.last_temp_c is not None and state.last_temp_at is not None:
            minutes = max((at - state.last_temp_at).total_seconds() / 60, 10.0)
            rise = (temp - state.last_temp_c) * 10 / minutes
        hot = temp >= rule.temp_c
        rising = rise is not None and rise >= rule.rise_c_per_10min
        evidence: tuple[UUID, ...] = (reading.id,)
        if rising and state.last_temp_id is not None:
            evidence = (state.last_temp_id, reading.id)
        clear_below, since = state.clear_below_c, state.since
        if hot or rising:
            level = rule.temp_c if hot else min(rule.temp_c, temp)
            level -= FIRE_CLEAR_MARGIN_C
            clear_below = level if clear_below is None else max(clear_below, level)
            since = since or at
            parts = []
            if hot:
                parts.append(f"{_num(temp)} °C (≥ {_num(rule.temp_c)} °C)")
            else:
                parts.append(f"{_num(temp)} °C")
            if rising:
                assert rise is not None and state.last_temp_c is not None
                parts.append(
                    f"rising {_num(rise)} °C/10 min (≥ {_num(rule.rise_c_per_10min)}) "
                    f"from {_num(state.last_temp_c)} °C"
                )
            text = f"{where} fire risk: " + ", ".join(parts)
            active = True
        elif clear_below is not None and temp >= clear_below:
            text = (
                f"{where} fire risk: {_num(temp)} °C, not yet below {_num(clear_below)} °C "
                f"(since {_clock(since or at, ctx, at)})"
            )
            active = True
        else:
            if clear_below is not None:
                text = f"{where} cooled to {_num(temp)} °C (< {_num(clear_below)} °C)"
            else:
                text = f"{where} at {_num(temp)} °C (< {_num(rule.temp_c)} °C)"
            clear_below, since, active = None, None, False
        values: dict[str, float | int | str] = {"temperature_c": temp, "temp_c": rule.temp_c}
        if rise is not None:
            values["rise_c_per_10min"] = round(rise, 3)
        out = signal(
            self.name,
            ctx,
            active=active,
            at=at,
            explanation=text,
            evidence=evidence,
            values=values,
            severity="critical",
        )
        state = replace(
            state,
            last_at=at,
            last_id=reading.id,
            last_temp_c=temp,
            last_temp_at=at,
            last_temp_id=reading.id,
            clear_below_c=clear_below,
            since=since,
        )
        return state, [out]


# --- bin_stuck_sensor --------------------------------------------------------------------------


@state
class StuckState(_State):
    #: The first reading of the current flat run (fill within tolerance of ``ref_fill``).
    ref_fill: float | None = None
    ref_at: UtcDatetime | None = None
    ref_id: UUID | None = None
    last_fill: float | None = None


class BinStuckSensor(BaseDetector[StuckState]):
    """``bin_stuck_sensor`` (warning): the fill sensor is not to be trusted.

    * **stuck**: every reading for ``stuck_h`` within ``tolerance_pct`` of the first
      one of the run (a bin in use changes daily). Judged on readings only: with no
      readings at all it is ``device_offline``'s condition, not this one.
    * **implausible jump**: fill rising by more than ``JUMP_PCT`` points within
      ``JUMP_WITHIN`` (active for that reading; the alert clears after
      ``STUCK_CLEAR_AFTER`` of plausible readings). Drops are collections, never
      implausible.
    """

    name: ClassVar[str] = "bin_stuck_sensor"
    consumes: ClassVar[frozenset[str]] = frozenset({KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset({DeviceKind.WASTE_BIN})
    state_model = StuckState

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(clear_after=STUCK_CLEAR_AFTER)

    def step(
        self, state: StuckState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[StuckState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        fill = reading.number("fill_pct")
        if fill is None:
            return replace(state, last_at=reading.at, last_id=reading.id), []
        rule, at, where = ctx.rules.bin_stuck_sensor, reading.at, ctx.device
        jump = (
            state.last_fill is not None
            and state.last_at is not None
            and at - state.last_at <= JUMP_WITHIN
            and fill - state.last_fill > JUMP_PCT
        )
        ref_fill, ref_at, ref_id = state.ref_fill, state.ref_at, state.ref_id
        if ref_fill is None or ref_at is None or abs(fill - ref_fill) > rule.tolerance_pct:
            ref_fill, ref_at, ref_id = fill, at, reading.id
        flat_h = (at - ref_at).total_seconds() / 3600
        stuck = flat_h >= rule.stuck_h
        values: dict[str, float | int | str] = {"fill_pct": fill, "flat_h": round(flat_h, 2)}
        evidence: tuple[UUID, ...] = (reading.id,)
        if jump:
            assert state.last_fill is not None and state.last_at is not None and state.last_id
            minutes = (at - state.last_at).total_seconds() / 60
            text = (
                f"{where} fill jumped from {_num(state.last_fill)} % to {_num(fill)} % in "
                f"{_num(minutes)} min (more than {_num(JUMP_PCT)} points within "
                f"{_num(JUMP_WITHIN.total_seconds() / 60)} min): implausible"
            )
            evidence = (state.last_id, reading.id)
            values["reason"] = "jump"
        elif stuck:
            text = (
                f"{where} fill unchanged at {_num(fill)} % (± {_num(rule.tolerance_pct)} %) "
                f"for {_num(flat_h)} h since {_clock(ref_at, ctx, at)} (≥ {_num(rule.stuck_h)} h)"
            )
            evidence = (ref_id, reading.id) if ref_id is not None else (reading.id,)
            values["reason"] = "stuck"
        else:
            text = f"{where} at {_num(fill)} %, changing (flat for {_num(flat_h)} h)"
        out = signal(
            self.name,
            ctx,
            active=jump or stuck,
            at=at,
            explanation=text,
            evidence=tuple(dict.fromkeys(evidence)),
            values=values,
            severity="warning",
        )
        state = replace(
            state,
            last_at=at,
            last_id=reading.id,
            ref_fill=ref_fill,
            ref_at=ref_at,
            ref_id=ref_id,
            last_fill=fill,
        )
        return state, [out]


WASTE_DETECTORS: tuple[Detector[Any], ...] = (
    BinOverflow(),
    BinNotEmptied(),
    BinFillForecast(),
    BinFireRisk(),
    BinStuckSensor(),
)
