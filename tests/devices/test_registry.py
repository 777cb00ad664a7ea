"""The registry: schema, loading with located errors, the lookup index, the demo generator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from devices.catalogue import DeviceKind
from devices.demo_estate import dump_registry, generate_registry, write_registry
from devices.profiles import BUILTIN_PROFILES
from devices.registry import (
    KNOWN_TAGS,
    Problem,
    Registry,
    RegistryError,
    Severity,
    check_registry,
    load_registry,
    summarize,
)

SMALL = """\
version: 1
districts:
  - id: pudong
    name: 浦东新区
    street_offices:
      - id: huamu
        name: 花木街道
        webhooks:
          - id: huamu-control
            url: http://127.0.0.1:8787/webhooks/huamu
            secret_env: ESTATE_WEBHOOK_SECRET_HUAMU
            min_severity: warning
            events: ["parking.*", LeakSuspected]
        estates:
          - id: lvcheng
            name: 绿城花园
            timezone: Asia/Shanghai
            location: {lat: 31.2155, lon: 121.552}
            devices:
              - id: evc-001
                kind: ev_charger
                profile: ev_ac7
                zone: B1-A
                ports: 2
              - id: p-B1-A-001
                kind: parking_sensor
                profile: parking_geomagnetic
                zone: B1-A
                tags: [ev_bay]
                connector: evc-001:2
              - id: p-S1-001
                kind: parking_sensor
                profile: parking_geomagnetic
                zone: S1
                tags: [fire_lane, solar_roof]
                location: {spot: 消防通道1号位}
              - id: bin-cp01-kitchen
                kind: waste_bin
                profile: bin_ultrasonic_fraction
                zone: cp01
                category: kitchen
              - id: wm-main
                kind: water_meter
                profile: water_master
                tags: [master]
            buildings:
              - id: b03
                name: 3号楼
                households: 2
                floors: 18
                devices:
                  - id: wm-03-master
                    kind: water_meter
                    profile: water_master
                    meter_of: wm-main
                  - id: wm-03-1801
                    kind: water_meter
                    profile: water_household
                    household: "1801"
                    meter_of: wm-03-master
                    tags: [elderly_alone]
                  - id: wm-03-1802
                    kind: water_meter
                    profile: water_household
                    household: "1802"
                    meter_of: wm-03-master
                  - id: gate-03-a
                    kind: access_gate
                    profile: gate_standard
                    location: {lat: 31.2156, lon: 121.5521, spot: 3号楼一单元门}
          - id: cuihu
            name: 翠湖苑
            timezone: Asia/Shanghai
            location: {lat: 31.22, lon: 121.56}
            devices:
              - id: evc-001
                kind: ev_charger
                profile: ev_ac7
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the ``occurrence``-th line containing ``needle``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in text")


