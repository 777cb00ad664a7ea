"""End to end: simulator → real Mosquitto → ingest → detector runner → alert book.

One scenario injects an anomaly for each detector pack present; the simulator publishes
it over MQTT (QoS 1) into a real Mosquitto, the embedded stack ingests it through its
gateway, the runner judges it and the projections' alert book must show every alert.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devices.demo_estate import dump_registry
from devices.registry import load_registry
from estate.runtime import EmbeddedStack
from estate.settings import Settings
from processors.detectors import ALL_DETECTORS
from simulators.estate import EstateSimulator
from simulators.mqtt import MqttPublisher
from simulators.scenario import load_scenario
from tests.support.brokers import Mosquitto
from tests.support.influx import InfluxD

#: Injection kind → the detector that must raise, for every pack (when the pack exists).
ANOMALIES = {
    "water_burst": "water_burst",
    "bin_fire": "bin_fire_risk",
    "device_offline": "device_offline",
    "door_forced": "door_forced",
    "fire_lane_blocked": "fire_lane_blocked",
    "ebike_over_temperature": "ebike_over_temperature",
    "lighting_daylight": "lighting_daylight",
}


def scenario_text(start: datetime, kinds: list[str]) -> str:
    injections = "\n".join(
        f"  - {{kind: {kind}, start: {90 + 20 * i}m, duration: 2h}}" for i, kind in enumerate(kinds)
    )
    return (
        "name: end-to-end\n"
        "description: one anomaly per detector pack\n"
        "registry: {households: 24}\n"
        "seed: 5\n"
        f'start: "{start.isoformat()}"\n'
        "duration: 8h\n"
        f"injections:\n{injections}\n"
    )


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    broker = Mosquitto()
    broker.start()
    yield broker
    broker.stop()


def test_one_anomaly_per_pack_reaches_the_alert_book(mosquitto: Mosquitto, tmp_path: Path) -> None:
    existing = {d.name for d in ALL_DETECTORS}
    kinds = [kind for kind, detector in ANOMALIES.items() if detector in existing]
    # Yesterday 08:00-16:00 in Shanghai: daylight, in the past, within ingest's horizon.
    tz = ZoneInfo("Asia/Shanghai")
    today = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=1) + timedelta(hours=8)
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario_text(start, kinds), encoding="utf-8")
    scenario = load_scenario(path)
    targets = {i.device for i in scenario.injections}
    simulator = scenario.simulator(only=lambda ref: ref.device in targets)
    registry = tmp_path / "estate.yaml"
    registry.write_text(
        dump_registry(scenario.registry.model_dump(mode="json", exclude_defaults=True)),
        encoding="utf-8",
    )
    settings = Settings(
        data_dir=tmp_path / "var", registry=registry, mqtt_url=mosquitto.url, http="off"
    )
    expected = {ANOMALIES[kind] for kind in kinds}
    found = asyncio.run(_run(settings, simulator, expected))
    assert expected <= found, f"missing {expected - found}"


async def _run(settings: Settings, simulator: EstateSimulator, expected: set[str]) -> set[str]:
    stack = EmbeddedStack(settings, echo=lambda _: None)
    await stack.start()
    try:
        messages = await asyncio.to_thread(_publish_all, stack.mqtt_url, simulator)
        assert messages > 20
        deadline = time.monotonic() + 60
        found: set[str] = set()
        while time.monotonic() < deadline and not expected <= found:
            await asyncio.sleep(0.5)
            stack.check()
            found = {a.detector for a in stack.processing.projections.alerts.values()}
        return found
    finally:
        await stack.stop()


def test_estate_up_projects_time_series_into_influxdb(tmp_path: Path) -> None:
    """`estate up --influx-url`: readings published over MQTT end up queryable in InfluxDB."""
    with InfluxD() as influx:
        settings = Settings(
            data_dir=tmp_path / "var",
            mqtt_port=0,
            http="off",
            influx_url=f"{influx.url}?db=estate",
        )
        asyncio.run(_publish_and_wait_for_points(settings, influx))


def _publish_all(url: str, simulator: EstateSimulator) -> int:
    """Publish every message (in a thread: the embedded broker runs on the event loop)."""
    publisher = MqttPublisher(url, protocol="3.1.1").connect()  # amqtt speaks 3.1.1 only
    sent = 0
    for message in simulator.messages():
        publisher.publish(message)
        sent += 1
    publisher.flush()
    publisher.close()
    return sent


async def _publish_and_wait_for_points(settings: Settings, influx: InfluxD) -> None:
    stack = EmbeddedStack(settings, echo=lambda _: None)
    await stack.start()
    try:
        registry = load_registry(settings.registry_path)
        end = datetime.now(UTC).replace(microsecond=0)
        simulator = EstateSimulator(
            registry,
            seed=3,
            start=end - timedelta(hours=2),
            end=end,
            only=lambda ref: ref.kind.value == "water_meter",
        )
        sent = await asyncio.to_thread(_publish_all, stack.mqtt_url, simulator)
        deadline, points = time.monotonic() + 60, 0
        while time.monotonic() < deadline and points < sent // 2:
            await asyncio.sleep(1)
            stack.check()
            points = influx.count("water_register", "volume_m3", "estate")
        assert sent > 100 and points >= sent // 2, (sent, points)
    finally:
        await stack.stop()
