"""Wiring of the embedded runtime: the one place that knows every package."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from devices.demo_estate import write_registry
from devices.registry import load_registry, summarize
from estate.settings import Settings
from eventlog.sqlite import SqliteEventLog
from ingest.embedded_broker import EmbeddedBroker, free_port
from ingest.gateway import Gateway, GatewayConfig
from ingest.pipeline import Pipeline
from ingest.sink import InlineSink, ProcessSink, Sink, WorkerSpec

log = logging.getLogger("estate")


def ensure_registry(settings: Settings, echo: Callable[[str], None]) -> None:
    """Generate the demo estate registry when the configured one does not exist yet."""
    path = settings.registry_path
    if path.exists():
        return
    if settings.registry is not None:
        raise FileNotFoundError(f"registry {path} does not exist")
    echo(f"no registry at {path}: generating the demo estate there")
    write_registry(path)


def make_gateway(settings: Settings, sink: Sink, url: str, protocol: str) -> Gateway:
    config = GatewayConfig(
        url=url,
        client_id=settings.mqtt_client_id,
        protocol="3.1.1" if protocol == "3.1.1" else "5",
        shared_group=settings.mqtt_shared_group,
    )
    return Gateway(sink, config)


def redact_url(url: str) -> str:
    """``url`` with its password (if any) masked, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def status_line(gateway: Gateway) -> str:
    s = gateway.stats
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(s.rejected_by_reason.items())) or "none"
    return (
        f"received {s.received}, readings appended {s.readings_appended} "
        f"(duplicates {s.readings_duplicate}), rejected {sum(s.rejected_by_reason.values())} "
        f"[{rejected}]"
    )


async def run_embedded(
    settings: Settings, *, duration: float | None = None, echo: Callable[[str], None] = print
) -> None:
    """Run the embedded stack until Ctrl-C / SIGTERM (or ``duration`` seconds)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_registry(settings, echo)
    registry = load_registry(settings.registry_path)
    echo(f"registry {settings.registry_path}:\n{summarize(registry).to_text()}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    broker: EmbeddedBroker | None = None
    gateway: Gateway | None = None
    with SqliteEventLog(settings.log_path) as event_log:
        echo(f"event log {settings.log_path}")
        try:
            if settings.mqtt_url is None:
                broker = EmbeddedBroker(port=settings.mqtt_port or free_port())
                await broker.start()
                echo(f"embedded MQTT broker (amqtt) on {broker.url}")
                url, protocol = broker.url, settings.mqtt_protocol or "3.1.1"
            else:
                echo(f"using external MQTT broker {redact_url(settings.mqtt_url)}")
                url, protocol = settings.mqtt_url, settings.mqtt_protocol or "5"
            sink = InlineSink(Pipeline(registry.index(), settings.hash_salt()), event_log)
            gateway = make_gateway(settings, sink, url, protocol)
            gateway.start()
            if not await asyncio.to_thread(gateway.wait_connected, 15):
                echo(f"warning: not yet connected to {url}; still trying")
            echo("running; Ctrl-C to stop")
            started = time.monotonic()
            while not stop.is_set():
                timeout = 5.0
                if duration is not None:
                    timeout = min(timeout, max(0.0, duration - (time.monotonic() - started)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout)
                gateway.raise_if_failed()
                echo(status_line(gateway))
                if duration is not None and time.monotonic() - started >= duration:
                    break
        finally:
            if gateway is not None:
                await asyncio.to_thread(gateway.stop)
            if broker is not None:
                await broker.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    echo("stopped cleanly")


def run_ingest(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Run the ingest gateway alone against ``settings.mqtt_url`` until SIGINT/SIGTERM."""
    if settings.mqtt_url is None:
        raise ValueError("estate ingest needs --mqtt-url (or ESTATE_MQTT_URL)")
    load_registry(settings.registry_path)  # refuse a broken registry here, with its message
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    SqliteEventLog(settings.log_path).close()  # likewise a broken log
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # Judging and appending run in a worker process: paho's loop keeps one core to itself.
    sink = ProcessSink(WorkerSpec(settings.registry_path, settings.hash_salt(), settings.log_path))
    gateway = make_gateway(settings, sink, settings.mqtt_url, settings.mqtt_protocol or "5")
    gateway.start()
    echo(
        f"ingest: {redact_url(settings.mqtt_url)} → {settings.log_path} (client id "
        f"{settings.mqtt_client_id}, filter {gateway.config.topic_filter})"
    )
    try:
        last, was_connected = time.monotonic(), True
        while not stop.wait(0.2):
            gateway.raise_if_failed()
            if gateway.connected != was_connected:
                was_connected = gateway.connected
                state = "connected to" if was_connected else "waiting for"
                echo(f"ingest: {state} the MQTT broker {redact_url(settings.mqtt_url)}")
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                echo(status_line(gateway))
    finally:
        gateway.stop()
        echo(status_line(gateway))
