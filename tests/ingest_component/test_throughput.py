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


def _stream_once_in_order(
    host: str,
    port: int,
    url: str,
    protocol: str,
    devices: list[DeviceRef],
    gateways: Callable[..., Gateway],
    publishers: Callable[..., Publisher],
    watcher: LogWatcher,
    prober: Prober,
) -> float:
    """Publish 20 readings per device; check the log holds each exactly once, in order."""
    tag = protocol.replace(".", "")
    gateway = gateways(url, client_id=f"ingest-tp{tag}", protocol=protocol)
    assert gateway.wait_connected(10)
    publisher = publishers(
        host, port, client_id=f"dev-tp{tag}", protocol=protocol, max_inflight=len(devices)
    )
    prober.until_logged(publisher, watcher, check=gateway.raise_if_failed)

    messages = water_readings(devices, per_device=20)
    assert len(messages) == 20 * len(devices)
    started = time.monotonic()
    publisher.publish(messages)
    publisher.wait_all_acked(timeout=60)
    watcher.wait_for(messages, 60, check=gateway.raise_if_failed)
    elapsed = time.monotonic() - started
    gateway.stop()  # flushes and acknowledges what it holds: afterwards the log is final
    watcher.poll()

    check_exactly_once(watcher.readings, messages)
    assert not watcher.rejected, [r.payload["reason"] for r in watcher.rejected[:5]]
    return elapsed


def test_10000_readings_of_500_devices_over_mosquitto_mqtt5_land_once_in_order(
    mosquitto: Mosquitto,
    gateways: Callable[..., Gateway],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    elapsed = _stream_once_in_order(
        mosquitto.host, mosquitto.port, mosquitto.url, "5",
        water_meters[:500], gateways, publishers, watcher, prober,
    )  # fmt: skip
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
    elapsed = _stream_once_in_order(
        amqtt.host, amqtt.port, amqtt.url, "3.1.1",
        water_meters[:100], gateways, publishers, watcher, prober,
    )  # fmt: skip
    print(f"2,000 readings through amqtt (MQTT 3.1.1) into the log in {elapsed:.1f} s")
