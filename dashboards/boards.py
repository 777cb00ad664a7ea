"""The control room's Grafana boards, as code (Grafana Foundation SDK, InfluxQL only).

Every board has the template variables ``estate`` and ``building`` (the street-office
roll-up has ``office`` and ``estate``), alert annotations from the ``events``
measurement, and raw InfluxQL targets, so the same boards work on InfluxDB 1.x, 2.x
(through a DBRP mapping) and 3.x. The schema the queries read is
``docs/timeseries.md`` (:mod:`processors.influx_schema`).
"""

# InfluxQL text is what this module builds, from constants only (no input reaches it):
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import InfluxQL, ResultFormat

#: The provisioned InfluxDB data source (``dashboards/provisioning/datasources``).
DATASOURCE = dm.DataSourceRef(type_val="influxdb", uid="estate-influxdb")

#: The panel filter of the ``estate``/``building`` boards, and of the roll-up.
SCOPE = '"estate" =~ /^$estate$/ AND "building" =~ /^$building$/'
OFFICE_SCOPE = '"office" =~ /^$office$/ AND "estate" =~ /^$estate$/'

Panel = cogbuilder.Builder[dm.Panel]


# --- queries (shared by the boards: one definition each) -------------------------------------


def alerts_raised(scope: str, conditions: str, by: str) -> str:
    """Alerts raised (first occurrence) of ``conditions`` (a regex), per tag ``by``."""
    return (
        f'SELECT sum("opened") AS "raised" FROM "events" WHERE {scope} '
        f'AND "condition" =~ /^({conditions})$/ AND $timeFilter GROUP BY "{by}"'
    )


def open_alerts(scope: str) -> str:
    """Alerts opened minus alerts resolved in the range, per severity."""
    return (
        f'SELECT sum("open_change") AS "open" FROM "events" WHERE {scope} AND $timeFilter '
        'GROUP BY "severity"'
    )


def devices_reporting(scope: str, by: str, window: str = "$timeFilter") -> str:
    """Devices with a heartbeat in ``window``, per tag ``by`` (online now: the last hour)."""
    return (
        f'SELECT count("up") AS "devices" FROM (SELECT last("alive") AS "up" '
        f'FROM "device_health" WHERE {scope} AND {window} GROUP BY "device", "{by}") '
        f'GROUP BY "{by}"'
    )


def online(scope: str, by: str) -> tuple[Q, Q]:
    """Devices seen in the range and devices reporting in the last hour, side by side."""
    return (
        Q(devices_reporting(scope, by), "seen in range"),
        Q(devices_reporting(scope, by, "time > now() - 1h"), "online (last hour)"),
    )


def low_battery(scope: str) -> str:
    return (
        'SELECT count("battery") AS "devices" FROM (SELECT last("battery_pct") AS "battery" '
        f'FROM "device_health" WHERE {scope} AND $timeFilter GROUP BY "device") '
        'WHERE "battery" < 20'
    )


def bins_full(scope: str, by: str | None = None) -> str:
    """Bins whose last fill level is at least 90 % (optionally per tag ``by``)."""
    inner_by = f', "{by}"' if by else ""
    outer_by = f' GROUP BY "{by}"' if by else ""
    return (
        'SELECT count("fill") AS "full_bins" FROM (SELECT last("fill_pct") AS "fill" '
        f'FROM "waste_level" WHERE {scope} AND $timeFilter GROUP BY "device"{inner_by}) '
        f'WHERE "fill" >= 90{outer_by}'
    )


def used(measurement: str, register: str, scope: str, by: str | None = None) -> str:
    """Consumption of a cumulative register in the range (sum of per-device spreads)."""
    inner_by = f', "{by}"' if by else ""
    outer_by = f' GROUP BY "{by}"' if by else ""
    return (
        f'SELECT sum("used") AS "used" FROM (SELECT spread("{register}") AS "used" '
        f'FROM "{measurement}" WHERE {scope} AND $timeFilter GROUP BY "device"{inner_by})'
        f"{outer_by}"
    )


