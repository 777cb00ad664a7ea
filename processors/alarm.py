"""The alarm state machine shared by every detector.

Detectors say *what they see* (a :class:`Signal` per evaluation: the condition is
active or not, with an explanation and evidence); this module decides *what to tell
people*: it raises an alert after a persistence period, clears it with hysteresis,
keeps one open alert per (estate, device, condition), suppresses flapping, escalates
unacknowledged alerts by time, applies operator commands and maintenance windows, and
emits lifecycle events (:class:`AlertEvent`).

Everything here is pure: ``(state, input) -> (state, events)``. Time is event time
carried by the inputs (signal time, command time, the ``now`` of :func:`tick`, a
watermark); the wall clock is never read. State is a frozen pydantic model that
round-trips losslessly through JSON, and every id is a uuid5
(:func:`eventlog.envelope.deterministic_id`), so replaying the same inputs, with or
without a restart from serialised state in between, yields the same events with the
same ids. ``docs/alarms.md`` describes the lifecycle and every decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devices.severity import Severity
from eventlog.envelope import Envelope, Ident, UtcDatetime, deterministic_id

__all__ = [
    "AcknowledgeAlert",
    "AlarmBook",
    "AlarmCommand",
    "AlarmPolicy",
    "AlarmState",
    "Alert",
    "AlertEvent",
    "AlertEventKind",
    "AlertState",
    "AssignAlert",
    "CommandRejected",
    "CommentAlert",
    "MaintenanceWindow",
    "Phase",
    "ResolveAlert",
    "Severity",
    "Signal",
    "StartMaintenance",
    "apply_all",
    "apply_command",
    "apply_signal",
    "from_envelope",
    "tick",
    "to_envelope",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
_ZERO = timedelta(0)

#: The actor recorded on events the machine emits by itself (auto-resolution).
SYSTEM_ACTOR = "system"


def _worse(a: Severity, b: Severity) -> Severity:
    return a if a.rank >= b.rank else b


#: A value a detector reports next to its explanation (a reading, a threshold, a unit).
Value = float | int | str


class Signal(BaseModel):
    """What a detector reports at one evaluation of one condition on one device."""

    model_config = _FROZEN

    condition: Ident
    estate: Ident
    device: Ident
    active: bool
    at: UtcDatetime
    severity: Severity = Severity.WARNING
    explanation: str = ""
    evidence: tuple[UUID, ...] = ()
    values: dict[str, Value] = Field(default_factory=dict)
    detector: str = ""
    rule_version: str = ""

    @property
    def key(self) -> str:
        return _key(self.estate, self.device, self.condition)


def _key(estate: str, device: str, condition: str) -> str:
    return f"{estate}/{device}/{condition}"


class AlarmPolicy(BaseModel):
    """How the machine treats one condition (it comes from the rule files).

    ``flap_window`` of zero disables flap detection.
    """

    model_config = _FROZEN

    raise_after: timedelta = _ZERO
    clear_after: timedelta = _ZERO
    escalate_after: timedelta | None = None
    flap_window: timedelta = _ZERO
    flap_max: Annotated[int, Field(ge=1)] = 3
    auto_resolve_on_clear: bool = False

    @model_validator(mode="after")
    def _durations(self) -> AlarmPolicy:
        for name in ("raise_after", "clear_after", "flap_window"):
            if getattr(self, name) < _ZERO:
                raise ValueError(f"{name} must not be negative")
        if self.escalate_after is not None and self.escalate_after <= _ZERO:
            raise ValueError("escalate_after must be positive (or null for no escalation)")
        return self


class Phase(StrEnum):
    """Where the condition of one key stands relative to raising.

    ``idle``: inactive and settled; ``pending``: active, persistence running;
    ``raised``: raised and active; ``clearing``: raised, inactive, hysteresis running.
    Whether an (unresolved) alert exists is separate: see :attr:`AlertState.alert`.
    """

    IDLE = "idle"
    PENDING = "pending"
    RAISED = "raised"
    CLEARING = "clearing"


class Alert(BaseModel):
    """The open (unresolved) alert of one key."""

    model_config = _FROZEN

    alert_id: UUID
    severity: Severity
    opened_at: UtcDatetime
    raised_at: UtcDatetime
    occurrence: Annotated[int, Field(ge=1)] = 1
    #: True between an emitted AlertRaised and the next emitted AlertCleared.
    raised: bool = True
    cleared_at: UtcDatetime | None = None
    acknowledged_at: UtcDatetime | None = None
    acknowledged_by: str | None = None
    assignee: str | None = None
    comments: int = 0
    escalations: int = 0
    escalation_due: UtcDatetime | None = None
    flapping_since: UtcDatetime | None = None
    #: Events emitted for this alert so far (the last event's sequence number).
    seq: int = 0
    last_event_at: UtcDatetime


class AlertState(BaseModel):
    """Everything the machine remembers about one (estate, device, condition)."""

    model_config = _FROZEN

    estate: Ident
    device: Ident
    condition: Ident
    policy: AlarmPolicy = Field(default_factory=AlarmPolicy)
    phase: Phase = Phase.IDLE
    #: Start of the running timer: first active signal (pending) or first inactive (clearing).
    phase_since: UtcDatetime | None = None
    #: The worst severity seen while pending.
    pending_severity: Severity | None = None
    #: The latest time this key was moved to by a signal or a command (late inputs clamp to it).
    clock: UtcDatetime | None = None
    last_seen_at: UtcDatetime | None = None
    last_active: Signal | None = None
    last_signal: Signal | None = None
    alert: Alert | None = None
    #: Times of recent raises (within the flap window), for flap detection.
    raises: tuple[UtcDatetime, ...] = ()
    last_transition_at: UtcDatetime | None = None
    #: Alerts ever created for this key (part of the alert id).
    generation: int = 0
    last_resolved_id: UUID | None = None
    last_resolved_at: UtcDatetime | None = None

    @property
    def key(self) -> str:
        return _key(self.estate, self.device, self.condition)


class MaintenanceWindow(BaseModel):
    """No new alert is raised for the covered keys in ``[starts_at, ends_at)``."""

    model_config = _FROZEN

    estate: Ident
    device: Ident | None = None
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    reason: str = ""
    by: str = ""

    def covers(self, estate: str, device: str, at: datetime) -> bool:
        return (
            self.estate == estate
            and (self.device is None or self.device == device)
            and self.starts_at <= at < self.ends_at
        )


class AlarmBook(BaseModel):
    """The state of the alarm machine: one :class:`AlertState` per key."""

    model_config = _FROZEN

    alerts: dict[str, AlertState] = Field(default_factory=dict)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    #: The latest ``now`` given to :func:`tick`: no input older than it is expected.
    watermark: UtcDatetime | None = None
    #: Signals older than their key's clock or the watermark (applied as of that time).
    late_signals: int = 0

    def open_alerts(self) -> list[Alert]:
        return [s.alert for s in self.alerts.values() if s.alert is not None]

    def find(self, alert_id: UUID) -> AlertState | None:
        """The key state whose open alert has this id."""
        for state in self.alerts.values():
            if state.alert is not None and state.alert.alert_id == alert_id:
                return state
        return None


#: The name the design uses for the machine's state.
AlarmState = AlarmBook


class AlertEventKind(StrEnum):
    RAISED = "AlertRaised"
    ESCALATED = "AlertEscalated"
    ACKNOWLEDGED = "AlertAcknowledged"
    ASSIGNED = "AlertAssigned"
    COMMENTED = "AlertCommented"
    CLEARED = "AlertCleared"
    RESOLVED = "AlertResolved"
    FLAPPING = "AlertFlapping"
    FLAPPING_ENDED = "AlertFlappingEnded"


class AlertEvent(BaseModel):
    """One lifecycle event of one alert."""

    model_config = _FROZEN

    kind: AlertEventKind
    id: UUID
    alert_id: UUID
    estate: Ident
    device: Ident
    condition: Ident
    severity: Severity
    at: UtcDatetime
    occurrence: int
    detector: str = ""
    rule_version: str = ""
    explanation: str = ""
    evidence: tuple[UUID, ...] = ()
    values: dict[str, Value] = Field(default_factory=dict)
    #: Who did it: the operator for operator events, ``system`` for auto-resolution.
    actor: str | None = None
    #: AlertEscalated: ``sla`` or ``signal``; AlertResolved: ``operator`` or ``auto``.
    reason: str | None = None
    assignee: str | None = None
    comment: str | None = None
    #: Operator events: the time on the command (``at`` may be later, never earlier).
    requested_at: UtcDatetime | None = None


# --- commands ------------------------------------------------------------------------------


class _Command(BaseModel):
    model_config = _FROZEN

    alert_id: UUID
    by: Annotated[str, Field(min_length=1)]
    at: UtcDatetime


class AcknowledgeAlert(_Command):
    command: Literal["AcknowledgeAlert"] = "AcknowledgeAlert"
    comment: str | None = None


class AssignAlert(_Command):
    command: Literal["AssignAlert"] = "AssignAlert"
    to: Annotated[str, Field(min_length=1)]


class CommentAlert(_Command):
    command: Literal["CommentAlert"] = "CommentAlert"
    text: Annotated[str, Field(min_length=1)]


class ResolveAlert(_Command):
    command: Literal["ResolveAlert"] = "ResolveAlert"
    comment: str | None = None


class StartMaintenance(BaseModel):
    """Put an estate (``device`` None) or one device in maintenance for a while."""

    model_config = _FROZEN

    command: Literal["StartMaintenance"] = "StartMaintenance"
    estate: Ident
    device: Ident | None = None
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    reason: str = ""
    by: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _window(self) -> StartMaintenance:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


AlarmCommand = Annotated[
    AcknowledgeAlert | AssignAlert | CommentAlert | ResolveAlert | StartMaintenance,
    Field(discriminator="command"),
]


class CommandRejected(ValueError):
    """An operator command that cannot apply; the state is unchanged."""

    def __init__(self, alert_id: UUID, reason: str) -> None:
        super().__init__(f"alert {alert_id}: {reason}")
        self.alert_id = alert_id
        self.reason = reason


# --- the machine for one key ---------------------------------------------------------------

_TRANSITION, _FLAP_END, _ESCALATION = 0, 1, 2  # priorities of timers due at the same instant


class _Machine:
    """Runs one key's state forward; ``st`` is replaced (never mutated), events collect."""

    def __init__(self, st: AlertState, windows: tuple[MaintenanceWindow, ...]) -> None:
        self.st = st
        self.windows = windows
        self.events: list[AlertEvent] = []

    # -- state helpers --

    def set(self, **changes: Any) -> None:
        self.st = self.st.model_copy(update=changes)

    def set_alert(self, **changes: Any) -> None:
        assert self.st.alert is not None
        self.set(alert=self.st.alert.model_copy(update=changes))

    @property
    def alert(self) -> Alert:
        assert self.st.alert is not None
        return self.st.alert

    def emit(
        self,
        kind: AlertEventKind,
        at: datetime,
        explanation: str,
        *,
        signal: Signal | None = None,
        **extra: Any,
    ) -> None:
        alert = self.alert
        seq = alert.seq + 1
        source = signal or self.st.last_signal
        self.events.append(
            AlertEvent(
                kind=kind,
                id=deterministic_id("alert-event", alert.alert_id, kind.value, at, seq),
                alert_id=alert.alert_id,
                estate=self.st.estate,
                device=self.st.device,
                condition=self.st.condition,
                severity=alert.severity,
                at=at,
                occurrence=alert.occurrence,
                detector=source.detector if source else "",
                rule_version=source.rule_version if source else "",
                explanation=explanation,
                evidence=signal.evidence if signal else (),
                values=signal.values if signal else {},
                **extra,
            )
        )
        self.set_alert(seq=seq, last_event_at=at)

    # -- timers --

    def _raise_due(self) -> datetime:
        assert self.st.phase_since is not None
        due = self.st.phase_since + self.st.policy.raise_after
        moved = True
        while moved:  # a raise due inside a maintenance window waits for its end
            moved = False
            for window in self.windows:
                if window.covers(self.st.estate, self.st.device, due):
                    due, moved = window.ends_at, True
        return due

    def next_due(self) -> tuple[datetime, int] | None:
        st = self.st
        candidates: list[tuple[datetime, int]] = []
        if st.phase is Phase.PENDING:
            candidates.append((self._raise_due(), _TRANSITION))
        elif st.phase is Phase.CLEARING:
            assert st.phase_since is not None
            candidates.append((st.phase_since + st.policy.clear_after, _TRANSITION))
        if st.alert is not None:
            if st.alert.flapping_since is not None:
                assert st.last_transition_at is not None
                candidates.append((st.last_transition_at + st.policy.flap_window, _FLAP_END))
            if st.alert.escalation_due is not None:
                candidates.append((st.alert.escalation_due, _ESCALATION))
        return min(candidates) if candidates else None

    def advance(self, until: datetime) -> None:
        """Fire every timer due at or before ``until``, in time order."""
        while (due := self.next_due()) is not None and due[0] <= until:
            at, what = due
            if what == _ESCALATION:
                self._escalate(at)
            elif what == _FLAP_END:
                self._end_flapping(at)
            elif self.st.phase is Phase.PENDING:
                self._raise(at)
            else:
                self._clear(at)

    def _raise(self, at: datetime) -> None:
        st, policy = self.st, self.st.policy
        signal = st.last_active
        assert signal is not None
        flap_on = policy.flap_window > _ZERO
        raises = (*(t for t in st.raises if t > at - policy.flap_window), at) if flap_on else ()
        severity = st.pending_severity or signal.severity
        self.set(
            phase=Phase.RAISED,
            phase_since=None,
            pending_severity=None,
            raises=raises,
            last_transition_at=at,
        )
        if st.alert is None:
            generation = st.generation + 1
            alert_id = deterministic_id("alert", st.estate, st.device, st.condition, at, generation)
            self.set(
                generation=generation,
                alert=Alert(
                    alert_id=alert_id,
                    severity=severity,
                    opened_at=at,
                    raised_at=at,
                    last_event_at=at,
                ),
            )
        elif st.alert.flapping_since is not None:
            return  # flapping: the alert stays visibly raised, no event
        else:
            self.set_alert(
                severity=_worse(severity, st.alert.severity),
                raised_at=at,
                occurrence=st.alert.occurrence + 1,
                raised=True,
                cleared_at=None,
            )
        self.emit(AlertEventKind.RAISED, at, signal.explanation, signal=signal)
        alert = self.alert
        if (
            policy.escalate_after is not None
            and alert.acknowledged_at is None
            and alert.severity is not Severity.CRITICAL
        ):
            self.set_alert(escalation_due=at + policy.escalate_after)
        if flap_on and len(raises) > policy.flap_max:
            self.set_alert(flapping_since=at)
            self.emit(
                AlertEventKind.FLAPPING,
                at,
                f"raised {len(raises)} times within {policy.flap_window} (more than "
                f"{policy.flap_max}); raise and clear are suppressed until the condition "
                f"has been stable for {policy.flap_window}",
            )

    def _clear(self, at: datetime) -> None:
        self.set(phase=Phase.IDLE, phase_since=None, last_transition_at=at)
        if self.alert.flapping_since is not None:
            return  # flapping: stays visibly raised, no event
        signal = self.st.last_signal
        text = (signal.explanation if signal else "") or (
            f"condition inactive for {self.st.policy.clear_after}"
        )
        self._announce_clear(at, text, signal)

    def _announce_clear(self, at: datetime, text: str, signal: Signal | None) -> None:
        self.set_alert(raised=False, cleared_at=at, escalation_due=None)
        self.emit(AlertEventKind.CLEARED, at, text, signal=signal)
        if self.st.policy.auto_resolve_on_clear:
            self.resolve(at, SYSTEM_ACTOR, None, "auto", None)

    def _end_flapping(self, at: datetime) -> None:
        policy = self.st.policy
        self.set_alert(flapping_since=None)
        self.emit(
            AlertEventKind.FLAPPING_ENDED,
            at,
            f"no raise or clear for {policy.flap_window}: flapping ended",
        )
        if self.st.phase in (Phase.IDLE, Phase.PENDING):
            self._announce_clear(at, "condition inactive once flapping ended", None)

    def _escalate(self, at: datetime) -> None:
        alert, after = self.alert, self.st.policy.escalate_after
        assert after is not None
        severity = alert.severity.escalated()
        self.set_alert(
            severity=severity,
            escalations=alert.escalations + 1,
            escalation_due=at + after if severity is not Severity.CRITICAL else None,
        )
        self.emit(
            AlertEventKind.ESCALATED,
            at,
            f"not acknowledged within {after} of being raised: severity "
            f"{alert.severity} -> {severity}",
            reason="sla",
        )

    # -- inputs --

    def signal(self, signal: Signal, at: datetime, policy: AlarmPolicy) -> None:
        self.advance(at)
        self.set(policy=policy, clock=at, last_signal=signal)
        st = self.st
        if signal.active:
            self.set(last_active=signal, last_seen_at=at)
            if st.phase is Phase.IDLE:
                self.set(phase=Phase.PENDING, phase_since=at, pending_severity=signal.severity)
            elif st.phase is Phase.PENDING:
                assert st.pending_severity is not None
                self.set(pending_severity=_worse(st.pending_severity, signal.severity))
            elif st.phase is Phase.CLEARING:
                self.set(phase=Phase.RAISED, phase_since=None)  # hysteresis interrupted
            alert = self.st.alert
            if alert is not None and alert.raised and signal.severity.rank > alert.severity.rank:
                self.set_alert(
                    severity=signal.severity,
                    escalation_due=(
                        None if signal.severity is Severity.CRITICAL else alert.escalation_due
                    ),
                )
                self.emit(
                    AlertEventKind.ESCALATED,
                    at,
                    signal.explanation,
                    signal=signal,
                    reason="signal",
                )
        elif st.phase is Phase.PENDING:
            self.set(phase=Phase.IDLE, phase_since=None, pending_severity=None)  # a blip
        elif st.phase is Phase.RAISED:
            self.set(phase=Phase.CLEARING, phase_since=at)
        self.advance(at)  # zero persistence / hysteresis act at once

    def resolve(
        self,
        at: datetime,
        actor: str,
        comment: str | None,
        reason: str,
        requested_at: datetime | None,
    ) -> None:
        alert_id = self.alert.alert_id
        self.set_alert(escalation_due=None)
        self.emit(
            AlertEventKind.RESOLVED,
            at,
            f"resolved by {actor}" + (f": {comment}" if comment else ""),
            actor=actor,
            reason=reason,
            comment=comment,
            requested_at=requested_at,
        )
        self.set(alert=None, last_resolved_id=alert_id, last_resolved_at=at)
        if self.st.phase is Phase.RAISED:  # still active: a new alert after persistence
            active = self.st.last_active
            assert active is not None
            self.set(phase=Phase.PENDING, phase_since=at, pending_severity=active.severity)
        elif self.st.phase is Phase.CLEARING:
            self.set(phase=Phase.IDLE, phase_since=None)


