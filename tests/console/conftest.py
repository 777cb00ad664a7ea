"""A real stack for the console: SQLite log, detector runner, projections, the app on a port.

Everything runs in one background thread with its own event loop (the detector runner
and the projections poll the log as under ``estate up``); tests talk HTTP to it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from console.app import bound_port, build_app, serve
from console.context import ConsoleOptions, DeliveryStatusSource, GrafanaBoard
from console.tokens import Role, TokenStore
from devices.demo_estate import dump_registry, generate_registry
from devices.registry import RegistryIndex, load_registry
from eventlog.envelope import Envelope, Stream
from eventlog.log import EventLog
from eventlog.sqlite import SqliteEventLog
from processors.detectors import ALL_DETECTORS
from processors.engine import Engine, EngineConfig
from processors.projections import Projections
from processors.rules import load_rules
from processors.runner import DetectorRunner
from processors.statestore import StateStore
from tests.processors.traffic import envelopes
from tests.support.logs import ContractOnlyLog

#: Estate A (lvcheng, street office huamu) gets the traffic; B (cuihu, office gumei) none.
A, B = "lvcheng", "cuihu"


@dataclass
class Stack:
    data: Path
    index: RegistryIndex
    log: SqliteEventLog
    projections: Projections
    runner: DetectorRunner
    tokens: dict[str, str] = field(default_factory=dict)
    url: str = ""
    loop: asyncio.AbstractEventLoop | None = None

    def append(self, readings: Sequence[Envelope]) -> None:
        self.log.append(Stream.READINGS, readings)

    def wait(self, what: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = what()
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def settled(self) -> None:
        """Wait until the runner and the projections have read everything in the log."""
        self.wait(lambda: self.runner.lag() == 0 and self.projections.lag() == 0)

    def call(
        self, method: str, path: str, token: str | None = "admin", **kw: Any
    ) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens[token]}"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def get(self, path: str, token: str | None = "admin", **kw: Any) -> requests.Response:
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str | None = "admin", **kw: Any) -> requests.Response:
        return self.call("POST", path, token, **kw)


@contextmanager
def running_stack(
    data: Path,
    readings: Sequence[Envelope] = (),
    deliveries: DeliveryStatusSource | None = None,
    app_log: Callable[[EventLog], EventLog] = lambda log: log,
    **options: Any,
) -> Iterator[Stack]:
    """Run the stack inside the ``with`` block; the readings are in the log and judged
    (the detectors and projections have caught up) when the block starts."""
    data.mkdir(parents=True, exist_ok=True)
    registry = data / "estate.yaml"
    registry.write_text(dump_registry(generate_registry(households=12, estates=3)), "utf-8")
    index = load_registry(registry).index()
    log = SqliteEventLog(data / "estate.db")
    if readings:
        log.append(Stream.READINGS, readings)
    store = StateStore(data / "state.db")
    rules = load_rules()
    config = EngineConfig(lateness=timedelta(minutes=2))
    runner = DetectorRunner(log, store, lambda: Engine(index, rules, ALL_DETECTORS, config))
    projections = Projections(log, store)
    stack = Stack(data, index, log, projections, runner)
    tokens = TokenStore.in_data_dir(data)
    for name, role, kw in (
        ("admin", Role.ADMIN, {}),
        ("operator_a", Role.OPERATOR, {"estates": [A]}),
        ("operator_b", Role.OPERATOR, {"estates": [B]}),
        ("office_a", Role.STREET_OFFICE, {"office": "huamu"}),
        ("office_b", Role.STREET_OFFICE, {"office": "gumei"}),
    ):
        stack.tokens[name] = tokens.create(name, role, **kw)[0]
    opts = ConsoleOptions(
        grafana_url="http://grafana.test:3000",
        grafana_boards=(GrafanaBoard("Estate overview", "estate-overview"),),
        sse_heartbeat_s=0.5,
        **options,
    )
    ready = threading.Event()
    stop_holder: list[asyncio.Event] = []
    failure: list[BaseException] = []

    async def main() -> None:
        stop = asyncio.Event()
        stop_holder.append(stop)
        tasks = [asyncio.create_task(c.run(stop)) for c in (runner, projections)]
        app = build_app(projections, app_log(log), index, tokens, opts, deliveries=deliveries)
        web_runner = await serve(app, "127.0.0.1", 0)
        stack.url = f"http://127.0.0.1:{bound_port(web_runner)}"
        stack.loop = asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await web_runner.cleanup()
        await asyncio.gather(*tasks)

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=thread_main, name="console-stack", daemon=True)
    thread.start()
    assert ready.wait(60), "the stack did not start"
    assert not failure, failure
    try:
        stack.settled()
        yield stack
    finally:
        loop = stack.loop
        if loop is not None and stop_holder:
            loop.call_soon_threadsafe(stop_holder[0].set)
        thread.join(30)
        log.close()
        store.close()
        assert not failure, failure


PlainLog = ContractOnlyLog  # a log without ``read_key``


@pytest.fixture(scope="session")
def traffic_index(tmp_path_factory: pytest.TempPathFactory) -> RegistryIndex:
    path = tmp_path_factory.mktemp("registry") / "estate.yaml"
    path.write_text(dump_registry(generate_registry(households=12, estates=3)), "utf-8")
    return load_registry(path).index()


@pytest.fixture(scope="session")
def traffic(traffic_index: RegistryIndex) -> list[Envelope]:
    """30 hours of estate A's readings (alerts of several kinds), device-time order."""
    return envelopes(traffic_index, hours=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, traffic: list[Envelope]) -> Iterator[Stack]:
    """A stack whose detectors have judged the whole traffic (alerts exist)."""
    with running_stack(tmp_path_factory.mktemp("console"), traffic) as stack:
        assert len(stack.projections.alerts) >= 3
        yield stack
