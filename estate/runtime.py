"""Wiring of the embedded runtime: the one place that knows every package."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from alerts.cli import OUTBOX_FILE
from alerts.delivery import DeliveryCounters, run_dispatcher
from alerts.outbox import OutboxStatus
from console.app import bound_port, build_app, serve
from console.context import ConsoleOptions
from console.tokens import TokenStore
from devices.demo_estate import write_registry
from devices.registry import RegistryIndex, load_registry, summarize
from estate.settings import Settings
from eventlog.log import EventLog
from eventlog.sqlite import SqliteEventLog
from ingest.embedded_broker import EmbeddedBroker, free_port
from ingest.gateway import Gateway, GatewayConfig
from ingest.pipeline import Pipeline
from ingest.sink import InlineSink, ProcessSink, Sink, WorkerSpec
from processors.detectors import ALL_DETECTORS
from processors.engine import Engine, EngineConfig
from processors.influx import InfluxTarget, InfluxWriter
from processors.influx_schema import registry_lookup
from processors.projections import Projections
from processors.replay import Difference, alert_spans, compare, log_readings, replay_readings
from processors.rules import load_rules
from processors.runner import Consumer, DetectorRunner
from processors.statestore import StateStore

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


class Processing:
    """The detector runner and the projections over one log, with their state store."""

    def __init__(self, settings: Settings, index: RegistryIndex, event_log: EventLog) -> None:
        rules = load_rules(settings.rules)
        config = EngineConfig(lateness=timedelta(seconds=settings.lateness_s))
        self.store = StateStore(settings.state_path)
        self.detectors = DetectorRunner(
            event_log, self.store, lambda: Engine(index, rules, ALL_DETECTORS, config)
        )
        self.projections = Projections(event_log, self.store)

    def load(self, echo: Callable[[str], None]) -> None:
        for consumer in (self.detectors, self.projections):
            resumed = consumer.load()
            where = "its snapshot" if resumed else "the start of the log"
            echo(f"{consumer.name}: resuming from {where} ({consumer.lag()} records to read)")

    def status(self) -> str:
        opened = self.projections.open_alerts()
        by_kind = ", ".join(
            f"{k} {v}" for k, v in sorted(Counter(a.detector for a in opened).items())
        )
        return (
            f"detectors: events appended {self.detectors.events_appended}, lag "
            f"{self.detectors.lag()}; open alerts {len(opened)}"
            + (f" [{by_kind}]" if by_kind else "")
        )

    def close(self) -> None:
        self.store.close()


def run_detectors(
    settings: Settings,
    *,
    follow: bool,
    snapshot_every_s: float = 5.0,
    echo: Callable[[str], None] = print,
) -> None:
    """Run the detectors over the log from their snapshot: to its end, or on (``follow``)
    until SIGINT/SIGTERM. Not beside ``estate up``, which runs them itself."""
    index = load_registry(settings.registry_path).index()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SqliteEventLog(settings.log_path) as event_log:
        processing = Processing(settings, index, event_log)
        runner = processing.detectors
        runner.snapshot_every_s = snapshot_every_s
        try:
            resumed = runner.load()
            echo(f"detectors: from {'their snapshot' if resumed else 'zero'}, lag {runner.lag()}")
            last = time.monotonic()
            while not stop.is_set():
                if not runner.poll():
                    if not follow:
                        break
                    stop.wait(0.2)
                if time.monotonic() - last >= 5:
                    last = time.monotonic()
                    echo(f"detectors: {runner.records} records, lag {runner.lag()}")
            runner.save()
            echo(f"detectors: {runner.records} records, {runner.events_appended} events appended")
        finally:
            processing.close()


def what_if(
    settings: Settings,
    rules_path: Path,
    *,
    since: datetime | None,
    until: datetime | None,
    echo: Callable[[str], None] = print,
) -> list[Difference]:
    """Re-run the detectors over the log's readings under the current rules and under
    ``rules_path``; which alerts the other rules add or remove. Touches nothing live."""
    index = load_registry(settings.registry_path).index()
    current, other = load_rules(settings.rules), load_rules(rules_path)
    config = EngineConfig(lateness=timedelta(seconds=settings.lateness_s))
    echo(f"rules: current {current.version} vs {other.version} ({rules_path})")
    with SqliteEventLog(settings.log_path) as event_log:
        spans = []
        for label, rules in (("current", current), ("other", other)):

            def progress(n: int, label: str = label) -> None:
                echo(f"{label}: {n} readings read")

            readings = log_readings(event_log, since, until, progress)
            events = replay_readings(readings, index, rules, ALL_DETECTORS, config, until=until)
            spans.append(alert_spans(events))
            echo(f"{label} rules: {len(spans[-1])} alerts")
    return compare(spans[0], spans[1])


def rebuild(settings: Settings, *, detectors: bool, echo: Callable[[str], None] = print) -> str:
    """Drop the projections (and, with ``detectors``, the detector state) and rebuild them
    from the log; the projections' digest. Stop ``estate up`` first."""
    index = load_registry(settings.registry_path).index()
    with SqliteEventLog(settings.log_path) as event_log:
        processing = Processing(settings, index, event_log)
        try:
            consumers: list[Consumer] = [processing.projections]
            if detectors:
                consumers.insert(0, processing.detectors)
            for consumer in consumers:
                dropped = processing.store.delete(consumer.name)
                echo(f"{consumer.name}: dropped {dropped} snapshot(s); reading the log from zero")
                last = [time.monotonic()]

                def progress(
                    done: int, name: str = consumer.name, last: list[float] = last
                ) -> None:
                    if time.monotonic() - last[0] >= 1:
                        last[0] = time.monotonic()
                        echo(f"{name}: {done} records")

                done = consumer.catch_up(progress)
                consumer.save()
                echo(f"{consumer.name}: {done} records read")
            if detectors:
                added = processing.detectors.events_appended
                echo(f"detectors: {added} events that were not already in the log")
            p = processing.projections
            echo(
                f"projections: {len(p.alerts)} alerts ({len(p.open_alerts())} open), "
                f"{len(p.devices)} devices, digest {p.digest()}"
            )
            return p.digest()
        finally:
            processing.close()


