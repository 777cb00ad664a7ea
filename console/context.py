"""What the console's handlers share: the projections, the log, the registry, the tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from aiohttp import web
from pydantic import JsonValue

from console.feed import Feed
from console.metrics import MetricProvider
from console.tokens import TokenStore
from devices.registry import RegistryIndex
from eventlog.log import EventLog, StoredRecord
from processors.projections import Projections

#: The cookie the login form sets (HttpOnly, SameSite=Strict).
COOKIE: Final = "estate_token"
#: Header a cookie-authenticated page must send on POST (a CSRF guard: other sites cannot
#: set custom headers on cross-site requests without a CORS preflight, which fails).
CSRF_HEADER: Final = "X-Requested-With"
CSRF_VALUE: Final = "estate-console"


@runtime_checkable
class DeliveryStatusSource(Protocol):
    """Webhook delivery status, provided by the ``alerts`` package (wired by ``estate``).

    Both methods are called in a worker thread and may block. ``endpoint`` names an
    endpoint as ``office/endpoint``.
    """

    def endpoint_status(self, endpoint: str) -> Mapping[str, JsonValue] | None: ...

    def deliveries(self, endpoint: str, limit: int) -> Sequence[Mapping[str, JsonValue]]: ...


@runtime_checkable
class KeyReader(Protocol):
    """The optional ``read_key`` of a log backend (``SqliteEventLog`` has it)."""

    def read_key(
        self,
        stream: str,
        key: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
        *,
        after: int | None = None,
        newest_first: bool = False,
    ) -> list[StoredRecord]: ...


@dataclass(frozen=True, slots=True)
class GrafanaBoard:
    title: str
    uid: str


DEFAULT_BOARDS: Final = (
    GrafanaBoard("Estate overview", "estate-overview"),
    GrafanaBoard("Device health", "estate-device-health"),
    GrafanaBoard("Alerts", "estate-alerts"),
)


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    #: How long an operator action waits for the projection to show its outcome.
    command_wait_s: float = 2.0
    #: Readiness fails while the projections are further behind the log than this.
    ready_max_lag: int = 10_000
    #: Grafana base URL (``http://grafana:3000``); no links when None.
    grafana_url: str | None = None
    grafana_boards: tuple[GrafanaBoard, ...] = DEFAULT_BOARDS
    #: ``/metrics`` without a token (a scraper on a trusted network); else admin tokens only.
    public_metrics: bool = False
    #: Mark the login cookie ``Secure`` (set when served behind HTTPS).
    secure_cookie: bool = False
    #: Seconds between keep-alive comments on the live feed (proxies close idle streams).
    sse_heartbeat_s: float = 15.0


@dataclass(slots=True)
class Console:
    projections: Projections
    log: EventLog
    index: RegistryIndex
    tokens: TokenStore
    options: ConsoleOptions
    feed: Feed
    metric_providers: list[MetricProvider] = field(default_factory=list)
    deliveries: DeliveryStatusSource | None = None


CONSOLE: Final = web.AppKey("console", Console)
