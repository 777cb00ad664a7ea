"""What the API and the live feed show, computed from the registry and the projections.

The projections are written by their consumer's worker thread while the API reads them
on the event loop: every read here takes a shallow copy first (``list(d.values())``,
``dict(d)``), which CPython does atomically, and never iterates a live container.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pydantic import JsonValue

from console.http import OutputModel
from devices.registry import DeviceRef, RegistryIndex
from devices.severity import Severity
from processors.projections import AlertView, DeviceView, Projections

SEVERITIES = tuple(s.value for s in sorted(Severity, key=lambda s: s.rank, reverse=True))


class Health(StrEnum):
    """A device at a glance: an open ``device_offline`` alert makes it offline, an open
    ``low_battery`` alert low on battery; a device that never reported is unknown."""

    ONLINE = "online"
    OFFLINE = "offline"
    LOW_BATTERY = "low_battery"
    UNKNOWN = "unknown"


def health_of(conditions: set[str], view: DeviceView | None) -> Health:
    if "device_offline" in conditions:
        return Health.OFFLINE
    if "low_battery" in conditions:
        return Health.LOW_BATTERY
    if view is None or view.last_seen is None:
        return Health.UNKNOWN
    return Health.ONLINE


class HealthCounts(OutputModel):
    total: int
    online: int
    offline: int
    low_battery: int
    unknown: int
    #: Online (or low battery, still reporting) among devices that ever reported.
    online_pct: float | None


def count_health(healths: Iterable[Health]) -> HealthCounts:
    c = Counter(healths)
    total = sum(c.values())
    reporting = total - c[Health.UNKNOWN]
    up = c[Health.ONLINE] + c[Health.LOW_BATTERY]
    return HealthCounts(
        total=total,
        online=c[Health.ONLINE],
        offline=c[Health.OFFLINE],
        low_battery=c[Health.LOW_BATTERY],
        unknown=c[Health.UNKNOWN],
        online_pct=round(100 * up / reporting, 1) if reporting else None,
    )


class DeviceOut(OutputModel):
    estate: str
    building: str | None
    id: str
    kind: str
    profile: str
    zone: str | None
    tags: list[str]
    health: Health
    open_conditions: list[str]
    last_seen: str | None
    last_received: str | None
    battery_pct: float | None
    readings: int
    flags: list[str]
    latest: dict[str, dict[str, JsonValue]]


def device_out(ref: DeviceRef, projections: Projections) -> DeviceOut:
    view = projections.devices.get(f"{ref.estate}/{ref.device}")
    conditions = projections.conditions(ref.estate, ref.device)
    return DeviceOut(
        estate=ref.estate,
        building=ref.building,
        id=ref.device,
        kind=ref.kind.value,
        profile=ref.profile.name,
        zone=ref.zone,
        tags=sorted(ref.tags),
        health=health_of(conditions, view),
        open_conditions=sorted(conditions),
        last_seen=_iso(view.last_seen if view else None),
        last_received=_iso(view.last_received if view else None),
        battery_pct=view.battery_pct if view else None,
        readings=view.readings if view else 0,
        flags=list(view.flags) if view else [],
        latest=dict(view.latest) if view else {},
    )


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def device_health(index: RegistryIndex, projections: Projections, estate: str) -> list[DeviceOut]:
    return [device_out(ref, projections) for ref in index.devices_of(estate)]


def alerts_snapshot(projections: Projections) -> list[AlertView]:
    """Every alert of the book (a copy of the list; the views themselves are live)."""
    return list(projections.alerts.values())


def open_by_severity(projections: Projections, estate: str | None) -> dict[str, int]:
    counts = Counter(
        a.severity
        for a in alerts_snapshot(projections)
        if a.open and (estate is None or a.estate == estate)
    )
    return {s: counts.get(s, 0) for s in SEVERITIES}


def building_of(index: RegistryIndex, alert: AlertView) -> str | None:
    """The alert's building: alert events carry none, the registry knows the device's."""
    if alert.building is not None:
        return alert.building
    ref = index.device(alert.estate, alert.device)
    return None if ref is None else ref.building


def alert_out(index: RegistryIndex, alert: AlertView, *, history: bool = True) -> AlertView:
    """A copy of a live alert view to serialise: its building filled in, its history
    copied (the projection's thread appends to the original), or left out."""
    return alert.model_copy(
        update={
            "building": building_of(index, alert),
            "history": list(alert.history) if history else [],
        }
    )
