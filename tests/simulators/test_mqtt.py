"""Component test: a short backfill published to a real Mosquitto at QoS 1 arrives complete,
byte for byte, as a paho subscriber sees it (with and without broker credentials)."""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.topics import subscription
from simulators.cli import register
from simulators.estate import EstateSimulator
from simulators.model import Imperfections
from simulators.mqtt import BrokerUrl, MqttError, MqttPublisher
from tests.simulators.conftest import START, small_registry
from tests.support.brokers import Mosquitto


class Subscriber:
    """Everything published on the estates' topics, as (topic, payload)."""

    def __init__(self, host: str, port: int, username: str | None = None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-test-subscriber")
        if username is not None:
            self.client.username_pw_set(username, "sub-secret")
        self.client.on_connect = lambda c, *_: c.subscribe(subscription(), qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._ready.wait(10), "subscriber not subscribed"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with Mosquitto(passwords={"sim": "sim-secret", "sub": "sub-secret"}) as running:
        yield running


def test_a_backfill_arrives_complete_and_byte_identical(broker: Mosquitto) -> None:
    registry = small_registry(10)
    sim = EstateSimulator(
        registry, seed=3, start=START, end=START + timedelta(minutes=30),
        imperfections=Imperfections(batching=0.2, duplicates=0.02),
    )  # fmt: skip
    expected = [(m.topic, m.payload) for m in sim.messages()]
    assert sim.stats.batches and sim.stats.duplicates
    subscriber = Subscriber(broker.host, broker.port, "sub")
    try:
        parser = argparse.ArgumentParser(prog="estate")
        register(parser.add_subparsers())
        args = parser.parse_args([
            "simulate", "--households", "10", "--seed", "3", "--backfill",
            "--start", START.isoformat(), "--duration", "30m", "--max-inflight", "50",
            "--imperfect", "batching=0.2,duplicates=0.02",
            "--mqtt-url", f"mqtt://sim:sim-secret@{broker.host}:{broker.port}", "--progress", "0",
        ])  # fmt: skip
        assert args.handler(args) == 0
        received = subscriber.wait_for(len(expected))
    finally:
        subscriber.close()
    assert Counter(received) == Counter(expected)
    for topic in {t for t, _ in expected}:  # per-topic order survives the broker
        assert [p for t, p in received if t == topic] == [p for t, p in expected if t == topic]


def test_the_publisher_waits_for_pubacks_with_a_bounded_window(broker: Mosquitto) -> None:
    registry = small_registry(10)
    sim = EstateSimulator(registry, seed=4, start=START, end=START + timedelta(hours=1))
    url = f"mqtt://sim:sim-secret@{broker.host}:{broker.port}"
    with MqttPublisher(url, client_id="sim-window", max_inflight=5) as publisher:
        for message in sim.messages():
            publisher.publish(message)
            assert publisher.published - publisher.acked <= 5
        publisher.flush(timeout=20)
        assert publisher.acked == publisher.published == sim.stats.messages > 100


def test_wrong_credentials_are_refused_clearly(broker: Mosquitto) -> None:
    url = f"mqtt://sim:wrong@{broker.host}:{broker.port}"
    with pytest.raises(MqttError, match=r"cannot connect to 127\.0\.0\.1:[0-9]+: Not authorized"):
        MqttPublisher(url, client_id="sim-wrong").connect(timeout=3)


def test_broker_urls() -> None:
    parsed = BrokerUrl.parse("mqtt://us%40er:p%3Ass@broker.example:1884")
    assert parsed == BrokerUrl("broker.example", 1884, "us@er", "p:ss", False)
    assert BrokerUrl.parse("mqtts://h").port == 8883
    assert BrokerUrl.parse("mqtt://h").port == 1883
    for bad in ("http://h", "mqtt://", "mqtt://h:port"):
        with pytest.raises(ValueError):
            BrokerUrl.parse(bad)
