"""A reusable test publisher: QoS 1 over paho-mqtt, persistent session, survives broker restarts.

:class:`Publisher` behaves like a careful device or field gateway:

* it connects with a fixed client id and a persistent session (MQTT 5:
  ``clean_start=False`` plus a Session Expiry Interval, since an MQTT 5 session
  without one ends with the connection; MQTT 3.1.1: ``clean_session=False``);
* every message goes out at QoS 1 and counts as delivered only when its PUBACK
  arrived. paho (2.2) keeps unacknowledged QoS 1 messages, and messages handed
  over while disconnected, in memory, reconnects by itself with backoff
  (``loop_start``) and sends them again (DUP set) after every successful
  reconnect — whatever ``clean_start`` says: the persistent session matters on
  the broker's side (what it queues for subscribers, QoS 2 state), paho's
  retransmission is its own. ``tests/ingest_component/test_broker_restart.py``
  checks it against a real Mosquitto with ~100 messages without PUBACK at the
  moment the broker goes down. (Messages handed to paho *while* it reconnects
  go out before those retransmissions: see ``hold_while_offline``.);
* optionally it keeps a *replay window*: after every reconnect it publishes
  again everything the broker acknowledged during the last ``replay_window_s``
  seconds before the connection dropped. A broker that persists its state only
  periodically (Mosquitto's ``autosave_interval``) can lose messages it had
  already acknowledged when it is killed; a device that must lose nothing keeps
  such a window in its local buffer. Replays are duplicates for the receiver,
  which the event log absorbs because reading ids are deterministic.

:func:`water_readings` makes N numbered readings for M registered water meters.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.catalogue import DeviceKind
from devices.demo_estate import write_registry
from devices.registry import DeviceRef, Registry, load_registry
from devices.topics import topic_for


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message to publish; ``device``/``seq`` identify a valid reading (else None)."""

    topic: str
    payload: bytes
    device: str | None = None
    seq: int | None = None


@dataclass(slots=True)
class PublisherStats:
    connects: int = 0
    sessions_resumed: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0
    replayed: int = 0
    failed: list[str] = field(default_factory=list)


