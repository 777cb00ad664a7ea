"""The MQTT ingest gateway: subscribe, judge, append, and only then acknowledge.

paho-mqtt 2.x with ``manual_ack=True``: a QoS 1 message is acknowledged
(PUBACK) only after its readings and dead letters were durably appended to the
log. A crash between receive and append therefore causes a redelivery, which
the log absorbs because reading ids are deterministic.

Threads: paho's network thread queues each raw message; batches go to a sink
(``ingest/sink.py``) that judges and appends them (one transaction per stream):
a full batch inline in the network thread (in-process sink) or through the
flusher thread to a worker process (process sink); the flusher also sends
whatever waited ``flush_interval_s``. Acknowledgements follow the sink's return
and belong to one connection: when
the connection drops before a batch is acknowledged, the broker redelivers it
and the duplicates are absorbed.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.topics import subscription
from ingest.sink import Message, Sink

log = logging.getLogger("estate.ingest")

#: CONNACK reasons no retry can fix (paho maps MQTT 3.1.1 return codes onto these names).
_FATAL = frozenset(
    {
        "Bad user name or password",
        "Not authorized",
        "Client identifier not valid",
        "Banned",
        "Bad authentication method",
    }
)


class GatewayError(RuntimeError):
    """The gateway cannot go on (e.g. the broker refused its credentials)."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…``.

        The password may also come from ``ESTATE_MQTT_PASSWORD`` (preferred over the URL).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"MQTT URL {url!r} names no host")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(f"MQTT URL {url!r}: port is not a number 1-65535") from None
        password = os.environ.get("ESTATE_MQTT_PASSWORD") or (
            unquote(parts.password) if parts.password else None
        )
        username = unquote(parts.username) if parts.username else None
        return cls(parts.hostname, port, tls, username, password)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    url: str
    client_id: str = "estate-ingest"
    protocol: Literal["5", "3.1.1"] = "5"
    #: Shared-subscription group: replicas with the same group split the stream.
    shared_group: str | None = None
    estate: str = "+"
    session_expiry_s: int = 7 * 86400
    keepalive_s: int = 30
    batch_max: int = 1000
    flush_interval_s: float = 0.02
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    receive_maximum: int = 2000

    @property
    def topic_filter(self) -> str:
        base = subscription(self.estate)
        return f"$share/{self.shared_group}/{base}" if self.shared_group else base


@dataclass(slots=True)
class GatewayStats:
    received: int = 0
    readings_appended: int = 0
    readings_duplicate: int = 0
    rejected_appended: int = 0
    acked: int = 0
    connects: int = 0
    disconnects: int = 0
    dropped_acks: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Pending:
    generation: int
    mid: int
    qos: int
    message: Message