# --- the book ------------------------------------------------------------------------------


def _clock(state: AlertState, book: AlarmBook) -> datetime | None:
    times = [t for t in (state.clock, book.watermark) if t is not None]
    return max(times) if times else None


def apply_signal(
    book: AlarmBook, signal: Signal, policy: AlarmPolicy
) -> tuple[AlarmBook, list[AlertEvent]]:
    """Apply one detector signal under ``policy``: the new book and the events it caused.

    Timers of the signal's key due at or before the signal's time fire first (at their
    due times). A signal older than its key's clock or the book's watermark is applied
    as of that time and counted in ``late_signals``.
    """
    key = signal.key
    state = book.alerts.get(key)
    if state is None:
        if not signal.active:
            return book, []  # nothing to remember about a condition that never was
        state = AlertState(
            estate=signal.estate, device=signal.device, condition=signal.condition, policy=policy
        )
    at, late = signal.at, 0
    clock = _clock(state, book)
    if clock is not None and at < clock:
        at, late = clock, 1
    machine = _Machine(state, book.maintenance)
    machine.signal(signal, at, policy)
    return (
        book.model_copy(
            update={
                "alerts": {**book.alerts, key: machine.st},
                "late_signals": book.late_signals + late,
            }
        ),
        machine.events,
    )


