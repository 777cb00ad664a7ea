"""Rules: the shipped defaults, precedence and version labels, located errors, the cache."""

from __future__ import annotations

import dataclasses
import math
import textwrap
from dataclasses import dataclass
from datetime import time
from pathlib import Path

import pytest
import yaml
from annotated_types import Ge, Gt, Le, Lt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devices.catalogue import DeviceKind
from devices.profiles import BUILTIN_PROFILES
from devices.registry import Problem, load_registry
from processors.rules import (
    DEFAULT_RULES_PATH,
    DETECTORS,
    BinOverflowRule,
    DeviceOfflineRule,
    LowBatteryRule,
    ResolvedRules,
    RuleError,
    RuleSet,
    WaterNightFlowRule,
    check_rules,
    load_rules,
    parameter_rows,
    parameter_table,
    unit_of,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


@dataclass(frozen=True)
class Dev:
    estate: str
    device: str
    kind: str
    profile: str


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def refused(path: Path) -> list[Problem]:
    with pytest.raises(RuleError) as info:
        load_rules(path)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return info.value.problems


# --- the shipped defaults -----------------------------------------------------------------------


def test_shipped_defaults_load() -> None:
    rules = load_rules()
    assert isinstance(rules, RuleSet)
    assert rules.version == "2026.11.1"
    assert rules.files == (str(DEFAULT_RULES_PATH),)
    assert (DEFAULT_RULES_PATH.parent / "__init__.py").is_file()  # found as package data


def test_shipped_kind_values_restate_the_builtin_defaults() -> None:
    rules = load_rules()
    for kind in DeviceKind:
        resolved = rules.resolve("any-estate", "any-device", kind.value)
        for name, cls in DETECTORS.items():
            if kind in (DeviceKind.EV_CHARGER, DeviceKind.EBIKE_STATION) and name == (
                "device_offline"
            ):
                continue
            assert resolved.get(name) == cls(), (kind, name)
        assert resolved.rule_version == "2026.11.1"


def test_shipped_values() -> None:
    rules = load_rules()
    household = rules.resolve("lvcheng", "wm-1802", "water_meter", "water_household")
    assert household.water_night_flow.night_start == time(2, 0)
    assert household.water_night_flow.night_end == time(5, 0)
    assert household.water_night_flow.window_h == 3
    assert household.water_night_flow.min_flow_l_h == 3.0
    assert household.water_night_flow.nights == 3
    assert household.water_burst.flow_l_min == 30
    assert household.water_burst.minutes == 10
    assert household.water_no_use.hours == 16
    master = rules.resolve("lvcheng", "wm-main", "water_meter", "water_master")
    assert master.water_burst.flow_l_min == 300
    assert master.water_burst.minutes == 15
    assert not master.water_night_flow.enabled
    assert not master.water_continuous_flow.enabled
    assert master.water_balance.loss_pct == 10
    assert master.rule_version == "2026.11.1"
    bin_ = rules.resolve("lvcheng", "bin-01", "waste_bin", "bin_ultrasonic")
    assert (bin_.bin_overflow.high_pct, bin_.bin_overflow.low_pct) == (90, 30)
    assert bin_.bin_overflow.persist_min == 30
    assert bin_.bin_not_emptied.sla_h == 12
    assert bin_.bin_fire_risk.temp_c == 60
    assert bin_.low_battery.low_pct == 20
    charger = rules.resolve("lvcheng", "evc-001", "ev_charger", "ev_ac7")
    assert charger.device_offline.intervals == 5
    assert charger.device_offline.after_s(BUILTIN_PROFILES["ev_ac7"].reporting_interval_s) == 300
    gate = rules.resolve("lvcheng", "gate-1", "access_gate", "gate_standard")
    assert gate.device_offline.after_s(300) == 900


def test_check_rules_summarises() -> None:
    text = check_rules(DEFAULT_RULES_PATH)
    assert text.startswith("rules OK: version 2026.11.1, 1 file(s)")
    assert "profile water_master: water_night_flow, water_continuous_flow, water_burst" in text


# --- precedence and version labels --------------------------------------------------------------

LAYERED = """\
version: "2026.11.1"
profiles:
  waste_bin:
    bin_overflow: {high_pct: 91, low_pct: 20}
  bin_ultrasonic:
    bin_overflow: {high_pct: 92}
estates:
  lvcheng:
    profiles:
      waste_bin:
        bin_overflow: {high_pct: 93}
      bin_ultrasonic:
        bin_overflow: {high_pct: 94}
        low_battery: {low_pct: 15}
devices:
  lvcheng/bin-01:
    bin_overflow: {high_pct: 95, persist_min: 60}
  other/bin-09:
    low_battery: {low_pct: 10}
"""


@pytest.mark.parametrize(
    ("estate", "device", "profile", "high", "version"),
    [
        ("other", "bin-77", "bin_ultrasonic_fraction", 91, "2026.11.1"),  # kind
        ("other", "bin-77", "bin_ultrasonic", 92, "2026.11.1"),  # profile
        ("lvcheng", "bin-77", "bin_ultrasonic_fraction", 93, "2026.11.1+estate:lvcheng"),
        ("lvcheng", "bin-77", "bin_ultrasonic", 94, "2026.11.1+estate:lvcheng"),
        ("lvcheng", "bin-01", "bin_ultrasonic", 95, "2026.11.1+device:lvcheng/bin-01"),
        ("lvcheng", "bin-01", "bin_ultrasonic_fraction", 95, "2026.11.1+device:lvcheng/bin-01"),
    ],
)
def test_precedence_at_every_level(
    tmp_path: Path, estate: str, device: str, profile: str, high: float, version: str
) -> None:
    rules = load_rules(write(tmp_path, LAYERED))
    resolved = rules.for_device(Dev(estate, device, "waste_bin", profile))
    assert resolved.bin_overflow.high_pct == high
    assert resolved.bin_overflow.low_pct == 20  # merged parameter by parameter
    assert resolved.version_of("bin_overflow") == version
    assert resolved.version_of("bin_fire_risk") == "2026.11.1"  # built-in defaults
    assert resolved.bin_fire_risk == DETECTORS["bin_fire_risk"]()


def test_device_wide_label_is_the_most_specific_override(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, LAYERED))
    plain = rules.resolve("other", "bin-77", "waste_bin", "bin_ultrasonic")
    assert plain.rule_version == "2026.11.1"
    assert plain.bin_overflow.persist_min == 30  # built-in
    estate = rules.resolve("lvcheng", "bin-77", "waste_bin", "bin_ultrasonic")
    assert estate.rule_version == "2026.11.1+estate:lvcheng"
    assert estate.low_battery.low_pct == 15
    device = rules.resolve("lvcheng", "bin-01", "waste_bin", "bin_ultrasonic")
    assert device.rule_version == "2026.11.1+device:lvcheng/bin-01"
    assert device.bin_overflow.persist_min == 60
    assert device.version_of("low_battery") == "2026.11.1+estate:lvcheng"
    # a device override of one detector only: the other detectors keep their labels
    only = rules.resolve("other", "bin-09", "waste_bin", "bin_ultrasonic")
    assert only.rule_version == "2026.11.1+device:other/bin-09"
    assert only.version_of("bin_overflow") == "2026.11.1"
    assert only.low_battery.low_pct == 10
    assert only.bin_overflow.high_pct == 92