def _now() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """One ingest replica. ``start()``; ``stop()``; ``wait()`` raises on fatal errors."""

    def __init__(
        self,
        sink: Sink,
        config: GatewayConfig,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.sink = sink
        self.config = config
        self.address = BrokerAddress.parse(config.url)
        self.stats = GatewayStats()
        self._clock = clock
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._batch_full = threading.Event()
        self._pending_since = 0.0  # monotonic time of the oldest queued message, 0 when none
        self._generation = 0
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._fatal: GatewayError | None = None
        self._failed = threading.Event()
        self._flusher: threading.Thread | None = None
        self._client = self._make_client()

    # -- client --------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        v5 = self.config.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if self.address.username is not None:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(
            min_delay=max(1, int(self.config.reconnect_min_s)),
            max_delay=max(1, int(self.config.reconnect_max_s)),
        )
        client.max_inflight_messages_set(self.config.receive_maximum)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_properties(self) -> Properties | None:
        if self.config.protocol != "5":
            return None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            what = reason.getName()
            if what in _FATAL:
                self._fatal = GatewayError(
                    f"MQTT broker {self.address.host}:{self.address.port} refused the connection "
                    f"({what}) for client id {self.config.client_id!r}"
                    + (f", user {self.address.username!r}" if self.address.username else "")
                    + ": check ESTATE_MQTT_URL / ESTATE_MQTT_PASSWORD"
                )
                self._failed.set()
                client.disconnect()  # retrying cannot help: stop paho's reconnect loop
            else:
                log.warning("MQTT connect refused (%s); retrying", what)
            return
        with self._lock:
            self._generation += 1
        self.stats.connects += 1
        client.subscribe(self.config.topic_filter, qos=1)
        log.info(
            "connected to %s:%s (session present: %s), subscribed to %s",
            self.address.host,
            self.address.port,
            flags.session_present,
            self.config.topic_filter,
        )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            self._fatal = GatewayError(
                f"MQTT broker refused the subscription {self.config.topic_filter!r} "
                f"({refused[0].getName()}): check the broker's access rules for "
                f"client id {self.config.client_id!r}"
            )
            self._failed.set()
            client.disconnect()
            return
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        with self._lock:
            self._generation += 1  # acks of the old connection would hit the wrong session
        self.stats.disconnects += 1
        if not self._stopping.is_set() and not self._failed.is_set():
            log.warning("disconnected from MQTT broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received: Message = (message.topic, bytes(message.payload), self._clock())
        with self._lock:
            self.stats.received += 1
            self._pending.append(_Pending(self._generation, message.mid, message.qos, received))
            if not self._pending_since:
                self._pending_since = time.monotonic()
            full = len(self._pending) >= self.config.batch_max
        if full:
            if self.sink.parallel:  # the flusher hands it to the worker; keep receiving
                self._batch_full.set()
            else:  # flush here: no hand-off to another thread, no GIL ping-pong
                self._flush_or_fail()

    # -- flushing ------------------------------------------------------------------------------

    def flush(self) -> int:
        """Judge and append everything queued, then acknowledge it; returns messages flushed."""
        with self._flush_lock:  # one flush at a time keeps append order = receive order
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
            self._pending_since = 0.0
        if not batch:
            return 0
        result = self.sink.process([item.message for item in batch])
        self.stats.readings_appended += result.readings_appended
        self.stats.readings_duplicate += result.readings_duplicate
        self.stats.rejected_appended += result.rejected_appended
        for reason, count in result.rejected_by_reason.items():
            self.stats.rejected_by_reason[reason] = (
                self.stats.rejected_by_reason.get(reason, 0) + count
            )
        with self._lock:
            generation = self._generation
        for item in batch:
            if item.qos == 0:
                continue
            if item.generation != generation:
                self.stats.dropped_acks += 1  # the broker redelivers; the log absorbs it
                continue
            self._client.ack(item.mid, item.qos)
            self.stats.acked += 1
        return len(batch)

    def _flush_or_fail(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # the log failed: stop acknowledging, let the broker hold it
            if self._fatal is None:
                self._fatal = GatewayError(f"judging or appending a batch failed: {exc}")
            self._failed.set()

    def _flush_loop(self) -> None:
        """Flush what waited ``flush_interval_s`` (quiet periods); full batches flush inline."""
        interval = self.config.flush_interval_s
        while not self._failed.is_set():
            full = self._batch_full.wait(interval / 2)
            self._batch_full.clear()
            stopping = self._stopping.is_set()
            with self._lock:
                since = self._pending_since
            if full or stopping or (since and time.monotonic() - since >= interval):
                self._flush_or_fail()
            if stopping:
                return

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._flusher = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)
        self._flusher.start()
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self.config.keepalive_s,
            clean_start=False if self.config.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=self._connect_properties(),
        )
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        """Connected and subscribed right now."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until subscribed (True) or ``timeout``; raises on a fatal refusal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._connected.wait(0.05):
                return True
            self.raise_if_failed()
        return False

    def raise_if_failed(self) -> None:
        if self._failed.is_set() and self._fatal is not None:
            raise self._fatal

    def wait(self, timeout: float | None = None) -> None:
        """Block until stopped, ``timeout`` elapsed, or a fatal error (raised)."""
        self._failed.wait(timeout)
        self.raise_if_failed()

    def stop(self) -> None:
        """Stop receiving, flush and acknowledge what was received, then disconnect.

        Alone, the gateway keeps its subscription in the persistent session, so the broker
        holds what is published while it is down. A shared-group replica leaves the group,
        so that the broker hands its share to the other replicas meanwhile.
        """
        self._stopping.set()
        self._batch_full.set()
        if self.config.shared_group:
            self._client.unsubscribe(self.config.topic_filter)
        if self._flusher is not None:
            self._flusher.join(timeout=30)
        self._client.disconnect()
        self._client.loop_stop()
        self.sink.close()
