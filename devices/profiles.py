"""Device profiles: how a family of devices reports (interval, units, clock policy).

A registry entry names a profile; ingest uses it to normalise units, and the
device-health detectors use its reporting interval. Rules (thresholds) are a
separate, versioned concern of ``processors``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from devices.catalogue import DeviceKind

#: Unit conversions a profile may declare for a field: factor to the catalogue unit.
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "fill_pct": {"pct": 1.0, "fraction": 100.0},
    "volume_m3": {"m3": 1.0, "l": 0.001},
    "flow_l_min": {"l_min": 1.0, "m3_h": 1000.0 / 60.0, "l_h": 1.0 / 60.0},
    "energy_kwh": {"kwh": 1.0, "wh": 0.001},
    "power_w": {"w": 1.0, "kw": 1000.0},
    "power_kw": {"kw": 1.0, "w": 0.001},
    "session_energy_kwh": {"kwh": 1.0, "wh": 0.001},
}


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]
    kind: DeviceKind
    description: str = ""
    reporting_interval_s: Annotated[int, Field(ge=1, le=7 * 86400)]
    units: dict[str, str] = Field(
        default_factory=dict, description="field → unit the device sends, when not ours"
    )
    role: str | None = Field(
        default=None, description="household, master, corridor, common_area, lighting, ..."
    )
    clock: Literal["trusted", "untrusted"] = "trusted"


def _p(name: str, kind: DeviceKind, interval: int, description: str, **extra: object) -> Profile:
    return Profile.model_validate(
        {
            "name": name,
            "kind": kind,
            "reporting_interval_s": interval,
            "description": description,
            **extra,
        }
    )


K = DeviceKind
BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        _p("gate_standard", K.ACCESS_GATE, 300, "access-control gate, heartbeat every 5 min"),
        _p(
            "parking_geomagnetic", K.PARKING_SENSOR, 3600, "geomagnetic bay sensor, change + hourly"
        ),
        _p("bin_ultrasonic", K.WASTE_BIN, 1800, "ultrasonic fill sensor, every 30 min"),
        _p(
            "bin_ultrasonic_fraction",
            K.WASTE_BIN,
            1800,
            "ultrasonic fill sensor reporting fill as 0-1",
            units={"fill_pct": "fraction"},
        ),
        _p("water_household", K.WATER_METER, 3600, "household meter, hourly", role="household"),
        _p("water_master", K.WATER_METER, 900, "building master meter, 15 min", role="master"),
        _p("energy_household", K.ENERGY_METER, 900, "household meter", role="household"),
        _p(
            "energy_corridor",
            K.ENERGY_METER,
            300,
            "corridor / common-area circuit",
            role="corridor",
        ),
        _p("energy_lighting", K.ENERGY_METER, 300, "public lighting circuit", role="lighting"),
        _p(
            "energy_wh",
            K.ENERGY_METER,
            900,
            "household meter reporting Wh",
            role="household",
            units={"energy_kwh": "wh"},
        ),
        _p("ev_ac7", K.EV_CHARGER, 60, "7 kW AC wallbox, OCPP 1.6 status"),
        _p("ebike_10port", K.EBIKE_STATION, 60, "10-port e-bike station, 400 W ports"),
        _p("gateway_lora", K.GATEWAY, 300, "LoRaWAN / NB-IoT concentrator"),
    ]
}


def unit_problem(profile: Profile) -> str | None:
    """Why ``profile``'s unit declarations cannot be honoured, or ``None``."""
    for field, unit in profile.units.items():
        if field not in UNIT_FACTORS:
            return f"profile {profile.name}: field {field!r} has no unit conversions"
        if unit not in UNIT_FACTORS[field]:
            known = ", ".join(UNIT_FACTORS[field])
            return f"profile {profile.name}: unit {unit!r} for {field} unknown (known: {known})"
    return None