def test_estate_overrides_do_not_leak_into_other_kinds(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, LAYERED))
    meter = rules.resolve("lvcheng", "wm-1", "water_meter", "water_household")
    assert meter.rule_version == "2026.11.1"
    assert meter.low_battery == LowBatteryRule()


def test_for_device_takes_a_registry_device_ref(tmp_path: Path) -> None:
    registry = write(
        tmp_path,
        """\
        version: 1
        districts:
          - id: pudong
            name: 浦东新区
            street_offices:
              - id: huamu
                name: 花木街道
                estates:
                  - id: lvcheng
                    name: 绿城花园
                    timezone: Asia/Shanghai
                    location: {lat: 31.2155, lon: 121.552}
                    devices:
                      - id: bin-01
                        kind: waste_bin
                        profile: bin_ultrasonic
                        category: kitchen
                      - id: bin-02
                        kind: waste_bin
                        profile: bin_ultrasonic
                        category: other
        """,
        "estate.yaml",
    )
    index = load_registry(registry).index()
    rules = load_rules(write(tmp_path, LAYERED))
    ref = index.device("lvcheng", "bin-01")
    assert ref is not None
    assert rules.for_device(ref).bin_overflow.high_pct == 95
    other = index.device("lvcheng", "bin-02")
    assert other is not None
    assert rules.for_device(other).rule_version == "2026.11.1+estate:lvcheng"


