"""Scenarios: a registry, a seed, a time window and anomalies injected with ground truth.

A scenario is a YAML file (format in ``docs/simulators.md``)::

    name: bin-fire
    registry: {households: 200}          # a generated demo registry, or a file path
    seed: 7
    start: "2026-05-04T08:00:00+08:00"
    duration: 6h
    injections:
      - kind: bin_fire
        select: {category: kitchen}      # or device: bin-cp01-kitchen
        start: 1h                        # after the scenario start (or a time)
        duration: 1h
        params: {rise_c: 60}

:func:`load_scenario` reads a file or a shipped scenario by name
(``simulators/scenarios/<name>.yaml``) and refuses anything wrong with
``file:line: path: message`` problems (:class:`ScenarioError`). Devices named by a
selector are picked deterministically from the seed. :meth:`Scenario.simulator`
builds the :class:`simulators.estate.EstateSimulator`, whose ``ground_truth`` lists
the labelled intervals (kind, device, start, end, expected detector).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from devices.catalogue import DeviceKind, WasteCategory
from devices.demo_estate import generate_registry
from devices.registry import (
    DeviceRef,
    Registry,
    RegistryError,
    RegistryIndex,
    load_registry,
)
from devices.yamlfile import Problem, format_loc, line_of, read_mapping
from simulators.behaviour import rng_for
from simulators.estate import EstateSimulator, Injection
from simulators.model import Imperfections

SCENARIO_DIR = Path(__file__).parent / "scenarios"

_DURATION = re.compile(r"^(?:([0-9]+(?:\.[0-9]+)?)([dhms]))+$")
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([dhms])")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"6h"``, ``"4d"``, ``"1h30m"`` → a timedelta (``ValueError``)."""
    cleaned = text.replace(" ", "")
    if not _DURATION.fullmatch(cleaned):
        raise ValueError(f"duration {text!r} is not like 90s, 30m, 6h, 4d or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(cleaned)))


# --- what can be injected --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InjectionKind:
    """An anomaly the simulator can inject, the devices it fits and who should report it."""

    device_kind: DeviceKind | None  #: None: any kind
    tags: frozenset[str]  #: the device must carry these tags
    detectors: tuple[str, ...]
    params: dict[str, float]  #: parameters and their defaults
    duration: timedelta
    role: str | None = None  #: the device's profile role, when it matters
    help: str = ""


def _kind(
    device_kind: DeviceKind | None,
    detectors: tuple[str, ...],
    duration: str,
    help_text: str,
    *,
    tags: Sequence[str] = (),
    role: str | None = None,
    **params: float,
) -> InjectionKind:
    return InjectionKind(
        device_kind, frozenset(tags), detectors, params, parse_duration(duration), role, help_text
    )


K = DeviceKind
INJECTIONS: dict[str, InjectionKind] = {
    "water_leak": _kind(
        K.WATER_METER,
        ("water_night_flow", "water_continuous_flow"),
        "4d",
        "a household pipe leaks flow_l_h around the clock (night flow never stops)",
        role="household",
        flow_l_h=12.0,
    ),
    "water_burst": _kind(
        K.WATER_METER,
        ("water_burst",),
        "40m",
        "a burst: flow_l_min more; the meter reports every 5 min while it lasts",
        role="household",
        flow_l_min=45.0,
    ),
    "water_backflow": _kind(
        K.WATER_METER,
        ("water_backflow",),
        "20m",
        "the meter runs backwards at flow_l_min (a pressure drop in the main); it reports "
        "every 5 min while it lasts, the first 5 min in",
        role="household",
        flow_l_min=1.5,
    ),
    "bin_overflow": _kind(
        K.WASTE_BIN,
        ("bin_fill_forecast", "bin_overflow"),
        "8h",
        "the bin fills rate_pct_h faster and is not collected until the end",
        rate_pct_h=40.0,
    ),
    "bin_not_emptied": _kind(
        K.WASTE_BIN,
        ("bin_fill_forecast", "bin_overflow", "bin_not_emptied"),
        "20h",
        "the bin fills up and the collection rounds skip it until the end",
        rate_pct_h=40.0,
    ),
    "bin_stuck_sensor": _kind(
        K.WASTE_BIN,
        ("bin_stuck_sensor",),
        "3d",
        "the fill sensor keeps reporting its first level of the interval (the bin fills and "
        "is emptied as usual)",
    ),
    "bin_fire": _kind(
        K.WASTE_BIN,
        ("bin_fire_risk",),
        "1h",
        "the bin smoulders: temperature rises by rise_c within 15 min (readings every 5 min)",
        rise_c=60.0,
    ),
    "ev_overstay": _kind(
        K.EV_CHARGER,
        ("ev_overstay",),
        "36h",
        "a car plugs into `connector`, charges charge_h hours and stays until the end",
        connector=1,
        charge_h=1.5,
    ),
    "ev_bay_blocked": _kind(
        K.PARKING_SENSOR,
        ("ev_bay_blocked",),
        "4h",
        "a car that does not charge occupies an EV bay (its connector stays available)",
        tags=("ev_bay",),
    ),
    "ebike_over_temperature": _kind(
        K.EBIKE_STATION,
        ("ebike_over_temperature",),
        "1h",
        "a charging port heats up by rise_c over 20 min; the station faults it at the end",
        port=1,
        rise_c=55.0,
    ),
    "ev_session_too_long": _kind(
        K.EV_CHARGER,
        ("ev_overstay", "ev_session_too_long"),
        "34h",
        "as ev_overstay, for longer than the 30 h session limit (an abandoned car)",
        connector=1,
        charge_h=1.5,
    ),
    "ev_charger_faulted": _kind(
        K.EV_CHARGER,
        ("ev_charger_faulted",),
        "3h",
        "`connector` reports `faulted` (no session on it), `available` again at the end",
        connector=1,
    ),
    "ebike_session_too_long": _kind(
        K.EBIKE_STATION,
        ("ebike_session_too_long",),
        "10h",
        "a charger that never stops: charges charge_h hours (with its taper), then draws "
        "trickle_w and stays `charging` until the end",
        port=1,
        charge_h=5.0,
        trickle_w=12.0,
    ),
    "flying_wire": _kind(
        K.ENERGY_METER,
        ("flying_wire",),
        "6h",
        "an e-bike charged from a corridor socket (飞线充电): ~380 W with a taper",
        tags=("corridor",),
    ),
    "fire_lane_blocked": _kind(
        K.PARKING_SENSOR,
        ("fire_lane_blocked",),
        "2h",
        "a car stands on a fire-lane spot",
        tags=("fire_lane",),
    ),
    "door_forced": _kind(
        K.ACCESS_GATE, ("door_forced",), "2m", "the door is forced open, closed at the end"
    ),
    "door_held_open": _kind(
        K.ACCESS_GATE,
        ("door_held_open",),
        "15m",
        "after a granted passage the door stays open until the end",
    ),
    "gate_denied_attempts": _kind(
        K.ACCESS_GATE,
        ("gate_denied_attempts",),
        "4m",
        "one credential is denied again and again, an attempt every every_s seconds",
        every_s=40.0,
    ),
    "gate_tailgating": _kind(
        K.ACCESS_GATE,
        ("gate_tailgating",),
        "1m",
        "a granted passage at the start through which the gate counts `persons`",
        persons=5.0,
    ),
    "device_offline": _kind(None, ("device_offline",), "6h", "the device sends nothing"),
    "lighting_daylight": _kind(
        K.ENERGY_METER,
        ("lighting_daylight",),
        "4h",
        "a public-lighting circuit stays on in daylight",
        tags=("lighting",),
    ),
}


# --- the file --------------------------------------------------------------------------------

_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


def _duration_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a duration like 90s, 30m, 6h, 4d or 1h30m (text)")
    parse_duration(value)
    return value


def _time_or_offset(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a time needs a UTC offset, e.g. 2026-05-04T08:00:00+08:00")
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is neither a time with offset (2026-05-04T08:00:00+08:00) "
                "nor an offset from the scenario start (30m, 6h, 1d2h)"
            ) from None
        if at.tzinfo is None:
            raise ValueError("a time needs a UTC offset, e.g. 2026-05-04T08:00:00+08:00")
        return at
    raise ValueError("must be a time with offset or an offset from the scenario start (text)")


Duration = Annotated[str, Field(strict=False)]
When = Annotated[Any, Field()]


class GeneratedRegistry(BaseModel):
    """A demo registry made by ``devices.demo_estate`` (see docs/registry.md)."""

    model_config = _STRICT
    households: Annotated[int, Field(ge=1, le=100_000)]
    estates: Annotated[int, Field(ge=1, le=100)] = 1
    seed: int = 1


class Selector(BaseModel):
    """Which devices an injection may pick from; the pick is made from the scenario seed."""

    model_config = _STRICT
    kind: DeviceKind | None = Field(default=None, strict=False)
    profile: str | None = None
    tags: tuple[str, ...] = Field(default=(), strict=False)
    category: WasteCategory | None = None
    zone: str | None = None
    building: str | None = None
    estate: str | None = None


class InjectionSpec(BaseModel):
    model_config = _STRICT
    kind: str
    name: Name | None = None
    device: Name | None = None
    estate: Name | None = None
    select: Selector | None = None
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    start: When = timedelta(0)
    duration: Duration | None = None
    end: When = None
    params: dict[str, float] = Field(default_factory=dict, strict=False)

    @field_validator("kind")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in INJECTIONS:
            close = difflib.get_close_matches(value, list(INJECTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown injection kind {value!r}{hint} (known: {', '.join(INJECTIONS)})"
            )
        return value

    @field_validator("start", "end")
    @classmethod
    def _when(cls, value: object) -> object:
        return None if value is None else _time_or_offset(value)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return None if value is None else _duration_text(value)


class ScenarioFile(BaseModel):
    model_config = _STRICT
    name: Name
    description: str = ""
    registry: GeneratedRegistry | str
    seed: int
    start: When
    duration: Duration
    imperfections: Imperfections = Field(default_factory=Imperfections, strict=False)
    injections: list[InjectionSpec] = Field(default_factory=list)

    @field_validator("start")
    @classmethod
    def _start(cls, value: object) -> object:
        at = _time_or_offset(value)
        if not isinstance(at, datetime):
            raise ValueError("the scenario start must be a time with offset")
        return at

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _duration_text(value)


# --- errors ----------------------------------------------------------------------------------


class ScenarioError(Exception):
    """The scenario cannot be used; ``problems`` lists every reason, ``str()`` one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _message(err: ErrorDetails) -> str:
    loc = err["loc"]
    if err["type"] == "missing":
        return f"missing required field {loc[-1]!r}"
    if err["type"] == "extra_forbidden":
        return f"unknown field {loc[-1]!r}"
    text = str(err["msg"])
    return text.removeprefix("Value error, ")


def _without_union_noise(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """``registry`` is a mapping or a path: report the mapping's errors, not both branches."""
    out = []
    for err in errors:
        loc = err["loc"]
        if loc[:1] == ("registry",) and len(loc) > 1 and loc[1] in ("str", "GeneratedRegistry"):
            if loc[1] == "str" and any(e["loc"][1:2] == ("GeneratedRegistry",) for e in errors):
                continue
            moved = err.copy()
            moved["loc"] = (loc[0], *loc[2:])
            out.append(moved)
        else:
            out.append(err)
    return out


# --- the scenario ----------------------------------------------------------------------------


@dataclass
class Scenario:
    """A loaded, checked scenario with its injections resolved against its registry."""

    name: str
    description: str
    path: Path
    seed: int
    start: datetime
    duration: timedelta
    imperfections: Imperfections
    registry: Registry = field(repr=False)
    injections: list[Injection]
    spec: ScenarioFile = field(repr=False)
    root: yaml.Node = field(repr=False)

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    def with_registry(self, registry: Registry) -> Scenario:
        """The same scenario on another registry (devices re-resolved; ``ScenarioError``)."""
        injections = _resolve(self.spec, registry, self.start, str(self.path), self.root)
        return Scenario(
            self.name,
            self.description,
            self.path,
            self.seed,
            self.start,
            self.duration,
            self.imperfections,
            registry,
            injections,
            self.spec,
            self.root,
        )

    def simulator(
        self,
        *,
        seed: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        imperfections: Imperfections | None = None,
        only: Callable[[DeviceRef], bool] | None = None,
    ) -> EstateSimulator:
        """The simulator of this scenario. Another ``start`` moves the injections with it
        (they keep their offsets from the start); ``end`` defaults to start + duration."""
        begin = start or self.start
        shift = begin - self.start
        injections = [
            dataclasses.replace(i, start=i.start + shift, end=i.end + shift)
            for i in self.injections
        ]
        return EstateSimulator(
            self.registry,
            seed=self.seed if seed is None else seed,
            start=begin,
            end=end or begin + self.duration,
            imperfections=imperfections or self.imperfections,
            injections=injections,
            only=only,
        )


def scenario_names() -> list[str]:
    """The shipped scenarios (``simulators/scenarios/*.yaml``)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def scenario_descriptions() -> dict[str, str]:
    """Shipped scenario name → its description (read without building its registry)."""
    out: dict[str, str] = {}
    for name in scenario_names():
        read = read_mapping(SCENARIO_DIR / f"{name}.yaml", "a scenario")
        text = "" if isinstance(read, list) else read[0].get("description", "")
        out[name] = " ".join(str(text).split())
    return out


def scenario_path(name_or_file: str | Path) -> Path:
    """A file path as given, or a shipped scenario's file by name."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return SCENARIO_DIR / f"{name_or_file}.yaml"


def load_scenario(name_or_file: str | Path) -> Scenario:
    """Load and check a scenario (a file, or a shipped scenario by name)."""
    path = scenario_path(name_or_file)
    if not path.exists() and not Path(name_or_file).suffix:
        known = ", ".join(scenario_names())
        raise ScenarioError(
            [Problem(str(name_or_file), None, "", f"no such scenario (shipped: {known})")]
        )
    name = str(path)
    read = read_mapping(path, "a scenario file is a mapping with name, registry, seed, ...")
    if isinstance(read, list):
        raise ScenarioError(read)
    data, root = read
    try:
        spec = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        errors = _without_union_noise(list(exc.errors(include_url=False)))
        raise ScenarioError(
            [
                Problem(name, line_of(root, e["loc"]), format_loc(e["loc"]), _message(e))
                for e in errors
            ]
        ) from None
    registry = _registry(spec, path, root)
    start: datetime = spec.start
    injections = _resolve(spec, registry, start, name, root)
    return Scenario(
        spec.name,
        spec.description,
        path,
        spec.seed,
        start,
        parse_duration(spec.duration),
        spec.imperfections,
        registry,
        injections,
        spec,
        root,
    )


def _registry(spec: ScenarioFile, path: Path, root: yaml.Node) -> Registry:
    if isinstance(spec.registry, GeneratedRegistry):
        g = spec.registry
        return Registry.model_validate(generate_registry(g.households, g.seed, g.estates))
    file = (path.parent / spec.registry).resolve()
    try:
        return load_registry(file)
    except RegistryError as exc:
        line = line_of(root, ("registry",))
        first = exc.problems[0] if exc.problems else None
        raise ScenarioError(
            [Problem(str(path), line, "registry", f"the registry cannot be used: {first}")]
        ) from None


def _resolve(
    spec: ScenarioFile, registry: Registry, start: datetime, name: str, root: yaml.Node
) -> list[Injection]:
    index = registry.index()
    problems: list[Problem] = []
    out: list[Injection] = []
    taken: set[tuple[str, str]] = set()
    end_of_run = start + parse_duration(spec.duration)

    def problem(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(name, line_of(root, loc), format_loc(loc), message))

    for n, inj in enumerate(spec.injections):
        here: tuple[str | int, ...] = ("injections", n)
        kind = INJECTIONS[inj.kind]
        unknown = sorted(set(inj.params) - set(kind.params))
        for param in unknown:
            known = ", ".join(kind.params) or "none"
            problem((*here, "params", param), f"unknown parameter of {inj.kind} (known: {known})")
        at = inj.start if isinstance(inj.start, datetime) else start + inj.start
        if inj.end is not None and inj.duration is not None:
            problem((*here, "end"), "give either end or duration, not both")
        if inj.end is not None:
            until = inj.end if isinstance(inj.end, datetime) else start + inj.end
        else:
            until = at + (parse_duration(inj.duration) if inj.duration else kind.duration)
        if until <= at:
            problem((*here, "end"), f"the injection ends ({until}) before it starts ({at})")
        if not start <= at < end_of_run:
            problem((*here, "start"), f"{at} is outside the scenario ({start} to {end_of_run})")
        if inj.device is not None and inj.select is not None:
            problem((*here, "select"), "give either device or select, not both")
            continue
        if inj.device is not None:
            refs = _named(index, inj, kind, (*here, "device"), problem)
        else:
            refs = _selected(index, inj, kind, spec.seed, n, taken, (*here, "select"), problem)
        params = {**kind.params, **inj.params}
        for i, ref in enumerate(refs):
            taken.add((ref.estate, ref.device))
            label = inj.name or f"{inj.kind}-{n + 1}"
            out.append(
                Injection(
                    label if len(refs) == 1 else f"{label}-{i + 1}",
                    inj.kind,
                    ref.estate,
                    ref.device,
                    at,
                    until,
                    kind.detectors,
                    params,
                )
            )
    if problems:
        raise ScenarioError(problems)
    return out


def _fits(ref: DeviceRef, kind: InjectionKind) -> str | None:
    """Why ``ref`` cannot take ``kind``, or None."""
    if kind.device_kind is not None and ref.kind is not kind.device_kind:
        return f"is a {ref.kind.value}, not a {kind.device_kind.value}"
    missing = sorted(kind.tags - ref.tags)
    if missing:
        return f"lacks the tag(s) {', '.join(missing)}"
    if kind.role is not None and ref.profile.role != kind.role:
        return f"has profile {ref.profile.name} (role {ref.profile.role}), not a {kind.role} meter"
    return None


Loc = tuple[str | int, ...]
Report = Callable[[Loc, str], None]


def _named(
    index: RegistryIndex, inj: InjectionSpec, kind: InjectionKind, loc: Loc, problem: Report
) -> list[DeviceRef]:
    assert inj.device is not None
    found = index.find_device(inj.device)
    if inj.estate is not None:
        found = [r for r in found if r.estate == inj.estate]
    if not found:
        every = [r.device for e in index.estate_ids() for r in index.devices_of(e)]
        close = difflib.get_close_matches(str(inj.device), every, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problem(loc, f"device {inj.device!r} is not in the registry{hint}")
        return []
    if len(found) > 1:
        estates = ", ".join(r.estate for r in found)
        problem(loc, f"device {inj.device!r} is in several estates ({estates}); add estate:")
        return []
    why = _fits(found[0], kind)
    if why is not None:
        problem(loc, f"device {inj.device!r} {why}; {inj.kind} needs {_wanted(kind)}")
        return []
    return found[: inj.count]


def _wanted(kind: InjectionKind) -> str:
    what = kind.device_kind.value if kind.device_kind else "any device"
    if kind.tags:
        what += f" tagged {', '.join(sorted(kind.tags))}"
    if kind.role:
        what += f" with a {kind.role} profile"
    return what


def _selected(
    index: RegistryIndex,
    inj: InjectionSpec,
    kind: InjectionKind,
    seed: int,
    n: int,
    taken: set[tuple[str, str]],
    loc: Loc,
    problem: Report,
) -> list[DeviceRef]:
    sel = inj.select or Selector()
    if sel.kind is not None and kind.device_kind is not None and sel.kind is not kind.device_kind:
        problem(
            (*loc, "kind"), f"{inj.kind} applies to {kind.device_kind.value}, not {sel.kind.value}"
        )
        return []
    candidates = [
        ref
        for estate in index.estate_ids()
        if (sel.estate or inj.estate or estate) == estate
        for ref in index.devices_of(estate)
        if _fits(ref, kind) is None
        and (sel.kind is None or ref.kind is sel.kind)
        and (sel.profile is None or ref.profile.name == sel.profile)
        and set(sel.tags) <= ref.tags
        and (sel.category is None or ref.spec.category == sel.category)
        and (sel.zone is None or ref.zone == sel.zone)
        and (sel.building is None or ref.building == sel.building)
    ]
    fresh = [r for r in candidates if (r.estate, r.device) not in taken]
    pool = fresh if len(fresh) >= inj.count else candidates
    if len(pool) < inj.count:
        problem(
            loc,
            f"the selector matches {len(pool)} device(s) that fit {inj.kind} "
            f"({_wanted(kind)}), {inj.count} wanted",
        )
        return []
    return rng_for(seed, "select", n).sample(pool, inj.count)