class Publisher:
    """A QoS 1 publisher with a persistent session that keeps going across broker restarts."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        protocol: Literal["5", "3.1.1"] = "5",
        session_expiry_s: int = 3600,
        max_inflight: int = 200,
        replay_window_s: float = 0.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.protocol = protocol
        self.replay_window_s = replay_window_s
        self.stats = PublisherStats()
        self._session_expiry_s = session_expiry_s
        self._lock = threading.Condition()
        self._unacked: dict[int, Message] = {}  # mid -> message, until its PUBACK
        self._early_acks: dict[int, ReasonCode] = {}  # PUBACKs that beat their registration
        self._acked_at: list[tuple[float, Message]] = []  # (monotonic time, message), in order
        self._connected = threading.Event()  # CONNACK received
        self._ready = threading.Event()  # connected, and paho's retransmissions are on their way
        self._ready_on_ack = False
        self._disconnected_at: float | None = None
        self._connack_failure: str | None = None
        v5 = protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)  # unlimited: nothing is dropped while offline
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    # -- connection ----------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> Publisher:
        """Connect (retrying in the background) and wait for the first CONNACK."""
        properties = None
        if self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._session_expiry_s
        self.client.connect_async(
            self.host,
            self.port,
            keepalive=10,
            clean_start=False if self.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(
                f"publisher not connected to {self.host}:{self.port} after {timeout} s"
                + (f" ({self._connack_failure})" if self._connack_failure else "")
            )
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._connack_failure = reason.getName()
            return
        self.stats.connects += 1
        self.stats.sessions_resumed += int(flags.session_present)
        if self._disconnected_at is not None and self.replay_window_s > 0:
            # Runs before paho re-sends its unacknowledged messages, so replays of older
            # messages reach the broker first and per-device order is kept.
            since = self._disconnected_at - self.replay_window_s
            with self._lock:
                window = [m for t, m in self._acked_at if t >= since]
            for message in window:
                self._send(message)
            self.stats.replayed += len(window)
        self._connected.set()
        # paho re-sends its unacknowledged messages right after this callback returns, in
        # the same thread; the first PUBACK of this connection comes later. Until then new
        # messages held back by ``hold_while_offline`` must wait, or they would overtake.
        with self._lock:
            if self._unacked:
                self._ready_on_ack = True
            else:
                self._ready.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connected.is_set():
            self._disconnected_at = time.monotonic()
            self.stats.disconnects += 1
        self._connected.clear()
        with self._lock:
            self._ready.clear()
            self._ready_on_ack = False

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            if self._ready_on_ack:
                self._ready_on_ack = False
                self._ready.set()
            message = self._unacked.pop(mid, None)
            if message is None:
                self._early_acks[mid] = reason
            else:
                self._record_ack(message, reason)

    def _record_ack(self, message: Message, reason: ReasonCode) -> None:
        """Under ``self._lock``."""
        if reason.is_failure:
            self.stats.failed.append(f"{message.topic}: {reason.getName()}")
        else:
            self.stats.acked += 1
            if self.replay_window_s > 0:
                self._acked_at.append((time.monotonic(), message))
        self._lock.notify_all()

    # -- publishing ----------------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        # Not under self._lock: paho calls on_publish holding its own message mutex, which
        # publish() takes too. The PUBACK may therefore arrive before the mid is registered.
        info = self.client.publish(message.topic, message.payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish refused locally: {mqtt.error_string(info.rc)}")
        with self._lock:
            early = self._early_acks.pop(info.mid, None)
            if early is None:
                self._unacked[info.mid] = message
            else:
                self._record_ack(message, early)

    def publish(
        self,
        messages: Iterable[Message],
        per_second: float | None = None,
        *,
        hold_while_offline: bool = False,
    ) -> int:
        """Hand ``messages`` to paho (QoS 1), optionally paced.

        By default messages are handed over while disconnected too: paho keeps them, but a
        message handed over while the new connection is being set up goes out *before*
        paho's retransmissions of older ones. ``hold_while_offline`` keeps new messages
        back until the publisher is connected and its retransmissions (and replays) are
        sent, like a device buffering locally, so that per-device order survives a restart.
        """
        started = time.monotonic()
        count = 0
        for count, message in enumerate(messages, 1):
            if per_second:
                ahead = started + count / per_second - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if hold_while_offline:
                self._ready.wait()
            self._send(message)
            self.stats.published += 1
        return count

    def publish_in_background(
        self,
        messages: Sequence[Message],
        per_second: float | None = None,
        *,
        hold_while_offline: bool = False,
    ) -> threading.Thread:
        thread = threading.Thread(
            target=self.publish,
            args=(messages, per_second),
            kwargs={"hold_while_offline": hold_while_offline},
            name="publisher",
            daemon=True,
        )
        thread.start()
        return thread

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._unacked)

    def wait_all_acked(self, timeout: float) -> None:
        """Block until every message handed over so far has its PUBACK; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._unacked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(self._unacked)} of {self.stats.published} messages still without "
                        f"PUBACK after {timeout} s (connected: {self.connected})"
                    )
                self._lock.wait(min(remaining, 0.1))
        if self.stats.failed:
            raise RuntimeError(f"broker refused {len(self.stats.failed)}: {self.stats.failed[:3]}")


# -- readings ----------------------------------------------------------------------------------


def demo_registry(path: Path, households: int = 500) -> Registry:
    """Write a demo estate registry of ``households`` households to ``path`` and load it."""
    write_registry(path, households=households)
    return load_registry(path)


def devices_of_kind(registry: Registry, kind: DeviceKind, count: int) -> list[DeviceRef]:
    """The first ``count`` registered devices of ``kind`` (all estates, registry order)."""
    index = registry.index()
    found = [
        ref for estate in index.estate_ids() for ref in index.devices_of(estate) if ref.kind is kind
    ]
    if len(found) < count:
        raise ValueError(f"the registry holds {len(found)} {kind.value} devices, not {count}")
    return found[:count]


def water_readings(
    meters: Sequence[DeviceRef],
    per_device: int,
    *,
    first_seq: int = 1,
    base_time: datetime | None = None,
) -> list[Message]:
    """``per_device`` register readings of each meter, interleaved round-robin across meters.

    Reading ``n`` of a meter has ``seq = n`` and device time ``base_time + n s``
    (base: two hours ago, well inside the ingest horizon), so the same reading
    published twice has the same bytes, hence the same deterministic log id.
    """
    base = base_time or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    out: list[Message] = []
    for seq in range(first_seq, first_seq + per_device):
        ts = (base + timedelta(seconds=seq)).isoformat()
        for n, meter in enumerate(meters):
            body = {"ts": ts, "seq": seq, "volume_m3": round(100 + n + seq * 0.001, 3)}
            out.append(
                Message(
                    topic=topic_for(meter.estate, meter.kind, meter.device, "register"),
                    payload=json.dumps(body, separators=(",", ":")).encode(),
                    device=meter.device,
                    seq=seq,
                )
            )
    return out
