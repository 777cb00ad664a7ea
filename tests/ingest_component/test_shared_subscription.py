"""Two `estate ingest` replicas on one MQTT 5 shared subscription split a stream.

Both processes append to the same SQLite log file (WAL mode serialises the
writers); Mosquitto hands each message of the group to one replica only.
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


def test_two_replicas_on_a_shared_subscription_split_the_stream_without_loss_or_duplicates(
    mosquitto: Mosquitto,
    ingest_processes: Callable[..., IngestProcess],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    first = ingest_processes(
        mosquitto.url, name="replica-a", client_id="ingest-a", shared_group="ingest"
    ).start()
    publisher = publishers(mosquitto.host, mosquitto.port, client_id="dev-shared")
    prober.until_logged(publisher, watcher, check=first.check_alive)  # the log file exists now
    second = ingest_processes(
        mosquitto.url, name="replica-b", client_id="ingest-b", shared_group="ingest"
    ).start()

    # Both are in the group once the second one reports a probe of its own (the replicas
    # print a status line every 5 s).
    deadline = time.monotonic() + 30
    while (second.last_status() or (0,))[0] == 0:
        second.check_alive()
        first.check_alive()
        assert time.monotonic() < deadline, "the second replica received nothing in 30 s"
        publisher.publish([prober.next()])
        time.sleep(0.25)

    messages = water_readings(water_meters[:100], per_device=50)  # 5,000 from 100 devices
    publisher.publish(messages)
    publisher.wait_all_acked(timeout=60)

    def both_alive() -> None:
        first.check_alive()
        second.check_alive()

    watcher.wait_for(messages, 60, check=both_alive)
    assert first.signal(signal.SIGTERM) == 0, first.stderr()
    assert second.signal(signal.SIGTERM) == 0, second.stderr()
    watcher.poll()

    check_exactly_once(watcher.readings, messages)
    assert not watcher.rejected
    shares = []
    for replica in (first, second):
        status = replica.last_status()
        assert status is not None, replica.stdout()
        assert "Traceback" not in replica.stderr()
        shares.append(status[0])
    # Every message (stream and logged probes; probes sent before the first replica had
    # subscribed were dropped by the broker) went to exactly one replica, and each replica
    # had a share of the stream itself (more than all the probes together).
    probes = sum(1 for r in watcher.readings if r.device == prober.meter.device)
    assert sum(shares) == len(messages) + probes, (shares, probes)
    assert all(share > probes for share in shares), (shares, probes)
    print(f"shares of {len(messages)} readings + {probes} probes: {shares}")