def write(tmp_path: Path, text: str, name: str = "estate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def only_problem(path: Path) -> Problem:
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    problems = caught.value.problems
    assert len(problems) == 1, str(caught.value)
    return problems[0]


# --- a valid registry ------------------------------------------------------------------------


def test_small_registry_loads_and_lookups_work(tmp_path):
    registry = load_registry(write(tmp_path, SMALL))
    index = registry.index()
    assert index is registry.index()  # built once
    assert registry == load_registry(tmp_path / "estate.yaml")  # the index is not a field
    assert len(index) == 10

    bay = index.device("lvcheng", "p-B1-A-001")
    assert bay is not None
    assert bay.kind is DeviceKind.PARKING_SENSOR
    assert bay.profile is BUILTIN_PROFILES["parking_geomagnetic"]
    assert bay.tags == frozenset({"ev_bay"})
    assert bay.zone == "B1-A"
    assert (bay.estate, bay.building, bay.street_office, bay.district) == (
        "lvcheng",
        None,
        "huamu",
        "pudong",
    )
    assert bay.spec.connector_ref == ("evc-001", 2)
    assert index.bay_for_connector("lvcheng", "evc-001", 2) is bay
    assert index.bay_for_connector("lvcheng", "evc-001", 1) is None

    meter = index.device("lvcheng", "wm-03-1801")
    assert meter is not None
    assert meter.building == "b03"
    assert "elderly_alone" in meter.tags
    assert meter.profile.role == "household"
    assert [r.device for r in index.submeters_of("lvcheng", "wm-03-master")] == [
        "wm-03-1801",
        "wm-03-1802",
    ]
    assert [r.device for r in index.submeters_of("lvcheng", "wm-main")] == ["wm-03-master"]

    assert index.device("lvcheng", "nope") is None
    assert index.device("nowhere", "evc-001") is None
    assert sorted(r.estate for r in index.find_device("evc-001")) == ["cuihu", "lvcheng"]
    assert index.find_device("nope") == []

    estate = index.estate("lvcheng")
    assert estate is not None
    assert estate.id == "lvcheng"
    assert estate.estate.name == "绿城花园"
    assert estate.tz.key == "Asia/Shanghai"
    assert estate.street_office.id == "huamu"
    assert estate.district.name == "浦东新区"
    assert index.estate("nope") is None
    assert index.estate_ids() == ["lvcheng", "cuihu"]

    assert len(index.devices_of("lvcheng")) == 9
    assert index.devices_of("nope") == ()
    assert index.counts_by_kind("lvcheng")[DeviceKind.WATER_METER] == 4
    assert index.counts_by_kind()[DeviceKind.EV_CHARGER] == 2
    assert index.counts_by_kind("nope") == {}

    (hook,) = index.webhooks_for("lvcheng")
    assert hook.secret_env == "ESTATE_WEBHOOK_SECRET_HUAMU"
    assert index.webhooks_for("nope") == ()


def test_models_are_frozen(tmp_path):
    registry = load_registry(write(tmp_path, SMALL))
    estate = registry.districts[0].street_offices[0].estates[0]
    with pytest.raises(ValidationError):
        estate.name = "x"  # type: ignore[misc]
    assert isinstance(estate.devices, tuple)


def test_webhook_filters_and_secret(tmp_path):
    registry = load_registry(write(tmp_path, SMALL))
    hook = registry.districts[0].street_offices[0].webhooks[0]
    assert hook.min_severity is Severity.WARNING
    assert hook.accepts("parking.overstay", "major", "lvcheng")
    assert hook.accepts("LeakSuspected", Severity.WARNING, "cuihu")
    assert not hook.accepts("parking.overstay", "info", "lvcheng")  # below min_severity
    assert not hook.accepts("BinOverflowing", "critical", "lvcheng")  # not in events
    narrowed = hook.model_copy(update={"estates": ("cuihu",)})
    assert not narrowed.accepts("LeakSuspected", "critical", "lvcheng")
    assert hook.read_secret({"ESTATE_WEBHOOK_SECRET_HUAMU": "s3"}) == "s3"
    with pytest.raises(LookupError, match="ESTATE_WEBHOOK_SECRET_HUAMU"):
        hook.read_secret({})
    secret = tmp_path / "huamu.secret"
    secret.write_text("from-a-file\n", encoding="utf-8")
    from_file = hook.model_copy(update={"secret_env": None, "secret_file": str(secret)})
    assert from_file.read_secret() == "from-a-file"


def test_direct_validation_runs_the_cross_checks():
    data = yaml.safe_load(SMALL)
    Registry.model_validate(data)
    devices = data["districts"][0]["street_offices"][0]["estates"][0]["devices"]
    devices[1]["id"] = "evc-001"
    with pytest.raises(ValidationError, match="already used"):
        Registry.model_validate(data)


def test_unknown_tag_with_tag_characters_is_allowed(tmp_path):
    registry = load_registry(write(tmp_path, SMALL))
    ref = registry.index().device("lvcheng", "p-S1-001")
    assert ref is not None
    assert ref.tags == {"fire_lane", "solar_roof"}
    assert set(KNOWN_TAGS) >= {"fire_lane", "ev_bay", "visitor_bay", "elderly_alone", "master"}


def test_check_registry_summarises(tmp_path):
    path = write(tmp_path, SMALL)
    summary = check_registry(path)
    assert summary.files == (str(path),)
    assert (summary.districts, summary.street_offices, summary.estates) == (1, 1, 2)
    assert (summary.buildings, summary.households, summary.devices, summary.webhooks) == (
        1,
        2,
        10,
        1,
    )
    assert summary.by_kind["water_meter"] == 4
    assert summary.by_estate["cuihu"] == {"ev_charger": 1}
    assert summary.as_dict()["by_kind"] == summary.by_kind
    assert "10 devices" in summary.to_text()


# --- errors: file, line, path and a message naming the field ---------------------------------


def replace_line(text: str, needle: str, new: str, occurrence: int = 1) -> str:
    lines = text.splitlines()
    number = line_of(text, needle, occurrence)
    lines[number - 1] = lines[number - 1].replace(needle, new)
    return "\n".join(lines) + "\n"


# (case, needle, replacement, path suffix, words in the message[, text on the problem's line])
MUTATIONS = [
    (
        "unknown kind",
        "kind: parking_sensor",
        "kind: lamp_post",
        "devices[1].kind",
        ["kind", "'lamp_post'", "parking_sensor"],
    ),
    (
        "profile of the wrong kind",
        "profile: ev_ac7",
        "profile: water_master",
        "devices[0].profile",
        ["profile", "'water_master'", "water_meter", "ev_ac7"],
    ),
    (
        "unknown profile",
        "profile: parking_geomagnetic",
        "profile: parking_geomagnetc",
        "devices[1].profile",
        ["profile", "not a known profile", "did you mean 'parking_geomagnetic'"],
    ),
    (
        "bad timezone",
        "timezone: Asia/Shanghai",
        "timezone: Asia/Shangai",
        "estates[0].timezone",
        ["timezone", "IANA", "Asia/Shanghai"],
    ),
    (
        "inline secret",
        "secret_env: ESTATE_WEBHOOK_SECRET_HUAMU",
        "secret: hunter2",
        "webhooks[0].secret",
        ["secret_env", "secret_file", "never from the registry"],
    ),
    (
        "bad URL scheme",
        "url: http://127.0.0.1:8787/webhooks/huamu",
        "url: ftp://127.0.0.1/webhooks/huamu",
        "webhooks[0].url",
        ["url", "http://"],
    ),
    (
        "URL with credentials",
        "url: http://127.0.0.1:8787/webhooks/huamu",
        "url: https://ops:pw@example.org/hook",
        "webhooks[0].url",
        ["url", "credentials"],
    ),
    (
        "bad id characters",
        "id: p-B1-A-001",
        "id: p/B1/A 001",
        "devices[1].id",
        ["id", "'p/B1/A 001'", "letters"],
    ),
    (
        "unknown field",
        "profile: parking_geomagnetic",
        "profle: parking_geomagnetic",
        "devices[1].profle",
        ["profle", "did you mean 'profile'"],
    ),
    (
        "number where text is due",
        'household: "1801"',
        "household: 1801",
        "devices[1].household",
        ["household", "quote"],
    ),
    (
        "tag for another kind",
        "tags: [elderly_alone]",
        "tags: [elderly_alone, fire_lane]",
        "devices[1].tags",
        ["tag 'fire_lane'", "parking_sensor"],
    ),
    (
        "bad tag characters",
        "tags: [elderly_alone]",
        "tags: [Elderly-Alone]",
        "devices[1].tags[0]",
        ["tag 'Elderly-Alone'", "a-z"],
    ),
    (
        "connector on a bay without ev_bay",
        "tags: [ev_bay]",
        "tags: [visitor_bay]",
        "devices[1].connector",
        ["connector", "ev_bay"],
        "connector: evc-001:2",
    ),
    (
        "households not a number",
        "households: 2",
        "households: two",
        "buildings[0].households",
        ["households", "whole number"],
    ),
    (
        "latitude out of range",
        "location: {lat: 31.2155, lon: 121.552}",
        "location: {lat: 131.2155, lon: 121.552}",
        "estates[0].location.lat",
        ["lat"],
    ),
    (
        "version",
        "version: 1",
        "version: 2",
        "version",
        ["version"],
    ),
]


@pytest.mark.parametrize(
    ("needle", "new", "path_end", "words", "on_line"),
    [(*m[1:5], m[5] if len(m) > 5 else m[2]) for m in MUTATIONS],
    ids=[m[0] for m in MUTATIONS],
)
def test_field_errors_are_located(tmp_path, needle, new, path_end, words, on_line):
    text = replace_line(SMALL, needle, new)
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert problem.file == str(path)
    assert problem.line == line_of(text, on_line)
    assert problem.path.endswith(path_end), problem.path
    for word in words:
        assert word in problem.message, problem.message
    assert str(problem) == f"{path}:{problem.line}: {problem.path}: {problem.message}"


def test_inline_secret_is_never_echoed(tmp_path):
    text = replace_line(SMALL, "secret_env:", "secret: hunter2-very-secret")
    with pytest.raises(RegistryError) as caught:
        load_registry(write(tmp_path, text))
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValidationError) as direct:
        Registry.model_validate(yaml.safe_load(text))
    assert "hunter2" not in str(direct.value)