def hourly_use(measurement: str, register: str, scope: str, by: str | None = None) -> str:
    """Consumption per hour of a cumulative register (differences of hourly maxima)."""
    by_clause = f', "{by}"' if by else ""
    return (
        f'SELECT sum("used") AS "used" FROM (SELECT non_negative_difference(max("{register}")) '
        f'AS "used" FROM "{measurement}" WHERE {scope} AND $timeFilter '
        f'GROUP BY time(1h), "device"{by_clause}) WHERE $timeFilter GROUP BY time(1h){by_clause}'
    )


def sessions_started(measurement: str, sub: str, scope: str) -> str:
    """Charging sessions started: rises of ``charging`` per connector or port."""
    return (
        'SELECT count("started") AS "sessions" FROM (SELECT difference("charging") AS "started" '
        f'FROM "{measurement}" WHERE {scope} AND $timeFilter GROUP BY "device", "{sub}") '
        'WHERE "started" > 0'
    )


def total_power(measurement: str, field: str, sub: str, scope: str) -> str:
    return (
        f'SELECT sum("p") AS "{field}" FROM (SELECT mean("{field}") AS "p" FROM "{measurement}" '
        f'WHERE {scope} AND $timeFilter GROUP BY time($__interval), "device", "{sub}" fill(none)) '
        "WHERE $timeFilter GROUP BY time($__interval)"
    )


def fire_lane_minutes(scope: str, by: str | None = None, per_hour: bool = False) -> str:
    """Minutes a fire-lane bay was occupied (per-minute state carried forward)."""
    inner_by = f', "{by}"' if by else ""
    outer = []
    if per_hour:
        outer.append("time(1h)")
    if by:
        outer.append(f'"{by}"')
    outer_by = f" GROUP BY {', '.join(outer)}" if outer else ""
    window = " WHERE $timeFilter" if per_hour else ""
    return (
        'SELECT sum("blocked") AS "blocked_min" FROM (SELECT max("occupied") AS "blocked" '
        f'FROM "parking_occupancy" WHERE {scope} AND "role" = \'fire_lane\' AND $timeFilter '
        f'GROUP BY time(1m), "device"{inner_by} fill(previous)){window}{outer_by}'
    )


def gate_sum(field: str, scope: str, by: str | None = None) -> str:
    by_clause = f' GROUP BY "{by}"' if by else ""
    return (
        f'SELECT sum("{field}") AS "{field}" FROM "gate_passage" WHERE {scope} AND $timeFilter'
        f"{by_clause}"
    )


def annotation_query(scope: str, conditions: str) -> str:
    return (
        'SELECT "text", "condition", "severity" FROM "events" WHERE '
        f'{scope} AND "event" = \'AlertRaised\' AND "condition" =~ /^({conditions})$/ '
        "AND $timeFilter"
    )


# --- panel helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Q:
    """One target of a panel: the InfluxQL text, an alias, the result format."""

    query: str
    alias: str | None = None
    fmt: ResultFormat = "time_series"


def _targets(panel: Any, queries: Sequence[Q]) -> None:
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        target = InfluxQL(q.query).ref_id(ref).result_format(q.fmt).datasource(DATASOURCE)
        if q.alias:
            target.alias(q.alias)
        panel.with_target(target)


def _panel(
    factory: Callable[[], Any], title: str, queries: Sequence[Q], unit: str, w: int, h: int
) -> tuple[Any, int, int]:
    panel = factory().title(title).datasource(DATASOURCE).unit(unit)
    _targets(panel, queries)
    return panel, w, h


def graph(title: str, *queries: Q, unit: str = "short", w: int = 12) -> tuple[Any, int, int]:
    return _panel(timeseries.Panel, title, queries, unit, w, 8)


def figure(title: str, *queries: Q, unit: str = "short", w: int = 6) -> tuple[Any, int, int]:
    return _panel(stat.Panel, title, queries, unit, w, 4)


def bars(title: str, *queries: Q, unit: str = "short", w: int = 12) -> tuple[Any, int, int]:
    return _panel(bargauge.Panel, title, queries, unit, w, 8)


def grid(title: str, *queries: Q, unit: str = "short", w: int = 12) -> tuple[Any, int, int]:
    tabled = [Q(q.query, q.alias, "table") for q in queries]
    return _panel(table.Panel, title, tabled, unit, w, 8)


def _tag_variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def tag_values(key: str, where: str | None = None) -> str:
    clause = f" WHERE {where}" if where else ""
    return f'SHOW TAG VALUES FROM "device_health" WITH KEY = "{key}"{clause}'


