"""The broker restarts in the middle of a QoS 1 stream: no reading is lost, duplicates are absorbed.

Both ends hold persistent sessions: the gateway (fixed client id, MQTT 5
session expiry, acknowledgement only after the log append) and the publisher
(:class:`tests.support.publisher.Publisher`: paho sends unacknowledged QoS 1
messages again after it reconnected). Mosquitto runs with persistence on.

SIGTERM: Mosquitto writes its state (sessions, subscriptions, queued and
in-flight messages) to ``mosquitto.db`` when it exits, so the publisher's and
the gateway's own retransmissions must be enough: the publisher replays
nothing.

SIGKILL: Mosquitto 2.0 has no setting that makes a PUBACK imply persistence.
Persistence is a snapshot of the whole in-memory state, taken in the main
loop when ``last_backup + autosave_interval < now`` in whole seconds (with
``autosave_interval 1`` at most every ~2 s), or, with ``autosave_on_changes``,
after that many changes — in both cases after the PUBACKs of the loop
iteration were already written (``man mosquitto.conf``; ``src/loop.c``). A
killed broker therefore forgets messages it acknowledged after its last
snapshot: measured here without a replay, 750-1,200 of the 4,000 readings —
the backlog the broker held for the (frozen) gateway — were lost. A device
that must lose nothing keeps what the broker acknowledged in a local buffer
for longer than the snapshot age and publishes that window again after every
reconnect (here 5 s); the test publisher does exactly that
(``replay_window_s``) without ever looking at the log. The check stays
strict: every published reading is in the log exactly once, in per-device
order. The replayed window also makes the gateway meet many duplicates, which
must be absorbed (same bytes → same deterministic id).

In both cases the gateway is frozen (SIGSTOP) for 1.5 s before the restart so
that the broker holds a backlog for its session, and the broker is frozen for
a moment before it goes down so that the publisher holds ~100 messages without
PUBACK that only paho's retransmission can bring in.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from devices.registry import DeviceRef
from tests.ingest_component.conftest import (
    IngestProcess,
    LogWatcher,
    Prober,
    check_exactly_once,
)
from tests.support.brokers import Mosquitto
from tests.support.publisher import Publisher, water_readings

AUTOSAVE_INTERVAL_S = 1
REPLAY_WINDOW_S = 5.0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_broker_restart_mid_stream_loses_no_reading(
    sig: signal.Signals,
    mosquitto_factory: Callable[..., Mosquitto],
    ingest_processes: Callable[..., IngestProcess],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    broker = mosquitto_factory(persistence=True, autosave_interval=AUTOSAVE_INTERVAL_S)
    broker.start()
    gateway = ingest_processes(broker.url, client_id="ingest-restart").start()
    killed = sig is signal.SIGKILL
    publisher = publishers(
        broker.host,
        broker.port,
        client_id="dev-restart",
        protocol="5",
        max_inflight=0,  # unlimited: a replayed window goes out before anything newer
        replay_window_s=REPLAY_WINDOW_S if killed else 0.0,
    )
    prober.until_logged(publisher, watcher, check=gateway.check_alive)
    subscribed_at = time.monotonic()

    messages = water_readings(water_meters[:50], per_device=80)  # 4,000 from 50 devices
    stream = publisher.publish_in_background(messages, per_second=800, hold_while_offline=True)

    # Mid-stream, and (for SIGKILL) after the gateway's session made it into a snapshot.
    deadline = time.monotonic() + 30
    while True:
        in_log = watcher.count_logged(messages)
        if in_log >= len(messages) // 4 and time.monotonic() - subscribed_at > 2.5:
            break
        assert time.monotonic() < deadline, f"only {in_log} readings in the log after 30 s"
        time.sleep(0.05)
    # The gateway lags (frozen): the broker holds a backlog for its session, part of it
    # newer than the broker's last snapshot.
    assert gateway.proc is not None
    gateway.proc.send_signal(signal.SIGSTOP)
    time.sleep(1.5)
    # Freeze the broker for a moment too, so that the publisher has many messages without
    # PUBACK when the broker goes down: only paho's retransmission can bring those in.
    broker.pause()
    deadline = time.monotonic() + 10
    while publisher.unacked < 100:
        assert time.monotonic() < deadline, f"{publisher.unacked} unacknowledged after 10 s"
        time.sleep(0.01)
    unacked_at_restart = publisher.unacked
    broker.restart(sig, down_for=0.5)
    gateway.proc.send_signal(signal.SIGCONT)

    stream.join(timeout=30)
    assert not stream.is_alive()
    publisher.wait_all_acked(timeout=60)
    watcher.wait_for(messages, 60, check=gateway.check_alive)
    assert gateway.signal(signal.SIGTERM) == 0, gateway.stderr()
    watcher.poll()
    status = gateway.last_status()
    assert status is not None, gateway.stdout()
    received, _appended, duplicates = status

    assert in_log < len(messages), "the restart did not happen mid-stream"
    assert publisher.stats.disconnects >= 1
    check_exactly_once(watcher.readings, messages)
    assert not watcher.rejected
    assert "Traceback" not in gateway.stderr()
    if killed:
        assert publisher.stats.replayed > 0
        assert duplicates > 0, "the replayed window was not absorbed"
    else:
        assert publisher.stats.replayed == 0
    print(
        f"{sig.name}: {in_log} in the log at the freeze, {unacked_at_restart} unacknowledged "
        f"by the broker at the restart; publisher replayed {publisher.stats.replayed}; gateway "
        f"received {received}, duplicates absorbed {duplicates}"
    )