def test_odd_devices_resolve_without_failing(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, LAYERED))
    unknown_profile = rules.resolve("lvcheng", "bin-77", "waste_bin", "bin_from_the_future")
    assert unknown_profile.bin_overflow.high_pct == 93  # estate + kind
    mismatched = rules.resolve("other", "x", "water_meter", "bin_ultrasonic")
    assert mismatched.bin_overflow == BinOverflowRule()
    unknown_kind = rules.resolve("other", "bin-09", "teleporter", None)
    assert unknown_kind.low_battery.low_pct == 10
    assert unknown_kind.bin_overflow == BinOverflowRule()
    # a device override for a bin, resolved as another kind: the bin rule does not apply
    as_meter = rules.resolve("lvcheng", "bin-01", "water_meter", "water_household")
    assert as_meter.bin_overflow == BinOverflowRule()


# --- the resolution cache -----------------------------------------------------------------------


def test_resolution_is_cached_and_identical(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, LAYERED))
    first = rules.for_device(Dev("lvcheng", "bin-01", "waste_bin", "bin_ultrasonic"))
    again = rules.for_device(Dev("lvcheng", "bin-01", "waste_bin", "bin_ultrasonic"))
    assert again is first
    assert rules.resolve("lvcheng", "bin-01", "waste_bin", "bin_ultrasonic") is first
    # devices without their own overrides share one object per estate and profile
    a = rules.resolve("lvcheng", "bin-77", "waste_bin", "bin_ultrasonic")
    b = rules.resolve("lvcheng", "bin-78", "waste_bin", "bin_ultrasonic")
    assert a is b
    c = rules.resolve("nowhere", "bin-1", "waste_bin", "bin_ultrasonic")
    d = rules.resolve("elsewhere", "bin-2", "waste_bin", "bin_ultrasonic")
    assert c is d
    assert a is not c