def test_secret_env_and_secret_file_both(tmp_path):
    text = SMALL.replace(
        "            secret_env: ESTATE_WEBHOOK_SECRET_HUAMU\n",
        "            secret_env: ESTATE_WEBHOOK_SECRET_HUAMU\n"
        "            secret_file: /run/secrets/huamu\n",
    )
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert problem.line == line_of(text, "secret_file:")
    assert problem.path.endswith("webhooks[0].secret_file")
    assert "secret_env" in problem.message
    assert "not both" in problem.message


def test_secret_env_and_secret_file_neither(tmp_path):
    text = SMALL.replace("            secret_env: ESTATE_WEBHOOK_SECRET_HUAMU\n", "")
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert problem.line == line_of(text, "- id: huamu-control")
    assert problem.path.endswith("webhooks[0]")
    assert "secret_env" in problem.message
    assert "secret_file" in problem.message


def test_secret_env_must_name_a_variable(tmp_path):
    text = replace_line(SMALL, "secret_env:", "secret_env: sk-live-12345")
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, "secret_env:")
    assert "secret_env" in problem.message
    assert "environment variable" in problem.message
    assert "sk-live" not in problem.message


def test_missing_field(tmp_path):
    text = SMALL.replace("                profile: ev_ac7\n                zone: B1-A\n", "")
    assert "zone: B1-A\n                ports" not in text
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, "- id: evc-001")
    assert problem.path.endswith("devices[0].profile")
    assert problem.message == "missing required field 'profile'"


