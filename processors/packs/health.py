"""The device-health pack: is the device talking, is its battery fine, is its clock right.

Three detectors implementing :class:`processors.detector.Detector`, each pure (state,
reading or event time, context → state, signals), each with a frozen slotted dataclass
state that round-trips through JSON (``dump_state`` / ``load_state``):

* :class:`DeviceOffline` (``device_offline``): nothing heard for
  ``intervals`` × the profile's ``reporting_interval_s``. Time-based: the silence is
  noticed by :meth:`~DeviceOffline.tick`, or by the next reading if no tick came in
  between, and in both cases the active signal carries the *due time* (last heard +
  the limit), so how often the runner ticks does not change the signals.
* :class:`LowBattery` (``low_battery``): ``battery_pct`` ≤ ``low_pct`` raises, ≥
  ``clear_pct`` clears; in between nothing changes (hysteresis in the detector).
* :class:`ClockSkew` (``clock_skew``): ``readings`` readings in a row that ingest
  flagged ``clock_skew``; see its docstring for what it can and cannot see.

Signals are emitted on transitions only (a condition that stays active is not
repeated); the alarm machine keeps the open alert. :data:`HEALTH_DETECTORS` holds one
instance of each.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from devices.catalogue import CATALOGUE, DeviceKind
from devices.codec import FLAG_CLOCK_SKEW, FLAG_NO_DEVICE_TIME
from eventlog.envelope import UtcDatetime
from processors.alarm import AlarmPolicy, Severity, Signal
from processors.detector import (
    STATE_CONFIG,
    BaseDetector,
    Detector,
    DeviceContext,
    ReadingView,
    signal,
    state,
)

__all__ = [
    "BATTERY_KINDS",
    "HEALTH_DETECTORS",
    "ClockSkew",
    "ClockSkewState",
    "DeviceOffline",
    "LowBattery",
    "LowBatteryState",
    "OfflineState",
    "format_duration",
]

#: Envelope kinds whose readings can carry ``battery_pct`` (every heartbeat, bin level).
BATTERY_KINDS: frozenset[str] = frozenset(
    spec.event_kind for spec in CATALOGUE.values() if "battery_pct" in spec.model.model_fields
)


#: At most this many contexts are memoised by :meth:`DeviceOffline.limit` (one per device).
_MEMO_MAX = 1 << 17


def format_duration(span: timedelta) -> str:
    """``timedelta`` as people read it: ``45 s``, ``47 min``, ``3 h 12 min``, ``2 d 5 h``."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _number(value: float) -> str:
    return f"{value:g}"


# --- device_offline -------------------------------------------------------------------------


@state
class OfflineState:
    """When the device was last heard (device time) and whether it is reported offline."""

    __pydantic_config__ = STATE_CONFIG

    last_seen: UtcDatetime | None = None
    last_reading: UUID | None = None
    offline: bool = False