def test_resolved_rules_are_frozen_pure_data(tmp_path: Path) -> None:
    resolved = load_rules(write(tmp_path, LAYERED)).resolve(
        "lvcheng", "bin-01", "waste_bin", "bin_ultrasonic"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.rule_version = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        resolved.bin_overflow.high_pct = 1  # type: ignore[misc]
    assert hash(resolved) == hash(dataclasses.replace(resolved))
    same = load_rules(write(tmp_path, LAYERED, "again.yaml")).resolve(
        "lvcheng", "bin-01", "waste_bin", "bin_ultrasonic"
    )
    assert same == resolved and same is not resolved
    with pytest.raises(KeyError, match="no detector"):
        resolved.get("bin_teleport")
    with pytest.raises(KeyError, match="no detector"):
        resolved.version_of("bin_teleport")


def test_resolved_rules_carry_every_detector() -> None:
    names = [f.name for f in dataclasses.fields(ResolvedRules)]
    assert names == ["rule_version", *DETECTORS, "versions"]
    resolved = load_rules().resolve("e", "d", "gateway", "gateway_lora")
    assert [name for name, _ in resolved.versions] == list(DETECTORS)
    for name, cls in DETECTORS.items():
        assert isinstance(resolved.get(name), cls)


# --- refused files ------------------------------------------------------------------------------

V = 'version: "2026.11.1"\n'


@pytest.mark.parametrize(
    ("text", "line", "path", "needles"),
    [
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflw: {high_pct: 80}\n",
            4,
            "profiles.waste_bin.bin_overflw",
            ["unknown detector 'bin_overflw'", "did you mean 'bin_overflow'?"],
            id="unknown-detector",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow:\n      high: 80\n",
            5,
            "profiles.waste_bin.bin_overflow.high",
            ["unknown parameter of bin_overflow: 'high'", "did you mean 'high_pct'?"],
            id="unknown-parameter",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow:\n      high_pct: ninety\n",
            5,
            "profiles.waste_bin.bin_overflow.high_pct",
            ["high_pct must be a number (%), got 'ninety'"],
            id="wrong-type-text",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow:\n      high_pct: '85'\n",
            5,
            "profiles.waste_bin.bin_overflow.high_pct",
            ["high_pct must be a number (%), got '85'; write it without quotes"],
            id="wrong-type-quoted-number",
        ),
        pytest.param(
            V + "profiles:\n  water_meter:\n    water_night_flow:\n      nights: yes\n",
            5,
            "profiles.water_meter.water_night_flow.nights",
            ["nights must be a whole number (nights), got true"],
            id="wrong-type-bool",
        ),
        pytest.param(
            V + "profiles:\n  water_meter:\n    water_night_flow:\n      nights: 2.5\n",
            5,
            "profiles.water_meter.water_night_flow.nights",
            ["nights must be a whole number"],
            id="wrong-type-float-for-int",
        ),
        pytest.param(
            V + "profiles:\n  water_meter:\n    water_burst: {enabled: maybe}\n",
            4,
            "profiles.water_meter.water_burst.enabled",
            ["enabled must be true or false, got 'maybe'"],
            id="wrong-type-enabled",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow:\n      high_pct: 120\n",
            5,
            "profiles.waste_bin.bin_overflow.high_pct",
            ["high_pct must be at most 100 (%), got 120"],
            id="out-of-range-high",
        ),
        pytest.param(
            V + "profiles:\n  water_meter:\n    water_burst:\n      flow_l_min: 0\n",
            5,
            "profiles.water_meter.water_burst.flow_l_min",
            ["flow_l_min must be above 0 (L/min), got 0"],
            id="out-of-range-gt",
        ),
        pytest.param(
            V + "profiles:\n  water_meter:\n    water_burst:\n      flow_l_min: .nan\n",
            5,
            "profiles.water_meter.water_burst.flow_l_min",
            ["flow_l_min must be a number"],
            id="nan",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow:\n      high_pct: 50\n"
            "      low_pct: 60\n",
            4,
            "profiles.waste_bin.bin_overflow",
            ["low_pct (60) must be below high_pct (50)"],
            id="cross-field",
        ),
        pytest.param(
            V + "profiles:\n  bin_ultrasonic:\n    bin_overflow: {low_pct: 95}\n",
            4,
            "profiles.bin_ultrasonic.bin_overflow",
            ["low_pct (95) must be below high_pct (90)"],
            id="cross-field-with-builtin",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    low_battery: {low_pct: 40}\n",
            4,
            "profiles.waste_bin.low_battery",
            ["clear_pct (30) must be above low_pct (40)"],
            id="cross-field-battery",
        ),
        pytest.param(
            V + "profiles:\n  water_meter:\n    water_night_flow:\n"
            "      night_start: 22:00\n      night_end: '12:00'\n",
            4,
            "profiles.water_meter.water_night_flow",
            ["night window 22:00-12:00 lasts 14 h", "from 1 to 12 hours"],
            id="cross-field-night-window",
        ),
        pytest.param(
            V + "profiles:\n  water_meter:\n    water_night_flow:\n      night_start: 25:00\n",
            5,
            "profiles.water_meter.water_night_flow.night_start",
            ['night_start must be an estate-local time "HH:MM"', "got '25:00'"],
            id="bad-time",
        ),
        pytest.param(
            V + "profiles:\n  water_meter:\n    water_night_flow:\n      night_start: 2\n",
            5,
            "profiles.water_meter.water_night_flow.night_start",
            ['night_start must be an estate-local time "HH:MM"', "got 2"],
            id="time-as-number",
        ),
        pytest.param(
            "profiles:\n  waste_bin:\n    bin_overflow: {high_pct: 80}\n",
            1,
            "",
            ["missing required field 'version'"],
            id="missing-version",
        ),
        pytest.param(
            "version: 2026.11\nprofiles: {}\n",
            1,
            "version",
            ["version must be text, got 2026.11; quote it", 'version: "2026.11"'],
            id="version-number",
        ),
        pytest.param(
            'version: "2026.11.1+mine"\n',
            1,
            "version",
            ["no '+'"],
            id="version-plus",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow: {high_pct: 80\n",
            5,
            "",
            ["YAML syntax error"],
            id="yaml-syntax",
        ),
        pytest.param("", 1, "", ["the file is empty"], id="empty-file"),
        pytest.param("# only a comment\n", 1, "", ["the file is empty"], id="comment-only"),
        pytest.param("- a\n- b\n", 1, "", ["expected a mapping", "got a list"], id="a-list"),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow: {high_pct: 80}\n"
            "  waste_bin:\n    bin_fire_risk: {temp_c: 70}\n",
            5,
            "",
            ["key 'waste_bin' appears twice", "first at line 3"],
            id="duplicate-key",
        ),
        pytest.param(
            V + "profiles:\n  bin_ultrasonik:\n    bin_overflow: {high_pct: 80}\n",
            3,
            "profiles.bin_ultrasonik",
            ["unknown device kind or profile 'bin_ultrasonik'", "did you mean 'bin_ultrasonic'"],
            id="unknown-profile",
        ),
        pytest.param(
            V + "profiles:\n  water_master:\n    bin_overflow: {high_pct: 80}\n",
            4,
            "profiles.water_master.bin_overflow",
            ["detector bin_overflow watches waste_bin devices", "water_master (water_meter)"],
            id="detector-for-another-kind",
        ),
        pytest.param(
            V + "profile:\n  waste_bin: {}\n",
            2,
            "profile",
            ["unknown top-level key 'profile'", "did you mean 'profiles'?"],
            id="unknown-top-key",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow:\n",
            4,
            "profiles.waste_bin.bin_overflow",
            ["bin_overflow is empty"],
            id="empty-detector",
        ),
        pytest.param(
            V + "profiles:\n  waste_bin:\n    bin_overflow: [90, 30]\n",
            4,
            "profiles.waste_bin.bin_overflow",
            ["must be a mapping of parameters to values, got a list"],
            id="detector-not-mapping",
        ),
        pytest.param(
            V + "estates:\n  lvcheng:\n    waste_bin: {}\n",
            4,
            "estates.lvcheng.waste_bin",
            ["unknown estate key 'waste_bin'", "(known: profiles)"],
            id="estate-without-profiles",
        ),
        pytest.param(
            V + "estates:\n  lv cheng:\n    profiles: {}\n",
            3,
            "estates.lv cheng",
            ["estate id 'lv cheng' must be"],
            id="bad-estate-id",
        ),
        pytest.param(
            V + "devices:\n  bin-01:\n    bin_overflow: {high_pct: 80}\n",
            3,
            "devices.bin-01",
            ['must be "<estate id>/<device id>"'],
            id="bad-device-key",
        ),
        pytest.param(
            V + "devices:\n  lvcheng/x:\n    bin_overflow: {high_pct: 80}\n"
            "    water_burst: {flow_l_min: 40}\n",
            5,
            "devices.lvcheng/x.water_burst",
            ["a device has one kind"],
            id="device-mixing-kinds",
        ),
    ],
)
def test_invalid_files_are_refused_with_file_line_and_message(
    tmp_path: Path, text: str, line: int, path: str, needles: list[str]
) -> None:
    file = write(tmp_path, text)
    problems = refused(file)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.file == str(file)
    assert problem.line == line, problem
    assert problem.path == path, problem
    for needle in needles:
        assert needle in problem.message, problem
    assert str(problem).startswith(f"{file}:{line}: ")


