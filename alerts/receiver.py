"""The reference receiver a street office can run (``estate receiver``).

* ``POST`` to any path: a Standard Webhooks message. The body is limited
  (``max_body``, 256 KiB: 413 beyond), headers are checked and the signature verified
  (:func:`alerts.signing.verify`: 400 malformed, 401 stale timestamp or no matching
  signature), then the JSON is checked (400 unless an ``alert.*`` message of payload
  version 1). Header lines longer than 8 KiB are refused with 400 by aiohttp's parser.
  Malformed input always gets a 4xx, never a 5xx: a 5xx tells the sender to retry.
* De-duplication by ``webhook-id``: a message seen before is answered 200
  (``"duplicate"``) and not stored again, so the sender's retries after a lost answer
  are harmless.
* ``GET /`` lists the received alerts (plain HTML, no external assets),
  ``GET /alerts.json`` the same as JSON.

Received alerts are kept in SQLite (``received.sqlite`` by default).
"""

from __future__ import annotations

import asyncio
import html
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from alerts.clock import Clock, SystemClock
from alerts.signing import TOLERANCE_SECONDS, VerificationError, verify

__all__ = [
    "MAX_BODY",
    "ReceiverStats",
    "ReceiverStore",
    "make_receiver",
    "run_receiver",
]

#: Largest body accepted, bytes (a message is about 1 KiB).
MAX_BODY: Final = 256 * 1024
_LIST_LIMIT: Final = 200


class _AlertData(BaseModel):
    # Forward compatible: version-1 payloads may gain fields; unknown ones are ignored.
    model_config = ConfigDict(frozen=True, extra="ignore")

    alert_id: str
    estate: str
    device: str
    condition: str
    severity: str
    building: str | None = None
    explanation: str = ""
    occurred_at: str


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: str
    version: int
    event_id: str
    data: _AlertData


@dataclass(slots=True)
class ReceiverStats:
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[int, int] = field(default_factory=dict)


_COLUMNS: Final = (
    "webhook_id, received_at, type, event_id, alert_id, estate, building, device,"
    " condition, severity, occurred_at, explanation"
)
_MARKS: Final = ", ".join("?" * (_COLUMNS.count(",") + 2))