def test_duplicate_device_id(tmp_path):
    text = replace_line(SMALL, "id: wm-03-1802", "id: wm-03-1801")
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert problem.file == str(path)
    assert problem.line == line_of(text, "id: wm-03-1801", occurrence=2)
    assert problem.path.endswith("buildings[0].devices[2].id")
    first = line_of(text, "id: wm-03-1801")
    assert "device id 'wm-03-1801'" in problem.message
    assert f"line {first}" in problem.message


def test_duplicate_estate_id(tmp_path):
    text = replace_line(SMALL, "id: cuihu", "id: lvcheng")
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert problem.line == line_of(text, "id: lvcheng", occurrence=2)
    assert problem.path.endswith("estates[1].id")
    assert "estate id 'lvcheng'" in problem.message


def test_duplicate_building_id(tmp_path):
    text = SMALL.replace(
        "            buildings:\n",
        "            buildings:\n              - {id: b03, name: 3号楼, households: 0}\n",
    )
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, "- id: b03")
    assert "building id 'b03'" in problem.message


@pytest.mark.parametrize(
    ("needle", "new", "field", "words"),
    [
        ("connector: evc-001:2", "connector: evc-009:1", "connector", ["evc-009", "not a device"]),
        ("connector: evc-001:2", "connector: evc-001:3", "connector", ["2 connector"]),
        ("connector: evc-001:2", "connector: wm-main:1", "connector", ["not an ev_charger"]),
        ("meter_of: wm-03-master", "meter_of: wm-03-1802", "meter_of", ["not a master meter"]),
        ("meter_of: wm-03-master", "meter_of: nowhere", "meter_of", ["'nowhere'"]),
    ],
)
def test_link_errors(tmp_path, needle, new, field, words):
    text = replace_line(SMALL, needle, new)
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, new)
    assert problem.path.endswith(field)
    assert field in problem.message or field == "connector"
    for word in words:
        assert word in problem.message, problem.message


