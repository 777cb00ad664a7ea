"""Shared pieces of the alert-delivery tests: registries, alert events, servers on loopback."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from alerts.clock import Clock
from alerts.delivery import DeliveryConfig, DeliveryCounters, run_dispatcher
from alerts.receiver import STATS, STORE, ReceiverStats, ReceiverStore, make_receiver
from alerts.signing import generate_secret, parse_secrets
from devices.registry import RegistryIndex, load_registry
from eventlog.envelope import deterministic_id
from eventlog.sqlite import SqliteEventLog
from processors.alarm import AlertEvent, AlertEventKind, Severity, to_envelope

T0 = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
OFFICES = ("huamu", "gumei", "tianlin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def office_yaml(office: str, url: str, extra: str = "") -> str:
    return f"""\
      - id: {office}
        name: {office} office
        webhooks:
          - id: control
            url: {url}
            secret_env: SECRET_{office.upper()}
{extra}        estates:
          - id: {office}-estate
            name: {office} garden
            timezone: Asia/Shanghai
            location: {{lat: 31.2, lon: 121.5}}
            devices:
              - id: bin-01
                kind: waste_bin
                profile: bin_ultrasonic
                zone: cp01
                category: kitchen
            buildings:
              - id: b03
                name: Building 3
                households: 2
                devices:
                  - id: wm-0101
                    kind: water_meter
                    profile: water_household
                    household: "101"
"""


def registry_yaml(urls: dict[str, str], extra: dict[str, str] | None = None) -> str:
    offices = "".join(office_yaml(o, u, (extra or {}).get(o, "")) for o, u in urls.items())
    return (
        f"version: 1\ndistricts:\n  - id: pudong\n    name: Pudong\n    street_offices:\n{offices}"
    )


@dataclass
class Estate:
    """A registry of offices in tmp_path, their secrets and a real SQLite event log."""

    tmp: Path
    urls: dict[str, str]
    extra: dict[str, str] | None = None
    secrets: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        path = self.tmp / "estate.yaml"
        path.write_text(registry_yaml(self.urls, self.extra), encoding="utf-8")
        self.index: RegistryIndex = load_registry(path).index()
        self.secrets = {o: generate_secret() for o in self.urls}
        self.environ = {f"SECRET_{o.upper()}": s for o, s in self.secrets.items()}
        self.log = SqliteEventLog(self.tmp / "estate.db")
        self.outbox = self.tmp / "outbox.sqlite"

    def close(self) -> None:
        self.log.close()


def alert_event(
    office: str,
    n: int,
    kind: AlertEventKind = AlertEventKind.RAISED,
    *,
    at: datetime = T0,
    severity: Severity = Severity.MAJOR,
    condition: str = "bin_overflowing",
    device: str = "bin-01",
    seq: int = 1,
    **fields: object,
) -> AlertEvent:
    estate = f"{office}-estate"
    alert_id = deterministic_id("alert", estate, device, condition, n)
    fields = {
        "detector": condition,
        "rule_version": "2026.11.1",
        "explanation": f"alert {n}: fill 97 % for 30 min",
        "values": {"fill_pct": 97},
        **fields,
    }
    return AlertEvent(
        kind=kind,
        id=deterministic_id("alert-event", alert_id, kind.value, at, seq),
        alert_id=alert_id,
        estate=estate,
        device=device,
        condition=condition,
        severity=severity,
        at=at,
        occurrence=1,
        **fields,  # type: ignore[arg-type]
    )


def append_events(log: SqliteEventLog, events: Sequence[AlertEvent]) -> None:
    log.append("events", [to_envelope(e, e.at + timedelta(seconds=1)) for e in events])


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp app on a loopback port that can be started and stopped (same port)."""

    def __init__(self, app: web.Application, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def app_with(handler: Handler) -> web.Application:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    return app


class Dispatching:
    """``run_dispatcher`` as a task: ``async with Dispatching(estate, ...) as d:``."""

    def __init__(
        self,
        estate: Estate,
        *,
        clock: Clock | None = None,
        config: DeliveryConfig | None = None,
    ) -> None:
        self.estate = estate
        self.clock = clock
        self.config = config or DeliveryConfig(poll_interval=0.02)
        self.counters = DeliveryCounters()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Dispatching:
        self.task = asyncio.create_task(
            run_dispatcher(
                self.estate.log,
                self.estate.index,
                self.estate.outbox,
                self.stop,
                clock=self.clock,
                config=self.config,
                counters=self.counters,
                environ=self.estate.environ,
                rng=random.Random(7),
            )
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> float:
    """Poll ``predicate`` in real time; return the seconds it took (fail after ``timeout``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.005)
    return loop.time() - start


def receiver_for(estate: Estate, office: str, port: int, clock: Clock | None = None) -> Server:
    """The reference receiver of ``office`` on ``port`` (the port of its registry URL)."""
    store = ReceiverStore(estate.tmp / f"received-{office}.sqlite")
    return Server(make_receiver(parse_secrets(estate.secrets[office]), store, clock=clock), port)


def store_of(server: Server) -> ReceiverStore:
    return server.app[STORE]


def stats_of(server: Server) -> ReceiverStats:
    return server.app[STATS]
