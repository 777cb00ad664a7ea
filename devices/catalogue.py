"""One frozen pydantic v2 model per device kind and stream.

Units are in the field names (``_pct``, ``_c``, ``_m3``, ``_l_min``, ``_kwh``,
``_w``, ``_kw``, ``_dbm``, ``_s``). Every reading carries the device time ``ts``
(timezone-aware; normalised to UTC) where the device has a clock, and ``seq``,
a per-device sequence number, where the device has one. Models are strict:
``"12"`` is not ``12``, ``true`` is not ``1``, unknown fields are refused, and
NaN or infinities are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from eventlog.envelope import utc


class DeviceKind(StrEnum):
    ACCESS_GATE = "access_gate"
    PARKING_SENSOR = "parking_sensor"
    WASTE_BIN = "waste_bin"
    WATER_METER = "water_meter"
    ENERGY_METER = "energy_meter"
    EV_CHARGER = "ev_charger"
    EBIKE_STATION = "ebike_station"
    GATEWAY = "gateway"


#: The start of an ISO-8601 date-time (date, separator, hour and minute). Without this
#: check pydantic's lax datetime parsing would read digit strings such as "1714521600"
#: as Unix seconds (or milliseconds) in UTC, i.e. accept a bare number in quotes.
_ISO_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _iso_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value):
        raise ValueError(
            "device time must be ISO-8601 text with a UTC offset, e.g. 2026-05-01T08:00:00+08:00"
        )
    return value


#: Device time: ISO-8601 text with an offset (never bare numbers), normalised to UTC.
DeviceTime = Annotated[
    AwareDatetime, Field(strict=False), BeforeValidator(_iso_text), AfterValidator(utc)
]
Pct = Annotated[float, Field(ge=0, le=100)]
NonNegative = Annotated[float, Field(ge=0)]
SessionId = Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,64}$")]
#: A salted hash (hex) of a credential or plate; raw identifiers never enter the log.
CredentialHash = Annotated[str, Field(pattern=r"^[0-9a-f]{16,128}$")]

#: Personal identifiers a device may send raw, and the hashed field ingest stores instead.
HASHED_FIELDS: dict[str, str] = {"credential": "credential_hash", "plate": "plate_hash"}


class Reading(BaseModel):
    """Fields every reading of every kind shares."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    ts: DeviceTime | None = Field(default=None, description="device time (ISO-8601 with offset)")
    seq: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = Field(
        default=None, description="per-device sequence number, where the device has one"
    )


# --- access gate -----------------------------------------------------------------------------


class GatePassage(Reading):
    """A passage attempt at an access-control gate."""

    direction: Literal["in", "out"]
    result: Literal["granted", "denied"]
    method: Literal["card", "face", "qr", "pin", "remote"]
    credential_hash: CredentialHash | None = Field(
        default=None, description="salted hash of card id / face template id / QR token"
    )
    persons_sensed: Annotated[int, Field(ge=0, le=50)] | None = Field(
        default=None, description="people counted through the gate, where the gate senses it"
    )


class GateDoor(Reading):
    """The door state of a gate."""

    state: Literal["open", "closed"]
    forced: bool = Field(default=False, description="door opened without a release signal")


# --- parking ---------------------------------------------------------------------------------


class ParkingOccupancy(Reading):
    """A parking-bay sensor: occupied or free since ``changed_at``."""

    occupied: bool
    changed_at: DeviceTime | None = Field(
        default=None, description="when the bay last changed state"
    )
    plate_hash: CredentialHash | None = Field(
        default=None, description="salted hash of the plate, for camera-equipped bays"
    )


# --- waste -----------------------------------------------------------------------------------

WasteCategory = Literal["recyclable", "kitchen", "hazardous", "other"]


class BinLevel(Reading):
    """A smart waste bin's status report."""

    fill_pct: Pct = Field(description="fill level, percent of capacity")
    temperature_c: Annotated[float, Field(ge=-60, le=200)] | None = None
    battery_pct: Pct | None = None
    lid: Literal["open", "closed"] | None = None
    tilted: bool | None = Field(default=None, description="bin knocked over or tilted")
    category: WasteCategory = Field(
        description="sorting category: recyclable/kitchen/hazardous/other"
    )


# --- water -----------------------------------------------------------------------------------


