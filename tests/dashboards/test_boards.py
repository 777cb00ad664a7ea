"""The boards: SDK types, committed JSON, and every query against a real InfluxDB 1.x."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import influxql
from dashboards.boards import CONDITION_GROUPS
from dashboards.build import JSON_DIR, build, render
from eventlog.sqlite import SqliteEventLog
from processors.detectors import ALL_DETECTORS
from processors.influx import InfluxTarget, InfluxWriter
from processors.influx_schema import registry_lookup
from processors.rules import load_rules
from simulators.evaluate import run
from simulators.scenario import load_scenario
from tests.dashboards.panels import PanelQuery, queries, variables
from tests.support.influx import InfluxD

BOARDS = {
    "estate-overview", "estate-waste", "estate-water", "estate-charging", "estate-parking",
    "estate-gates", "estate-energy", "street-office-rollup",
}  # fmt: skip


def committed() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


def test_committed_json_is_what_build_generates(tmp_path: Path) -> None:
    files = render()
    assert {name.removesuffix(".json") for name in files} == BOARDS
    for name, text in files.items():
        assert (JSON_DIR / name).read_text() == text, f"run `estate dashboards build` ({name})"
    build(tmp_path)
    (tmp_path / "gone.json").write_text("{}")
    assert sorted(p.name for p in build(tmp_path)) == sorted(files)
    assert not (tmp_path / "gone.json").exists()


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_board_validates_against_the_sdk_types_and_every_panel_has_a_query(uid: str) -> None:
    influxql.register()
    data = committed()[uid]
    board = dm.Dashboard.from_json(data)
    assert board.uid == uid and board.title
    names = [v.name for v in board.templating.list_val or []]
    assert names in (["estate", "building"], ["office", "estate"])
    assert board.panels
    for panel in board.panels:
        assert isinstance(panel, dm.Panel), panel
        assert panel.targets, f"{uid}: panel {panel.title!r} has no query"
        for target in panel.targets:
            assert isinstance(target, influxql.InfluxQLQuery), target
            assert target.query.startswith("SELECT")
            assert "$timeFilter" in target.query or "time > now() -" in target.query
            assert target.datasource is not None and target.datasource.uid == "estate-influxdb"
    (annotation,) = data["annotations"]["list"]
    assert annotation["target"]["rawQuery"] and '"events"' in annotation["target"]["query"]
    widths = [(p.grid_pos.x, p.grid_pos.y) for p in board.panels if p.grid_pos is not None]
    assert len(set(widths)) == len(board.panels)  # no two panels on the same spot


#: The simulator scenario whose day the boards are checked on (two estates, two offices).
SCENARIO = "two-estates"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxD]:
    """A real influxd holding a simulated day of two estates, written by the writer.

    The scenario is moved to end now (the boards ask for the last 24 h and for devices
    heard in the last hour); its messages go through ingest into the log, the detectors
    add their events, and the InfluxDB writer projects readings and events.
    """
    scenario = load_scenario(SCENARIO)
    simulator = scenario.simulator(start=datetime.now(UTC) - scenario.duration)
    index = simulator.index
    offices = {ref.street_office.id for e in index.estate_ids() if (ref := index.estate(e))}
    assert len(index.estate_ids()) == len(offices) == 2  # the tests below pick each of them
    with (
        InfluxD() as server,
        SqliteEventLog(tmp_path_factory.mktemp("log") / "log.sqlite") as log,
    ):
        result = run(simulator, load_rules(), scenario.name, log=log)
        raised = {(s.estate, s.detector) for s in result.spans}
        silent = [
            f"{estate}: {group}"
            for estate in index.estate_ids()
            for group, pattern in CONDITION_GROUPS.items()
            if not any((estate, name) in raised for name in pattern.split("|"))
        ]
        assert not silent, f"{SCENARIO} raises no alert of {silent}"

        async def write() -> None:
            async with InfluxWriter(
                log, InfluxTarget(url=server.url), lookup=registry_lookup(index)
            ) as writer:
                await writer.setup()
                await writer.drain()

        asyncio.run(write())
        yield server


def _run(server: InfluxD, query: str) -> list[dict[str, Any]]:
    result = server.query(query, "estate")["results"][0]
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def _all_queries(server: InfluxD, pick: int) -> list[PanelQuery]:
    def tag_values(query: str) -> list[str]:
        return [v[1] for s in _run(server, query) for v in s["values"]]

    found: list[PanelQuery] = []
    for board in committed().values():
        found.extend(queries(board, variables(board, tag_values, pick)))
    return found


@pytest.mark.parametrize("pick", [0, 1], ids=["first-estate", "second-estate"])
def test_every_panel_query_returns_data(loaded: InfluxD, pick: int) -> None:
    checked = _all_queries(loaded, pick)
    assert {q.board for q in checked} == BOARDS
    assert len(checked) >= 50
    empty = []
    for q in checked:
        rows = [v for s in _run(loaded, q.query) for v in s["values"]]
        if not any(any(x is not None for x in row[1:]) for row in rows):
            empty.append(f"{q.board} / {q.panel} / {q.ref}: {q.query}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_an_empty_panel_is_detected(loaded: InfluxD) -> None:
    """The check above can fail: the same query for an estate with no data is empty."""
    q = next(q for q in _all_queries(loaded, 0) if q.panel.startswith("Fill level"))
    assert _run(loaded, q.query)
    assert not _run(loaded, q.query.replace("/^lvcheng$/", "/^nowhere$/").replace(
        "/^cuihu$/", "/^nowhere$/"))  # fmt: skip


def test_alert_panels_name_only_real_detectors() -> None:
    names = {d.name for d in ALL_DETECTORS}
    for group, pattern in CONDITION_GROUPS.items():
        unknown = set(pattern.split("|")) - names
        assert not unknown, f"{group}: no detector raises {sorted(unknown)}"