def tick(book: AlarmBook, now: datetime) -> tuple[AlarmBook, list[AlertEvent]]:
    """Advance every key to event time ``now`` (a watermark); fire the timers due by then.

    Timed events carry their due time, not ``now``, so how often the runner ticks does
    not change them. ``now`` older than the current watermark does nothing. Maintenance
    windows that can no longer matter (ended by ``now`` and by every pending raise) are
    forgotten.
    """
    if book.watermark is not None and now < book.watermark:
        return book, []
    alerts, events = dict(book.alerts), []
    for key in sorted(book.alerts):
        machine = _Machine(book.alerts[key], book.maintenance)
        machine.advance(now)
        if machine.events or machine.st is not book.alerts[key]:
            alerts[key] = machine.st
            events.extend(machine.events)
    events.sort(key=lambda e: e.at)  # stable: one alert's events keep their order
    # A window can still hold back a pending raise whose persistence elapsed inside it
    # (its due time is then the window's end): forget only windows that ended before both
    # ``now`` and every pending key's own raise time.
    horizon = min(
        [now]
        + [
            s.phase_since + s.policy.raise_after
            for s in alerts.values()
            if s.phase is Phase.PENDING and s.phase_since is not None
        ]
    )
    maintenance = tuple(w for w in book.maintenance if w.ends_at > horizon)
    return (
        book.model_copy(update={"alerts": alerts, "maintenance": maintenance, "watermark": now}),
        events,
    )