class DeviceOffline(BaseDetector[OfflineState]):
    """``device_offline``: no reading of any kind for ``rule.after_s(reporting_interval_s)``.

    * Every reading kind counts (``consumes`` is empty), heartbeats included. A
      reading's time is its envelope time (device time, or receive time when ingest
      flagged ``no_device_time`` / ``clock_skew``).
    * Offline exactly at ``last_seen + limit`` (not before): :meth:`tick` with ``now`` ≥
      that emits one active signal *at the due time*; a reading arriving after the due
      time with no tick in between emits the same active signal first, then the
      back-online one. The signals are therefore independent of tick placement as long
      as ticks never run past the next reading's time (the runner's watermark
      guarantee). A runner should hand these signals to the alarm machine before its
      own ``tick`` to the same ``now``, so they are not late.
    * The next reading after being offline emits an inactive signal at the reading's
      time ("back online after ..."), which resolves the alert (``auto_resolve_on_clear``).
    * A device never heard from has no reference time: it is not reported (the
      registry-vs-traffic check belongs to a fleet report, not a per-device detector).
    * A clock that runs behind makes a device look silent for longer than it is (its
      readings carry old device times); ``clock_skew`` cannot see that either.
    * Gateways are ``major`` (their devices go silent with them); others ``warning``.
    """

    name: ClassVar[str] = "device_offline"
    consumes: ClassVar[frozenset[str]] = frozenset()
    state_model = OfflineState
    scheduled: ClassVar[bool] = True

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def __init__(self) -> None:
        #: id(context) → (context, limit): asked on every reading, so memoised per context
        #: (the context is kept with its entry, so its id cannot be reused meanwhile).
        self._limits: dict[int, tuple[DeviceContext, timedelta]] = {}

    def limit(self, ctx: DeviceContext) -> timedelta:
        """The silence after which ``ctx``'s device is offline."""
        found = self._limits.get(id(ctx))
        if found is None or found[0] is not ctx:
            if len(self._limits) >= _MEMO_MAX:  # contexts of old rule versions: start afresh
                self._limits.clear()
            seconds = ctx.rules.device_offline.after_s(ctx.profile.reporting_interval_s)
            found = self._limits[id(ctx)] = (ctx, timedelta(seconds=seconds))
        return found[1]

    def _offline_signal(self, state: OfflineState, ctx: DeviceContext) -> Signal:
        assert state.last_seen is not None
        limit = self.limit(ctx)
        interval = timedelta(seconds=ctx.profile.reporting_interval_s)
        intervals = _number(ctx.rules.device_offline.intervals)
        return signal(
            self.name,
            ctx,
            active=True,
            at=state.last_seen + limit,
            severity=Severity.MAJOR if ctx.kind is DeviceKind.GATEWAY else Severity.WARNING,
            explanation=(
                f"no message for {format_duration(limit)} (last at "
                f"{state.last_seen.isoformat()}); expected every {format_duration(interval)} "
                f"(offline after {intervals} × interval)"
            ),
            evidence=() if state.last_reading is None else (state.last_reading,),
            values={
                "after_s": limit.total_seconds(),
                "reporting_interval_s": ctx.profile.reporting_interval_s,
                "intervals": ctx.rules.device_offline.intervals,
            },
        )

    def tick_due(self, state: OfflineState, ctx: DeviceContext) -> datetime | None:
        """When the silence would make the device offline (``None``: never heard, or
        already reported offline)."""
        if state.offline or state.last_seen is None:
            return None
        return state.last_seen + self.limit(ctx)

    def _due(self, state: OfflineState, now: datetime, ctx: DeviceContext) -> bool:
        due = self.tick_due(state, ctx)
        return due is not None and now >= due

    def step(
        self, state: OfflineState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[OfflineState, list[Signal]]:
        last, at = state.last_seen, reading.at
        if last is not None and not state.offline and last <= at:
            found = self._limits.get(id(ctx))  # limit(), inlined: this is the hottest path
            if found is not None and found[0] is ctx and at - last < found[1]:
                return OfflineState(at, reading.id), []  # the usual case: heard in time
        signals: list[Signal] = []
        if self._due(state, at, ctx):  # no tick came between: catch up
            signals.append(self._offline_signal(state, ctx))
            state = OfflineState(state.last_seen, state.last_reading, offline=True)
        if state.last_seen is not None and at < state.last_seen:
            return state, signals  # out of order (the runner should not do this): no news
        if state.offline:
            assert state.last_seen is not None
            silent = reading.at - state.last_seen
            signals.append(
                signal(
                    self.name,
                    ctx,
                    active=False,
                    at=reading.at,
                    severity=Severity.MAJOR if ctx.kind is DeviceKind.GATEWAY else Severity.WARNING,
                    explanation=(
                        f"back online after {format_duration(silent)} of silence "
                        f"({reading.kind} at {reading.at.isoformat()})"
                    ),
                    evidence=(reading.id,),
                    values={"silent_s": silent.total_seconds()},
                )
            )
        return OfflineState(last_seen=at, last_reading=reading.id), signals

    def tick(
        self, state: OfflineState, now: datetime, ctx: DeviceContext
    ) -> tuple[OfflineState, list[Signal]]:
        if not self._due(state, now, ctx):
            return state, []
        offline = OfflineState(state.last_seen, state.last_reading, offline=True)
        return offline, [self._offline_signal(state, ctx)]


# --- low_battery ----------------------------------------------------------------------------


@state
class LowBatteryState:
    """Whether the battery is reported low, and the last level seen."""

    __pydantic_config__ = STATE_CONFIG

    low: bool = False
    last_pct: float | None = None


class LowBattery(BaseDetector[LowBatteryState]):
    """``low_battery``: ``battery_pct`` ≤ ``low_pct`` raises; ≥ ``clear_pct`` clears.

    Reads ``battery_pct`` of every reading kind that can carry it (:data:`BATTERY_KINDS`:
    heartbeats of every kind, bin levels); readings without it change nothing. Between
    the two thresholds the condition keeps its last value, so a battery wandering around
    ``low_pct`` raises once, and only a replaced battery (≥ ``clear_pct``) clears, which
    auto-resolves the alert: there is nothing left to do.
    """

    name: ClassVar[str] = "low_battery"
    consumes: ClassVar[frozenset[str]] = BATTERY_KINDS
    state_model = LowBatteryState

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def step(
        self, state: LowBatteryState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[LowBatteryState, list[Signal]]:
        pct = reading.number("battery_pct")
        if pct is None:
            return state, []
        rule = ctx.rules.low_battery
        low = state.low
        if not low and pct <= rule.low_pct:
            low, text = True, f"battery at {_number(pct)} % (at or below {_number(rule.low_pct)} %)"
        elif low and pct >= rule.clear_pct:
            low, text = (
                False,
                f"battery at {_number(pct)} % (at or above {_number(rule.clear_pct)} %): "
                "replaced or recharged",
            )
        else:
            return (state, []) if state.last_pct == pct else (LowBatteryState(low, pct), [])
        out = signal(
            self.name,
            ctx,
            active=low,
            at=reading.at,
            explanation=text,
            evidence=(reading.id,),
            values={
                "battery_pct": pct,
                "low_pct": rule.low_pct,
                "clear_pct": rule.clear_pct,
            },
        )
        return LowBatteryState(low=low, last_pct=pct), [out]


# --- clock_skew -----------------------------------------------------------------------------


@state
class ClockSkewState:
    """The run of consecutive ``clock_skew``-flagged readings (their ids, the latest
    ``readings`` of them) and whether the condition is reported active."""

    __pydantic_config__ = STATE_CONFIG

    run: int = 0
    recent: tuple[UUID, ...] = ()
    active: bool = False


class ClockSkew(BaseDetector[ClockSkewState]):
    """``clock_skew``: ``readings`` readings in a row flagged ``clock_skew`` by ingest.

    What it can see: a detector gets readings, not envelopes, so it never sees
    ``received_at``. Ingest compares device time with receive time and, for a device
    whose profile clock is ``untrusted``, stores a reading whose device time is ahead
    by more than its ``max_future_skew`` (5 min by default) with the ``clock_skew``
    flag and the receive time as its time. This detector counts those flags: ``readings``
    flagged readings in a row → active (evidence: their ids); the next unflagged reading
    that has a device time → inactive. Readings flagged ``no_device_time`` say nothing
    about the clock and neither extend nor break the run.

    What it cannot see: the size of the skew (ingest keeps no original ``ts``);
    ``max_skew_s`` of the rule (the limit applied is ingest's ``max_future_skew``);
    clocks running *behind* (accepted at their device time, or refused as too old);
    devices with a ``trusted`` clock running ahead (ingest refuses those readings, so
    they are dead letters, not readings). Those need a check on the envelope or the
    dead-letter stream, outside the per-device detector contract.
    """

    name: ClassVar[str] = "clock_skew"
    consumes: ClassVar[frozenset[str]] = frozenset()
    state_model = ClockSkewState

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def step(
        self, state: ClockSkewState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[ClockSkewState, list[Signal]]:
        needed = ctx.rules.clock_skew.readings
        if FLAG_CLOCK_SKEW in reading.flags:
            run = state.run + 1
            recent = (*state.recent, reading.id)[-needed:]
            if state.active or run < needed:
                return ClockSkewState(run, recent, state.active), []
            out = signal(
                self.name,
                ctx,
                active=True,
                at=reading.at,
                explanation=(
                    f"{run} readings in a row arrived with the device clock ahead of receive "
                    f"time by more than ingest's limit (flag {FLAG_CLOCK_SKEW}; raises after "
                    f"{needed}); their times were replaced by receive time"
                ),
                evidence=recent,
                values={"readings": run, "needed": needed},
            )
            return ClockSkewState(run=run, recent=recent, active=True), [out]
        if FLAG_NO_DEVICE_TIME in reading.flags:
            return state, []
        if not state.active:
            return (ClockSkewState(), []) if state.run else (state, [])
        out = signal(
            self.name,
            ctx,
            active=False,
            at=reading.at,
            explanation=(
                f"device clock back within ingest's limit after {state.run} flagged readings"
            ),
            evidence=(reading.id,),
            values={"readings": state.run},
        )
        return ClockSkewState(), [out]


#: One instance of each health detector.
HEALTH_DETECTORS: tuple[Detector[Any], ...] = (DeviceOffline(), LowBattery(), ClockSkew())
