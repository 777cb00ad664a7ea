"""The broker is not there when the gateway starts: it keeps retrying and connects later."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from devices.registry import DeviceRef
from ingest.gateway import Gateway
from tests.ingest_component.conftest import (
    IngestProcess,
    LogWatcher,
    Prober,
    check_exactly_once,
)
from tests.support.brokers import Mosquitto
from tests.support.publisher import Publisher, water_readings


def test_gateway_started_before_the_broker_connects_when_it_appears(
    mosquitto_factory: Callable[..., Mosquitto],
    gateways: Callable[..., Gateway],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    broker = mosquitto_factory()  # its port is chosen, nothing listens on it yet
    gateway = gateways(broker.url, client_id="ingest-early", reconnect_min_s=1, reconnect_max_s=2)
    assert not gateway.wait_connected(2.5)  # no broker: not connected, and no error raised
    gateway.raise_if_failed()
    assert gateway.stats.connects == 0

    broker.start()
    assert gateway.wait_connected(15), "did not connect within 15 s of the broker appearing"
    publisher = publishers(broker.host, broker.port, client_id="dev-early")
    prober.until_logged(publisher, watcher, check=gateway.raise_if_failed)
    messages = water_readings(water_meters[:20], per_device=5)
    publisher.publish(messages)
    publisher.wait_all_acked(timeout=30)
    watcher.wait_for(messages, 30, check=gateway.raise_if_failed)
    check_exactly_once(watcher.readings, messages)


def test_estate_ingest_started_before_the_broker_keeps_retrying(
    mosquitto_factory: Callable[..., Mosquitto],
    ingest_processes: Callable[..., IngestProcess],
    publishers: Callable[..., Publisher],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    broker = mosquitto_factory()
    process = ingest_processes(broker.url, client_id="ingest-cli-early").start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # a few connection attempts fail meanwhile
        process.check_alive()
        time.sleep(0.1)

    broker.start()
    publisher = publishers(broker.host, broker.port, client_id="dev-cli-early")
    # paho's backoff (1 s doubling up to 30 s) decides when the next attempt comes.
    prober.until_logged(publisher, watcher, timeout=45, check=process.check_alive)
    assert process.signal(signal.SIGTERM) == 0, process.stderr()
    assert "Traceback" not in process.stderr()