def test_cross_field_problem_of_a_combination_names_both_places(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        V
        + textwrap.dedent(
            """\
            profiles:
              bin_ultrasonic:
                bin_overflow: {high_pct: 80}
            estates:
              lvcheng:
                profiles:
                  waste_bin:
                    bin_overflow: {low_pct: 85}
            """
        ),
    )
    problems = refused(file)
    assert len(problems) == 1, problems
    (problem,) = problems
    assert (problem.line, problem.path) == (9, "estates.lvcheng.profiles.waste_bin.bin_overflow")
    assert "low_pct (85) must be below high_pct (80)" in problem.message
    assert "combined with profiles.bin_ultrasonic.bin_overflow at line 4" in problem.message


def test_device_override_checked_against_every_profile(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        V
        + textwrap.dedent(
            """\
            profiles:
              bin_ultrasonic_fraction:
                bin_overflow: {low_pct: 10}
            devices:
              lvcheng/bin-01:
                bin_overflow: {high_pct: 20}
            """
        ),
    )
    (problem,) = refused(file)
    assert (problem.line, problem.path) == (7, "devices.lvcheng/bin-01.bin_overflow")
    assert "low_pct (30) must be below high_pct (20)" in problem.message


def test_every_problem_is_reported(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        V
        + textwrap.dedent(
            """\
            profiles:
              waste_bin:
                bin_overflow: {high_pct: 120, persist: 3}
                bin_fire_risk: {temp_c: hot}
              water_meter:
                water_leak: {}
            """
        ),
    )
    problems = refused(file)
    assert [(p.line, p.path) for p in problems] == [
        (4, "profiles.waste_bin.bin_overflow.high_pct"),
        (4, "profiles.waste_bin.bin_overflow.persist"),
        (5, "profiles.waste_bin.bin_fire_risk.temp_c"),
        (7, "profiles.water_meter.water_leak"),
    ]