def apply_command(
    book: AlarmBook,
    command: AcknowledgeAlert | AssignAlert | CommentAlert | ResolveAlert | StartMaintenance,
) -> tuple[AlarmBook, list[AlertEvent]]:
    """Apply an operator command; raise :class:`CommandRejected` (state unchanged) if it
    cannot apply.

    An alert command first fires its key's timers due by the command time (an
    escalation due before an acknowledgement still happens). Its events are stamped
    with the command time, or the alert's latest time if that is later (an alert's
    events never go back in time); ``requested_at`` keeps the command's own time.
    """
    if isinstance(command, StartMaintenance):
        window = MaintenanceWindow(
            estate=command.estate,
            device=command.device,
            starts_at=command.starts_at,
            ends_at=command.ends_at,
            reason=command.reason,
            by=command.by,
        )
        if window in book.maintenance:
            return book, []
        return book.model_copy(update={"maintenance": (*book.maintenance, window)}), []

    alert_id = command.alert_id
    state = book.find(alert_id)
    if state is None:
        for other in book.alerts.values():
            if other.last_resolved_id == alert_id:
                raise CommandRejected(
                    alert_id,
                    f"already resolved at {other.last_resolved_at}; "
                    "commands apply to open alerts only",
                )
        raise CommandRejected(alert_id, "unknown alert: no open alert has this id")
    at = command.at
    clock = _clock(state, book)
    if clock is not None and at < clock:
        at = clock
    assert state.alert is not None
    at = max(at, state.alert.last_event_at)
    machine = _Machine(state, book.maintenance)
    machine.advance(at)
    alert = machine.st.alert
    if alert is None or alert.alert_id != alert_id:
        raise CommandRejected(
            alert_id, f"resolved automatically at {machine.st.last_resolved_at}, before {at}"
        )
    requested = command.at
    if isinstance(command, AcknowledgeAlert):
        if alert.acknowledged_at is not None:
            raise CommandRejected(
                alert_id,
                f"already acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at}",
            )
        machine.set_alert(acknowledged_at=at, acknowledged_by=command.by, escalation_due=None)
        machine.emit(
            AlertEventKind.ACKNOWLEDGED,
            at,
            f"acknowledged by {command.by}" + (f": {command.comment}" if command.comment else ""),
            actor=command.by,
            comment=command.comment,
            requested_at=requested,
        )
    elif isinstance(command, AssignAlert):
        if alert.assignee == command.to:
            raise CommandRejected(alert_id, f"already assigned to {command.to}")
        machine.set_alert(assignee=command.to)
        machine.emit(
            AlertEventKind.ASSIGNED,
            at,
            f"assigned to {command.to} by {command.by}",
            actor=command.by,
            assignee=command.to,
            requested_at=requested,
        )
    elif isinstance(command, CommentAlert):
        machine.set_alert(comments=alert.comments + 1)
        machine.emit(
            AlertEventKind.COMMENTED,
            at,
            f"comment by {command.by}",
            actor=command.by,
            comment=command.text,
            requested_at=requested,
        )
    else:
        machine.resolve(at, command.by, command.comment, "operator", requested)
    machine.set(clock=at)
    machine.advance(at)  # a still-active condition with zero persistence raises anew
    alerts = {**book.alerts, state.key: machine.st}
    return book.model_copy(update={"alerts": alerts}), machine.events