class ReceiverStore:
    """Received alerts, one row per ``webhook-id``.

    A message is on disk (``synchronous=FULL``) before it is acknowledged. The receiver
    calls :meth:`add` in a worker thread so that the fsync does not stall the event
    loop; one lock serialises the connection.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS received (webhook_id TEXT PRIMARY KEY,"
            " received_at TEXT NOT NULL, type TEXT NOT NULL, event_id TEXT NOT NULL,"
            " alert_id TEXT NOT NULL, estate TEXT NOT NULL, building TEXT, device TEXT NOT NULL,"
            " condition TEXT NOT NULL, severity TEXT NOT NULL, occurred_at TEXT NOT NULL,"
            " explanation TEXT NOT NULL, body BLOB NOT NULL)"
        )

    def add(self, webhook_id: str, received_at: str, payload: _Payload, body: bytes) -> bool:
        """Store a message; False if this ``webhook-id`` was stored before."""
        d = payload.data
        with self._lock:
            cursor = self._conn.execute(
                f"INSERT INTO received ({_COLUMNS}, body) VALUES ({_MARKS})"  # noqa: S608
                " ON CONFLICT (webhook_id) DO NOTHING",
                (
                    webhook_id,
                    received_at,
                    payload.type,
                    payload.event_id,
                    d.alert_id,
                    d.estate,
                    d.building,
                    d.device,
                    d.condition,
                    d.severity,
                    d.occurred_at,
                    d.explanation,
                    body,
                ),
            )
        return cursor.rowcount == 1

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM received").fetchone()[0])

    def webhook_ids(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._conn.execute("SELECT webhook_id FROM received")]

    def latest(self, limit: int = _LIST_LIMIT) -> list[dict[str, Any]]:
        names = [name.strip() for name in _COLUMNS.split(",")]
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM received ORDER BY received_at DESC, rowid DESC LIMIT ?",  # noqa: S608
                (limit,),
            ).fetchall()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STORE: Final = web.AppKey("store", ReceiverStore)
STATS: Final = web.AppKey("stats", ReceiverStats)


def _reject(stats: ReceiverStats, status: int, reason: str) -> web.Response:
    stats.rejected[status] = stats.rejected.get(status, 0) + 1
    return web.json_response({"status": "rejected", "reason": reason}, status=status)


def make_receiver(
    keys: Sequence[bytes],
    store: ReceiverStore,
    *,
    clock: Clock | None = None,
    tolerance: int = TOLERANCE_SECONDS,
    max_body: int = MAX_BODY,
) -> web.Application:
    """The receiver app verifying with ``keys`` (several during a secret rotation)."""
    if not keys:
        raise ValueError("the receiver needs at least one key")
    time_source: Clock = clock or SystemClock()
    app = web.Application(client_max_size=max_body)
    app[STORE] = store
    app[STATS] = stats = ReceiverStats()

    async def receive(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > max_body:
            return _reject(stats, 413, f"body larger than {max_body} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _reject(stats, 413, f"body larger than {max_body} bytes")
        now = time_source.now()
        try:
            webhook_id = verify(keys, request.headers, body, now, tolerance)
        except VerificationError as exc:
            return _reject(stats, exc.status, exc.reason)
        try:
            payload = _Payload.model_validate(orjson.loads(body))
        except orjson.JSONDecodeError:
            return _reject(stats, 400, "body is not JSON")
        except ValidationError as exc:
            return _reject(stats, 400, f"not an alert message: {exc.error_count()} problem(s)")
        if not payload.type.startswith("alert.") or payload.version != 1:
            return _reject(stats, 400, f"unsupported message {payload.type} v{payload.version}")
        if await asyncio.to_thread(store.add, webhook_id, now.isoformat(), payload, body):
            stats.accepted += 1
            return web.json_response({"status": "accepted"})
        stats.duplicates += 1
        return web.json_response({"status": "duplicate"})

    async def as_json(request: web.Request) -> web.Response:
        alerts = store.latest()
        return web.json_response({"count": store.count(), "alerts": alerts})

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=_render(store.latest(), store.count(), stats),
            content_type="text/html",
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )

    app.router.add_get("/", page)
    app.router.add_get("/alerts.json", as_json)
    app.router.add_post("/{tail:.*}", receive)
    return app


_FIELDS: Final = (
    ("received_at", "received"),
    ("type", "message"),
    ("severity", "severity"),
    ("estate", "estate"),
    ("building", "building"),
    ("device", "device"),
    ("condition", "condition"),
    ("explanation", "explanation"),
    ("alert_id", "alert"),
)


def _render(alerts: list[dict[str, Any]], total: int, stats: ReceiverStats) -> str:
    head = "".join(f"<th>{label}</th>" for _, label in _FIELDS)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(a[name] or ''))}</td>" for name, _ in _FIELDS)
        + "</tr>"
        for a in alerts
    )
    rejected = sum(stats.rejected.values())
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta http-equiv=refresh content=10><title>Estate alerts</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style>"
        f"<h1>Estate alerts</h1><p>{total} received (showing the latest {len(alerts)}); "
        f"{stats.duplicates} duplicates ignored, {rejected} requests rejected since start. "
        "<a href=alerts.json>JSON</a></p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></html>"
    )


async def run_receiver(
    host: str,
    port: int,
    keys: Sequence[bytes],
    db_path: str | Path,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve the receiver on ``host:port`` until ``stop`` is set."""
    with ReceiverStore(db_path) as store:
        runner = web.AppRunner(make_receiver(keys, store))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()
