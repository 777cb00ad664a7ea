"""`estate ingest` as a real process: killed or stopped mid-stream, restarted, nothing lost.

The gateway acknowledges a message (PUBACK) only after the log append; its
MQTT session is persistent (fixed client id, MQTT 5 session expiry). What a
killed gateway had received but not acknowledged, and what was published while
it was down, the broker keeps for the session and delivers after the restart;
the deterministic reading ids turn redeliveries into absorbed duplicates.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from devices.registry import DeviceRef
from tests.ingest_component.conftest import (
    IngestProcess,
    LogWatcher,
    Prober,
    check_exactly_once,
)
from tests.support.brokers import Mosquitto
from tests.support.publisher import Publisher, water_readings


def test_gateway_killed_with_sigkill_mid_stream_loses_nothing(
    mosquitto: Mosquitto,
    ingest_processes: Callable[..., IngestProcess],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    """SIGKILL `estate ingest` while 50 devices stream at QoS 1, restart it with the same
    client id: every published reading is in the log exactly once."""
    gateway = ingest_processes(mosquitto.url, client_id="ingest-kill").start()
    publisher = publishers(mosquitto.host, mosquitto.port, client_id="dev-kill")
    prober.until_logged(publisher, watcher, check=gateway.check_alive)

    messages = water_readings(water_meters[:50], per_device=80)  # 4,000
    stream = publisher.publish_in_background(messages, per_second=800)

    deadline = time.monotonic() + 30
    while watcher.count_logged(messages) < len(messages) // 3:
        gateway.check_alive()
        assert time.monotonic() < deadline, "a third of the stream not in the log after 30 s"
        time.sleep(0.05)
    assert gateway.signal(signal.SIGKILL) == -signal.SIGKILL
    in_log_at_kill = watcher.count_logged(messages)
    time.sleep(0.5)  # the stream goes on while no gateway runs: the broker queues it
    gateway.start()
    stream.join(timeout=30)
    publisher.wait_all_acked(timeout=30)
    watcher.wait_for(messages, 60, check=gateway.check_alive)
    assert gateway.signal(signal.SIGTERM) == 0, gateway.stderr()
    watcher.poll()

    assert 0 < in_log_at_kill < len(messages), "the kill did not happen mid-stream"
    check_exactly_once(watcher.readings, messages)
    assert not watcher.rejected
    assert "Traceback" not in gateway.stderr()


def test_gateway_stopped_gracefully_gets_what_was_published_while_it_was_down(
    mosquitto: Mosquitto,
    ingest_processes: Callable[..., IngestProcess],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    """SIGTERM `estate ingest` (a deploy), publish while it is down, start it again: its
    persistent session held the subscription, so the broker kept everything for it."""
    gateway = ingest_processes(mosquitto.url, client_id="ingest-term").start()
    publisher = publishers(mosquitto.host, mosquitto.port, client_id="dev-term")
    prober.until_logged(publisher, watcher, check=gateway.check_alive)

    before = water_readings(water_meters[:50], per_device=10)
    publisher.publish(before)
    publisher.wait_all_acked(timeout=30)
    watcher.wait_for(before, 30, check=gateway.check_alive)
    assert gateway.signal(signal.SIGTERM) == 0, gateway.stderr()

    during = water_readings(water_meters[:50], per_device=10, first_seq=11)
    publisher.publish(during)
    publisher.wait_all_acked(timeout=30)  # the broker took responsibility for them

    gateway.start()
    messages = before + during
    watcher.wait_for(messages, 30, check=gateway.check_alive)
    assert gateway.signal(signal.SIGTERM) == 0, gateway.stderr()
    watcher.poll()
    check_exactly_once(watcher.readings, messages)