ESTATE_VARIABLES = (
    ("estate", "Estate", tag_values("estate")),
    ("building", "Building", tag_values("building", '"estate" =~ /^$estate$/')),
)
OFFICE_VARIABLES = (
    ("office", "Street office", tag_values("office")),
    ("estate", "Estate", tag_values("estate", '"office" =~ /^$office$/')),
)


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    panels: Sequence[tuple[Any, int, int]]
    #: regex of the alert conditions annotated on this board
    annotate: str
    variables: Sequence[tuple[str, str, str]] = ESTATE_VARIABLES
    scope: str = SCOPE
    time_from: str = "now-24h"

    def build(self) -> dm.Dashboard:
        board = (
            db.Dashboard(self.title)
            .uid(self.uid)
            .tags(["estate-monitor"])
            .time(self.time_from, "now")
            .refresh("1m")
            .timezone("browser")
            .editable()
            .annotation(
                db.AnnotationQuery()
                .name("Alerts")
                .datasource(DATASOURCE)
                .enable(True)
                .icon_color("red")
            )
        )
        for name, label, query in self.variables:
            board.with_variable(_tag_variable(name, label, query))
        x = y = row_h = 0
        for n, (panel, w, h) in enumerate(self.panels, start=1):
            if x + w > 24:
                x, y, row_h = 0, y + row_h, 0
            panel.id(n).grid_pos(dm.GridPos(h=h, w=w, x=x, y=y))
            board.with_panel(panel)
            x, row_h = x + w, max(row_h, h)
        return board.build()

    def annotation_target(self) -> dict[str, object]:
        """The InfluxQL target of the ``Alerts`` annotation (see :func:`to_json`)."""
        return {
            "refId": "Anno",
            "query": annotation_query(self.scope, self.annotate),
            "rawQuery": True,
            "resultFormat": "table",
            "fromAnnotations": True,
            "textColumn": "text",
            "tagsColumn": "condition,severity",
        }


ALL_CONDITIONS = ".+"
WASTE = "bin_overflow|bin_not_emptied|bin_fill_forecast|bin_fire_risk|bin_stuck_sensor"
LEAKS = "water_night_flow|water_continuous_flow|water_burst|water_backflow"
WATER = f"{LEAKS}|water_balance|water_no_use"
CHARGING = (
    "ev_overstay|ev_session_too_long|ev_charger_faulted|ebike_over_temperature"
    "|ebike_power_abnormal|ebike_session_too_long|flying_wire"
)
PARKING = "fire_lane_blocked|visitor_overstay|ev_bay_blocked"
GATES = "door_held_open|door_forced|gate_denied_attempts|gate_tailgating"
ENERGY = "lighting_daylight"
#: Every alert condition a board filters on (tests check each is a real detector).
CONDITION_GROUPS = {
    "waste": WASTE,
    "water": WATER,
    "charging": CHARGING,
    "parking": PARKING,
    "gates": GATES,
    "energy": ENERGY,
}
HOUSEHOLD = f"{SCOPE} AND \"role\" != 'master'"