def test_two_bays_on_one_connector(tmp_path):
    text = SMALL.replace(
        "                tags: [fire_lane, solar_roof]\n",
        "                tags: [ev_bay]\n                connector: evc-001:2\n",
    )
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, "connector: evc-001:2", occurrence=2)
    assert "already linked to bay 'p-B1-A-001'" in problem.message


def test_webhook_estates_filter_must_name_estates_of_the_office(tmp_path):
    text = SMALL.replace(
        "min_severity: warning\n", "min_severity: warning\n            estates: [lvcheng, nope]\n"
    )
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, "estates: [lvcheng, nope]")
    assert problem.path.endswith("webhooks[0].estates[1]")
    assert "'nope'" in problem.message


def test_yaml_syntax_error(tmp_path):
    text = replace_line(SMALL, "name: 翠湖苑", "name: [翠湖苑")
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert problem.file == str(path)
    assert problem.line is not None
    assert line_of(text, "name: [翠湖苑") <= problem.line <= line_of(text, "name: [翠湖苑") + 1
    assert "YAML syntax error" in problem.message


def test_yaml_bad_indentation(tmp_path):
    text = SMALL.replace("                zone: S1\n", "               zone: S1\n")
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, "               zone: S1")
    assert "YAML syntax error" in problem.message


def test_duplicate_yaml_key(tmp_path):
    text = SMALL.replace(
        "                category: kitchen\n",
        "                category: kitchen\n                category: other\n",
    )
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, "category: other")
    assert "'category'" in problem.message
    assert f"line {line_of(text, 'category: kitchen')}" in problem.message


def test_empty_file(tmp_path):
    path = write(tmp_path, "# nothing here yet\n")
    problem = only_problem(path)
    assert (problem.file, problem.line) == (str(path), 1)
    assert "empty" in problem.message
    assert "version" in problem.message


def test_top_level_not_a_mapping(tmp_path):
    path = write(tmp_path, "- version: 1\n")
    problem = only_problem(path)
    assert problem.line == 1
    assert "mapping" in problem.message
    assert "a list" in problem.message


def test_missing_file(tmp_path):
    path = tmp_path / "missing.yaml"
    problem = only_problem(path)
    assert problem.file == str(path)
    assert problem.line is None
    assert "no such file" in problem.message
    assert str(problem) == f"{path}: no such file or folder"


def test_many_problems_are_all_listed(tmp_path):
    text = replace_line(SMALL, "kind: parking_sensor", "kind: lamp_post")
    text = replace_line(text, "timezone: Asia/Shanghai", "timezone: Mars/Olympus")
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:{line_of(text, 'Mars/Olympus')}: ")
    assert lines[1].startswith(f"{path}:{line_of(text, 'lamp_post')}: ")


# --- folders ---------------------------------------------------------------------------------

HEADER = """\
version: 1
districts:
  - id: pudong
    name: {district}
    street_offices:
      - id: huamu
        name: 花木街道
        estates:
          - id: {estate}
            name: 某小区
            timezone: Asia/Shanghai
            location: {{lat: 31.2, lon: 121.5}}
            devices:
              - {{id: gw-01, kind: gateway, profile: gateway_lora}}
"""


def test_folder_merges_districts_and_offices(tmp_path):
    write(tmp_path, SMALL, "a.yaml")
    write(tmp_path, HEADER.format(district="浦东新区", estate="jinqiao"), "b.yml")
    write(tmp_path, "not: a registry\n", "notes.txt")
    write(tmp_path, "junk: [", ".hidden.yaml")
    registry = load_registry(tmp_path)
    (district,) = registry.districts
    (office,) = district.street_offices
    assert [e.id for e in office.estates] == ["lvcheng", "cuihu", "jinqiao"]
    assert [w.id for w in office.webhooks] == ["huamu-control"]
    index = registry.index()
    assert index.device("jinqiao", "gw-01") is not None
    assert [w.id for w in index.webhooks_for("jinqiao")] == ["huamu-control"]
    summary = check_registry(tmp_path)
    assert summary.files == (str(tmp_path / "a.yaml"), str(tmp_path / "b.yml"))
    assert summary.estates == 3


