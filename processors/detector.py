"""The detector framework: what a detector sees, what it returns, and its contract.

A detector is pure. It watches one device at a time:

* ``step(state, reading, ctx) -> (state, signals)`` for every reading of a kind it
  watches, in event-time order (the runner guarantees the order);
* ``tick(state, now, ctx) -> (state, signals)`` when event time (the watermark)
  advances, for time-based rules (silence, SLAs, night windows).

``state`` is a state dataclass (decorated :func:`state`, with :data:`STATE_CONFIG` as
its ``__pydantic_config__``): immutable for the type checker (``mypy --strict`` rejects
any assignment to its fields), slotted, cheap to build on every step and small in
memory; changed copies come from :func:`replace`. It is serialised into snapshots and,
in the distributed runtime, faust tables through :meth:`BaseDetector.dump_state` /
:meth:`BaseDetector.load_state` (pydantic's ``TypeAdapter``, so its fields use
pydantic-known types: ``UtcDatetime``, ``UUID``, numbers, tuples, nested state
classes). ``now`` is event time, never the wall clock; detectors do no I/O and use no
randomness. A detector reports conditions as :class:`processors.alarm.Signal` (active
or not, with an explanation that gives the numbers, the evidence reading ids, the
detector name and its rule version); the
shared alarm machine (``processors/alarm.py``) turns signals into alert lifecycle
events with the :class:`AlarmPolicy` the detector derives from its rule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Literal,
    Protocol,
    TypeVar,
    dataclass_transform,
)
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, TypeAdapter

from devices.catalogue import DeviceKind
from devices.codec import FLAGS_KEY
from devices.profiles import Profile
from devices.registry import DeviceRef, RegistryIndex
from eventlog.envelope import Envelope
from processors.alarm import AlarmPolicy, Signal
from processors.rules import ResolvedRules, RuleSet

#: A detector's state: frozen and serialisable by pydantic (a model or a slotted dataclass).
StateT = TypeVar("StateT")

#: The pydantic config of every state dataclass (``__pydantic_config__``): what
#: :meth:`BaseDetector.load_state` refuses (unknown fields, NaN and infinities).
STATE_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

_C = TypeVar("_C")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def state(cls: type[_C]) -> type[_C]:
    """A detector state class: a slotted dataclass, frozen for the type checker.

    At run time it is not frozen: a frozen dataclass sets each field through
    ``object.__setattr__`` (~270 ns a field against ~35 ns), and states are built on
    nearly every reading; see docs/decisions.md. Immutability is kept where code is
    written: ``mypy --strict`` (run by CI on every package) rejects an assignment to a
    field, and changed copies come from :func:`replace`. Hashable by value, as a frozen
    dataclass would be.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)


if TYPE_CHECKING:
    from dataclasses import replace as replace  # noqa: PLC0414 (re-exported: mypy checks the names)
else:
    _GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}

    def replace(obj: Any, /, **changes: Any) -> Any:
        """``dataclasses.replace`` for :func:`state` classes, ~5x cheaper: the fields are
        read by one cached ``attrgetter`` and passed positionally; ``changes`` are set on
        the new object (an unknown name raises ``AttributeError``: slots)."""
        cls = type(obj)
        get = _GETTERS.get(cls)
        if get is None:
            names = [f.name for f in dataclasses.fields(cls)]
            get = _GETTERS[cls] = (
                attrgetter(*names) if len(names) > 1 else (lambda o: (getattr(o, names[0]),))
            )
        new = cls(*get(obj))
        for name, value in changes.items():
            setattr(new, name, value)
        return new


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What a detector may know about the device it judges (from registry and rules)."""

    estate: str
    device: str
    building: str | None
    kind: DeviceKind
    profile: Profile
    tags: frozenset[str]
    tz: ZoneInfo
    rules: ResolvedRules
    #: The estate's registered location (WGS-84 degrees): sunrise and sunset come from it.
    lat: float = 31.23
    lon: float = 121.47


@dataclass(frozen=True, slots=True)
class ReadingView:
    """An accepted reading as detectors see it (from a ``readings`` envelope)."""

    id: UUID
    kind: str  #: envelope kind, e.g. ``waste_bin.level``
    at: datetime  #: device time (UTC)
    payload: Mapping[str, Any]
    flags: tuple[str, ...] = ()
    #: The device that sent it (a building-scoped detector sees several devices).
    device: str = ""

    @property
    def stream(self) -> str:
        return self.kind.partition(".")[2]

    def number(self, field: str) -> float | None:
        """The payload's ``field`` as a finite float, or ``None`` when absent or not a number."""
        value = self.payload.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if math.isfinite(value) else None

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> ReadingView:
        payload = envelope.payload
        flags = payload.get(FLAGS_KEY)
        return cls(
            id=envelope.id,
            kind=envelope.kind,
            at=envelope.occurred_at,
            payload=payload,
            flags=tuple(str(f) for f in flags) if isinstance(flags, list) else (),
            device=envelope.device or "",
        )


