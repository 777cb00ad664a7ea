"""``estate demo``: the embedded stack plus a simulated estate, a scenario and a receiver.

Everything a newcomer needs to see the product work, in one process: the scenario's
registry is written to the demo's data directory with its street offices' webhooks
pointing at an in-process reference receiver (secrets generated for the run), the
embedded stack starts (broker, log, detectors, projections, webhook delivery), and
the scenario's simulator publishes over MQTT at accelerated time into the broker.
A status block every few seconds shows readings/s, alerts by kind and deliveries; at
the end (``--duration`` or Ctrl-C) a summary compares the alerts with the scenario's
ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.receiver import run_receiver
from alerts.signing import generate_secret, parse_secrets
from console.tokens import Role
from devices.demo_estate import dump_registry
from estate.runtime import EmbeddedStack
from estate.settings import Settings
from ingest.embedded_broker import free_port
from processors.replay import AlertSpan
from processors.scoring import score, score_table
from simulators.clock import SimClock
from simulators.estate import EstateSimulator
from simulators.mqtt import MqttPublisher
from simulators.scenario import Scenario, load_scenario

#: Files of a demo data directory, removed at the start of a fresh run.
DEMO_FILES = (
    "estate.yaml",
    "estate.db",
    "state.db",
    "outbox.sqlite",
    "received.sqlite",
    "tokens.json",
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    scenario: str = "demo"
    speed: float = 600.0
    duration: float | None = None  #: wall seconds; None = until Ctrl-C
    keep: bool = False  #: keep the data of an earlier run (default: start afresh)
    receiver_port: int | None = None


def _point_webhooks(scenario: Scenario, port: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The scenario's registry with every webhook aimed at the local receiver, and a
    fresh secret per ``secret_env`` (from the environment when already set)."""
    data = scenario.registry.model_dump(mode="json", exclude_defaults=True)
    env: dict[str, str] = {}
    for district in data["districts"]:
        for office in district.get("street_offices", []):
            for hook in office.get("webhooks", []):
                hook["url"] = f"http://127.0.0.1:{port}/webhooks/{office['id']}"
                name = hook.get("secret_env")
                if name is None:  # a secret file: the demo brings its own secrets
                    hook.pop("secret_file", None)
                    name = hook["secret_env"] = f"ESTATE_WEBHOOK_SECRET_{office['id'].upper()}"
                env[name] = os.environ.get(name) or generate_secret()
    return data, env