def test_plain_times_are_read_as_text_not_base_60(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        V + "profiles:\n  water_meter:\n    water_night_flow: {night_start: 1:30, "
        "night_end: 4:00}\n",
    )
    rule = load_rules(file).resolve("e", "d", "water_meter").water_night_flow
    assert (rule.night_start, rule.night_end) == (time(1, 30), time(4, 0))
    midnight = write(
        tmp_path,
        V + "profiles:\n  water_meter:\n    water_night_flow: {night_start: 23:00, "
        "night_end: 04:00}\n",
        "midnight.yaml",
    )
    assert load_rules(midnight).resolve("e", "d", "water_meter").water_night_flow.window_h == 5


def test_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "rules.yaml"
    file.write_bytes(b'version: "1"\n# \xff\n')
    (problem,) = refused(file)
    assert (problem.line, problem.message) == (2, "the file is not UTF-8 text")


# --- folders -------------------------------------------------------------------------------------


def test_folder_merges_files(tmp_path: Path) -> None:
    write(tmp_path, V + "profiles:\n  waste_bin:\n    bin_overflow: {high_pct: 80}\n", "a.yaml")
    write(tmp_path, V + "devices:\n  lvcheng/bin-01:\n    bin_overflow: {high_pct: 85}\n", "b.yml")
    write(tmp_path, "not: rules\n", ".hidden.yaml")
    write(tmp_path, "ignored", "notes.txt")
    rules = load_rules(tmp_path)
    assert rules.files == (str(tmp_path / "a.yaml"), str(tmp_path / "b.yml"))
    assert rules.resolve("x", "y", "waste_bin").bin_overflow.high_pct == 80
    device = rules.resolve("lvcheng", "bin-01", "waste_bin", "bin_ultrasonic")
    assert device.bin_overflow.high_pct == 85
    assert device.rule_version == "2026.11.1+device:lvcheng/bin-01"
    assert "2 file(s)" in check_rules(tmp_path)


def test_folder_refuses_duplicate_sections_and_mixed_versions(tmp_path: Path) -> None:
    a = write(tmp_path, V + "profiles:\n  waste_bin:\n    bin_overflow: {high_pct: 80}\n", "a.yaml")
    b = write(
        tmp_path,
        'version: "2026.12.1"\nprofiles:\n  waste_bin:\n    bin_overflow: {high_pct: 85}\n',
        "b.yaml",
    )
    problems = refused(tmp_path)
    assert [(p.file, p.line, p.path) for p in problems] == [
        (str(b), 1, "version"),
        (str(b), 4, "profiles.waste_bin.bin_overflow"),
    ]
    assert f"differs from '2026.11.1' in {a}:1" in problems[0].message
    assert f"already given at {a}:4" in problems[1].message


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path)
    assert "holds no *.yaml" in problem.message
    (problem,) = refused(tmp_path / "nope.yaml")
    assert problem.message == "no such file or folder"