def test_folder_errors_name_the_right_file(tmp_path):
    write(tmp_path, SMALL, "a.yaml")
    second = HEADER.format(district="浦东", estate="lvcheng")
    path_b = write(tmp_path, second, "b.yaml")
    with pytest.raises(RegistryError) as caught:
        load_registry(tmp_path)
    problems = caught.value.problems
    assert [(p.file, p.line) for p in problems] == [
        (str(path_b), line_of(second, "name: 浦东")),
        (str(path_b), line_of(second, "- id: lvcheng")),
    ]
    assert "named '浦东新区'" in problems[0].message
    assert f"{tmp_path / 'a.yaml'}:" in problems[1].message
    assert "estate id 'lvcheng'" in problems[1].message


def test_folder_with_a_broken_file(tmp_path):
    write(tmp_path, SMALL, "a.yaml")
    path_b = write(tmp_path, "version: 1\ndistricts: {}\n", "b.yaml")
    problem = only_problem(tmp_path)
    assert (problem.file, problem.line, problem.path) == (str(path_b), 2, "districts")
    assert "list" in problem.message


def test_empty_folder(tmp_path):
    problem = only_problem(tmp_path)
    assert problem.file == str(tmp_path)
    assert "no *.yaml" in problem.message


def test_same_district_twice_in_one_file(tmp_path):
    text = SMALL + "  - id: pudong\n    name: 浦东新区\n"
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line_of(text, "- id: pudong", occurrence=2)
    assert "district id 'pudong' appears twice" in problem.message


# --- the demo estate -------------------------------------------------------------------------


def test_default_demo_estate_loads_with_realistic_counts(tmp_path):
    started = time.perf_counter()
    (path,) = write_registry(tmp_path / "estate.yaml")
    written = time.perf_counter()
    registry = load_registry(path)
    loaded = time.perf_counter()
    assert loaded - written < 10, f"loading took {loaded - written:.2f} s"
    assert written - started < 10

    index = registry.index()
    (estate_id,) = index.estate_ids()
    assert estate_id == "lvcheng"
    counts = index.counts_by_kind(estate_id)
    assert 2_450 <= counts[DeviceKind.WATER_METER] <= 2_700
    assert 2_450 <= counts[DeviceKind.ENERGY_METER] <= 2_650
    assert 220 <= counts[DeviceKind.WASTE_BIN] <= 280
    assert 2_800 <= counts[DeviceKind.PARKING_SENSOR] <= 3_200
    assert 100 <= counts[DeviceKind.EV_CHARGER] <= 260
    assert 35 <= counts[DeviceKind.EBIKE_STATION] <= 45
    assert 70 <= counts[DeviceKind.ACCESS_GATE] <= 90
    assert 2 <= counts[DeviceKind.GATEWAY] <= 10

    refs = index.devices_of(estate_id)
    tagged = {tag: [r for r in refs if tag in r.tags] for tag in KNOWN_TAGS}
    ev_bays = tagged["ev_bay"]
    assert 230 <= len(ev_bays) <= 270
    connectors = sum((r.spec.ports or 1) for r in refs if r.kind is DeviceKind.EV_CHARGER)
    assert connectors == len(ev_bays)  # every connector has its bay, and only one
    for bay in ev_bays:
        link = bay.spec.connector_ref
        assert link is not None
        assert index.bay_for_connector(estate_id, *link) is bay
    assert 10 <= len(tagged["fire_lane"]) <= 60
    assert 50 <= len(tagged["visitor_bay"]) <= 300
    assert all(r.kind is DeviceKind.PARKING_SENSOR and r.zone for r in ev_bays)

    households = registry.districts[0].street_offices[0].estates[0].households
    assert households == 2_500
    elderly = {(r.building, r.spec.household) for r in tagged["elderly_alone"]}
    assert 0.02 * households <= len(elderly) <= 0.04 * households

    buildings = registry.districts[0].street_offices[0].estates[0].buildings
    assert 15 <= len(buildings) <= 25
    assert all(100 <= b.households <= 150 for b in buildings[:-1])
    for building in buildings:
        masters = [d for d in building.devices if d.is_master_meter]
        assert len(masters) == 1
        subs = index.submeters_of(estate_id, masters[0].id)
        assert len(subs) == building.households
        assert all(s.building == building.id for s in subs)

    bins = [r for r in refs if r.kind is DeviceKind.WASTE_BIN]
    assert {r.spec.category for r in bins} == {"recyclable", "kitchen", "hazardous", "other"}
    stations = [r for r in refs if r.kind is DeviceKind.EBIKE_STATION]
    assert {(r.profile.name, r.spec.ports) for r in stations} == {("ebike_10port", 10)}

    ref = index.estate(estate_id)
    assert ref is not None
    assert ref.tz.key == "Asia/Shanghai"
    assert 30.6 <= ref.estate.location.lat <= 31.9
    assert 120.8 <= ref.estate.location.lon <= 122.2
    (hook,) = index.webhooks_for(estate_id)
    assert hook.secret_env == "ESTATE_WEBHOOK_SECRET_HUAMU"
    assert hook.url == "http://127.0.0.1:8787/webhooks/huamu"