def apply_all(
    book: AlarmBook,
    inputs: Iterable[tuple[Signal, AlarmPolicy] | datetime],
) -> tuple[AlarmBook, list[AlertEvent]]:
    """Fold signals (with their policy) and ticks (a datetime) into the book, in order."""
    events: list[AlertEvent] = []
    for item in inputs:
        if isinstance(item, datetime):
            book, new = tick(book, item)
        else:
            book, new = apply_signal(book, *item)
        events.extend(new)
    return book, events


# --- the log -------------------------------------------------------------------------------

_ENVELOPE_FIELDS = {"id", "kind", "at", "estate", "device"}
_KINDS = frozenset(kind.value for kind in AlertEventKind)


def to_envelope(event: AlertEvent, received_at: datetime) -> Envelope:
    """The record of ``event`` for the ``events`` stream (keyed by estate/device)."""
    return Envelope(
        id=event.id,
        kind=event.kind.value,
        occurred_at=event.at,
        received_at=received_at,
        estate=event.estate,
        device=event.device,
        payload=event.model_dump(mode="json", exclude=_ENVELOPE_FIELDS),
    )


def from_envelope(envelope: Envelope) -> AlertEvent:
    """The event an envelope of an alert lifecycle kind holds (ValueError otherwise)."""
    if envelope.kind not in _KINDS:
        raise ValueError(f"{envelope.kind!r} is not an alert lifecycle event")
    return AlertEvent.model_validate(
        {
            **envelope.payload,
            "id": envelope.id,
            "kind": envelope.kind,
            "at": envelope.occurred_at,
            "estate": envelope.estate,
            "device": envelope.device,
        }
    )
