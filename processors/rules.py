"""Rules: versioned detector thresholds per device profile, overridable per estate or device.

A rule file (YAML) names its ``version`` (text, e.g. ``"2026.11.1"``) and gives
detector parameters per device kind or profile, per estate and per device::

    version: "2026.11.1"
    profiles:                       # device kinds and profile names
      waste_bin: {bin_overflow: {high_pct: 90, low_pct: 30, persist_min: 30}}
      water_master: {water_burst: {flow_l_min: 300}}
    estates:
      lvcheng: {profiles: {waste_bin: {bin_overflow: {high_pct: 85}}}}
    devices:
      lvcheng/bin-01: {bin_overflow: {persist_min: 60}}

Precedence, most specific first: device > estate+profile > estate+kind > profile
> kind > the built-in defaults of the detector's model below. Parameters merge one
by one, so an override names only what it changes.

* :func:`load_rules` reads one file, a folder of files, or (``None``) the shipped
  ``processors/rulesets/default.yaml``, and raises :class:`RuleError` listing every
  problem as ``file:line: path: message``. Every combination an override can take
  part in is validated at load time, so resolution never fails later.
* :meth:`RuleSet.for_device` gives a device's :class:`ResolvedRules`: one frozen
  model per detector and ``rule_version`` (``"2026.11.1"``,
  ``"2026.11.1+estate:lvcheng"`` or ``"2026.11.1+device:lvcheng/bin-01"``), the
  label events record. Resolution is cached per device: O(1) after the first call.
* :func:`check_rules` is ``estate rules check FILE``: load and summarise.

The only I/O here is reading the rule files in :func:`load_rules`. See ``docs/rules.md``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import time
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from devices.catalogue import DeviceKind
from devices.profiles import BUILTIN_PROFILES, Profile
from devices.yamlfile import Problem, format_loc, read_mapping, show

__all__ = [
    "DEFAULT_RULES_PATH",
    "DETECTORS",
    "BinFillForecastRule",
    "BinFireRiskRule",
    "BinNotEmptiedRule",
    "BinOverflowRule",
    "BinStuckSensorRule",
    "ClockSkewRule",
    "CommonAreaPowerSpikeRule",
    "DetectorRule",
    "DeviceLike",
    "DeviceOfflineRule",
    "DoorForcedRule",
    "DoorHeldOpenRule",
    "EbikeOverTemperatureRule",
    "EbikePowerAbnormalRule",
    "EbikeSessionTooLongRule",
    "EnergyAboveBaselineRule",
    "EvBayBlockedRule",
    "EvChargerFaultedRule",
    "EvOverstayRule",
    "EvSessionTooLongRule",
    "FireLaneBlockedRule",
    "FlyingWireRule",
    "GateDeniedAttemptsRule",
    "GateTailgatingRule",
    "LightingDaylightRule",
    "LowBatteryRule",
    "Problem",
    "ResolvedRules",
    "RuleError",
    "RuleSet",
    "VisitorOverstayRule",
    "WaterBackflowRule",
    "WaterBalanceRule",
    "WaterBurstRule",
    "WaterContinuousFlowRule",
    "WaterNightFlowRule",
    "WaterNoUseRule",
    "check_rules",
    "load_rules",
    "parameter_rows",
    "parameter_table",
    "rule_files",
    "unit_of",
]

#: The rule file shipped with the package (used when no path is given).
DEFAULT_RULES_PATH = Path(__file__).with_name("rulesets") / "default.yaml"

#: A path into the rule data: mapping keys.
Loc = tuple[str | int, ...]

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
_IDENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_HHMM = re.compile(r"^\s*([0-9]{1,2}):([0-9]{2})\s*$")


# --- parameter types -------------------------------------------------------------------------


def _local_time(value: object) -> object:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        match = _HHMM.match(value)
        if match is not None and int(match[1]) < 24 and int(match[2]) < 60:
            return time(int(match[1]), int(match[2]))
    raise ValueError(f'must be an estate-local time "HH:MM" from 00:00 to 23:59, got {value!r}')


#: An estate-local time of day, written ``"HH:MM"`` (the estate's timezone comes from the
#: registry). Plain ``22:00`` in a rule file is read as text, not as YAML 1.1 base-60.
LocalTime = Annotated[time, BeforeValidator(_local_time)]


class DetectorRule(BaseModel):
    """Parameters of one detector. Units are in the field names; every detector can be disabled."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    #: The detector's name in rule files.
    detector: ClassVar[str] = ""
    #: The device kinds the detector watches; empty: every kind.
    kinds: ClassVar[frozenset[DeviceKind]] = frozenset()
    #: One line: what the detector raises.
    summary: ClassVar[str] = ""

    enabled: bool = Field(default=True, description="run this detector for the device")

    @classmethod
    def applies_to(cls, kind: str | None) -> bool:
        return not cls.kinds or kind in cls.kinds


_BIN = frozenset({DeviceKind.WASTE_BIN})
_WATER = frozenset({DeviceKind.WATER_METER})


# --- waste -----------------------------------------------------------------------------------


