"""The registry: ``estate.yaml`` (or a folder of them) as frozen pydantic models.

District → street office → estate → building → device, plus each street
office's webhook endpoints. Secrets never live in the registry: an endpoint
names an environment variable (``secret_env``) or a file (``secret_file``).

* :func:`load_registry` reads one file or a folder of ``*.yaml``/``*.yml``
  files and raises :class:`RegistryError` listing every problem as
  ``file:line: path: message``.
* :meth:`Registry.index` builds, once, the O(1) lookups ingest uses per
  message (:class:`RegistryIndex`).
* :func:`check_registry` is ``estate registry check FILE``: load and summarise.

See ``docs/registry.md`` for the schema, the tags and the error format.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from devices.catalogue import DeviceKind, WasteCategory
from devices.profiles import BUILTIN_PROFILES, Profile, unit_problem
from devices.severity import Severity
from devices.yamlfile import Problem, format_loc, line_of, read_mapping, show
from eventlog.envelope import Ident

__all__ = [
    "KNOWN_TAGS",
    "Building",
    "Device",
    "DeviceLocation",
    "DeviceRef",
    "District",
    "Estate",
    "EstateRef",
    "GeoPoint",
    "Problem",
    "Registry",
    "RegistryError",
    "RegistryIndex",
    "RegistrySummary",
    "Severity",
    "StreetOffice",
    "TagSpec",
    "WebhookEndpoint",
    "check_registry",
    "load_registry",
    "registry_files",
    "summarize",
]

#: A path into the registry data: mapping keys and list indexes.
Loc = tuple[str | int, ...]

_IDENT_PATTERN = r"^[A-Za-z0-9_.\-]+$"
_TAG_PATTERN = re.compile(r"^[a-z0-9_]+$")
_ENV_PATTERN = r"^[A-Z_][A-Z0-9_]{0,127}$"
_EVENT_PATTERN = r"^[A-Za-z0-9_.*?\-]{1,128}$"
_CONNECTOR = re.compile(r"^([A-Za-z0-9_.\-]{1,64}):([0-9]{1,2})$")
_MAX_CONNECTOR = 16  # devices.catalogue.EvConnector.connector

_KIND_LIST = ", ".join(k.value for k in DeviceKind)
_METERS = frozenset({DeviceKind.WATER_METER, DeviceKind.ENERGY_METER})
_PORTED = frozenset({DeviceKind.EV_CHARGER, DeviceKind.EBIKE_STATION})

#: The context flag :func:`load_registry` passes so that cross-checks run once, with locations.
_DEFER_CHECKS = "devices.registry.defer_checks"


# --- tags ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagSpec:
    """What a known tag means and which device kinds may carry it."""

    meaning: str
    kinds: frozenset[DeviceKind]


KNOWN_TAGS: dict[str, TagSpec] = {
    "fire_lane": TagSpec(
        "a spot on a fire lane (消防通道): no vehicle may stand there, occupancy is an alarm",
        frozenset({DeviceKind.PARKING_SENSOR}),
    ),
    "ev_bay": TagSpec(
        "an EV charging bay; link its charger with `connector: charger_id:n`",
        frozenset({DeviceKind.PARKING_SENSOR}),
    ),
    "visitor_bay": TagSpec(
        "a visitor bay with a time limit", frozenset({DeviceKind.PARKING_SENSOR})
    ),
    "elderly_alone": TagSpec(
        "a household of an elderly person living alone (独居老人): long silence of water and "
        "energy use asks for a welfare check; no names or personal details",
        _METERS,
    ),
    "corridor": TagSpec("a corridor / stairwell circuit", frozenset({DeviceKind.ENERGY_METER})),
    "common_area": TagSpec(
        "a common-area supply (clubhouse, pump room, garage, landscape)", _METERS
    ),
    "lighting": TagSpec("a public-lighting circuit", frozenset({DeviceKind.ENERGY_METER})),
    "master": TagSpec(
        "a master (bulk) meter: its consumption should match the sum of the meters whose "
        "`meter_of` names it",
        _METERS,
    ),
}


# --- field types -----------------------------------------------------------------------------

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
Lat = Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]


def _check_tag(tag: str) -> str:
    if tag not in KNOWN_TAGS and not _TAG_PATTERN.match(tag):
        raise ValueError(
            f"tag {tag!r} is not a known tag ({', '.join(KNOWN_TAGS)}); other tags may only "
            "use lower-case letters a-z, digits and _"
        )
    return tag


Tag = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_tag)]


class _Model(BaseModel):
    # Inputs stay out of ValidationError texts: a refused inline secret must not be echoed.
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, hide_input_in_errors=True
    )


# --- models ----------------------------------------------------------------------------------


class GeoPoint(_Model):
    """WGS-84 coordinates (degrees)."""

    lat: Lat
    lon: Lon


class DeviceLocation(_Model):
    """Where a device is: coordinates, a free-text spot ("3号楼东侧收集点"), or both."""

    lat: Lat | None = None
    lon: Lon | None = None
    spot: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _complete(self) -> DeviceLocation:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("location needs both lat and lon, or neither")
        if self.lat is None and self.spot is None:
            raise ValueError("location needs lat and lon, or a spot description")
        return self


class Device(_Model):
    """One device. Links to other devices (``connector``, ``meter_of``) stay in one estate."""

    id: Ident
    kind: DeviceKind
    profile: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="a name of devices.profiles.BUILTIN_PROFILES whose kind is this kind"
    )
    location: DeviceLocation | None = None
    zone: Ident | None = Field(
        default=None, description="parking zone, bin collection point, entrance, ..."
    )
    tags: tuple[Tag, ...] = ()
    category: WasteCategory | None = Field(
        default=None, description="waste bins: recyclable / kitchen / hazardous / other"
    )
    household: Ident | None = Field(
        default=None, description="household meters: the flat within the building, e.g. 1802"
    )
    ports: Annotated[int, Field(strict=True, ge=1, le=64)] | None = Field(
        default=None, description="connectors of an EV charger / ports of an e-bike station"
    )
    connector: Annotated[str, Field(min_length=3, max_length=72)] | None = Field(
        default=None, description="an ev_bay's charger connector: charger_id:n"
    )
    meter_of: Ident | None = Field(
        default=None, description="the master meter this meter is a sub-meter of"
    )

    @field_validator("profile")
    @classmethod
    def _profile_fits(cls, name: str, info: ValidationInfo) -> str:
        kind: DeviceKind | None = info.data.get("kind")
        profile = BUILTIN_PROFILES.get(name)
        if profile is None:
            fitting = [p.name for p in BUILTIN_PROFILES.values() if kind is None or p.kind is kind]
            close = difflib.get_close_matches(name, list(BUILTIN_PROFILES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            what = f" for {kind.value}" if kind is not None else ""
            raise ValueError(
                f"profile {name!r} is not a known profile{what} (known: {', '.join(fitting)}){hint}"
            )
        if kind is not None and profile.kind is not kind:
            fitting = [p.name for p in BUILTIN_PROFILES.values() if p.kind is kind]
            raise ValueError(
                f"profile {name!r} is for {profile.kind.value} devices, but this device's kind "
                f"is {kind.value} (profiles for {kind.value}: {', '.join(fitting)})"
            )
        problem = unit_problem(profile)
        if problem is not None:
            raise ValueError(f"profile {name!r} has invalid unit declarations: {problem}")
        return name

    @field_validator("tags")
    @classmethod
    def _tags_fit(cls, tags: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        twice = sorted(t for t, n in Counter(tags).items() if n > 1)
        if twice:
            raise ValueError(f"tags lists {', '.join(twice)} more than once")
        kind: DeviceKind | None = info.data.get("kind")
        if kind is not None:
            for tag in tags:
                spec = KNOWN_TAGS.get(tag)
                if spec is not None and kind not in spec.kinds:
                    allowed = ", ".join(k.value for k in sorted(spec.kinds))
                    raise ValueError(
                        f"tag {tag!r} does not apply to a {kind.value} (only to: {allowed})"
                    )
        return tags

    @field_validator("category")
    @classmethod
    def _category_for_bins(cls, value: str | None, info: ValidationInfo) -> str | None:
        _only_for(info, "category", frozenset({DeviceKind.WASTE_BIN}))
        return value

    @field_validator("household")
    @classmethod
    def _household_for_meters(cls, value: str | None, info: ValidationInfo) -> str | None:
        _only_for(info, "household", _METERS)
        return value

    @field_validator("ports")
    @classmethod
    def _ports_for_stations(cls, value: int | None, info: ValidationInfo) -> int | None:
        _only_for(info, "ports", _PORTED)
        return value

    @field_validator("connector")
    @classmethod
    def _connector_of_ev_bay(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _only_for(info, "connector", frozenset({DeviceKind.PARKING_SENSOR}))
        match = _CONNECTOR.match(value)
        if match is None or not 1 <= int(match.group(2)) <= _MAX_CONNECTOR:
            raise ValueError(
                f"connector {value!r} must be charger_id:n with n from 1 to {_MAX_CONNECTOR}, "
                "e.g. evc-001:2"
            )
        if "tags" in info.data and "ev_bay" not in info.data["tags"]:
            raise ValueError("connector is only for bays tagged ev_bay; add the ev_bay tag")
        return value

    @field_validator("meter_of")
    @classmethod
    def _meter_of_for_meters(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _only_for(info, "meter_of", _METERS)
        if value == info.data.get("id"):
            raise ValueError("meter_of names the meter itself; name its master meter")
        return value

    @property
    def profile_spec(self) -> Profile:
        return BUILTIN_PROFILES[self.profile]

    @property
    def connector_ref(self) -> tuple[str, int] | None:
        """``(charger id, connector number)`` of an ev_bay, or ``None``."""
        if self.connector is None:
            return None
        charger, _, number = self.connector.rpartition(":")
        return charger, int(number)

    @property
    def is_master_meter(self) -> bool:
        return self.kind in _METERS and (
            "master" in self.tags or self.profile_spec.role == "master"
        )


def _only_for(info: ValidationInfo, name: str, kinds: frozenset[DeviceKind]) -> None:
    kind: DeviceKind | None = info.data.get("kind")
    if kind is not None and kind not in kinds:
        allowed = ", ".join(k.value for k in sorted(kinds))
        raise ValueError(f"{name} does not apply to a {kind.value} (only to: {allowed})")


class Building(_Model):
    id: Ident
    name: Name
    households: Annotated[int, Field(strict=True, ge=0, le=100_000)]
    floors: Annotated[int, Field(strict=True, ge=1, le=200)] | None = None
    devices: tuple[Device, ...] = ()


class Estate(_Model):
    id: Ident
    name: Name
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="IANA time zone name, e.g. Asia/Shanghai"
    )
    location: GeoPoint
    buildings: tuple[Building, ...] = ()
    devices: tuple[Device, ...] = Field(
        default=(), description="estate-level devices: gates, parking bays, bins, gateways, ..."
    )

    @field_validator("timezone")
    @classmethod
    def _iana(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"timezone {name!r} is not an IANA time zone name (e.g. Asia/Shanghai){hint}"
            ) from None
        return name

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def households(self) -> int:
        return sum(b.households for b in self.buildings)

    def iter_devices(self) -> Iterator[tuple[Building | None, Device]]:
        """Every device of the estate with its building (``None`` for estate-level devices)."""
        for device in self.devices:
            yield None, device
        for building in self.buildings:
            for device in building.devices:
                yield building, device


def _check_url(url: str) -> str:
    if any(c.isspace() for c in url):
        raise ValueError("url must not contain spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ValueError(f"url {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"url {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "url must not carry credentials (user:password@); secrets come from secret_env "
            "or secret_file, never from the registry"
        )
    return url


_INLINE_REFUSAL = (
    "inline secrets are refused: secrets come from the environment (secret_env: VARIABLE_NAME) "
    "or a secret file (secret_file: /run/secrets/...), never from the registry"
)


class WebhookEndpoint(_Model):
    """A street office's signed-webhook receiver. The signing secret is never inline."""

    id: Ident
    url: Annotated[str, Field(min_length=8, max_length=2048), AfterValidator(_check_url)]
    secret_env: Annotated[str, Field(pattern=_ENV_PATTERN)] | None = Field(
        default=None, description="name of the environment variable holding the secret"
    )
    secret_file: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None, description="path of a file holding the secret"
    )
    events: tuple[Annotated[str, Field(pattern=_EVENT_PATTERN)], ...] = Field(
        default=("*",), description="event kinds delivered (shell-style patterns); default all"
    )
    min_severity: Severity = Severity.INFO
    estates: tuple[Ident, ...] | None = Field(
        default=None, description="only these estates of the street office; default all"
    )

    @model_validator(mode="before")
    @classmethod
    def _redact_inline_secret(cls, data: Any) -> Any:
        # The inline secret is refused (extra="forbid"); its value must not reach error texts.
        if isinstance(data, Mapping) and "secret" in data:
            return {**data, "secret": "<redacted>"}
        return data

    @field_validator("secret_file")
    @classmethod
    def _not_both(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("secret_env") is not None:
            raise ValueError("give secret_env or secret_file, not both")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> WebhookEndpoint:
        if self.secret_env is None and self.secret_file is None:
            raise ValueError(
                "webhook needs secret_env (an environment variable name) or secret_file "
                "(a path); secrets never live in the registry"
            )
        return self

    def accepts(self, event_kind: str, severity: Severity | str, estate: str) -> bool:
        """Whether an event of ``event_kind``/``severity`` in ``estate`` goes to this endpoint."""
        if Severity(severity).rank < self.min_severity.rank:
            return False
        if self.estates is not None and estate not in self.estates:
            return False
        return any(fnmatch.fnmatchcase(event_kind, pattern) for pattern in self.events)

    def read_secret(self, environ: Mapping[str, str] | None = None) -> str:
        """The signing secret from the environment or the secret file (``LookupError`` if none)."""
        if self.secret_env is not None:
            value = (os.environ if environ is None else environ).get(self.secret_env, "")
            if not value:
                raise LookupError(
                    f"webhook {self.id}: environment variable {self.secret_env} unset"
                )
            return value
        assert self.secret_file is not None
        try:
            value = Path(self.secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise LookupError(f"webhook {self.id}: secret file unreadable: {exc}") from None
        if not value:
            raise LookupError(f"webhook {self.id}: secret file {self.secret_file} is empty")
        return value


class StreetOffice(_Model):
    id: Ident
    name: Name
    webhooks: tuple[WebhookEndpoint, ...] = ()
    estates: tuple[Estate, ...] = ()


class District(_Model):
    id: Ident
    name: Name
    street_offices: tuple[StreetOffice, ...] = ()


class Registry(_Model):
    """The whole registry. Construct with :func:`load_registry` (errors with line numbers)."""

    version: Literal[1]
    districts: tuple[District, ...]

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_int(cls, value: Any) -> Any:
        if type(value) is not int:
            raise ValueError(f"version must be the number 1, got {show(value)}")
        return value

    @field_validator("districts")
    @classmethod
    def _not_empty(cls, districts: tuple[District, ...]) -> tuple[District, ...]:
        if not districts:
            raise ValueError("districts is empty; a registry file declares at least one district")
        return districts

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Registry:
        if isinstance(info.context, Mapping) and info.context.get(_DEFER_CHECKS):
            return self
        locator = _Locator()
        locator.add("<data>", self)
        _, found = _merge([self], locator)
        if found:
            raise ValueError(
                "; ".join(f"{format_loc(loc) or '(top)'}: {msg}" for _, loc, msg in found)
            )
        return self

    def iter_estates(self) -> Iterator[tuple[District, StreetOffice, Estate]]:
        for district in self.districts:
            for office in district.street_offices:
                for estate in office.estates:
                    yield district, office, estate

    def index(self) -> RegistryIndex:
        """The lookup index, built on first use and kept while this registry lives."""
        found = _INDEXES.get(id(self))
        if found is None:
            found = RegistryIndex(self)
            _INDEXES[id(self)] = found
            weakref.finalize(self, _INDEXES.pop, id(self), None)
        return found


#: Registry id → its index. Kept outside the model so that equality and copies ignore it.
_INDEXES: dict[int, RegistryIndex] = {}


# --- the lookup index ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """What ingest and the detectors need to know about one registered device."""

    estate: str
    building: str | None
    device: str
    kind: DeviceKind
    profile: Profile
    tags: frozenset[str]
    zone: str | None
    street_office: str
    district: str
    spec: Device


@dataclass(frozen=True, slots=True)
class EstateRef:
    estate: Estate
    street_office: StreetOffice
    district: District
    tz: ZoneInfo

    @property
    def id(self) -> str:
        return self.estate.id


class RegistryIndex:
    """O(1) lookups over a loaded registry; build once (``Registry.index()``), share freely."""

    def __init__(self, registry: Registry) -> None:
        self._devices: dict[tuple[str, str], DeviceRef] = {}
        self._estates: dict[str, EstateRef] = {}
        self._of_estate: dict[str, tuple[DeviceRef, ...]] = {}
        self._by_id: dict[str, list[DeviceRef]] = {}
        self._bays: dict[tuple[str, str, int], DeviceRef] = {}
        self._submeters: dict[tuple[str, str], list[DeviceRef]] = {}
        self._counts: dict[str, dict[DeviceKind, int]] = {}
        self._offices: dict[str, StreetOffice] = {}
        for district, office, estate in registry.iter_estates():
            self._offices[office.id] = office
            self._estates[estate.id] = EstateRef(estate, office, district, estate.tz)
            refs: list[DeviceRef] = []
            for building, device in estate.iter_devices():
                ref = DeviceRef(
                    estate=estate.id,
                    building=None if building is None else building.id,
                    device=device.id,
                    kind=device.kind,
                    profile=device.profile_spec,
                    tags=frozenset(device.tags),
                    zone=device.zone,
                    street_office=office.id,
                    district=district.id,
                    spec=device,
                )
                refs.append(ref)
                self._devices[(estate.id, device.id)] = ref
                self._by_id.setdefault(device.id, []).append(ref)
                link = device.connector_ref
                if link is not None:
                    self._bays[(estate.id, *link)] = ref
                if device.meter_of is not None:
                    self._submeters.setdefault((estate.id, device.meter_of), []).append(ref)
            self._of_estate[estate.id] = tuple(refs)
            self._counts[estate.id] = dict(Counter(r.kind for r in refs))
        for district in registry.districts:
            for office in district.street_offices:
                self._offices.setdefault(office.id, office)
        total: Counter[DeviceKind] = Counter()
        for counts in self._counts.values():
            total.update(counts)
        self._total = dict(total)

    def __len__(self) -> int:
        return len(self._devices)

    def device(self, estate_id: str, device_id: str) -> DeviceRef | None:
        return self._devices.get((estate_id, device_id))

    def estate(self, estate_id: str) -> EstateRef | None:
        return self._estates.get(estate_id)

    def estate_ids(self) -> list[str]:
        return list(self._estates)

    def devices_of(self, estate_id: str) -> tuple[DeviceRef, ...]:
        return self._of_estate.get(estate_id, ())

    def find_device(self, device_id: str) -> list[DeviceRef]:
        """Every estate's device with this id (for wrong-estate / wrong-kind diagnostics)."""
        return list(self._by_id.get(device_id, ()))

    def counts_by_kind(self, estate_id: str | None = None) -> dict[DeviceKind, int]:
        """Devices per kind, of one estate or of the whole registry."""
        if estate_id is None:
            return dict(self._total)
        return dict(self._counts.get(estate_id, {}))

    def bay_for_connector(
        self, estate_id: str, charger_id: str, connector: int
    ) -> DeviceRef | None:
        """The ev_bay parking sensor linked to a charger connector."""
        return self._bays.get((estate_id, charger_id, connector))

    def submeters_of(self, estate_id: str, master_id: str) -> tuple[DeviceRef, ...]:
        """The meters whose ``meter_of`` names ``master_id``."""
        return tuple(self._submeters.get((estate_id, master_id), ()))

    def street_office(self, office_id: str) -> StreetOffice | None:
        return self._offices.get(office_id)

    def webhooks_for(self, estate_id: str) -> tuple[WebhookEndpoint, ...]:
        """The endpoints of the estate's street office that take this estate's events."""
        ref = self._estates.get(estate_id)
        if ref is None:
            return ()
        return tuple(
            w for w in ref.street_office.webhooks if w.estates is None or estate_id in w.estates
        )


# --- problems --------------------------------------------------------------------------------


class RegistryError(Exception):
    """The registry cannot be used; ``problems`` says every reason, ``str()`` one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --- locating objects and lines --------------------------------------------------------------


class _Locator:
    """Where each model object of each file sits: object → (file, loc), loc → line."""

    def __init__(self) -> None:
        self._where: dict[int, tuple[str, Loc]] = {}
        self._roots: dict[str, yaml.Node] = {}

    def add(self, file: str, registry: Registry, root: yaml.Node | None = None) -> None:
        if root is not None:
            self._roots[file] = root
        put = self._where
        for i, district in enumerate(registry.districts):
            d_loc: Loc = ("districts", i)
            put[id(district)] = (file, d_loc)
            for j, office in enumerate(district.street_offices):
                o_loc = (*d_loc, "street_offices", j)
                put[id(office)] = (file, o_loc)
                for w, hook in enumerate(office.webhooks):
                    put[id(hook)] = (file, (*o_loc, "webhooks", w))
                for k, estate in enumerate(office.estates):
                    e_loc = (*o_loc, "estates", k)
                    put[id(estate)] = (file, e_loc)
                    for n, device in enumerate(estate.devices):
                        put[id(device)] = (file, (*e_loc, "devices", n))
                    for b, building in enumerate(estate.buildings):
                        b_loc = (*e_loc, "buildings", b)
                        put[id(building)] = (file, b_loc)
                        for n, device in enumerate(building.devices):
                            put[id(device)] = (file, (*b_loc, "devices", n))

    def where(self, obj: object, *sub: str | int) -> tuple[str, Loc]:
        file, loc = self._where[id(obj)]
        return file, (*loc, *sub)

    def line(self, file: str, loc: Loc) -> int | None:
        root = self._roots.get(file)
        return None if root is None else line_of(root, loc)

    def ref(self, obj: object, here: str) -> str:
        """A short reference to ``obj`` for a message about something in file ``here``."""
        file, loc = self.where(obj)
        line = self.line(file, loc)
        if line is None:
            return format_loc(loc) if file == here else f"{file}: {format_loc(loc)}"
        return f"line {line}" if file == here else f"{file}:{line}"


# --- cross checks and merging ----------------------------------------------------------------

_Found = tuple[str, Loc, str]  # file, loc, message


def _merge(parts: Sequence[Registry], at: _Locator) -> tuple[Registry, list[_Found]]:
    """Merge the files' registries (districts and street offices by id) and cross-check them.

    Within one file a district id, and a street office id within its district, appear
    once; across files, districts and street offices with the same id merge. Estate ids
    are unique across the registry; building and device ids within their estate.
    """
    merger = _Merger(at)
    for part in parts:
        merger.add(part)
    merged = merger.merged()
    return (parts[0] if len(parts) == 1 else merged), merger.found


class _Merger:
    def __init__(self, at: _Locator) -> None:
        self.at = at
        self.found: list[_Found] = []
        self.districts: dict[str, District] = {}  # the first seen of each id
        self.offices: dict[str, dict[str, list[StreetOffice]]] = {}  # district → office → all
        self.office_home: dict[str, District] = {}
        self.estates: dict[str, Estate] = {}

    def problem(self, obj: object, sub: Loc, message: str) -> None:
        file, loc = self.at.where(obj, *sub)
        self.found.append((file, loc, message))

    def add(self, part: Registry) -> None:
        at = self.at
        in_file: dict[str, District] = {}
        for district in part.districts:
            here = at.where(district)[0]
            if district.id in in_file:
                self.problem(
                    district,
                    ("id",),
                    f"district id {district.id!r} appears twice in this file (first at "
                    f"{at.ref(in_file[district.id], here)}); list a district once per file "
                    "(districts with the same id merge only across files)",
                )
                continue
            in_file[district.id] = district
            first = self.districts.setdefault(district.id, district)
            if first is not district and first.name != district.name:
                self.problem(
                    district,
                    ("name",),
                    f"district {district.id!r} is named {first.name!r} at "
                    f"{at.ref(first, here)} but {district.name!r} here; give it one name",
                )
            self.offices.setdefault(district.id, {})
            office_in_file: dict[str, StreetOffice] = {}
            for office in district.street_offices:
                if office.id in office_in_file:
                    self.problem(
                        office,
                        ("id",),
                        f"street office id {office.id!r} appears twice in district "
                        f"{district.id!r} (first at {at.ref(office_in_file[office.id], here)})",
                    )
                    continue
                office_in_file[office.id] = office
                self.add_office(district, office, here)

    def add_office(self, district: District, office: StreetOffice, here: str) -> None:
        at = self.at
        home = self.office_home.setdefault(office.id, district)
        if home.id != district.id:
            self.problem(
                office,
                ("id",),
                f"street office id {office.id!r} already belongs to district {home.id!r} "
                f"({at.ref(home, here)}); street office ids are unique across districts",
            )
            return
        same = self.offices[district.id].setdefault(office.id, [])
        if same and same[0].name != office.name:
            self.problem(
                office,
                ("name",),
                f"street office {office.id!r} is named {same[0].name!r} at "
                f"{at.ref(same[0], here)} but {office.name!r} here; give it one name",
            )
        same.append(office)
        for estate in office.estates:
            seen = self.estates.setdefault(estate.id, estate)
            if seen is not estate:
                self.problem(
                    estate,
                    ("id",),
                    f"estate id {estate.id!r} is already used at {at.ref(seen, here)}; "
                    "estate ids are unique across the registry",
                )
                continue
            self.found.extend(_estate_problems(estate, at))

    def merged(self) -> Registry:
        districts: list[District] = []
        for district_id, first in self.districts.items():
            offices: list[StreetOffice] = []
            for office_id, same in self.offices[district_id].items():
                hooks = tuple(h for o in same for h in o.webhooks)
                estates = tuple(e for o in same for e in o.estates)
                self.found.extend(
                    _webhook_problems(office_id, hooks, {e.id for e in estates}, self.at)
                )
                offices.append(
                    same[0]
                    if len(same) == 1
                    else StreetOffice.model_construct(
                        id=office_id, name=same[0].name, webhooks=hooks, estates=estates
                    )
                )
            districts.append(
                District.model_construct(
                    id=district_id, name=first.name, street_offices=tuple(offices)
                )
            )
        return Registry.model_construct(version=1, districts=tuple(districts))


def _webhook_problems(
    office_id: str, hooks: Sequence[WebhookEndpoint], estate_ids: set[str], at: _Locator
) -> Iterator[_Found]:
    seen: dict[str, WebhookEndpoint] = {}
    for hook in hooks:
        file, loc = at.where(hook)
        first = seen.setdefault(hook.id, hook)
        if first is not hook:
            yield (
                file,
                (*loc, "id"),
                f"webhook id {hook.id!r} is already used in street office {office_id!r} "
                f"(at {at.ref(first, file)}); declare an office's webhooks once",
            )
        for n, estate_id in enumerate(hook.estates or ()):
            if estate_id not in estate_ids:
                known = ", ".join(sorted(estate_ids)) or "none"
                yield (
                    file,
                    (*loc, "estates", n),
                    f"webhook estates filter names {estate_id!r}, which is not an estate of "
                    f"street office {office_id!r} (its estates: {known})",
                )


def _estate_problems(estate: Estate, at: _Locator) -> Iterator[_Found]:
    here = at.where(estate)[0]
    buildings: dict[str, Building] = {}
    for house in estate.buildings:
        first_b = buildings.setdefault(house.id, house)
        if first_b is not house:
            yield (
                *at.where(house, "id"),
                f"building id {house.id!r} is already used in estate {estate.id!r} "
                f"(at {at.ref(first_b, here)})",
            )
    devices: dict[str, tuple[Building | None, Device]] = {}
    for building, device in estate.iter_devices():
        if device.id in devices:
            yield (
                *at.where(device, "id"),
                f"device id {device.id!r} is already used in estate {estate.id!r} "
                f"(at {at.ref(devices[device.id][1], here)}); device ids are unique per estate",
            )
            continue
        devices[device.id] = (building, device)
    bays: dict[tuple[str, int], Device] = {}
    for building, device in estate.iter_devices():
        if devices.get(device.id, (None, None))[1] is not device:
            continue  # a duplicate, reported above
        if device.household is not None and building is None:
            yield (
                *at.where(device, "household"),
                "household is only for meters inside a building; move the device under its "
                "building's devices",
            )
        link = device.connector_ref
        if link is not None:
            yield from _connector_problems(estate, device, link, devices, bays=bays, at=at)
        if device.meter_of is not None:
            yield from _meter_of_problems(estate, building, device, devices, at)


def _connector_problems(
    estate: Estate,
    bay: Device,
    link: tuple[str, int],
    devices: Mapping[str, tuple[Building | None, Device]],
    *,
    bays: dict[tuple[str, int], Device],
    at: _Locator,
) -> Iterator[_Found]:
    charger_id, number = link
    where = at.where(bay, "connector")
    target = devices.get(charger_id)
    if target is None:
        yield (*where, f"connector names charger {charger_id!r}, not a device of {estate.id!r}")
        return
    charger = target[1]
    if charger.kind is not DeviceKind.EV_CHARGER:
        yield (
            *where,
            f"connector names {charger_id!r}, a {charger.kind.value}, not an ev_charger",
        )
        return
    ports = charger.ports or 1
    if number > ports:
        yield (
            *where,
            f"connector {bay.connector!r}: charger {charger_id!r} has {ports} connector(s); "
            "set its ports or fix the number",
        )
        return
    first = bays.setdefault((charger_id, number), bay)
    if first is not bay:
        yield (
            *where,
            f"connector {bay.connector!r} is already linked to bay {first.id!r} "
            f"(at {at.ref(first, where[0])}); one bay per connector",
        )


def _meter_of_problems(
    estate: Estate,
    building: Building | None,
    meter: Device,
    devices: Mapping[str, tuple[Building | None, Device]],
    at: _Locator,
) -> Iterator[_Found]:
    where = at.where(meter, "meter_of")
    target = devices.get(meter.meter_of or "")
    if target is None:
        yield (*where, f"meter_of names {meter.meter_of!r}, not a device of {estate.id!r}")
        return
    master_building, master = target
    if master.kind is not meter.kind:
        yield (
            *where,
            f"meter_of names {master.id!r}, a {master.kind.value}; a {meter.kind.value}'s "
            f"master must be a {meter.kind.value}",
        )
    elif not master.is_master_meter:
        yield (
            *where,
            f"meter_of names {master.id!r}, which is not a master meter (give it a master "
            "profile or the master tag)",
        )
    elif master_building is not None and master_building is not building:
        yield (
            *where,
            f"meter_of names {master.id!r} of building {master_building.id!r}; a sub-meter's "
            "master is in its own building or at estate level",
        )


# --- loading ---------------------------------------------------------------------------------

_TOP_HINT = "expected a mapping with 'version: 1' and 'districts'"


def registry_files(path: str | Path) -> list[Path]:
    """The files a registry path stands for: the file itself, or a folder's ``*.yaml``/``*.yml``.

    Folders are not searched recursively; hidden files (``.name``) are skipped.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(
            f
            for f in p.iterdir()
            if f.suffix in (".yaml", ".yml") and not f.name.startswith(".") and f.is_file()
        )
        if not files:
            raise RegistryError(
                [Problem(str(p), None, "", "the folder holds no *.yaml or *.yml registry files")]
            )
        return files
    if not p.exists():
        raise RegistryError([Problem(str(p), None, "", "no such file or folder")])
    return [p]


def load_registry(path: str | Path) -> Registry:
    """Load and validate ``estate.yaml`` or a folder of registry files.

    Raises :class:`RegistryError` listing every problem found (file, line, path, message).
    """
    files = registry_files(path)
    locator = _Locator()
    parts: list[Registry] = []
    problems: list[Problem] = []
    for file in files:
        part, file_problems = _load_file(file, locator)
        problems.extend(file_problems)
        if part is not None:
            parts.append(part)
    if problems:
        raise RegistryError(problems)
    merged, found = _merge(parts, locator)
    if found:
        raise RegistryError(
            [Problem(f, locator.line(f, loc), format_loc(loc), msg) for f, loc, msg in found]
        )
    return merged


def _load_file(path: Path, locator: _Locator) -> tuple[Registry | None, list[Problem]]:
    name = str(path)
    read = read_mapping(path, _TOP_HINT)
    if isinstance(read, list):
        return None, read
    data, root = read
    try:
        registry = Registry.model_validate(data, context={_DEFER_CHECKS: True})
    except ValidationError as exc:
        return None, [
            Problem(name, line_of(root, err["loc"]), format_loc(err["loc"]), _message(err))
            for err in _without_typo_twins(exc.errors(include_url=False))
        ]
    locator.add(name, registry, root)
    return registry, []


def _without_typo_twins(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop "missing 'profile'" where "unknown field 'profle'; did you mean 'profile'?" says it."""
    extra: dict[Loc, list[str]] = {}
    for err in errors:
        if err["type"] == "extra_forbidden" and err["loc"] and isinstance(err["loc"][-1], str):
            extra.setdefault(tuple(err["loc"][:-1]), []).append(err["loc"][-1])
    if not extra:
        return errors
    kept = []
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "missing" and loc and isinstance(loc[-1], str):
            near = extra.get(loc[:-1], [])
            if difflib.get_close_matches(loc[-1], near, n=1):
                continue
        kept.append(err)
    return kept


# --- pydantic errors → messages a person can act on ------------------------------------------


def _field_name(loc: Loc) -> str:
    for part in reversed(loc):
        if isinstance(part, str):
            return part
    return "value"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class holding the last element of ``loc``."""
    model: type[BaseModel] | None = Registry
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model


def _inner_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


_PATTERN_TEXT = {
    _IDENT_PATTERN: "1-64 characters of letters A-Z a-z, digits, '_', '-' and '.'",
    _ENV_PATTERN: "an environment variable name: A-Z, digits and _ (e.g. ESTATE_WEBHOOK_SECRET)",
    _EVENT_PATTERN: "an event kind or a shell-style pattern (letters, digits, _ . - * ?)",
    r"\S": "not blank",
}


def _message(err: ErrorDetails) -> str:
    loc: Loc = tuple(err["loc"])
    name = _field_name(loc)
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    secretish = "secret" in name
    shown = "" if secretish else f" {show(value)}"
    if kind == "missing":
        return f"missing required field {name!r}"
    if kind == "extra_forbidden":
        if name == "secret":
            return _INLINE_REFUSAL
        model = _model_at(loc)
        allowed = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown field {name!r}{hint}{listed}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "enum" and name == "kind":
        return f"kind{shown} is not a device kind (known: {_KIND_LIST})"
    if kind == "enum":
        return f"{name}{shown} is not one of {ctx.get('expected', '')}"
    if kind == "string_type":
        if isinstance(value, bool):
            return (
                f"{name} must be text, but YAML read {value!r} as true/false "
                f'(yes/no/on/off); quote it, e.g. {name}: "{str(value).lower()}"'
            )
        if isinstance(value, int | float):
            return f'{name} must be text, got the number {value!r}; quote it: {name}: "{value}"'
        if value is None:
            return f"{name} is empty; give a value"
        return f"{name} must be text, got {type(value).__name__}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"{name}{shown} must be {_PATTERN_TEXT.get(pattern, f'matching {pattern}')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{name} must be a mapping of fields (key: value), got {_kind_of(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"{name} must be a list (lines starting with '- '), got {_kind_of(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{name} must be a whole number, got{shown}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"{name} must be a number, got{shown}"
    if kind == "literal_error":
        return f"{name} must be {ctx.get('expected', '')}, got{shown}"
    msg = str(err["msg"])
    scalar = isinstance(value, str | int | float | bool) and not secretish
    return f"{name}: {msg[:1].lower()}{msg[1:]}" + (f" (got{shown})" if scalar else "")


def _kind_of(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {show(value)}"


# --- summary (estate registry check) ---------------------------------------------------------


@dataclass(frozen=True)
class RegistrySummary:
    """Counts for ``estate registry check``: what the registry holds."""

    files: tuple[str, ...]
    districts: int
    street_offices: int
    estates: int
    buildings: int
    households: int
    devices: int
    webhooks: int
    by_kind: dict[str, int] = field(default_factory=dict)
    by_estate: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "districts": self.districts,
            "street_offices": self.street_offices,
            "estates": self.estates,
            "buildings": self.buildings,
            "households": self.households,
            "devices": self.devices,
            "webhooks": self.webhooks,
            "by_kind": dict(self.by_kind),
            "by_estate": {e: dict(c) for e, c in self.by_estate.items()},
        }

    def to_text(self) -> str:
        lines = [
            f"registry OK: {len(self.files)} file(s), {self.districts} district(s), "
            f"{self.street_offices} street office(s), {self.estates} estate(s), "
            f"{self.buildings} building(s), {self.households} households, "
            f"{self.devices} devices, {self.webhooks} webhook endpoint(s)"
        ]
        lines += [f"  {kind:<16}{n:>8}" for kind, n in self.by_kind.items()]
        for estate, counts in self.by_estate.items():
            parts = ", ".join(f"{k} {n}" for k, n in counts.items())
            lines.append(f"  estate {estate}: {parts}")
        return "\n".join(lines)


def summarize(registry: Registry, files: Iterable[str | Path] = ()) -> RegistrySummary:
    offices = {o.id for d in registry.districts for o in d.street_offices}
    by_estate: dict[str, dict[str, int]] = {}
    total: Counter[str] = Counter()
    buildings = households = 0
    for _, _, estate in registry.iter_estates():
        counts = Counter(device.kind.value for _, device in estate.iter_devices())
        by_estate[estate.id] = {k.value: counts[k.value] for k in DeviceKind if counts[k.value]}
        total.update(counts)
        buildings += len(estate.buildings)
        households += estate.households
    return RegistrySummary(
        files=tuple(str(f) for f in files),
        districts=len(registry.districts),
        street_offices=len(offices),
        estates=len(by_estate),
        buildings=buildings,
        households=households,
        devices=sum(total.values()),
        webhooks=sum(len(o.webhooks) for d in registry.districts for o in d.street_offices),
        by_kind={k.value: total[k.value] for k in DeviceKind if total[k.value]},
        by_estate=by_estate,
    )


def check_registry(path: str | Path) -> RegistrySummary:
    """``estate registry check PATH``: load (raising :class:`RegistryError`) and summarise."""
    registry = load_registry(path)
    return summarize(registry, registry_files(path))