# --- property: any valid override value round-trips ---------------------------------------------


def _values(cls: type, name: str) -> st.SearchStrategy[object]:
    info = cls.model_fields[name]  # type: ignore[attr-defined]
    if info.annotation is bool:
        return st.booleans()
    if name in ("night_start", "night_end"):
        return st.builds(time, st.integers(0, 23), st.integers(0, 59))
    low = high = 0.0
    low_open = high_open = False
    for meta in info.metadata:
        if isinstance(meta, Ge):
            low = float(meta.ge)  # type: ignore[arg-type]
        elif isinstance(meta, Gt):
            low, low_open = float(meta.gt), True  # type: ignore[arg-type]
        elif isinstance(meta, Le):
            high = float(meta.le)  # type: ignore[arg-type]
        elif isinstance(meta, Lt):
            high, high_open = float(meta.lt), True  # type: ignore[arg-type]
    if info.annotation is int:
        return st.integers(int(low) + (1 if low_open else 0), int(high) - (1 if high_open else 0))
    return st.floats(
        low, high, exclude_min=low_open, exclude_max=high_open, allow_nan=False
    ) | st.integers(math.ceil(low) + (1 if low_open else 0), math.floor(high))


PARAMS = [(d, p) for d, cls in DETECTORS.items() for p in cls.model_fields]


@st.composite
def overrides(draw: st.DrawFn) -> tuple[str, str, object]:
    detector, param = draw(st.sampled_from(PARAMS))
    return detector, param, draw(_values(DETECTORS[detector], param))


def _yaml_value(value: object) -> object:
    return f"{value:%H:%M}" if isinstance(value, time) else value


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(override=overrides(), level=st.sampled_from(["kind", "profile", "estate", "device"]))
def test_any_valid_override_value_round_trips(
    tmp_path: Path, override: tuple[str, str, object], level: str
) -> None:
    detector, param, value = override
    cls = DETECTORS[detector]
    kind = next(iter(cls.kinds)).value if cls.kinds else "waste_bin"
    profile = next(p.name for p in BUILTIN_PROFILES.values() if p.kind == kind)
    body = {detector: {param: _yaml_value(value)}}
    doc: dict[str, object] = {"version": "2026.11.1"}
    if level == "kind":
        doc["profiles"] = {kind: body}
    elif level == "profile":
        doc["profiles"] = {profile: body}
    elif level == "estate":
        doc["estates"] = {"lvcheng": {"profiles": {profile: body}}}
    else:
        doc["devices"] = {"lvcheng/dev-1": body}
    file = tmp_path / "prop.yaml"
    file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        expected = cls.model_validate({param: value})
    except ValidationError:  # valid alone, but not with the built-in values of the others
        problems = refused(file)
        assert problems and all(p.line is not None for p in problems)
        assert all(param in p.message or "night window" in p.message for p in problems)
        return
    resolved = load_rules(file).resolve("lvcheng", "dev-1", kind, profile)
    assert resolved.get(detector) == expected
    got = getattr(resolved.get(detector), param)
    assert got == value and type(got) is type(expected.__dict__[param])
    label = {"device": "+device:lvcheng/dev-1", "estate": "+estate:lvcheng"}.get(level, "")
    assert resolved.version_of(detector) == "2026.11.1" + label


# --- documentation ------------------------------------------------------------------------------


def test_docs_list_every_parameter() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for row in parameter_table().splitlines()[2:]:
        assert row in text, f"docs/rules.md lacks the row {row}"
    names = {(d, p) for d, p, *_ in parameter_rows()}
    assert names == {(d, p) for d, p in PARAMS if p != "enabled"}
    assert "`enabled`" in text


def test_units_come_from_the_names() -> None:
    assert unit_of(BinOverflowRule, "high_pct") == "%"
    assert unit_of(WaterNightFlowRule, "min_flow_l_h") == "L/h"
    assert unit_of(DeviceOfflineRule, "intervals") == "× reporting interval"
    for detector, param, unit, *_ in parameter_rows():
        assert unit, (detector, param)