def _prepare(
    settings: Settings, options: DemoOptions, scenario: Scenario, port: int
) -> tuple[Settings, dict[str, str]]:
    """A fresh data directory with the scenario's registry; the settings that use it and
    the webhook secrets (also put into the environment for the dispatcher)."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if not options.keep:
        for name in DEMO_FILES:
            for path in data_dir.glob(f"{name}*"):  # with SQLite's -wal / -shm companions
                path.unlink()
    registry, secrets_env = _point_webhooks(scenario, port)
    os.environ.update(secrets_env)
    (data_dir / "estate.yaml").write_text(
        dump_registry(registry, f"demo registry of scenario {scenario.name}"), encoding="utf-8"
    )
    return settings.model_copy(update={"registry": data_dir / "estate.yaml"}), secrets_env


def _publish(
    simulator: EstateSimulator,
    clock: SimClock,
    url: str,
    stop: threading.Event,
    sent: list[int],
    failure: list[BaseException],
) -> None:
    """Publish the simulator's messages at the clock's pace until done or ``stop``."""
    try:
        publisher = MqttPublisher(url, client_id="estate-demo-simulator", protocol="3.1.1")
        publisher.connect()
        try:
            for message in simulator.messages():
                if stop.is_set():
                    break
                clock.wait_until(message.at)
                publisher.publish(message)
                sent[0] += 1
            publisher.flush()
        finally:
            publisher.close()
    except BaseException as exc:  # reported by the demo loop, not lost in the thread
        failure.append(exc)


def _spans(stack: EmbeddedStack) -> list[AlertSpan]:
    out = []
    for a in stack.processing.projections.alerts.values():
        out.append(
            AlertSpan(
                alert_id=a.alert_id,
                estate=a.estate,
                device=a.device,
                condition=a.condition,
                detector=a.detector,
                severity=a.severity,
                start=a.raised_at,
                end=a.resolved_at or a.cleared_at,
                explanation=a.explanation,
            )
        )
    return out


async def run_demo(
    settings: Settings, options: DemoOptions, echo: Callable[[str], None] = print
) -> None:
    """Run the demo until the duration ends or Ctrl-C / SIGTERM."""
    scenario = load_scenario(options.scenario)
    port = options.receiver_port or free_port()
    settings, secrets_env = _prepare(settings, options, scenario, port)
    span = scenario.duration
    # The latest whole-day shift of the scenario that has ended by now: its anomalies keep
    # their local times of day (daylight, evening charging) and no reading is in the future.
    days = (datetime.now(UTC) - span - scenario.start) // timedelta(days=1)
    start = scenario.start + timedelta(days=days)
    simulator = scenario.simulator(start=start)
    echo(
        f"demo: scenario {scenario.name!r} — {scenario.description.strip()}\n"
        f"demo: simulating {span} from {start.isoformat()} at {options.speed:g}× "
        f"(≈ {span.total_seconds() / options.speed:.0f} s)"
    )

    stack = EmbeddedStack(settings, echo)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stack.stop_event.set)
    stop_publishing = threading.Event()
    sent: list[int] = [0]
    failure: list[BaseException] = []
    receiver_ready = asyncio.Event()
    receiver: asyncio.Task[None] | None = None
    publisher: threading.Thread | None = None
    clock = SimClock(start, options.speed)
    began = time.monotonic()
    try:
        receiver = asyncio.create_task(
            run_receiver(
                "127.0.0.1",
                port,
                [key for value in secrets_env.values() for key in parse_secrets(value)],
                settings.data_dir / "received.sqlite",
                stack.stop_event,
                ready=receiver_ready,
            )
        )
        await asyncio.wait_for(receiver_ready.wait(), 10)
        echo(f"demo: street-office webhook receiver on http://127.0.0.1:{port}/")
        token = None
        if settings.http_address() is not None:
            token, _ = stack.tokens.create("demo", Role.ADMIN)
        await stack.start()
        if stack.http_url is not None:
            echo(f"demo: control-room console on {stack.http_url} — log in with {token}")
        publisher = threading.Thread(
            target=_publish,
            args=(
                simulator,
                clock,
                stack.mqtt_url,
                stop_publishing,
                sent,
                failure,
            ),
            name="demo-simulator",
            daemon=True,
        )
        publisher.start()
        echo("demo: running; Ctrl-C to stop")
        await _watch(stack, options, began, sent, failure, echo)
    finally:
        stop_publishing.set()
        if publisher is not None:
            await asyncio.to_thread(publisher.join, 10)
        if stack.gateway is not None:  # started: summarise while the log is open
            _summary(
                stack,
                simulator,
                min(clock.now(), simulator.end),
                sent[0],
                time.monotonic() - began,
                echo,
            )
        await stack.stop()
        if receiver is not None:
            with contextlib.suppress(Exception):
                await receiver
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _watch(
    stack: EmbeddedStack,
    options: DemoOptions,
    began: float,
    sent: list[int],
    failure: list[BaseException],
    echo: Callable[[str], None],
) -> None:
    last_readings, last_t = 0, time.monotonic()
    while not stack.stop_event.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stack.stop_event.wait(), 3.0)
        stack.check()
        if failure:
            raise RuntimeError(f"the simulator stopped: {failure[0]}") from failure[0]
        now = time.monotonic()
        gateway = stack.gateway
        readings = gateway.stats.readings_appended if gateway is not None else 0
        rate = (readings - last_readings) / max(now - last_t, 1e-9)
        last_readings, last_t = readings, now
        opened = Counter(a.detector for a in stack.processing.projections.alerts.values())
        alerts = ", ".join(f"{k} {v}" for k, v in sorted(opened.items())) or "none yet"
        echo(
            f"[{now - began:5.0f} s] published {sent[0]:,}, readings {readings:,} "
            f"({rate:,.0f}/s), alerts raised: {alerts}; webhooks delivered "
            f"{stack.deliveries.delivered}"
        )
        if options.duration is not None and now - began >= options.duration:
            return


def _summary(
    stack: EmbeddedStack,
    simulator: EstateSimulator,
    simulated_to: datetime,
    sent: int,
    wall: float,
    echo: Callable[[str], None],
) -> None:
    spans = _spans(stack)
    # anomalies the simulation had not reached yet are not counted against the detectors
    labels = [lb for lb in simulator.ground_truth if lb.start <= simulated_to]
    echo(f"\ndemo summary after {wall:.0f} s: {sent:,} messages published")
    for line in stack.status():
        echo("  " + line)
    echo("alerts raised by the detectors vs the scenario's ground truth:")
    echo(score_table([s for s in score(labels, spans, {}) if s.labels or s.alerts]))