# Durations from rules, memoised: building a timedelta costs ~0.9 us and the hot paths
# compare against the same few rule durations on every reading.


@lru_cache(maxsize=512)
def span_h(value: float) -> timedelta:
    """``timedelta(hours=value)``, memoised."""
    return timedelta(hours=value)


@lru_cache(maxsize=512)
def span_min(value: float) -> timedelta:
    """``timedelta(minutes=value)``, memoised."""
    return timedelta(minutes=value)


@lru_cache(maxsize=512)
def span_s(value: float) -> timedelta:
    """``timedelta(seconds=value)``, memoised."""
    return timedelta(seconds=value)


#: Whose readings feed one detector state (see :attr:`BaseDetector.scope`).
Scope = Literal["device", "master", "bay"]

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(model: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


class Detector(Protocol, Generic[StateT]):
    """The contract every detector implements (see the module docstring)."""

    #: The detector's name; also its section in the rule files and its alarm condition.
    name: ClassVar[str]
    #: Envelope kinds it consumes (``waste_bin.level``...); empty = every reading kind.
    consumes: ClassVar[frozenset[str]]
    #: Whose readings feed one state: see :attr:`BaseDetector.scope`.
    scope: ClassVar[Scope]
    #: Whether :meth:`tick_due` says when :meth:`tick` can next matter (see
    #: :attr:`BaseDetector.scheduled`).
    scheduled: ClassVar[bool]

    def applies_to(self, ctx: DeviceContext) -> bool:
        """Whether this detector watches the device at all (kind, tags, rule enabled)."""
        ...

    def dump_state(self, state: StateT) -> Any: ...

    def load_state(self, data: Any) -> StateT: ...

    def initial(self, ctx: DeviceContext) -> StateT: ...

    def step(
        self, state: StateT, reading: ReadingView, ctx: DeviceContext
    ) -> tuple[StateT, list[Signal]]: ...

    def tick(
        self, state: StateT, now: datetime, ctx: DeviceContext
    ) -> tuple[StateT, list[Signal]]: ...

    def tick_due(self, state: StateT, ctx: DeviceContext) -> datetime | None:
        """For a :attr:`scheduled` detector: the earliest event time at which :meth:`tick`
        could change ``state`` or signal (``None``: not before the next reading)."""
        ...

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        """How the alarm machine treats this detector's condition for the device."""
        ...


class BaseDetector(Generic[StateT]):
    """Defaults for a :class:`Detector`; a subclass sets the class attributes, ``step``
    and whatever differs from the defaults below."""

    #: The detector's name; also its section in the rule files and its alarm condition.
    name: ClassVar[str]
    #: Envelope kinds it consumes (``waste_bin.level``...); empty = every reading kind.
    consumes: ClassVar[frozenset[str]]
    #: Device kinds it watches; empty = every kind.
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset()
    #: The state model; :meth:`initial` builds it with no arguments.
    state_model: type[StateT]
    #: ``device``: one state per device, fed that device's readings. ``master``: one state
    #: per master meter, fed the readings of the master *and* of every meter whose
    #: ``meter_of`` names it (``ReadingView.device`` tells them apart); ``applies_to`` and
    #: the context are the master's. ``bay``: one state per parking bay linked to a charger
    #: connector (registry ``connector: charger_id:n``), fed the bay's readings *and* that
    #: connector's readings of the charger (``ReadingView.device`` is the charger);
    #: ``applies_to`` and the context are the bay's.
    scope: ClassVar[Scope] = "device"
    #: ``True``: :meth:`tick_due` gives the earliest event time at which :meth:`tick` could
    #: change the state or signal, and the runner ticks the state only from then on
    #: (a tick before that must change nothing). ``False``: a detector overriding
    #: :meth:`tick` is ticked on every point of the runner's tick grid.
    scheduled: ClassVar[bool] = False

    def tick_due(self, state: StateT, ctx: DeviceContext) -> datetime | None:
        """No time-based rule (or not :attr:`scheduled`): nothing to schedule."""
        return None

    def dump_state(self, state: StateT) -> Any:
        """``state`` as JSON-compatible data (snapshots, faust tables)."""
        return _adapter(self.state_model).dump_python(state, mode="json")

    def load_state(self, data: Any) -> StateT:
        """The state :meth:`dump_state` gave ``data`` for (validated)."""
        state: StateT = _adapter(self.state_model).validate_python(data)
        return state

    def applies_to(self, ctx: DeviceContext) -> bool:
        """A device of one of :attr:`kinds` (any if empty) whose rule is enabled."""
        return (not self.kinds or ctx.kind in self.kinds) and ctx.rules.get(self.name).enabled

    def initial(self, ctx: DeviceContext) -> StateT:
        return self.state_model()

    def policy(self, ctx: DeviceContext) -> AlarmPolicy:
        return AlarmPolicy()

    def tick(self, state: StateT, now: datetime, ctx: DeviceContext) -> tuple[StateT, list[Signal]]:
        """No time-based rule: ticks change nothing."""
        return state, []


def unscheduled(detector: Detector[StateT]) -> Detector[StateT]:
    """The same detector, not :attr:`~BaseDetector.scheduled`: a runner ticks its states on
    every grid point (to compare the two: the events must be the same)."""
    cls = type(f"Unscheduled{type(detector).__name__}", (type(detector),), {"scheduled": False})
    made: Detector[StateT] = cls()
    return made


def signal(
    detector: str,
    ctx: DeviceContext,
    *,
    active: bool,
    at: datetime,
    explanation: str,
    evidence: tuple[UUID, ...] = (),
    values: Mapping[str, float | int | str] | None = None,
    severity: str = "warning",
    condition: str | None = None,
) -> Signal:
    """A :class:`Signal` of ``detector`` about ``ctx``'s device, with its rule version.

    Validated by pydantic-core from a dict: measured, that is cheaper than
    ``model_construct`` (~7 against ~13 µs), whose field loop runs in Python.
    """
    return Signal.model_validate(
        {
            "condition": condition or detector,
            "estate": ctx.estate,
            "device": ctx.device,
            "active": active,
            "at": at,
            "severity": severity,
            "explanation": explanation,
            "evidence": evidence,
            "values": dict(values or {}),
            "detector": detector,
            "rule_version": ctx.rules.version_of(detector),
        }
    )


def context_for(index: RegistryIndex, ref: DeviceRef, rules: RuleSet) -> DeviceContext:
    """The context of a registered device, with its estate's timezone and resolved rules."""
    estate = index.estate(ref.estate)
    if estate is None:  # a DeviceRef always comes from an index that knows its estate
        raise KeyError(f"estate {ref.estate!r} is not in the registry")
    return DeviceContext(
        estate=ref.estate,
        device=ref.device,
        building=ref.building,
        kind=ref.kind,
        profile=ref.profile,
        tags=ref.tags,
        tz=estate.tz,
        rules=rules.for_device(ref),
        lat=estate.estate.location.lat,
        lon=estate.estate.location.lon,
    )