class BinOverflowRule(DetectorRule):
    detector: ClassVar[str] = "bin_overflow"
    kinds: ClassVar[frozenset[DeviceKind]] = _BIN
    summary: ClassVar[str] = "a bin is full: fill ≥ high_pct for persist_min; clears below low_pct"

    high_pct: float = Field(default=90.0, ge=1, le=100, description="fill level that is full")
    low_pct: float = Field(
        default=30.0, ge=0, le=99, description="fill level below which the alarm clears (emptied)"
    )
    persist_min: float = Field(
        default=30.0, ge=0, le=1440, description="how long fill stays ≥ high_pct before raising"
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> BinOverflowRule:
        if self.low_pct >= self.high_pct:
            raise ValueError(
                f"low_pct ({self.low_pct:g}) must be below high_pct ({self.high_pct:g}); "
                "the alarm clears below low_pct"
            )
        return self


class BinNotEmptiedRule(DetectorRule):
    detector: ClassVar[str] = "bin_not_emptied"
    kinds: ClassVar[frozenset[DeviceKind]] = _BIN
    summary: ClassVar[str] = "a full bin was not emptied within sla_h of becoming full"

    sla_h: float = Field(
        default=12.0,
        ge=0.5,
        le=336,
        description="hours from full (bin_overflow raised) to emptied (below its low_pct)",
    )


class BinFillForecastRule(DetectorRule):
    detector: ClassVar[str] = "bin_fill_forecast"
    kinds: ClassVar[frozenset[DeviceKind]] = _BIN
    summary: ClassVar[str] = "a bin is forecast to reach bin_overflow.high_pct within horizon_h"

    horizon_h: float = Field(
        default=12.0, ge=1, le=168, description="warn when time-to-full is below this"
    )
    window_h: float = Field(
        default=24.0, ge=1, le=336, description="history since the last emptying used for the rate"
    )
    min_readings: int = Field(
        default=4, ge=2, le=1000, description="readings in the window needed for a forecast"
    )
    min_rate_pct_h: float = Field(
        default=0.5, ge=0, le=100, description="fill rates below this are 'not filling'"
    )
    min_fill_pct: float = Field(
        default=60.0, ge=0, le=100, description="no forecast for a bin emptier than this"
    )


class BinFireRiskRule(DetectorRule):
    detector: ClassVar[str] = "bin_fire_risk"
    kinds: ClassVar[frozenset[DeviceKind]] = _BIN
    summary: ClassVar[str] = "fire risk: temperature ≥ temp_c, or rising ≥ rise_c_per_10min"

    temp_c: float = Field(
        default=60.0, ge=20, le=200, description="bin temperature that is a fire risk"
    )
    rise_c_per_10min: float = Field(
        default=10.0,
        gt=0,
        le=100,
        description="temperature rise between readings, scaled to 10 minutes",
    )


class BinStuckSensorRule(DetectorRule):
    detector: ClassVar[str] = "bin_stuck_sensor"
    kinds: ClassVar[frozenset[DeviceKind]] = _BIN
    summary: ClassVar[str] = "a fill sensor reports the same level (± tolerance_pct) for stuck_h"

    stuck_h: float = Field(
        default=48.0, ge=1, le=720, description="hours of unchanged fill that mean a stuck sensor"
    )
    tolerance_pct: float = Field(
        default=0.5, ge=0, le=10, description="changes this small count as unchanged"
    )


# --- water -----------------------------------------------------------------------------------


class WaterNightFlowRule(DetectorRule):
    detector: ClassVar[str] = "water_night_flow"
    kinds: ClassVar[frozenset[DeviceKind]] = _WATER
    summary: ClassVar[str] = (
        "leak suspected: the minimum hourly flow in the night window ≥ min_flow_l_h, "
        "nights nights in a row"
    )

    night_start: LocalTime = Field(
        default=time(2, 0), description="start of the night window, estate-local"
    )
    night_end: LocalTime = Field(
        default=time(5, 0), description="end of the night window, estate-local"
    )
    min_flow_l_h: float = Field(
        default=3.0, gt=0, le=10000, description="night minimum flow that counts as a leak"
    )
    nights: int = Field(default=3, ge=1, le=30, description="consecutive nights needed to raise")

    @property
    def window_h(self) -> float:
        """Length of the night window in hours (it may span midnight)."""
        start = self.night_start.hour * 60 + self.night_start.minute
        end = self.night_end.hour * 60 + self.night_end.minute
        return ((end - start) % 1440) / 60

    @model_validator(mode="after")
    def _window(self) -> WaterNightFlowRule:
        if not 1 <= self.window_h <= 12:
            raise ValueError(
                f"the night window {self.night_start:%H:%M}-{self.night_end:%H:%M} lasts "
                f"{self.window_h:g} h; it must last from 1 to 12 hours (it may span midnight)"
            )
        return self


class WaterContinuousFlowRule(DetectorRule):
    detector: ClassVar[str] = "water_continuous_flow"
    kinds: ClassVar[frozenset[DeviceKind]] = _WATER
    summary: ClassVar[str] = "water flowed every hour (≥ min_flow_l_h) for hours hours"

    hours: float = Field(
        default=24.0, ge=1, le=720, description="uninterrupted flow this long raises"
    )
    min_flow_l_h: float = Field(
        default=1.0, gt=0, le=10000, description="an hour with at least this much counts as flowing"
    )


class WaterBurstRule(DetectorRule):
    detector: ClassVar[str] = "water_burst"
    kinds: ClassVar[frozenset[DeviceKind]] = _WATER
    summary: ClassVar[str] = "burst suspected: flow ≥ flow_l_min for minutes"

    flow_l_min: float = Field(default=30.0, gt=0, le=10000, description="burst flow")
    minutes: float = Field(
        default=10.0, ge=1, le=1440, description="how long the flow must last to raise"
    )


class WaterBackflowRule(DetectorRule):
    detector: ClassVar[str] = "water_backflow"
    kinds: ClassVar[frozenset[DeviceKind]] = _WATER
    summary: ClassVar[str] = (
        "backflow: reverse flow ≥ min_flow_l_min for persist_min, or the register ran back"
    )

    min_flow_l_min: float = Field(
        default=0.5, gt=0, le=1000, description="reverse flow (magnitude) that counts"
    )
    persist_min: float = Field(
        default=5.0, ge=0, le=1440, description="how long the reverse flow must last to raise"
    )
    register_drop_l: float = Field(
        default=1.0, gt=0, le=1e6, description="a register decrease larger than this raises"
    )


class WaterBalanceRule(DetectorRule):
    detector: ClassVar[str] = "water_balance"
    kinds: ClassVar[frozenset[DeviceKind]] = _WATER
    summary: ClassVar[str] = (
        "master meter vs the sum of its sub-meters per estate-local day: unaccounted "
        "≥ loss_m3 and ≥ loss_pct of the master, windows days in a row"
    )

    loss_pct: float = Field(
        default=10.0, gt=0, le=100, description="(master - sum of sub-meters) / master"
    )
    loss_m3: float = Field(
        default=1.0, ge=0, le=1e6, description="master - sum of sub-meters must reach this too"
    )
    min_volume_m3: float = Field(
        default=1.0, ge=0, le=1e6, description="days where the master used less are skipped"
    )
    windows: int = Field(default=1, ge=1, le=30, description="consecutive days needed to raise")


class WaterNoUseRule(DetectorRule):
    detector: ClassVar[str] = "water_no_use"
    kinds: ClassVar[frozenset[DeviceKind]] = _WATER
    summary: ClassVar[str] = (
        "welfare check for meters tagged elderly_alone: less than min_use_l in hours hours"
    )

    hours: float = Field(
        default=16.0, ge=1, le=168, description="the silence that asks for a check"
    )
    min_use_l: float = Field(
        default=10.0, ge=0, le=1000, description="using less than this in the period is 'no use'"
    )


# --- charging and energy -----------------------------------------------------------------------

_EV = frozenset({DeviceKind.EV_CHARGER})
_EBIKE = frozenset({DeviceKind.EBIKE_STATION})
_ENERGY = frozenset({DeviceKind.ENERGY_METER})


class EvOverstayRule(DetectorRule):
    detector: ClassVar[str] = "ev_overstay"
    kinds: ClassVar[frozenset[DeviceKind]] = _EV
    summary: ClassVar[str] = (
        "charging finished (suspended_ev/finishing, or power < idle_kw for idle_min) and the "
        "car still connected after grace_h"
    )

    grace_h: float = Field(
        default=24.0, gt=0, le=168, description="time connected after charging finished"
    )
    idle_kw: float = Field(
        default=0.2, ge=0, le=50, description="power below this while 'charging' counts as done"
    )
    idle_min: float = Field(
        default=15.0, ge=1, le=1440, description="how long the power stays low to count as done"
    )


class EvSessionTooLongRule(DetectorRule):
    detector: ClassVar[str] = "ev_session_too_long"
    kinds: ClassVar[frozenset[DeviceKind]] = _EV
    summary: ClassVar[str] = "a car connected for more than max_h (from plug-in, charging or not)"

    max_h: float = Field(default=30.0, gt=0, le=720, description="longest plausible session")


class EvChargerFaultedRule(DetectorRule):
    detector: ClassVar[str] = "ev_charger_faulted"
    kinds: ClassVar[frozenset[DeviceKind]] = _EV
    summary: ClassVar[str] = "a connector reports OCPP status faulted for persist_min"

    persist_min: float = Field(
        default=2.0, ge=0, le=1440, description="how long faulted lasts before raising"
    )


class EbikeOverTemperatureRule(DetectorRule):
    detector: ClassVar[str] = "ebike_over_temperature"
    kinds: ClassVar[frozenset[DeviceKind]] = _EBIKE
    summary: ClassVar[str] = (
        "port temperature ≥ temp_c or rising ≥ rise_c_per_10min: critical fire risk"
    )

    temp_c: float = Field(
        default=60.0, ge=20, le=200, description="port temperature that is a fire risk"
    )
    rise_c_per_10min: float = Field(
        default=10.0, gt=0, le=100, description="temperature rise between readings, per 10 min"
    )


class EbikeSessionTooLongRule(DetectorRule):
    detector: ClassVar[str] = "ebike_session_too_long"
    kinds: ClassVar[frozenset[DeviceKind]] = _EBIKE
    summary: ClassVar[str] = "a port charging (status charging) for more than max_h"

    max_h: float = Field(
        default=8.0, gt=0, le=72, description="longest charge of an e-bike battery"
    )


class EbikePowerAbnormalRule(DetectorRule):
    detector: ClassVar[str] = "ebike_power_abnormal"
    kinds: ClassVar[frozenset[DeviceKind]] = _EBIKE
    summary: ClassVar[str] = (
        "port power > max_w for persist_min, or a charge reported finished without a taper"
    )

    max_w: float = Field(
        default=440.0, gt=0, le=5000, description="port rating plus tolerance (400 W ports)"
    )
    persist_min: float = Field(
        default=10.0, ge=0, le=1440, description="how long the power stays above max_w"
    )
    taper_pct: float = Field(
        default=80.0,
        gt=0,
        le=100,
        description="the last charging power must fall below this share of the session's peak",
    )
    min_session_h: float = Field(
        default=1.0, ge=0, le=72, description="shorter charges are not judged for the taper"
    )


class FlyingWireRule(DetectorRule):
    detector: ClassVar[str] = "flying_wire"
    kinds: ClassVar[frozenset[DeviceKind]] = _ENERGY
    summary: ClassVar[str] = (
        "unsafe e-bike charging suspected: a step of min_step_w-max_step_w starting between "
        "window_start and window_end, sustained for min_h"
    )

    min_step_w: float = Field(default=150.0, gt=0, le=5000, description="smallest charger step")
    max_step_w: float = Field(default=600.0, gt=0, le=5000, description="largest charger step")
    min_h: float = Field(
        default=2.0, ge=0.25, le=24, description="how long the step must be sustained"
    )
    tolerance_pct: float = Field(
        default=25.0, gt=0, le=100, description="how far the load may wander from the step"
    )
    window_start: LocalTime = Field(
        default=time(18, 0), description="steps starting from this local time count"
    )
    window_end: LocalTime = Field(
        default=time(6, 0), description="...until this one (equal to window_start: any time)"
    )

    @model_validator(mode="after")
    def _steps(self) -> FlyingWireRule:
        if self.max_step_w <= self.min_step_w:
            raise ValueError(
                f"max_step_w ({self.max_step_w:g}) must be above min_step_w ({self.min_step_w:g})"
            )
        return self


class LightingDaylightRule(DetectorRule):
    detector: ClassVar[str] = "lighting_daylight"
    kinds: ClassVar[frozenset[DeviceKind]] = _ENERGY
    summary: ClassVar[str] = (
        "lighting circuit drawing ≥ on_w between sunrise + margin_min and sunset - margin_min "
        "for persist_min"
    )

    on_w: float = Field(default=100.0, gt=0, le=1e6, description="power that means lamps on")
    margin_min: float = Field(
        default=30.0, ge=0, le=180, description="photocells and timers switch around twilight"
    )
    persist_min: float = Field(
        default=15.0, ge=0, le=1440, description="how long on in daylight before raising"
    )


class EnergyAboveBaselineRule(DetectorRule):
    detector: ClassVar[str] = "energy_above_baseline"
    kinds: ClassVar[frozenset[DeviceKind]] = _ENERGY
    summary: ClassVar[str] = (
        "an hour's consumption with robust z ≥ min_z against the same hour of past weeks "
        "(median, MAD) and ≥ min_excess_kwh above the median"
    )

    min_z: float = Field(default=6.0, gt=0, le=100, description="robust z-score that raises")
    min_excess_kwh: float = Field(
        default=0.5, ge=0, le=1e6, description="the hour must also exceed the median by this"
    )
    weeks: int = Field(default=6, ge=2, le=26, description="past weeks kept per hour of week")
    min_weeks: int = Field(
        default=3, ge=2, le=26, description="weeks of history needed to judge an hour"
    )


class CommonAreaPowerSpikeRule(DetectorRule):
    detector: ClassVar[str] = "common_area_power_spike"
    kinds: ClassVar[frozenset[DeviceKind]] = _ENERGY
    summary: ClassVar[str] = (
        "a common-area meter's power ≥ ratio × its median over window_min and ≥ min_excess_w "
        "above it"
    )

    ratio: float = Field(default=3.0, gt=1, le=100, description="power / recent median")
    min_excess_w: float = Field(
        default=2000.0, ge=0, le=1e7, description="power - recent median must reach this too"
    )
    window_min: float = Field(
        default=60.0, ge=5, le=1440, description="the recent window the median is taken over"
    )


# --- device health (every kind) ---------------------------------------------------------------


class DeviceOfflineRule(DetectorRule):
    detector: ClassVar[str] = "device_offline"
    summary: ClassVar[str] = (
        "offline: nothing heard for intervals × the profile's reporting interval"
    )

    intervals: float = Field(
        default=3.0, ge=1, le=100, description="multiple of the profile's reporting_interval_s"
    )

    def after_s(self, reporting_interval_s: float) -> float:
        """Seconds of silence after which a device reporting every ``reporting_interval_s``
        is offline."""
        return self.intervals * reporting_interval_s


class LowBatteryRule(DetectorRule):
    detector: ClassVar[str] = "low_battery"
    summary: ClassVar[str] = "battery ≤ low_pct; clears at ≥ clear_pct (a replaced battery)"

    low_pct: float = Field(default=20.0, ge=1, le=99, description="battery level that raises")
    clear_pct: float = Field(default=30.0, ge=2, le=100, description="battery level that clears")

    @model_validator(mode="after")
    def _hysteresis(self) -> LowBatteryRule:
        if self.clear_pct <= self.low_pct:
            raise ValueError(
                f"clear_pct ({self.clear_pct:g}) must be above low_pct ({self.low_pct:g}); "
                "the alarm clears at clear_pct"
            )
        return self


class ClockSkewRule(DetectorRule):
    detector: ClassVar[str] = "clock_skew"
    summary: ClassVar[str] = "device time differs from receive time by > max_skew_s, readings times"

    max_skew_s: float = Field(
        default=300.0,
        ge=1,
        le=86400,
        description="difference between device time and receive time that counts",
    )
    readings: int = Field(
        default=3, ge=1, le=100, description="consecutive skewed readings needed to raise"
    )


# --- parking and gates ------------------------------------------------------------------------

_PARKING = frozenset({DeviceKind.PARKING_SENSOR})
_GATE = frozenset({DeviceKind.ACCESS_GATE})


class FireLaneBlockedRule(DetectorRule):
    detector: ClassVar[str] = "fire_lane_blocked"
    kinds: ClassVar[frozenset[DeviceKind]] = _PARKING
    summary: ClassVar[str] = "a spot tagged fire_lane occupied for minutes (critical)"

    minutes: float = Field(
        default=3.0, ge=0, le=120, description="occupied this long raises; clears when free"
    )


class VisitorOverstayRule(DetectorRule):
    detector: ClassVar[str] = "visitor_overstay"
    kinds: ClassVar[frozenset[DeviceKind]] = _PARKING
    summary: ClassVar[str] = "a bay tagged visitor_bay occupied for longer than limit_h"

    limit_h: float = Field(
        default=8.0, ge=0.25, le=72, description="time limit of a visitor bay"
    )


class EvBayBlockedRule(DetectorRule):
    detector: ClassVar[str] = "ev_bay_blocked"
    kinds: ClassVar[frozenset[DeviceKind]] = _PARKING
    summary: ClassVar[str] = (
        "a bay tagged ev_bay occupied with no charging session on its connector for minutes"
    )

    minutes: float = Field(
        default=15.0,
        ge=1,
        le=240,
        description="occupied with the linked connector not in a session this long raises",
    )


class DoorHeldOpenRule(DetectorRule):
    detector: ClassVar[str] = "door_held_open"
    kinds: ClassVar[frozenset[DeviceKind]] = _GATE
    summary: ClassVar[str] = "a gate's door open for longer than minutes"

    minutes: float = Field(
        default=3.0, ge=0.5, le=240, description="open this long raises; clears when closed"
    )


class DoorForcedRule(DetectorRule):
    detector: ClassVar[str] = "door_forced"
    kinds: ClassVar[frozenset[DeviceKind]] = _GATE
    summary: ClassVar[str] = (
        "a door opened with the forced flag, or with no granted passage within grant_window_s"
    )

    grant_window_s: float = Field(
        default=30.0,
        ge=1,
        le=600,
        description="an opening this soon after a granted passage is not forced",
    )
    require_grant: bool = Field(
        default=True,
        description="an opening with no granted passage before it counts as forced",
    )


class GateDeniedAttemptsRule(DetectorRule):
    detector: ClassVar[str] = "gate_denied_attempts"
    kinds: ClassVar[frozenset[DeviceKind]] = _GATE
    summary: ClassVar[str] = "attempts denied passages at one gate within window_min"

    attempts: int = Field(
        default=5, ge=2, le=100, description="denied passages that raise within the window"
    )
    window_min: float = Field(
        default=5.0, ge=1, le=120, description="the sliding window the attempts fall in"
    )


class GateTailgatingRule(DetectorRule):
    detector: ClassVar[str] = "gate_tailgating"
    kinds: ClassVar[frozenset[DeviceKind]] = _GATE
    summary: ClassVar[str] = (
        "a passage senses more persons than persons_per_grant × granted credentials"
    )

    persons_per_grant: int = Field(
        default=3,
        ge=1,
        le=10,
        description="persons one granted credential may take through (a family)",
    )


#: Detector name → its rule model, in documentation order.
DETECTORS: dict[str, type[DetectorRule]] = {
    cls.detector: cls
    for cls in (
        BinOverflowRule,
        BinNotEmptiedRule,
        BinFillForecastRule,
        BinFireRiskRule,
        BinStuckSensorRule,
        WaterNightFlowRule,
        WaterContinuousFlowRule,
        WaterBurstRule,
        WaterBackflowRule,
        WaterBalanceRule,
        WaterNoUseRule,
        EvOverstayRule,
        EvSessionTooLongRule,
        EvChargerFaultedRule,
        EbikeOverTemperatureRule,
        EbikeSessionTooLongRule,
        EbikePowerAbnormalRule,
        FlyingWireRule,
        LightingDaylightRule,
        EnergyAboveBaselineRule,
        CommonAreaPowerSpikeRule,
        DeviceOfflineRule,
        LowBatteryRule,
        ClockSkewRule,
        FireLaneBlockedRule,
        VisitorOverstayRule,
        EvBayBlockedRule,
        DoorHeldOpenRule,
        DoorForcedRule,
        GateDeniedAttemptsRule,
        GateTailgatingRule,
    )
}

_DEFAULTS: dict[str, DetectorRule] = {
    name: cls.model_validate({}) for name, cls in DETECTORS.items()
}


# --- resolved rules --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedRules:
    """One device's rules: a frozen model per detector, and the version label events record.

    ``rule_version`` is the file version, plus ``+estate:<estate>`` when an estate
    override applies to any detector of the device, or ``+device:<estate>/<device>``
    when a device override does. :meth:`version_of` gives the same label for one
    detector; an event of that detector should record it.
    """

    rule_version: str
    bin_overflow: BinOverflowRule
    bin_not_emptied: BinNotEmptiedRule
    bin_fill_forecast: BinFillForecastRule
    bin_fire_risk: BinFireRiskRule
    bin_stuck_sensor: BinStuckSensorRule
    water_night_flow: WaterNightFlowRule
    water_continuous_flow: WaterContinuousFlowRule
    water_burst: WaterBurstRule
    water_backflow: WaterBackflowRule
    water_balance: WaterBalanceRule
    water_no_use: WaterNoUseRule
    ev_overstay: EvOverstayRule
    ev_session_too_long: EvSessionTooLongRule
    ev_charger_faulted: EvChargerFaultedRule
    ebike_over_temperature: EbikeOverTemperatureRule
    ebike_session_too_long: EbikeSessionTooLongRule
    ebike_power_abnormal: EbikePowerAbnormalRule
    flying_wire: FlyingWireRule
    lighting_daylight: LightingDaylightRule
    energy_above_baseline: EnergyAboveBaselineRule
    common_area_power_spike: CommonAreaPowerSpikeRule
    device_offline: DeviceOfflineRule
    low_battery: LowBatteryRule
    clock_skew: ClockSkewRule
    fire_lane_blocked: FireLaneBlockedRule
    visitor_overstay: VisitorOverstayRule
    ev_bay_blocked: EvBayBlockedRule
    door_held_open: DoorHeldOpenRule
    door_forced: DoorForcedRule
    gate_denied_attempts: GateDeniedAttemptsRule
    gate_tailgating: GateTailgatingRule
    #: (detector, version label) for every detector, in :data:`DETECTORS` order.
    versions: tuple[tuple[str, str], ...]

    def get(self, detector: str) -> DetectorRule:
        """The rule of ``detector`` by name (``KeyError`` for an unknown name)."""
        if detector not in DETECTORS:
            raise KeyError(f"no detector {detector!r}; known: {', '.join(DETECTORS)}")
        rule: DetectorRule = getattr(self, detector)
        return rule

    def version_of(self, detector: str) -> str:
        """The version label of the rule that ``detector`` uses for this device."""
        position = _POSITION.get(detector)
        if position is not None:
            name, version = self.versions[position]
            if name == detector:  # always, as built by the loader: one dict access per call
                return version
        for name, version in self.versions:
            if name == detector:
                return version
        raise KeyError(f"no detector {detector!r}; known: {', '.join(DETECTORS)}")


assert [f.name for f in fields(ResolvedRules)][1:-1] == list(DETECTORS)
#: Where each detector's entry is in ``ResolvedRules.versions`` (``DETECTORS`` order).
_POSITION: dict[str, int] = {name: i for i, name in enumerate(DETECTORS)}


class DeviceLike(Protocol):
    """What resolution needs of a device; :class:`devices.registry.DeviceRef` fits."""

    @property
    def estate(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def profile(self) -> Profile | str: ...


# --- rule sections and resolution (pure) ------------------------------------------------------


class _Level(IntEnum):
    KIND = 1
    PROFILE = 2
    ESTATE_KIND = 3
    ESTATE_PROFILE = 4
    DEVICE = 5


@dataclass(frozen=True, slots=True, eq=False)
class _Section:
    """One detector's parameters at one level of one file."""

    file: str
    line: int | None
    loc: Loc  # to the detector key
    level: _Level
    detector: str
    params: Mapping[str, Any]


_Table = dict[Any, dict[str, _Section]]


@dataclass(frozen=True, slots=True)
class _Tables:
    kind: _Table  # kind → detector → section
    profile: _Table  # profile → ...
    estate_kind: _Table  # (estate, kind) → ...
    estate_profile: _Table  # (estate, profile) → ...
    device: _Table  # (estate, device) → ...

    def table(self, level: _Level) -> _Table:
        return (self.kind, self.profile, self.estate_kind, self.estate_profile, self.device)[
            level - 1
        ]

    def estates(self) -> set[str]:
        return (
            {e for e, _ in self.estate_kind}
            | {e for e, _ in self.estate_profile}
            | {e for e, _ in self.device}
        )

    def chain(
        self,
        detector: str,
        estate: str | None,
        device: str | None,
        kind: str | None,
        profile: str | None,
    ) -> list[_Section]:
        """The sections that set ``detector`` for this device, least specific first."""
        if not DETECTORS[detector].applies_to(kind):
            return []
        keys: tuple[tuple[_Table, Any], ...] = (
            (self.kind, kind),
            (self.profile, profile),
            (self.estate_kind, None if estate is None or kind is None else (estate, kind)),
            (
                self.estate_profile,
                None if estate is None or profile is None else (estate, profile),
            ),
            (self.device, None if estate is None or device is None else (estate, device)),
        )
        out: list[_Section] = []
        for table, key in keys:
            if key is not None:
                section = table.get(key, {}).get(detector)
                if section is not None:
                    out.append(section)
        return out


def _label(version: str, level: _Level | None, estate: str | None, device: str | None) -> str:
    if level is _Level.DEVICE:
        return f"{version}+device:{estate}/{device}"
    if level in (_Level.ESTATE_KIND, _Level.ESTATE_PROFILE):
        return f"{version}+estate:{estate}"
    return version


def _merged(chain: Sequence[_Section]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for section in chain:
        params.update(section.params)
    return params


class RuleSet:
    """Loaded rules (immutable). Build with :func:`load_rules`; share freely.

    :meth:`for_device` / :meth:`resolve` are pure functions of the loaded files and the
    device's identity; their results are cached per device, so that detectors may call
    them per reading.
    """

    __slots__ = ("_base", "_cache", "_estates", "_files", "_tables", "_version")

    def __init__(self, version: str, files: Sequence[str], tables: _Tables) -> None:
        self._version = version
        self._files = tuple(files)
        self._tables = tables
        self._estates = frozenset(tables.estates())
        self._base: dict[tuple[str | None, str | None, str | None], ResolvedRules] = {}
        self._cache: dict[tuple[str, str, str | None, str | None], ResolvedRules] = {}

    @property
    def version(self) -> str:
        """The rule files' ``version``."""
        return self._version

    @property
    def files(self) -> tuple[str, ...]:
        """The files the rules were read from."""
        return self._files

    def __repr__(self) -> str:
        return f"RuleSet(version={self._version!r}, files={list(self._files)!r})"

    def for_device(self, ref: DeviceLike) -> ResolvedRules:
        """The rules of a registered device (a :class:`devices.registry.DeviceRef` or alike)."""
        profile = ref.profile
        name = profile if isinstance(profile, str) else profile.name
        return self.resolve(ref.estate, ref.device, ref.kind, name)

    def resolve(
        self, estate: str, device: str, kind: str | None, profile: str | None = None
    ) -> ResolvedRules:
        """The rules of device ``device`` of ``estate`` with this kind and profile name.

        A profile that is not a built-in profile of ``kind`` is ignored (kind rules apply).
        """
        key = (estate, device, kind, profile)
        found = self._cache.get(key)
        if found is None:
            found = self._compute(estate, device, kind, profile)
            self._cache[key] = found
        return found

    def _compute(
        self, estate: str, device: str, kind: str | None, profile: str | None
    ) -> ResolvedRules:
        spec = BUILTIN_PROFILES.get(profile) if profile is not None else None
        if kind is not None and kind not in _KIND_VALUES:
            kind = None
        if spec is None or spec.kind != kind:
            profile = None
        if (estate, device) in self._tables.device:
            return _resolve(self._tables, self._version, estate, device, kind, profile)
        base_estate = estate if estate in self._estates else None
        base_key = (base_estate, kind, profile)
        base = self._base.get(base_key)
        if base is None:
            base = _resolve(self._tables, self._version, base_estate, None, kind, profile)
            self._base[base_key] = base
        return base

    def summary(self) -> str:
        """What the rules hold, for ``estate rules check``."""
        t = self._tables
        count = sum(len(d) for level in _Level for d in t.table(level).values())
        lines = [
            f"rules OK: version {self._version}, {len(self._files)} file(s), "
            f"{count} detector section(s), {len(DETECTORS)} detectors known"
        ]

        def names(sections: Mapping[str, _Section]) -> str:
            return ", ".join(sections)

        for kind, sections in t.kind.items():
            lines.append(f"  kind {kind}: {names(sections)}")
        for profile, sections in t.profile.items():
            lines.append(f"  profile {profile}: {names(sections)}")
        for (estate, kind), sections in t.estate_kind.items():
            lines.append(f"  estate {estate} kind {kind}: {names(sections)}")
        for (estate, profile), sections in t.estate_profile.items():
            lines.append(f"  estate {estate} profile {profile}: {names(sections)}")
        for (estate, device), sections in t.device.items():
            lines.append(f"  device {estate}/{device}: {names(sections)}")
        return "\n".join(lines)


_KIND_VALUES = frozenset(k.value for k in DeviceKind)


def _resolve(
    tables: _Tables,
    version: str,
    estate: str | None,
    device: str | None,
    kind: str | None,
    profile: str | None,
) -> ResolvedRules:
    rules: dict[str, Any] = {}
    versions: list[tuple[str, str]] = []
    top: _Level | None = None
    for name, cls in DETECTORS.items():
        chain = tables.chain(name, estate, device, kind, profile)
        if not chain:
            rules[name] = _DEFAULTS[name]
            versions.append((name, version))
            continue
        rules[name] = cls.model_validate(_merged(chain))
        level = chain[-1].level
        versions.append((name, _label(version, level, estate, device)))
        top = level if top is None else max(top, level)
    return ResolvedRules(
        rule_version=_label(version, top, estate, device), versions=tuple(versions), **rules
    )


# --- problems --------------------------------------------------------------------------------


class RuleError(Exception):
    """The rules cannot be used; ``problems`` says every reason, ``str()`` one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _Lines:
    """The 1-based line of every key path of one composed YAML document (built once).

    A path that is not in the document gets the line of its deepest existing prefix.
    """

    def __init__(self, root: yaml.Node) -> None:
        self._index: dict[Loc, int] = {(): root.start_mark.line + 1}
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
        while stack:
            node, loc = stack.pop()
            if id(node) in seen:  # an alias (possibly recursive)
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        here = (*loc, str(key.value))
                        self._index[here] = key.start_mark.line + 1  # the last duplicate wins
                        stack.append((value, here))
            elif isinstance(node, yaml.SequenceNode):
                for i, child in enumerate(node.value):
                    here = (*loc, i)
                    self._index[here] = child.start_mark.line + 1
                    stack.append((child, here))

    def line(self, loc: Loc) -> int:
        loc = tuple(loc)
        while loc not in self._index:
            loc = loc[:-1]
        return self._index[loc]


def _unknown(what: str, name: object, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=1) if isinstance(name, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {show(name)}{hint} (known: {', '.join(known)})"


_BOUND_TEXT = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "above"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "below"),
}


def _numeric_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _message(err: ErrorDetails, cls: type[DetectorRule]) -> str:
    """A pydantic error of one detector's parameters as a message a person can act on."""
    loc = tuple(err["loc"])
    name = str(loc[0]) if loc else cls.detector
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    unit = unit_of(cls, name) if name in cls.model_fields else ""
    unit_text = f" ({unit})" if unit else ""
    if kind == "extra_forbidden":
        return _unknown(f"parameter of {cls.detector}:", name, cls.model_fields).replace(
            "(known:", "(parameters:"
        )
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        return f"{name} {msg}" if loc else msg
    if kind in _BOUND_TEXT:
        key, words = _BOUND_TEXT[kind]
        bound = ctx.get(key)
        shown = _number(bound) if isinstance(bound, int | float) else show(bound)
        return f"{name} must be {words} {shown}{unit_text}, got {show(value)}"
    quoted = "; write it without quotes" if _numeric_text(value) else ""
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"{name} must be a number{unit_text}, got {show(value)}{quoted}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{name} must be a whole number{unit_text}, got {show(value)}{quoted}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{name} must be true or false, got {show(value)}"
    msg = str(err["msg"])
    return f"{name}: {msg[:1].lower()}{msg[1:]} (got {show(value)})"


# --- YAML with line marks ----------------------------------------------------------------------

_TOP_KEYS = ("version", "description", "profiles", "estates", "devices")
_TOP_HINT = 'expected a mapping with version: "YYYY.MM.N" and profiles / estates / devices sections'
_PROFILE_KEYS = [k.value for k in DeviceKind] + list(BUILTIN_PROFILES)


@dataclass
class _FileRules:
    file: str
    version: str
    version_line: int
    sections: list[_Section]


class _FileReader:
    """The sections of one parsed rule file; structural and per-section problems."""

    def __init__(self, name: str, root: yaml.Node) -> None:
        self.name = name
        self.lines = _Lines(root)
        self.problems: list[Problem] = []
        self.sections: list[_Section] = []

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.name, self.lines.line(loc), format_loc(loc), message))

    def mapping(self, value: object, loc: Loc, what: str) -> dict[Any, Any] | None:
        if isinstance(value, dict):
            return value
        got = "a list" if isinstance(value, list) else show(value)
        self.problem(loc, f"{format_loc(loc) or 'the file'} must be a mapping of {what}, got {got}")
        return None

    def read(self, data: dict[Any, Any]) -> _FileRules | None:
        for key in data:
            if key not in _TOP_KEYS:
                self.problem((str(key),), _unknown("top-level key", key, _TOP_KEYS))
        version = self.version(data)
        description = data.get("description")
        if "description" in data and not isinstance(description, str):
            self.problem(("description",), f"description must be text, got {show(description)}")
        if data.get("profiles") is not None:
            self.profiles(data["profiles"], ("profiles",), None)
        if data.get("estates") is not None:
            self.estates(data["estates"])
        if data.get("devices") is not None:
            self.devices(data["devices"])
        if version is None or self.problems:
            return None
        return _FileRules(self.name, version, self.lines.line(("version",)), self.sections)

    def version(self, data: Mapping[Any, Any]) -> str | None:
        if "version" not in data:
            self.problem((), "missing required field 'version' (text, e.g. version: \"2026.11.1\")")
            return None
        value = data["version"]
        if not isinstance(value, str):
            self.problem(
                ("version",),
                f"version must be text, got {show(value)}; quote it, e.g. "
                f'version: "{"" if value is None else value}"',
            )
            return None
        if not _VERSION.match(value):
            self.problem(
                ("version",),
                f"version {value!r} must be 1-64 characters of letters, digits, '.', '_' and "
                "'-', starting with a letter or digit (no '+': it separates override labels)",
            )
            return None
        return value

    def profiles(self, value: object, loc: Loc, estate: str | None) -> None:
        entries = self.mapping(value, loc, "device kinds or profile names to detectors")
        for key, detectors in (entries or {}).items():
            here = (*loc, str(key))
            if key in _KIND_VALUES:
                kind = str(key)
                level = _Level.KIND if estate is None else _Level.ESTATE_KIND
            elif key in BUILTIN_PROFILES:
                kind = BUILTIN_PROFILES[key].kind.value
                level = _Level.PROFILE if estate is None else _Level.ESTATE_PROFILE
            else:
                self.problem(here, _unknown("device kind or profile", key, _PROFILE_KEYS))
                continue
            self.detectors(detectors, here, level, kind, str(key))

    def estates(self, value: object) -> None:
        entries = self.mapping(value, ("estates",), "estate ids to overrides")
        for key, body in (entries or {}).items():
            here: Loc = ("estates", str(key))
            if not isinstance(key, str) or not _IDENT.match(key):
                self.problem(
                    here,
                    f"estate id {show(key)} must be 1-64 characters of letters, digits, "
                    "'_', '-' and '.'",
                )
                continue
            parts = self.mapping(body, here, "'profiles' to overrides")
            for sub in parts or {}:
                if sub != "profiles":
                    self.problem((*here, str(sub)), _unknown("estate key", sub, ["profiles"]))
            if parts is not None and parts.get("profiles") is not None:
                self.profiles(parts["profiles"], (*here, "profiles"), key)

    def devices(self, value: object) -> None:
        entries = self.mapping(value, ("devices",), '"estate/device" keys to detectors')
        for key, detectors in (entries or {}).items():
            here: Loc = ("devices", str(key))
            estate, _, device = str(key).partition("/") if isinstance(key, str) else ("", "", "")
            if not (_IDENT.match(estate) and _IDENT.match(device)):
                self.problem(
                    here,
                    f'device key {show(key)} must be "<estate id>/<device id>", e.g. '
                    '"lvcheng/bin-01"',
                )
                continue
            self.detectors(detectors, here, _Level.DEVICE, None, str(key))

    def detectors(
        self, value: object, loc: Loc, level: _Level, kind: str | None, scope: str
    ) -> None:
        entries = self.mapping(value, loc, "detectors to parameters")
        if entries is None:
            return
        families: dict[frozenset[DeviceKind], str] = {}
        for name, params in entries.items():
            here = (*loc, str(name))
            cls = DETECTORS.get(name) if isinstance(name, str) else None
            if cls is None:
                self.problem(here, _unknown("detector", name, DETECTORS))
                continue
            if kind is not None and not cls.applies_to(kind):
                watched = ", ".join(sorted(k.value for k in cls.kinds))
                self.problem(
                    here,
                    f"detector {name} watches {watched} devices; it does not apply to "
                    f"{scope} ({kind})",
                )
                continue
            if level is _Level.DEVICE and cls.kinds:
                for other_kinds, other in families.items():
                    if not other_kinds & cls.kinds:
                        self.problem(
                            here,
                            f"detector {name} watches "
                            f"{', '.join(sorted(cls.kinds))} devices but {other} watches "
                            f"{', '.join(sorted(other_kinds))}; a device has one kind",
                        )
                        break
                else:
                    families.setdefault(cls.kinds, name)
            if params is None:
                self.problem(
                    here,
                    f"{name} is empty; give its parameters (e.g. {name}: "
                    f"{{enabled: true}}) or remove it",
                )
                continue
            body = self.mapping(params, here, "parameters to values")
            if body is None:
                continue
            bad_keys = [k for k in body if not isinstance(k, str)]
            for k in bad_keys:
                self.problem(
                    (*here, str(k)), _unknown(f"parameter of {name}:", k, cls.model_fields)
                )
            if bad_keys:
                continue
            try:
                cls.model_validate(body)
            except ValidationError as exc:
                found = [e for e in exc.errors(include_url=False) if e["loc"]]
                for err in found:
                    self.problem((*here, *err["loc"]), _message(err, cls))
                if found:
                    continue
                # cross-parameter checks are judged on the merged chains (see _check_chains)
            self.sections.append(
                _Section(self.name, self.lines.line(here), here, level, name, dict(body))
            )


def _read_file(path: Path) -> tuple[_FileRules | None, list[Problem]]:
    name = str(path)
    read = read_mapping(path, _TOP_HINT)
    if isinstance(read, list):
        return None, read
    data, root = read
    reader = _FileReader(name, root)
    rules = reader.read(data)
    return rules, reader.problems


# --- combining files and checking every chain -------------------------------------------------


def _scope_key(section: _Section) -> Any:
    """The table key of a section (from its location)."""
    loc = section.loc
    if section.level in (_Level.KIND, _Level.PROFILE):
        return loc[1]
    if section.level in (_Level.ESTATE_KIND, _Level.ESTATE_PROFILE):
        return (loc[1], loc[3])
    estate, _, device = str(loc[1]).partition("/")
    return (estate, device)


def _where(section: _Section, here: str) -> str:
    if section.file == here:
        return f"line {section.line}"
    return f"{section.file}:{section.line}"


def _combine(parts: Sequence[_FileRules]) -> tuple[str, _Tables, list[Problem]]:
    problems: list[Problem] = []
    first = parts[0]
    for part in parts[1:]:
        if part.version != first.version:
            problems.append(
                Problem(
                    part.file,
                    part.version_line,
                    "version",
                    f"version {part.version!r} differs from {first.version!r} in "
                    f"{first.file}:{first.version_line}; the files of a rule folder carry one "
                    "version",
                )
            )
    tables = _Tables({}, {}, {}, {}, {})
    for part in parts:
        for section in part.sections:
            table = tables.table(section.level).setdefault(_scope_key(section), {})
            seen = table.get(section.detector)
            if seen is not None:
                problems.append(
                    Problem(
                        section.file,
                        section.line,
                        format_loc(section.loc),
                        f"{format_loc(section.loc)} is already given at "
                        f"{_where(seen, section.file)}; give each section in one file only",
                    )
                )
                continue
            table[section.detector] = section
    return first.version, tables, problems


def _check_chains(tables: _Tables) -> list[Problem]:
    """Validate every merged chain an override can take part in (cross-parameter checks)."""
    options: list[tuple[str | None, str | None]] = [(None, None)]
    options += [(k.value, None) for k in DeviceKind]
    profiles = set(tables.profile) | {p for _, p in tables.estate_profile}
    options += [(p.kind.value, p.name) for p in BUILTIN_PROFILES.values() if p.name in profiles]
    estates: list[str | None] = [None, *sorted(tables.estates())]
    seen: set[tuple[int, ...]] = set()
    problems: dict[tuple[str, int | None, str, str], Problem] = {}
    for estate in estates:
        devices: list[str | None] = [None]
        devices += sorted(d for e, d in tables.device if e == estate)
        for device in devices:
            # a device's other detectors have the chains of its estate (device None)
            names = DETECTORS if device is None else tables.device[(estate, device)]
            for kind, profile in options:
                for name in names:
                    cls = DETECTORS[name]
                    chain = tables.chain(name, estate, device, kind, profile)
                    key = tuple(id(s) for s in chain)
                    if not chain or key in seen:
                        continue
                    seen.add(key)
                    try:
                        cls.model_validate(_merged(chain))
                    except ValidationError as exc:
                        top = chain[-1]
                        others = [
                            f"{format_loc(s.loc)} at {_where(s, top.file)}" for s in chain[:-1]
                        ]
                        combined = f" (combined with {'; '.join(others)})" if others else ""
                        for err in exc.errors(include_url=False):
                            msg = _message(err, cls) + combined
                            path = format_loc(top.loc)
                            problems.setdefault(
                                (top.file, top.line, path, msg),
                                Problem(top.file, top.line, path, msg),
                            )
    return list(problems.values())


# --- loading ---------------------------------------------------------------------------------


def rule_files(path: str | Path | None = None) -> list[Path]:
    """The files a rules path stands for: the file itself, or a folder's ``*.yaml``/``*.yml``.

    ``None`` is the shipped default file. Folders are not searched recursively; hidden
    files are skipped.
    """
    p = DEFAULT_RULES_PATH if path is None else Path(path)
    if p.is_dir():
        files = sorted(
            f
            for f in p.iterdir()
            if f.suffix in (".yaml", ".yml") and not f.name.startswith(".") and f.is_file()
        )
        if not files:
            raise RuleError(
                [Problem(str(p), None, "", "the folder holds no *.yaml or *.yml rule files")]
            )
        return files
    if not p.exists():
        raise RuleError([Problem(str(p), None, "", "no such file or folder")])
    return [p]


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load and validate a rule file, a folder of rule files, or (``None``) the shipped default.

    The files of a folder carry the same ``version`` and together give each
    (level, kind/profile/estate/device, detector) section at most once. Raises
    :class:`RuleError` listing every problem found (file, line, path, message).
    """
    files = rule_files(path)
    parts: list[_FileRules] = []
    problems: list[Problem] = []
    for file in files:
        part, found = _read_file(file)
        problems.extend(found)
        if part is not None:
            parts.append(part)
    if problems:
        raise RuleError(problems)
    version, tables, problems = _combine(parts)
    if problems:
        raise RuleError(problems)
    problems = _check_chains(tables)
    if problems:
        raise RuleError(problems)
    return RuleSet(version, [str(f) for f in files], tables)


def check_rules(path: str | Path | None = None) -> str:
    """``estate rules check PATH``: load (raising :class:`RuleError`) and summarise as text."""
    return load_rules(path).summary()


# --- documentation ---------------------------------------------------------------------------

_UNIT_SUFFIXES = (
    ("_c_per_10min", "°C/10 min"),
    ("_pct_h", "%/h"),
    ("_kwh", "kWh"),
    ("_kw", "kW"),
    ("_w", "W"),
    ("_pct", "%"),
    ("_l_min", "L/min"),
    ("_l_h", "L/h"),
    ("_m3", "m³"),
    ("_min", "min"),
    ("_h", "h"),
    ("_s", "s"),
    ("_c", "°C"),
    ("_l", "L"),
)
_UNIT_NAMES = {
    "hours": "h",
    "minutes": "min",
    "nights": "nights",
    "windows": "days",
    "readings": "readings",
    "min_readings": "readings",
    "intervals": "× reporting interval",
    "night_start": "HH:MM local",
    "night_end": "HH:MM local",
    "window_start": "HH:MM local",
    "window_end": "HH:MM local",
    "min_z": "robust z",
    "ratio": "×",
    "weeks": "weeks",
    "min_weeks": "weeks",
    "enabled": "true/false",
    "attempts": "attempts",
    "persons_per_grant": "persons",
    "require_grant": "true/false",
}


def unit_of(cls: type[DetectorRule], name: str) -> str:
    """The unit of parameter ``name`` of ``cls``, from its name (``high_pct`` → ``%``)."""
    if name in _UNIT_NAMES:
        return _UNIT_NAMES[name]
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


def _number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _range_text(cls: type[DetectorRule], name: str) -> str:
    low = high = ""
    for meta in cls.model_fields[name].metadata:
        if isinstance(meta, Ge):
            low = f"{_number(meta.ge)} ≤"
        elif isinstance(meta, Gt):
            low = f"{_number(meta.gt)} <"
        elif isinstance(meta, Le):
            high = f"≤ {_number(meta.le)}"
        elif isinstance(meta, Lt):
            high = f"< {_number(meta.lt)}"
    if not low and not high:
        return ""
    return " ".join(p for p in (low, "x", high) if p)


def _default_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, float):
        return _number(value)
    return str(value)


def parameter_rows() -> Iterator[tuple[str, str, str, str, str, str]]:
    """(detector, parameter, unit, default, range, meaning) of every parameter but ``enabled``.

    Every detector also has ``enabled`` (true/false, default true).
    """
    for name, cls in DETECTORS.items():
        for param, info in cls.model_fields.items():
            if param == "enabled":
                continue
            yield (
                name,
                param,
                unit_of(cls, param),
                _default_text(info.default),
                _range_text(cls, param),
                info.description or "",
            )


def parameter_table() -> str:
    """Every parameter as a Markdown table (``docs/rules.md`` carries a copy)."""
    lines = [
        "| detector | parameter | unit | default | range | meaning |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in parameter_rows()]
    return "\n".join(lines)
