"""Many devices at QoS 1 through a real broker: every reading lands once, in per-device order."""

from __future__ import annotations

import time
from collections.abc import Callable

from devices.registry import DeviceRef
from ingest.embedded_broker import EmbeddedBroker
from ingest.gateway import Gateway
from tests.ingest_component.conftest import LogWatcher, Prober, check_exactly_once
from tests.support.brokers import Mosquitto
from tests.support.publisher import Publisher, water_readings


def test_10000_readings_of_500_devices_over_mosquitto_mqtt5_land_once_in_order(
    mosquitto: Mosquitto,
    gateways: Callable[..., Gateway],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    gateway = gateways(mosquitto.url, client_id="ingest-tp5", protocol="5")
    assert gateway.wait_connected(10)
    publisher = publishers(
        mosquitto.host, mosquitto.port, client_id="dev-tp5", protocol="5", max_inflight=500
    )
    prober.until_logged(publisher, watcher, check=gateway.raise_if_failed)

    messages = water_readings(water_meters[:500], per_device=20)
    assert len(messages) == 10_000
    started = time.monotonic()
    publisher.publish(messages)
    publisher.wait_all_acked(timeout=60)
    watcher.wait_for(messages, 60, check=gateway.raise_if_failed)
    elapsed = time.monotonic() - started
    gateway.stop()  # flushes and acknowledges what it holds: afterwards the log is final
    watcher.poll()

    check_exactly_once(watcher.readings, messages)
    assert not watcher.rejected, [r.payload["reason"] for r in watcher.rejected[:5]]
    assert {r.kind for r in watcher.readings} == {"water_meter.register", "energy_meter.register"}
    print(f"10,000 readings through Mosquitto (MQTT 5) into the log in {elapsed:.1f} s")


def test_2000_readings_of_100_devices_over_amqtt_mqtt311_land_once_in_order(
    amqtt: EmbeddedBroker,
    gateways: Callable[..., Gateway],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    gateway = gateways(amqtt.url, client_id="ingest-tp311", protocol="3.1.1")
    assert gateway.wait_connected(10)
    publisher = publishers(
        amqtt.host, amqtt.port, client_id="dev-tp311", protocol="3.1.1", max_inflight=100
    )
    prober.until_logged(publisher, watcher, check=gateway.raise_if_failed)

    messages = water_readings(water_meters[:100], per_device=20)
    assert len(messages) == 2_000
    started = time.monotonic()
    publisher.publish(messages)
    publisher.wait_all_acked(timeout=60)
    watcher.wait_for(messages, 60, check=gateway.raise_if_failed)
    elapsed = time.monotonic() - started
    gateway.stop()
    watcher.poll()

    check_exactly_once(watcher.readings, messages)
    assert not watcher.rejected
    print(f"2,000 readings through amqtt (MQTT 3.1.1) into the log in {elapsed:.1f} s")
