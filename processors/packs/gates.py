"""The access-gate pack: doors held open or forced, denied attempts, tailgating.

Detectors over an access gate's ``access_gate.passage`` (attempts: granted or denied,
``persons_sensed`` where the gate counts people) and ``access_gate.door`` (open/closed,
the controller's ``forced`` flag) readings. Pure, like every detector (see
``processors/detector.py``); states are frozen slotted dataclasses that round-trip
through JSON; readings not newer than the last one used (or already used) change
nothing (:class:`processors.packs.parking.Mark`).

* ``door_held_open`` is a held condition (:class:`processors.packs.parking.HeldCondition`):
  active at open + ``minutes`` (by tick, or by the next reading), inactive when closed.
* ``door_forced`` is judged per opening: the controller's ``forced`` flag raises at
  once; an opening with no granted passage within ``grant_window_s`` before it raises
  once every reading *at* the opening's instant has been seen (a passage logged at the
  same second as its door may be judged after it), stamped with the opening's time.
* ``gate_denied_attempts`` counts denied passages in a sliding window; it clears when
  the window no longer holds ``attempts`` of them (stamped with that time).
* ``gate_tailgating`` compares, per passage, the persons sensed with what the granted
  credential allows.

Gate offline is ``device_offline``'s job (health pack). :data:`GATE_DETECTORS` holds
one instance of each.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
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
    span_min,
    span_s,
    state,
)
from processors.packs.health import format_duration
from processors.packs.parking import HeldCondition, HeldState, Mark, local_clock

__all__ = [
    "DOOR_KIND",
    "GATE_DETECTORS",
    "HEARTBEAT_KIND",
    "PASSAGE_KIND",
    "Denial",
    "DeniedAttemptsState",
    "DoorForced",
    "DoorForcedState",
    "DoorHeldOpen",
    "GateDeniedAttempts",
    "GateTailgating",
    "TailgatingState",
]

#: The envelope kind of a passage attempt.
PASSAGE_KIND = "access_gate.passage"
#: The envelope kind of a door state change.
DOOR_KIND = "access_gate.door"
#: The gate's heartbeat: ``door_forced`` reads its ``seq`` to notice lost readings.
HEARTBEAT_KIND = "access_gate.heartbeat"

_GATE: frozenset[DeviceKind] = frozenset({DeviceKind.ACCESS_GATE})


def _granted(reading: ReadingView) -> bool:
    return reading.kind == PASSAGE_KIND and reading.payload.get("result") == "granted"


def _door(reading: ReadingView) -> str | None:
    """``open`` / ``closed`` of a door reading, else ``None``."""
    if reading.kind != DOOR_KIND:
        return None
    state = reading.payload.get("state")
    return state if state in ("open", "closed") else None


# --- door_held_open --------------------------------------------------------------------------


class DoorHeldOpen(HeldCondition[HeldState]):
    """``door_held_open`` (warning): the door open for ``minutes``; clears (auto-resolved)
    when it closes. Whether it was opened by a passage or forced does not matter here."""

    name: ClassVar[str] = "door_held_open"
    consumes: ClassVar[frozenset[str]] = frozenset({DOOR_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = _GATE
    state_model = HeldState

    def limit(self, ctx: DeviceContext) -> timedelta:
        return span_min(ctx.rules.door_held_open.minutes)

    def judge(
        self, state: HeldState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[dict[str, Any], bool | None]:
        door = _door(reading)
        return {}, None if door is None else door == "open"

    def raised_text(self, state: HeldState, due: datetime, ctx: DeviceContext) -> str:
        assert state.since is not None
        return (
            f"door of {ctx.device} open since {local_clock(state.since, ctx)}, for "
            f"{format_duration(due - state.since)} (≥ {ctx.rules.door_held_open.minutes:g} min)"
        )

    def ended_text(self, state: HeldState, reading: ReadingView, ctx: DeviceContext) -> str:
        assert state.since is not None
        return (
            f"door of {ctx.device} closed at {local_clock(reading.at, ctx)} after "
            f"{format_duration(reading.at - state.since)} open"
        )


# --- door_forced ----------------------------------------------------------------------------


@state
class DoorForcedState(Mark):
    """The latest granted passage, the door, and an opening being judged or reported."""

    last_grant_at: UtcDatetime | None = None
    last_grant_id: UUID | None = None
    #: The device sequence number of the last reading (any stream), where it has one.
    last_seq: int | None = None
    door_open: bool = False
    #: An opening with no grant before it, judged once time passes its instant.
    pending_at: UtcDatetime | None = None
    pending_id: UUID | None = None
    #: The current opening was reported forced (the alert clears when the door closes).
    forced_at: UtcDatetime | None = None


class DoorForced(BaseDetector[DoorForcedState]):
    """``door_forced`` (critical): the door opened with the controller's ``forced``
    flag, or (``require_grant``) with no granted passage within ``grant_window_s``
    before it (or at the same instant). Clears when the door closes; not
    auto-resolved (someone should look at the door).

    The absence of a grant is not trusted when a reading may have been lost before
    the opening: nothing heard of the gate before (the detector's first reading), or a
    gap in the gate's sequence numbers (``seq`` of every stream, heartbeats included:
    a passage refused at ingest is likelier than a forced door). The ``forced`` flag
    is always believed.
    """

    name: ClassVar[str] = "door_forced"
    consumes: ClassVar[frozenset[str]] = frozenset({PASSAGE_KIND, DOOR_KIND, HEARTBEAT_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = _GATE
    state_model = DoorForcedState
    scheduled: ClassVar[bool] = True

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy()

    def _forced(
        self, state: DoorForcedState, at: datetime, opened: UUID, flagged: bool, ctx: DeviceContext
    ) -> tuple[DoorForcedState, Signal]:
        rule = ctx.rules.door_forced
        window = span_s(rule.grant_window_s)
        if flagged:
            why = "the controller flagged the opening as forced"
        elif state.last_grant_at is None:
            why = "no granted passage seen before it"
        else:
            why = (
                f"no granted passage within {format_duration(window)} before it (last granted "
                f"{format_duration(at - state.last_grant_at)} earlier, at "
                f"{local_clock(state.last_grant_at, ctx)})"
            )
        values: dict[str, float | int | str] = {
            "flagged": int(flagged),
            "grant_window_s": rule.grant_window_s,
        }
        if state.last_grant_at is not None:
            values["since_grant_s"] = (at - state.last_grant_at).total_seconds()
        out = signal(
            self.name,
            ctx,
            active=True,
            at=at,
            severity=Severity.CRITICAL,
            explanation=f"door of {ctx.device} forced open at {local_clock(at, ctx)}: {why}",
            evidence=(opened,),
            values=values,
        )
        return replace(state, pending_at=None, pending_id=None, forced_at=at), out

    def tick_due(self, state: DoorForcedState, ctx: DeviceContext) -> datetime | None:
        """An opening waiting for its passage: forced just after ``pending_at``."""
        return state.pending_at if state.pending_id is not None else None

    def tick(
        self, state: DoorForcedState, now: datetime, ctx: DeviceContext
    ) -> tuple[DoorForcedState, list[Signal]]:
        if state.pending_at is None or now <= state.pending_at or state.pending_id is None:
            return state, []
        state, out = self._forced(state, state.pending_at, state.pending_id, False, ctx)
        return state, [out]

    def step(
        self, state: DoorForcedState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[DoorForcedState, list[Signal]]:
        if not state.is_new(reading):
            return state, []
        seq = reading.payload.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        # a reading may have been missed just before this one: never heard before, or a gap
        missed = state.last_at is None or (
            seq is not None and state.last_seq is not None and seq != state.last_seq + 1
        )
        at = reading.at
        signals: list[Signal] = []
        if state.pending_at is not None:
            state, signals = self.tick(state, at, ctx)  # an opening before this instant
        # one state construction per step: the changes are collected first
        changes: dict[str, Any] = {"last_at": at, "seen": state.seen_after(reading)}
        if seq != state.last_seq:
            changes["last_seq"] = seq
        if _granted(reading):
            changes.update(last_grant_at=at, last_grant_id=reading.id)
            if state.pending_at == at:  # logged at the same instant as its door
                changes.update(pending_at=None, pending_id=None)
            return replace(state, **changes), signals
        door = _door(reading)
        if door == "open" and not state.door_open:
            changes["door_open"] = True
            rule = ctx.rules.door_forced
            if reading.payload.get("forced") is True:
                state, out = self._forced(replace(state, **changes), at, reading.id, True, ctx)
                return state, [*signals, out]
            if (
                rule.require_grant
                and not missed
                and (
                    state.last_grant_at is None
                    or at - state.last_grant_at > span_s(rule.grant_window_s)
                )
            ):
                changes.update(pending_at=at, pending_id=reading.id)
        elif door == "closed" and state.door_open:
            if state.forced_at is not None:
                signals.append(
                    signal(
                        self.name,
                        ctx,
                        active=False,
                        at=at,
                        severity=Severity.CRITICAL,
                        explanation=(
                            f"door of {ctx.device} closed at {local_clock(at, ctx)}, "
                            f"{format_duration(at - state.forced_at)} after it was forced"
                        ),
                        evidence=(reading.id,),
                        values={"open_s": (at - state.forced_at).total_seconds()},
                    )
                )
            changes.update(door_open=False, pending_at=None, pending_id=None, forced_at=None)
        return replace(state, **changes), signals


# --- gate_denied_attempts -----------------------------------------------------------------------


@state
class Denial:
    __pydantic_config__ = STATE_CONFIG

    at: UtcDatetime
    id: UUID
    method: str = ""
    credential: str = ""


@state
class DeniedAttemptsState(Mark):
    """The denied passages of the window (at most ``attempts`` kept), and whether the
    condition is reported active."""

    denials: tuple[Denial, ...] = ()
    active: bool = False


class GateDeniedAttempts(BaseDetector[DeniedAttemptsState]):
    """``gate_denied_attempts`` (warning): ``attempts`` denied passages at one gate within
    ``window_min`` (a lost card tried again and again, someone trying cards). Active from
    the denial that completes the count; inactive (auto-resolved) once the window no
    longer holds ``attempts`` denials, stamped with that time."""

    name: ClassVar[str] = "gate_denied_attempts"
    consumes: ClassVar[frozenset[str]] = frozenset({PASSAGE_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = _GATE
    state_model = DeniedAttemptsState
    scheduled: ClassVar[bool] = True

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def _clears_at(self, state: DeniedAttemptsState, ctx: DeviceContext) -> datetime | None:
        rule = ctx.rules.gate_denied_attempts
        if not state.active or len(state.denials) < rule.attempts:
            return None
        return state.denials[-rule.attempts].at + span_min(rule.window_min)

    def tick_due(self, state: DeniedAttemptsState, ctx: DeviceContext) -> datetime | None:
        return self._clears_at(state, ctx)

    def tick(
        self, state: DeniedAttemptsState, now: datetime, ctx: DeviceContext
    ) -> tuple[DeniedAttemptsState, list[Signal]]:
        due = self._clears_at(state, ctx)
        if due is None or now < due:
            return state, []
        rule = ctx.rules.gate_denied_attempts
        out = signal(
            self.name,
            ctx,
            active=False,
            at=due,
            explanation=(
                f"{ctx.device}: fewer than {rule.attempts} denied attempts in the last "
                f"{rule.window_min:g} min since {local_clock(due, ctx)}"
            ),
            evidence=(state.denials[-1].id,),
            values={"attempts": rule.attempts, "window_min": rule.window_min},
        )
        return replace(state, active=False), [out]

    def step(
        self, state: DeniedAttemptsState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[DeniedAttemptsState, list[Signal]]:
        if not state.is_new(reading) or reading.kind != PASSAGE_KIND:
            return state, []
        signals: list[Signal] = []
        if state.active:
            state, signals = self.tick(state, reading.at, ctx)
        marked: dict[str, Any] = {"last_at": reading.at, "seen": state.seen_after(reading)}
        if reading.payload.get("result") != "denied":
            return replace(state, **marked), signals
        rule, at = ctx.rules.gate_denied_attempts, reading.at
        start = at - span_min(rule.window_min)
        denial = Denial(
            at,
            reading.id,
            str(reading.payload.get("method", "")),
            str(reading.payload.get("credential_hash", "")),
        )
        kept = tuple(d for d in state.denials if d.at > start)
        denials = (*kept, denial)[-rule.attempts :]
        if state.active or len(denials) < rule.attempts:
            return replace(state, denials=denials, **marked), signals
        span = at - denials[0].at
        methods = Counter(d.method for d in denials if d.method)
        credentials = {d.credential for d in denials if d.credential}
        shown = ", ".join(f"{m} ×{n}" for m, n in sorted(methods.items()))
        signals.append(
            signal(
                self.name,
                ctx,
                active=True,
                at=at,
                explanation=(
                    f"{len(denials)} denied attempts at {ctx.device} within "
                    f"{format_duration(span)} ({local_clock(denials[0].at, ctx)}–"
                    f"{local_clock(at, ctx)}; ≥ {rule.attempts} within {rule.window_min:g} min): "
                    f"{shown or 'method unknown'}, {len(credentials)} distinct credential(s)"
                ),
                evidence=tuple(d.id for d in denials),
                values={
                    "denied": len(denials),
                    "span_s": span.total_seconds(),
                    "credentials": len(credentials),
                    "attempts": rule.attempts,
                    "window_min": rule.window_min,
                },
            )
        )
        return replace(state, denials=denials, active=True, **marked), signals


# --- gate_tailgating ----------------------------------------------------------------------------


@state
class TailgatingState(Mark):
    active: bool = False


class GateTailgating(BaseDetector[TailgatingState]):
    """``gate_tailgating`` (warning): a passage whose gate counted more persons than
    ``persons_per_grant`` × its granted credentials (one for a granted passage, none for
    a denied one: anybody through after a denial is suspect). Only passages that carry
    ``persons_sensed`` are judged (the gate reports both). Active at that passage;
    inactive (auto-resolved) at the next judged passage within the allowance.

    ``persons_per_grant`` defaults to 3: at a residential door a resident going
    through with family is normal (the simulator has 1, 2 or 3 persons per grant).
    """

    name: ClassVar[str] = "gate_tailgating"
    consumes: ClassVar[frozenset[str]] = frozenset({PASSAGE_KIND})
    kinds: ClassVar[frozenset[DeviceKind]] = _GATE
    state_model = TailgatingState

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy(auto_resolve_on_clear=True)

    def step(
        self, state: TailgatingState, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[TailgatingState, list[Signal]]:
        if not state.is_new(reading) or reading.kind != PASSAGE_KIND:
            return state, []
        persons = reading.number("persons_sensed")
        marked = replace(state, last_at=reading.at, seen=state.seen_after(reading))
        if persons is None:
            return marked, []
        per_grant = ctx.rules.gate_tailgating.persons_per_grant
        grants = 1 if _granted(reading) else 0
        allowed = per_grant * grants
        suspected = persons > allowed
        if suspected == state.active:
            return marked, []
        result = "granted" if grants else "denied"
        if suspected:
            text = (
                f"{ctx.device}: {persons:g} person(s) sensed through on {grants} granted "
                f"credential(s) at {local_clock(reading.at, ctx)} ({result}; allowed "
                f"{allowed} = {per_grant} per grant): tailgating suspected"
            )
        else:
            text = (
                f"{ctx.device}: {persons:g} person(s) on {grants} granted credential(s) at "
                f"{local_clock(reading.at, ctx)}, within the allowance"
            )
        out = signal(
            self.name,
            ctx,
            active=suspected,
            at=reading.at,
            explanation=text,
            evidence=(reading.id,),
            values={"persons_sensed": persons, "granted": grants, "allowed": allowed},
        )
        return replace(marked, active=suspected), [out]


#: One instance of each gate detector.
GATE_DETECTORS: tuple[Detector[Any], ...] = (
    DoorHeldOpen(),
    DoorForced(),
    GateDeniedAttempts(),
    GateTailgating(),
)
