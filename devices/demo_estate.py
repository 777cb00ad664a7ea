"""A realistic demo registry: Shanghai residential estates of towers, meters, bays and bins.

:func:`generate_registry` returns the YAML-ready data (it loads through
:func:`devices.registry.load_registry`); :func:`write_registry` writes it to a
file, or to a folder of one file per estate (``split=True``). Deterministic
for a seed; every size scales with ``households`` (per estate).

For the default 2,500 households one estate holds about:

=====================  ======  ==================================================
kind                   count   how
=====================  ======  ==================================================
water_meter            ~2,520  one per household (``meter_of`` the building
                               master) + a master per building (``meter_of`` the
                               estate main) + the estate main inlet
energy_meter           ~2,530  one per household (~4 % report Wh: ``energy_wh``),
                               a corridor circuit per building, common-area and
                               public-lighting circuits at estate level
waste_bin              ~250    collection points (one per ~40 households) of four
                               bins: recyclable / kitchen / hazardous / other
parking_sensor         ~3,000  1.2 bays per household, in zones: surface ``S1``
                               (visitor and fire-lane spots) and underground
                               ``B1-A`` … (~300 bays each); 250 ``ev_bay``
ev_charger             125     2-connector 7 kW wallboxes (250 connectors), each
                               connector linked from one ev_bay
ebike_station          ~40     10-port stations (``ebike_10port``) by the towers
access_gate            ~80     two unit doors per building + entrance and garage
                               gates
gateway                ~5      LoRaWAN / NB-IoT concentrators
=====================  ======  ==================================================

About 3 % of households are tagged ``elderly_alone`` (on both their meters).
Each street office gets one webhook endpoint whose secret comes from
``ESTATE_WEBHOOK_SECRET_<OFFICE>``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_WEBHOOK_BASE",
    "ESTATE_NAMES",
    "STREET_OFFICES",
    "dump_registry",
    "generate_registry",
    "write_registry",
]

DEFAULT_WEBHOOK_BASE = "http://127.0.0.1:8787/webhooks"

#: (district id, district name, street office id, office name, lat, lon) — real places.
STREET_OFFICES: tuple[tuple[str, str, str, str, float, float], ...] = (
    ("pudong", "浦东新区", "huamu", "花木街道", 31.2155, 121.5520),
    ("minhang", "闵行区", "gumei", "古美路街道", 31.1520, 121.3990),
    ("xuhui", "徐汇区", "tianlin", "田林街道", 31.1720, 121.4260),
    ("pudong", "浦东新区", "zhangjiang", "张江镇", 31.2040, 121.5900),
    ("jingan", "静安区", "pengpu", "彭浦新村街道", 31.3070, 121.4480),
    ("yangpu", "杨浦区", "wujiaochang", "五角场街道", 31.3010, 121.5140),
)

#: (estate id, estate name): estate i is ESTATE_NAMES[i % len], with a phase suffix beyond.
ESTATE_NAMES: tuple[tuple[str, str], ...] = (
    ("lvcheng", "绿城花园"),
    ("cuihu", "翠湖苑"),
    ("jinqiao", "金桥新村"),
    ("yangguang", "阳光水岸"),
    ("biyun", "碧云雅苑"),
    ("chunshen", "春申景城"),
    ("xiangmei", "香梅花园"),
    ("lanting", "兰亭名苑"),
    ("meilong", "梅陇新苑"),
    ("tianshan", "天山华庭"),
)

_CATEGORIES = ("recyclable", "kitchen", "hazardous", "other")
_SIDES = ("东", "南", "西", "北")
_ENTRANCES = (
    ("east", "东门"),
    ("south", "南门"),
    ("west", "西门"),
    ("north", "北门"),
    ("garage-b1", "地库B1入口"),
    ("garage-b2", "地库B2入口"),
)
_FLOORS = 18
_ZONE_SIZE = 300
_PORTS_PER_CHARGER = 2

Data = dict[str, Any]


def generate_registry(
    households: int = 2500,
    seed: int = 1,
    estates: int = 1,
    *,
    webhook_base: str = DEFAULT_WEBHOOK_BASE,
) -> Data:
    """The registry data of ``estates`` demo estates of ``households`` households each.

    Estate ``i`` goes to street office ``i % len(STREET_OFFICES)`` (the first is
    pudong / huamu). The result loads through :func:`devices.registry.load_registry`.
    """
    if households < 1:
        raise ValueError("households must be at least 1")
    if estates < 1:
        raise ValueError("estates must be at least 1")
    districts: dict[str, Data] = {}
    offices: dict[str, Data] = {}
    for i in range(estates):
        district_id, district_name, office_id, office_name, lat, lon = STREET_OFFICES[
            i % len(STREET_OFFICES)
        ]
        district = districts.get(district_id)
        if district is None:
            district = {"id": district_id, "name": district_name, "street_offices": []}
            districts[district_id] = district
        office = offices.get(office_id)
        if office is None:
            office = {
                "id": office_id,
                "name": office_name,
                "webhooks": [
                    {
                        "id": f"{office_id}-control",
                        "url": f"{webhook_base.rstrip('/')}/{office_id}",
                        "secret_env": f"ESTATE_WEBHOOK_SECRET_{office_id.upper()}",
                        "min_severity": "warning",
                    }
                ],
                "estates": [],
            }
            offices[office_id] = office
            district["street_offices"].append(office)
        rng = random.Random(seed * 1_000_003 + i)  # noqa: S311 - demo data, not security
        office["estates"].append(_estate(i, households, rng, lat, lon))
    return {"version": 1, "districts": list(districts.values())}


def _estate(index: int, households: int, rng: random.Random, lat: float, lon: float) -> Data:
    base_id, base_name = ESTATE_NAMES[index % len(ESTATE_NAMES)]
    phase = index // len(ESTATE_NAMES) + 1
    estate_id = base_id if phase == 1 else f"{base_id}-{phase}"
    name = base_name if phase == 1 else f"{base_name}{phase}期"
    lat = round(lat + rng.uniform(-0.012, 0.012), 5)
    lon = round(lon + rng.uniform(-0.012, 0.012), 5)
    buildings = _buildings(households, rng)
    devices: list[Data] = [
        {
            "id": "wm-main",
            "kind": "water_meter",
            "profile": "water_master",
            "location": {"spot": "东门总水表井"},
            "tags": ["master"],
        }
    ]
    devices += _estate_energy(households)
    devices += _bins(households, len(buildings), rng)
    devices += _parking(households, rng)
    devices += _ebike_stations(households, len(buildings))
    devices += _entrance_gates(households, len(buildings))
    devices += _gateways(households, rng, lat, lon)
    return {
        "id": estate_id,
        "name": name,
        "timezone": "Asia/Shanghai",
        "location": {"lat": lat, "lon": lon},
        "buildings": buildings,
        "devices": devices,
    }


def _buildings(households: int, rng: random.Random) -> list[Data]:
    """18-storey towers of 6-8 flats a floor (108-144 households); the last one smaller."""
    buildings: list[Data] = []
    remaining = households
    elderly = set(rng.sample(range(households), k=round(households * 0.03)))
    counter = 0
    while remaining > 0:
        number = len(buildings) + 1
        per_floor = rng.choice((6, 7, 8))
        size = min(remaining, per_floor * _FLOORS)
        floors = math.ceil(size / per_floor)
        bid = f"{number:02d}"
        master = f"wm-{bid}-master"
        devices: list[Data] = [
            {"id": master, "kind": "water_meter", "profile": "water_master", "meter_of": "wm-main"},
            {
                "id": f"em-{bid}-corridor",
                "kind": "energy_meter",
                "profile": "energy_corridor",
                "tags": ["corridor"],
            },
        ]
        for door in "ab":
            devices.append(
                {
                    "id": f"gate-{bid}-{door}",
                    "kind": "access_gate",
                    "profile": "gate_standard",
                    "location": {"spot": f"{number}号楼{'一二'['ab'.index(door)]}单元门"},
                }
            )
        for room in _rooms(size, per_floor):
            tags = ["elderly_alone"] if counter in elderly else []
            counter += 1
            water: Data = {
                "id": f"wm-{bid}-{room}",
                "kind": "water_meter",
                "profile": "water_household",
                "household": room,
                "meter_of": master,
            }
            energy: Data = {
                "id": f"em-{bid}-{room}",
                "kind": "energy_meter",
                "profile": "energy_wh" if rng.random() < 0.04 else "energy_household",
                "household": room,
            }
            if tags:
                water["tags"] = list(tags)
                energy["tags"] = list(tags)
            devices += (water, energy)
        buildings.append(
            {
                "id": f"b{bid}",
                "name": f"{number}号楼",
                "households": size,
                "floors": floors,
                "devices": devices,
            }
        )
        remaining -= size
    return buildings


def _rooms(size: int, per_floor: int) -> Iterator[str]:
    """Flat numbers floor-major: 101, 102, … 1808."""
    for n in range(size):
        floor, unit = divmod(n, per_floor)
        yield f"{floor + 1}{unit + 1:02d}"


def _estate_energy(households: int) -> list[Data]:
    common = ["会所", "水泵房", "地库通风", "消防控制室", "物业中心", "泳池机房"]
    out: list[Data] = [
        {
            "id": f"em-common-{n + 1:02d}",
            "kind": "energy_meter",
            "profile": "energy_corridor",
            "location": {"spot": common[n % len(common)]},
            "tags": ["common_area"],
        }
        for n in range(max(2, round(households / 600)))
    ]
    out += [
        {
            "id": f"em-lighting-{n + 1:02d}",
            "kind": "energy_meter",
            "profile": "energy_lighting",
            "location": {"spot": f"路灯回路{n + 1}"},
            "tags": ["lighting"],
        }
        for n in range(max(2, round(households / 400)))
    ]
    return out


def _bins(households: int, buildings: int, rng: random.Random) -> list[Data]:
    out: list[Data] = []
    for point in range(max(1, round(households / 40))):
        cp = f"cp{point + 1:02d}"
        spot = f"{point % buildings + 1}号楼{_SIDES[point // buildings % 4]}侧垃圾投放点"
        for category in _CATEGORIES:
            out.append(
                {
                    "id": f"bin-{cp}-{category}",
                    "kind": "waste_bin",
                    "profile": "bin_ultrasonic_fraction"
                    if rng.random() < 0.1
                    else "bin_ultrasonic",
                    "zone": cp,
                    "category": category,
                    "location": {"spot": spot},
                }
            )
    return out


def _parking(households: int, rng: random.Random) -> list[Data]:
    """Surface bays (visitor, fire-lane spots, some regular) and underground zones with EV bays."""
    total = round(households * 1.2)
    visitor = round(total * 0.05)
    fire_lane = max(1, round(total * 0.01))
    surface = min(total, max(visitor + fire_lane, round(total * 0.1)))
    underground = total - surface
    chargers = min(max(1, round(households * 0.05)), underground // _PORTS_PER_CHARGER)
    out: list[Data] = []
    for n in range(surface):
        bay: Data = {
            "id": f"p-S1-{n + 1:03d}",
            "kind": "parking_sensor",
            "profile": "parking_geomagnetic",
            "zone": "S1",
        }
        if n < fire_lane:
            bay["tags"] = ["fire_lane"]
            bay["location"] = {"spot": f"消防通道{n + 1}号位"}
        elif n < fire_lane + visitor:
            bay["tags"] = ["visitor_bay"]
        out.append(bay)
    zones = max(1, round(underground / _ZONE_SIZE)) if underground else 0
    sizes = [underground // zones + (z < underground % zones) for z in range(zones)]
    charger_zone = [c % zones for c in range(chargers)] if zones else []
    chargers_of = {z: [c for c in range(chargers) if charger_zone[c] == z] for z in range(zones)}
    for z, size in enumerate(sizes):
        zone = f"B{z // 4 + 1}-{'ABCD'[z % 4]}"
        links = [
            f"evc-{c + 1:03d}:{port}"
            for c in chargers_of[z]
            for port in range(1, _PORTS_PER_CHARGER + 1)
        ]
        start = rng.randrange(0, max(1, size - len(links)))  # the EV row somewhere in the zone
        for c in chargers_of[z]:
            out.append(
                {
                    "id": f"evc-{c + 1:03d}",
                    "kind": "ev_charger",
                    "profile": "ev_ac7",
                    "zone": zone,
                    "ports": _PORTS_PER_CHARGER,
                }
            )
        for n in range(size):
            bay = {
                "id": f"p-{zone}-{n + 1:03d}",
                "kind": "parking_sensor",
                "profile": "parking_geomagnetic",
                "zone": zone,
            }
            if 0 <= n - start < len(links):
                bay["tags"] = ["ev_bay"]
                bay["connector"] = links[n - start]
            out.append(bay)
    return out


def _ebike_stations(households: int, buildings: int) -> list[Data]:
    return [
        {
            "id": f"ebk-{n + 1:02d}",
            "kind": "ebike_station",
            "profile": "ebike_10port",
            "ports": 10,
            "location": {"spot": f"{n % buildings + 1}号楼非机动车棚"},
        }
        for n in range(max(1, round(households / 62.5)))
    ]


def _entrance_gates(households: int, buildings: int) -> list[Data]:
    count = max(len(_ENTRANCES), round(households / 31.25) - 2 * buildings)
    out: list[Data] = []
    for n in range(count):
        entrance, label = _ENTRANCES[n % len(_ENTRANCES)]
        lane = n // len(_ENTRANCES) + 1
        out.append(
            {
                "id": f"gate-{entrance}-{lane}",
                "kind": "access_gate",
                "profile": "gate_standard",
                "zone": entrance,
                "location": {"spot": f"{label}{lane}号通道"},
            }
        )
    return out


def _gateways(households: int, rng: random.Random, lat: float, lon: float) -> list[Data]:
    return [
        {
            "id": f"gw-{n + 1:02d}",
            "kind": "gateway",
            "profile": "gateway_lora",
            "location": {
                "lat": round(lat + rng.uniform(-0.002, 0.002), 6),
                "lon": round(lon + rng.uniform(-0.002, 0.002), 6),
            },
        }
        for n in range(max(1, round(households / 500)))
    ]


# --- writing ---------------------------------------------------------------------------------

_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc]
    """Block style, except tag lists and locations, which read best on one line."""


def _represent_list(dumper: Any, data: list[Any]) -> yaml.Node:
    flow = bool(data) and all(isinstance(x, str | int | float) for x in data)
    node: yaml.Node = dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)
    return node


def _represent_dict(dumper: Any, data: dict[str, Any]) -> yaml.Node:
    flow = bool(data) and set(data) <= {"lat", "lon", "spot"}
    node: yaml.Node = dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)
    return node


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def dump_registry(data: Data, header: str = "") -> str:
    """``data`` as registry YAML (keys in their given order, Chinese names as written)."""
    body: str = yaml.dump(
        data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100, indent=2
    )
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return "\n".join([*lines, body]) if lines else body


def write_registry(
    path: str | Path,
    households: int = 2500,
    seed: int = 1,
    estates: int = 1,
    *,
    split: bool = False,
    webhook_base: str = DEFAULT_WEBHOOK_BASE,
) -> list[Path]:
    """Generate and write a demo registry; returns the files written.

    ``split=False``: one file at ``path``. ``split=True``: ``path`` is a folder that
    receives one ``<estate>.yaml`` per estate, each repeating its district and street
    office (they merge on load); an office's webhooks are written with its first estate.
    """
    data = generate_registry(households, seed, estates, webhook_base=webhook_base)
    header = (
        f"estate registry: demo data generated by devices.demo_estate\n"
        f"(households={households} per estate, estates={estates}, seed={seed}).\n"
        "Regenerate rather than edit by hand; see docs/registry.md."
    )
    target = Path(path)
    if not split:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump_registry(data, header), encoding="utf-8")
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for district in data["districts"]:
        for office in district["street_offices"]:
            for n, estate in enumerate(office["estates"]):
                part = {
                    "version": 1,
                    "districts": [
                        {
                            "id": district["id"],
                            "name": district["name"],
                            "street_offices": [
                                {
                                    "id": office["id"],
                                    "name": office["name"],
                                    "webhooks": office["webhooks"] if n == 0 else [],
                                    "estates": [estate],
                                }
                            ],
                        }
                    ],
                }
                file = target / f"{estate['id']}.yaml"
                file.write_text(dump_registry(part, header), encoding="utf-8")
                written.append(file)
    return written