def test_generator_is_deterministic_per_seed():
    assert generate_registry(seed=7) == generate_registry(seed=7)
    assert generate_registry(seed=7) != generate_registry(seed=8)
    assert dump_registry(generate_registry(300, seed=3)) == dump_registry(
        generate_registry(300, seed=3)
    )


def test_generator_scales(tmp_path):
    small = load_registry(write_registry(tmp_path / "small.yaml", households=500)[0])
    counts = small.index().counts_by_kind("lvcheng")
    assert 480 <= counts[DeviceKind.WATER_METER] <= 560
    assert 550 <= counts[DeviceKind.PARKING_SENSOR] <= 650
    assert 40 <= counts[DeviceKind.WASTE_BIN] <= 60
    assert summarize(small).households == 500

    many = generate_registry(households=120, estates=12, seed=2)
    path = write(tmp_path, dump_registry(many), "many.yaml")
    registry = load_registry(path)
    index = registry.index()
    assert len(index.estate_ids()) == 12
    assert len(set(index.estate_ids())) == 12
    assert "lvcheng-2" in index.estate_ids()
    assert {d.id for d in registry.districts} >= {"pudong", "minhang", "xuhui"}
    assert all(summarize(registry).by_estate[e]["water_meter"] >= 120 for e in index.estate_ids())

    tiny = load_registry(write_registry(tmp_path / "tiny.yaml", households=1)[0])
    assert summarize(tiny).households == 1

    with pytest.raises(ValueError, match="households"):
        generate_registry(households=0)


def test_split_write_loads_as_a_folder(tmp_path):
    files = write_registry(tmp_path / "reg", households=100, estates=7, split=True)
    assert len(files) == 7
    folder = load_registry(tmp_path / "reg")
    single = load_registry(write_registry(tmp_path / "one.yaml", households=100, estates=7)[0])
    assert summarize(folder).by_estate == summarize(single).by_estate
    offices = {o.id: o for d in folder.districts for o in d.street_offices}
    assert len(offices["huamu"].estates) == 2  # estates 0 and 6 share the first office
    assert len(offices["huamu"].webhooks) == 1


def test_anchors_and_merge_keys(tmp_path):
    text = SMALL.replace(
        "              - id: wm-main\n                kind: water_meter\n",
        "              - &bay {id: p-S1-002, kind: parking_sensor, profile: parking_geomagnetic}\n"
        "              - <<: *bay\n                id: p-S1-003\n"
        "              - <<: *bay\n                id: p-S1-004\n                profile: nope\n"
        "              - id: wm-main\n                kind: water_meter\n",
    )
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert problem.line == line_of(text, "profile: nope")
    assert problem.path.endswith("devices[6].profile")
    registry = load_registry(write(tmp_path, text.replace("                profile: nope\n", "")))
    bay = registry.index().device("lvcheng", "p-S1-003")
    assert bay is not None
    assert bay.kind is DeviceKind.PARKING_SENSOR