class WaterRegister(Reading):
    """A water meter: monotonic cumulative register and optional instantaneous flow."""

    volume_m3: Annotated[float, Field(ge=0, le=1e9)] = Field(description="cumulative volume, m³")
    flow_l_min: Annotated[float, Field(ge=-1000, le=10000)] | None = Field(
        default=None, description="instantaneous flow, L/min (negative = backflow)"
    )


# --- energy ----------------------------------------------------------------------------------


class EnergyRegister(Reading):
    """An energy meter: cumulative energy and instantaneous power."""

    energy_kwh: Annotated[float, Field(ge=0, le=1e10)] = Field(description="cumulative, kWh")
    power_w: Annotated[float, Field(ge=0, le=1e7)] | None = Field(
        default=None, description="instantaneous active power, W"
    )


# --- EV charger (OCPP 1.6 connector status vocabulary) ---------------------------------------

OcppStatus = Literal[
    "available",
    "preparing",
    "charging",
    "suspended_ev",
    "suspended_evse",
    "finishing",
    "reserved",
    "unavailable",
    "faulted",
]


class EvConnector(Reading):
    """One connector of an EV charger."""

    connector: Annotated[int, Field(ge=1, le=16)]
    status: OcppStatus
    power_kw: Annotated[float, Field(ge=0, le=500)] = Field(description="charging power, kW")
    session_energy_kwh: Annotated[float, Field(ge=0, le=1000)] | None = None
    session_id: SessionId | None = None


# --- e-bike station --------------------------------------------------------------------------


class EbikePort(Reading):
    """One port of a multi-port e-bike charging station."""

    port: Annotated[int, Field(ge=1, le=64)]
    status: Literal["available", "charging", "finished", "faulted"]
    power_w: Annotated[float, Field(ge=0, le=5000)] = Field(description="port power, W")
    temperature_c: Annotated[float, Field(ge=-60, le=250)] | None = Field(
        default=None, description="port / socket temperature, °C"
    )
    session_id: SessionId | None = None


# --- heartbeat (every kind) ------------------------------------------------------------------


class Heartbeat(Reading):
    """A device's or gateway's health report."""

    battery_pct: Pct | None = None
    rssi_dbm: Annotated[float, Field(ge=-150, le=0)] | None = None
    firmware: Annotated[str, Field(pattern=r"^[\x20-\x7e]{1,64}$")] | None = None
    uptime_s: Annotated[int, Field(ge=0, le=2**40)] | None = None


@dataclass(frozen=True, slots=True)
class StreamSpec:
    kind: DeviceKind
    stream: str
    model: type[Reading]
    #: The envelope ``kind`` of an accepted reading, e.g. ``waste_bin.level``.
    event_kind: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_kind", f"{self.kind.value}.{self.stream}")


_SPECIFIC: dict[DeviceKind, dict[str, type[Reading]]] = {
    DeviceKind.ACCESS_GATE: {"passage": GatePassage, "door": GateDoor},
    DeviceKind.PARKING_SENSOR: {"occupancy": ParkingOccupancy},
    DeviceKind.WASTE_BIN: {"level": BinLevel},
    DeviceKind.WATER_METER: {"register": WaterRegister},
    DeviceKind.ENERGY_METER: {"register": EnergyRegister},
    DeviceKind.EV_CHARGER: {"connector": EvConnector},
    DeviceKind.EBIKE_STATION: {"port": EbikePort},
    DeviceKind.GATEWAY: {},
}

#: (kind, stream) → spec; every kind also has the ``heartbeat`` stream.
CATALOGUE: dict[tuple[DeviceKind, str], StreamSpec] = {
    (kind, stream): StreamSpec(kind, stream, model)
    for kind, streams in _SPECIFIC.items()
    for stream, model in (streams | {"heartbeat": Heartbeat}).items()
}


def streams_of(kind: DeviceKind) -> list[str]:
    return [stream for (k, stream) in CATALOGUE if k == kind]


def model_for(kind: DeviceKind | str, stream: str) -> type[Reading]:
    """The reading model of ``kind``/``stream``; ``KeyError`` with a clear message otherwise."""
    try:
        return CATALOGUE[(DeviceKind(kind), stream)].model
    except (ValueError, KeyError):
        known = ", ".join(f"{k.value}/{s}" for k, s in CATALOGUE)
        raise KeyError(f"no stream {kind}/{stream}; known: {known}") from None