def boards() -> list[Board]:
    """Every board of the control room."""
    s = SCOPE
    return [
        Board(
            "estate-overview",
            "Estate overview",
            [
                bars("Open alerts by severity (opened − resolved)", Q(open_alerts(s))),
                bars(
                    "Alerts raised by condition", Q(alerts_raised(s, ALL_CONDITIONS, "condition"))
                ),
                bars("Devices online (last hour) vs seen, by kind", *online(s, "kind")),
                figure("Devices with low battery (< 20 %)", Q(low_battery(s))),
                figure("Bins full now", Q(bins_full(s))),
                figure(
                    "Water used (m³)", Q(used("water_register", "volume_m3", HOUSEHOLD)), unit="m3"
                ),
                figure(
                    "Energy used (kWh)",
                    Q(used("energy_register", "energy_kwh", HOUSEHOLD)),
                    unit="kwatth",
                ),
                figure("Gate passages", Q(gate_sum("passages", s))),
            ],
            ALL_CONDITIONS,
            time_from="now/d",
        ),
        Board(
            "estate-waste",
            "Waste",
            [
                graph(
                    "Fill level by category (%)",
                    Q(
                        f'SELECT mean("fill_pct") FROM "waste_level" WHERE {s} AND $timeFilter '
                        'GROUP BY time($__interval), "category" fill(none)',
                        "$tag_category",
                    ),
                    unit="percent",
                ),
                figure("Bins full now (≥ 90 %)", Q(bins_full(s))),
                figure(
                    "Emptied in time (%)",
                    Q(
                        'SELECT 100 - 100 * sum("late") / sum("full") AS "in_time_pct" FROM '
                        f'(SELECT "opened" AS "full" FROM "events" WHERE {s} '
                        "AND \"condition\" = 'bin_overflow' AND $timeFilter), "
                        f'(SELECT "opened" AS "late" FROM "events" WHERE {s} '
                        "AND \"condition\" = 'bin_not_emptied' AND $timeFilter)"
                    ),
                    unit="percent",
                ),
                grid(
                    "Time to full (h) at the last day's fill rate",
                    Q(
                        'SELECT (100 - last("fill")) / mean("rate") AS "hours_to_full" FROM '
                        '(SELECT mean("fill_pct") AS "fill", '
                        'non_negative_derivative(mean("fill_pct"), 1h) AS "rate" '
                        f'FROM "waste_level" WHERE {s} AND $timeFilter '
                        'GROUP BY time(1h), "device") WHERE "rate" > 0 GROUP BY "device"'
                    ),
                ),
                graph(
                    "Bin temperature, hottest (°C)",
                    Q(
                        f'SELECT max("temperature_c") FROM "waste_level" WHERE {s} '
                        "AND $timeFilter GROUP BY time($__interval) fill(none)"
                    ),
                    unit="celsius",
                ),
                bars("Waste alerts", Q(alerts_raised(s, WASTE, "condition"))),
            ],
            WASTE,
        ),
        Board(
            "estate-water",
            "Water",
            [
                graph(
                    "Consumption (m³ per hour)",
                    Q(hourly_use("water_register", "volume_m3", HOUSEHOLD), "households"),
                    unit="m3",
                ),
                graph(
                    "Master meter vs sub-meters (m³ per hour)",
                    Q(
                        hourly_use("water_register", "volume_m3", f"{s} AND \"role\" = 'master'"),
                        "master",
                    ),
                    Q(hourly_use("water_register", "volume_m3", HOUSEHOLD), "sub-meters"),
                    unit="m3",
                ),
                grid(
                    "Lowest flow per meter, L/min (> 0: water never stopped, night leak)",
                    Q(
                        'SELECT "min_flow" FROM (SELECT min("flow_l_min") AS "min_flow" '
                        f'FROM "water_register" WHERE {s} AND $timeFilter GROUP BY "device") '
                        'WHERE "min_flow" > 0'
                    ),
                ),
                bars("Suspected leaks", Q(alerts_raised(s, LEAKS, "condition"))),
            ],
            WATER,
        ),
        Board(
            "estate-charging",
            "Charging",
            [
                graph(
                    "EV charging power (kW)",
                    Q(total_power("ev_connector", "power_kw", "connector", s)),
                    unit="kwatt",
                ),
                graph(
                    "E-bike charging power (W)",
                    Q(total_power("ebike_port", "power_w", "port", s)),
                    unit="watt",
                ),
                figure("EV sessions started", Q(sessions_started("ev_connector", "connector", s))),
                figure("E-bike sessions started", Q(sessions_started("ebike_port", "port", s))),
                graph(
                    "E-bike port temperature, hottest (°C)",
                    Q(
                        f'SELECT max("temperature_c") FROM "ebike_port" WHERE {s} '
                        "AND $timeFilter GROUP BY time($__interval) fill(none)"
                    ),
                    unit="celsius",
                ),
                bars(
                    "Overstays, over-temperature, suspected flying wires",
                    Q(alerts_raised(s, CHARGING, "condition")),
                ),
            ],
            CHARGING,
        ),
        Board(
            "estate-parking",
            "Parking and fire lanes",
            [
                graph(
                    "Occupancy per zone (%)",
                    Q(
                        'SELECT mean("occupied") * 100 FROM "parking_occupancy" WHERE '
                        f"{s} AND \"role\" != 'fire_lane' AND $timeFilter "
                        'GROUP BY time($__interval), "zone" fill(none)',
                        "$tag_zone",
                    ),
                    unit="percent",
                ),
                figure("Fire lanes blocked (minutes)", Q(fire_lane_minutes(s))),
                figure(
                    "EV bays occupied now (%)",
                    Q(
                        'SELECT mean("occ") * 100 AS "occupied_pct" FROM (SELECT last("occupied") '
                        f'AS "occ" FROM "parking_occupancy" WHERE {s} AND "role" = \'ev_bay\' '
                        'AND $timeFilter GROUP BY "device")'
                    ),
                    unit="percent",
                ),
                graph(
                    "Fire lanes blocked (minutes per hour)", Q(fire_lane_minutes(s, per_hour=True))
                ),
                grid("Fire-lane alerts by bay", Q(alerts_raised(s, PARKING, "device"))),
            ],
            PARKING,
        ),
        Board(
            "estate-gates",
            "Gates",
            [
                graph(
                    "Passages and denials",
                    Q(
                        'SELECT sum("passages") AS "passages", sum("denied") AS "denied" '
                        f'FROM "gate_passage" WHERE {s} AND $timeFilter '
                        "GROUP BY time($__interval) fill(0)"
                    ),
                ),
                figure("Denials", Q(gate_sum("denied", s))),
                figure(
                    "Doors forced",
                    Q(
                        f'SELECT sum("forced") AS "forced" FROM "gate_door" WHERE {s} '
                        "AND $timeFilter"
                    ),
                ),
                bars("Doors held open / forced (alerts)", Q(alerts_raised(s, GATES, "condition"))),
                grid("Passages by gate", Q(gate_sum("passages", s, "device"))),
            ],
            GATES,
        ),
        Board(
            "estate-energy",
            "Energy",
            [
                graph(
                    "Consumption by role (kWh per hour; no role: households)",
                    Q(hourly_use("energy_register", "energy_kwh", HOUSEHOLD, "role"), "$tag_role"),
                    unit="kwatth",
                ),
                graph(
                    "Common-area, corridor and lighting power (W)",
                    Q(
                        f'SELECT mean("power_w") FROM "energy_register" WHERE {s} '
                        'AND "role" =~ /^(common_area|lighting|corridor)$/ AND $timeFilter '
                        'GROUP BY time($__interval), "role" fill(none)',
                        "$tag_role",
                    ),
                    unit="watt",
                ),
                figure(
                    "Public lighting energy (kWh)",
                    Q(used("energy_register", "energy_kwh", f"{s} AND \"role\" = 'lighting'")),
                    unit="kwatth",
                ),
                bars("Lighting on in daylight (alerts)", Q(alerts_raised(s, ENERGY, "device"))),
            ],
            ENERGY,
        ),
        Board(
            "street-office-rollup",
            "Street office roll-up",
            [
                bars(
                    "Alerts raised per estate",
                    Q(alerts_raised(OFFICE_SCOPE, ALL_CONDITIONS, "estate")),
                ),
                bars(
                    "Devices online (last hour) vs seen, per estate",
                    *online(OFFICE_SCOPE, "estate"),
                ),
                bars(
                    "Water used per estate (m³)",
                    Q(
                        used(
                            "water_register",
                            "volume_m3",
                            f"{OFFICE_SCOPE} AND \"role\" != 'master'",
                            "estate",
                        )
                    ),
                    unit="m3",
                ),
                bars(
                    "Energy used per estate (kWh)",
                    Q(
                        used(
                            "energy_register",
                            "energy_kwh",
                            f"{OFFICE_SCOPE} AND \"role\" != 'master'",
                            "estate",
                        )
                    ),
                    unit="kwatth",
                ),
                bars("Bins full now per estate", Q(bins_full(OFFICE_SCOPE, "estate"))),
                bars(
                    "Fire lanes blocked per estate (minutes)",
                    Q(fire_lane_minutes(OFFICE_SCOPE, "estate")),
                ),
                bars("Gate denials per estate", Q(gate_sum("denied", OFFICE_SCOPE, "estate"))),
            ],
            ALL_CONDITIONS,
            variables=OFFICE_VARIABLES,
            scope=OFFICE_SCOPE,
        ),
    ]
