"""Publishing over MQTT: paho-mqtt 2.x, QoS 1, a bounded number of messages in flight.

:class:`MqttPublisher` connects to any broker given as ``mqtt://user:pass@host:port``
(``mqtts://`` for TLS with the system's CAs), publishes at QoS 1 and counts a message
as delivered only when its PUBACK arrived. At most ``max_inflight`` messages wait for
their PUBACK; :meth:`publish` blocks until one is acknowledged. paho reconnects by
itself and re-sends unacknowledged messages after a reconnect.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from simulators.model import Message


class MqttError(RuntimeError):
    """The broker cannot be reached, refused us, or did not acknowledge in time."""


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} names no host")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(f"broker URL {url!r} has an invalid port") from None
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, user, password, tls)


class MqttPublisher:
    def __init__(
        self,
        url: str,
        *,
        client_id: str = "estate-simulator",
        max_inflight: int = 1000,
        protocol: Literal["5", "3.1.1"] = "5",
    ) -> None:
        self.broker = BrokerUrl.parse(url)
        self.published = 0
        self.acked = 0
        self.failed: list[str] = []
        self._slots = threading.BoundedSemaphore(max_inflight)
        self._idle = threading.Condition()
        self._inflight = 0
        self._connected = threading.Event()
        self._settled = threading.Event()  # the first connection attempt succeeded or failed
        self._refused: str | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311,
        )
        if self.broker.username is not None:
            self.client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            self.client.tls_set()
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def connect(self, timeout: float = 10.0) -> MqttPublisher:
        """Connect, or fail at once when the first attempt is refused (later drops of the
        connection are retried by paho in the background)."""
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        self._settled.wait(timeout)
        if not self._connected.is_set():
            self.client.loop_stop()
            where = f"{self.broker.host}:{self.broker.port}"
            if self._refused:
                raise MqttError(f"cannot connect to {where}: {self._refused}")
            raise MqttError(f"no connection to {where} after {timeout:g} s")
        return self

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason.getName())
        else:
            self._connected.set()
        self._settled.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._refused = "the connection failed (is a broker listening there?)"
        self._settled.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.failed.append(f"mid {mid}: {reason.getName()}")
        with self._idle:
            self.acked += 1
            self._inflight -= 1
            self._idle.notify_all()
        self._slots.release()

    def publish(self, message: Message) -> None:
        """Hand ``message`` to paho at QoS 1; blocks while ``max_inflight`` await PUBACK."""
        self._slots.acquire()
        with self._idle:
            self._inflight += 1
        info = self.client.publish(message.topic, message.payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish refused locally: {mqtt.error_string(info.rc)}")
        self.published += 1

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every published message has its PUBACK (``MqttError`` on timeout)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MqttError(
                        f"{self._inflight} of {self.published} messages without PUBACK "
                        f"after {timeout:g} s"
                    )
                self._idle.wait(min(left, 0.1))
        if self.failed:
            raise MqttError(f"the broker refused {len(self.failed)}: {self.failed[:3]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()
