"""Ingest throughput: a bare paho subscriber vs the full gateway, same broker, same payloads.

Both runs drain messages that were queued for their persistent session while
they were offline, so the publisher's cost is not measured: (a) a paho client
that only counts messages (auto-ack), (b) the gateway — judge, append to the
embedded SQLite log, then acknowledge. Prints both rates and their ratio.

    .venv/bin/python benchmarks/ingest_bench.py [--messages 50000] [--devices 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.catalogue import DeviceKind
from devices.demo_estate import write_registry
from devices.registry import load_registry
from eventlog.sqlite import SqliteEventLog
from ingest.gateway import Gateway, GatewayConfig
from ingest.pipeline import Pipeline
from ingest.sink import InlineSink, ProcessSink, Sink, WorkerSpec
from tests.support.brokers import Mosquitto


def _client(client_id: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


def _session_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return props


def payloads(registry_path: Path, devices: int, messages: int) -> list[tuple[str, bytes]]:
    index = load_registry(registry_path).index()
    meters = [
        r
        for e in index.estate_ids()
        for r in index.devices_of(e)
        if r.kind is DeviceKind.WATER_METER
    ][:devices]
    start = datetime.now(UTC) - timedelta(hours=1)
    out = []
    for n in range(messages):
        ref = meters[n % len(meters)]
        seq = n // len(meters)
        body = {
            "ts": (start + timedelta(seconds=seq)).isoformat(),
            "seq": seq,
            "volume_m3": 100.0 + seq * 0.001,
            "flow_l_min": 1.5,
        }
        topic = f"estates/{ref.estate}/water_meter/{ref.device}/register"
        out.append((topic, json.dumps(body).encode()))
    return out


def publish_all(url_port: int, msgs: list[tuple[str, bytes]]) -> None:
    pub = _client("bench-publisher")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", url_port)
    pub.loop_start()
    infos = [pub.publish(t, p, qos=1) for t, p in msgs]
    for info in infos:
        info.wait_for_publish(timeout=120)
    pub.disconnect()
    pub.loop_stop()


def prime_session(port: int, client_id: str, topic: str) -> None:
    """Connect once with a persistent session and subscribe, so messages queue for it."""
    done = threading.Event()
    c = _client(client_id)
    c.on_subscribe = lambda *a: done.set()
    c.connect("127.0.0.1", port, clean_start=True, properties=_session_props())
    c.loop_start()
    c.subscribe(topic, qos=1)
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def bare(port: int, n: int) -> float:
    count = 0
    done = threading.Event()

    def on_message(*_: Any) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    c = _client("bench-bare")
    c.on_message = on_message
    cpu = time.process_time()
    started = time.perf_counter()
    c.connect("127.0.0.1", port, clean_start=False, properties=_session_props())
    c.loop_start()
    if not done.wait(300):
        raise RuntimeError(f"bare subscriber got {count} of {n}")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    c.disconnect()
    c.loop_stop()
    print(f"  bare: {elapsed:.2f} s wall, {cpu / n * 1e6:.0f} µs CPU per message")
    return n / elapsed


def gateway(port: int, n: int, sink: Sink) -> float:
    gw = Gateway(sink, GatewayConfig(url=f"mqtt://127.0.0.1:{port}", client_id="bench-gateway"))
    started = time.perf_counter()
    gw.start()
    deadline = started + 300
    while gw.stats.acked < n and time.perf_counter() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    stats = gw.stats
    gw.stop()
    if stats.readings_appended != n:
        raise RuntimeError(f"gateway appended {stats.readings_appended} of {n}: {stats}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    registry_path = work / "estate.yaml"
    write_registry(registry_path, households=600)
    msgs = payloads(registry_path, args.devices, args.messages)
    print(
        f"{args.messages} messages from {args.devices} water meters, "
        f"{sum(len(p) for _, p in msgs) / len(msgs):.0f} B payloads, Mosquitto, MQTT 5, QoS 1"
    )
    salt = b"benchmark-salt-0123456789"
    index = load_registry(registry_path).index()
    rates: dict[str, list[float]] = {"bare": [], "worker": [], "inline": []}
    with Mosquitto() as broker:
        for run in range(args.repeat):
            prime_session(broker.port, "bench-bare", "estates/+/+/+/+")
            publish_all(broker.port, msgs)
            rates["bare"].append(bare(broker.port, len(msgs)))
            for mode in ("worker", "inline"):
                prime_session(broker.port, "bench-gateway", "estates/+/+/+/+")
                publish_all(broker.port, msgs)
                log_path = work / f"log-{mode}-{run}.db"
                if mode == "worker":
                    sink: Sink = ProcessSink(WorkerSpec(registry_path, salt, log_path))
                    rates[mode].append(gateway(broker.port, len(msgs), sink))
                else:
                    with SqliteEventLog(log_path) as log:
                        sink = InlineSink(Pipeline(index, salt), log)
                        rates[mode].append(gateway(broker.port, len(msgs), sink))
            print(
                f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} msg/s" for k, v in rates.items())
            )
    median = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
    print(f"median: bare paho subscriber {median['bare']:,.0f} msg/s")
    for mode, label in (("worker", "estate ingest (worker process)"), ("inline", "in-process")):
        print(
            f"  gateway, {label}: {median[mode]:,.0f} msg/s, "
            f"ratio {median[mode] / median['bare']:.2f} (target ≥ 0.5)"
        )


if __name__ == "__main__":
    main()