class EmbeddedStack:
    """Registry, log, detectors, projections, broker and gateway of ``estate up``."""

    def __init__(self, settings: Settings, echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.echo = echo
        self.stop_event = asyncio.Event()
        self.broker: EmbeddedBroker | None = None
        self.gateway: Gateway | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.deliveries = DeliveryCounters()
        self.http_url: str | None = None
        self.influx: InfluxWriter | None = None
        self.tokens = TokenStore.in_data_dir(settings.data_dir)
        self._http: web.AppRunner | None = None
        self._exit = contextlib.ExitStack()

    async def start(self) -> None:
        settings, echo = self.settings, self.echo
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_registry(settings, echo)
        self.registry = load_registry(settings.registry_path)
        self.index = self.registry.index()
        echo(f"registry {settings.registry_path}:\n{summarize(self.registry).to_text()}")
        self.log = self._exit.enter_context(SqliteEventLog(settings.log_path))
        echo(f"event log {settings.log_path}")
        self.processing = Processing(settings, self.index, self.log)
        self._exit.callback(self.processing.close)
        self.processing.load(echo)
        self.tasks = [
            asyncio.create_task(self.processing.detectors.run(self.stop_event)),
            asyncio.create_task(self.processing.projections.run(self.stop_event)),
            asyncio.create_task(
                run_dispatcher(
                    self.log,
                    self.index,
                    settings.data_dir / OUTBOX_FILE,
                    self.stop_event,
                    counters=self.deliveries,
                )
            ),
        ]
        echo(f"webhooks: outbox {settings.data_dir / OUTBOX_FILE}")
        if settings.influx_url is not None:
            target = InfluxTarget.from_url(
                settings.influx_url, os.environ.get("ESTATE_INFLUX_TOKEN") or None
            )
            self.influx = InfluxWriter(self.log, target, lookup=registry_lookup(self.index))
            self.tasks.append(asyncio.create_task(self._project_influx(self.influx)))
            echo(f"time series: InfluxDB {redact_url(settings.influx_url)}")
        if settings.mqtt_url is None:
            self.broker = EmbeddedBroker(port=settings.mqtt_port or free_port())
            await self.broker.start()
            echo(f"embedded MQTT broker (amqtt) on {self.broker.url}")
            self.mqtt_url, protocol = self.broker.url, settings.mqtt_protocol or "3.1.1"
        else:
            echo(f"using external MQTT broker {redact_url(settings.mqtt_url)}")
            self.mqtt_url, protocol = settings.mqtt_url, settings.mqtt_protocol or "5"
        sink = InlineSink(Pipeline(self.index, settings.hash_salt()), self.log)
        self.gateway = make_gateway(settings, sink, self.mqtt_url, protocol)
        self.gateway.start()
        if not await asyncio.to_thread(self.gateway.wait_connected, 15):
            echo(f"warning: not yet connected to {self.mqtt_url}; still trying")
        await self._serve_http()

    async def _serve_http(self) -> None:
        address = self.settings.http_address()
        if address is None:
            return
        app = build_app(
            self.processing.projections,
            self.log,
            self.index,
            self.tokens,
            ConsoleOptions(grafana_url=self.settings.grafana_url),
            deliveries=OutboxStatus(self.settings.data_dir / OUTBOX_FILE),
        )
        host, port = address
        try:
            self._http = await serve(app, host, port)
        except OSError as exc:
            raise OSError(
                f"cannot serve the console on {host}:{port}: {exc.strerror or exc} "
                "(choose another with --http HOST:PORT, or --http off)"
            ) from None
        self.http_url = f"http://{host}:{bound_port(self._http)}/"
        self.echo(f"console and HTTP API on {self.http_url} (OpenAPI: api/v1/openapi.json)")
        if not self.tokens.records():
            self.echo(
                "no API tokens yet: create one with `estate tokens create --role admin --name you`"
            )

    async def _project_influx(self, writer: InfluxWriter) -> None:
        async with writer:
            await writer.setup()
            stopper = asyncio.create_task(self.stop_event.wait())
            stopper.add_done_callback(lambda _: writer.stop())
            try:
                await writer.run()
            finally:
                stopper.cancel()

    def check(self) -> None:
        """Raise what made a component fail (a failed component stops the service loudly)."""
        if self.gateway is not None:
            self.gateway.raise_if_failed()
        for task in self.tasks:
            if task.done():
                task.result()

    def status(self) -> list[str]:
        lines = [status_line(self.gateway)] if self.gateway is not None else []
        d = self.deliveries
        webhooks = (
            f"webhooks: queued {d.messages_enqueued}, delivered {d.delivered}, "
            f"failed attempts {d.attempts_failed}, in flight {d.in_flight}"
        )
        return [*lines, self.processing.status(), webhooks]

    async def stop(self) -> None:
        self.stop_event.set()
        try:
            if self._http is not None:
                await self._http.cleanup()
            if self.gateway is not None:
                await asyncio.to_thread(self.gateway.stop)
            if self.broker is not None:
                await self.broker.stop()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            self._exit.close()


async def run_embedded(
    settings: Settings, *, duration: float | None = None, echo: Callable[[str], None] = print
) -> None:
    """Run the embedded stack until Ctrl-C / SIGTERM (or ``duration`` seconds)."""
    stack = EmbeddedStack(settings, echo)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stack.stop_event.set)
    try:
        await stack.start()
        echo("running; Ctrl-C to stop")
        started = time.monotonic()
        while not stack.stop_event.is_set():
            timeout = 5.0
            if duration is not None:
                timeout = min(timeout, max(0.0, duration - (time.monotonic() - started)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stack.stop_event.wait(), timeout)
            stack.check()
            for line in stack.status():
                echo(line)
            if duration is not None and time.monotonic() - started >= duration:
                break
    finally:
        await stack.stop()
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
