"""The delivery outbox: one SQLite file (``var/outbox.sqlite``), separate from the log.

Tables
    ``messages``: one row per (event, endpoint) — ``webhook_id`` unique, so feeding the
    same event twice stores it once — with the signed-at-send body, the state
    (``pending`` → ``delivered`` or ``failed``), attempts of the current round and the
    earliest time of the next one. ``endpoints``: per endpoint the backoff state
    (consecutive failures, paused until, an ``epoch`` bumped at every pause), whether
    it is disabled (410) and the last success and error. ``attempts``: every attempt
    (time, status, latency, error, outcome). ``meta``: how far attempts were published
    to the ``deliveries`` stream of the log.

Durability
    WAL with ``synchronous=FULL``: when :meth:`Outbox.enqueue` returns the rows survive
    power loss, so the feed may then commit its checkpoint in the log. Every method is
    one transaction. One :class:`Outbox` is used by one thread (the event loop); other
    processes (``estate webhooks status`` / ``redrive``) open their own.

Times are stored as float seconds since the epoch (UTC).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, Self, cast

from pydantic import JsonValue

from alerts.payload import Message

__all__ = [
    "AttemptRow",
    "EndpointState",
    "EndpointStatus",
    "Outbox",
    "Outcome",
    "PendingMessage",
    "from_ts",
    "to_ts",
]

#: ``PRAGMA application_id`` of an outbox file ("EsOb").
APPLICATION_ID: Final = 0x45734F62
SCHEMA_VERSION: Final = 1

_SCHEMA: Final = (
    """
    CREATE TABLE messages (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook_id      TEXT    NOT NULL UNIQUE,
        endpoint        TEXT    NOT NULL,
        event_id        TEXT    NOT NULL,
        alert_id        TEXT    NOT NULL,
        type            TEXT    NOT NULL,
        estate          TEXT    NOT NULL,
        device          TEXT    NOT NULL,
        occurred_at     REAL    NOT NULL,
        enqueued_at     REAL    NOT NULL,
        body            BLOB    NOT NULL,
        state           TEXT    NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL    NOT NULL,
        last_status     INTEGER,
        last_error      TEXT,
        finished_at     REAL
    )
    """,
    "CREATE INDEX messages_queue ON messages (endpoint, state, seq)",
    "CREATE INDEX messages_alert ON messages (endpoint, alert_id, state, seq)",
    """
    CREATE TABLE endpoints (
        key                  TEXT PRIMARY KEY,
        failures             INTEGER NOT NULL DEFAULT 0,
        epoch                INTEGER NOT NULL DEFAULT 0,
        paused_until         REAL,
        disabled_at          REAL,
        disabled_reason      TEXT,
        last_success_at      REAL,
        last_error           TEXT,
        last_error_at        REAL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE attempts (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook_id      TEXT    NOT NULL,
        endpoint        TEXT    NOT NULL,
        attempt         INTEGER NOT NULL,
        started_at      REAL    NOT NULL,
        latency_ms      REAL    NOT NULL,
        status          INTEGER,
        error           TEXT,
        outcome         TEXT    NOT NULL,
        next_attempt_at REAL
    )
    """,
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
)

#: What an attempt led to. ``retry``: the message waits for its own next attempt
#: (4xx); ``paused``: the endpoint backs off (connection error, timeout, 5xx, 429);
#: ``gave_up``: the message is failed; ``disabled``: 410, the endpoint is disabled.
Outcome = Literal["delivered", "retry", "paused", "gave_up", "disabled"]

_PENDING_HEAD: Final = """
    m.endpoint = ? AND m.state = 'pending' AND NOT EXISTS (
        SELECT 1 FROM messages p INDEXED BY messages_alert
        WHERE p.endpoint = m.endpoint AND p.alert_id = m.alert_id
          AND p.state = 'pending' AND p.seq < m.seq)
"""


def to_ts(value: datetime) -> float:
    return value.timestamp()


def from_ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class PendingMessage:
    seq: int
    webhook_id: str
    endpoint: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class EndpointState:
    key: str
    failures: int = 0
    epoch: int = 0
    paused_until: float | None = None
    disabled_at: float | None = None
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One recorded attempt, with what the log's ``deliveries`` stream needs."""

    id: int
    webhook_id: str
    endpoint: str
    attempt: int
    started_at: float
    latency_ms: float
    status: int | None
    error: str | None
    outcome: str
    next_attempt_at: float | None
    event_id: str
    alert_id: str
    type: str
    estate: str
    device: str


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """``estate webhooks status``: one line per endpoint."""

    endpoint: str
    pending: int
    delivered: int
    failed: int
    disabled: bool
    disabled_reason: str | None
    failures: int
    paused_until: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in (
                (field, getattr(self, field)) for field in self.__dataclass_fields__
            )
        }


def _opt(value: float | None) -> datetime | None:
    return None if value is None else from_ts(value)


class OutboxError(RuntimeError):
    """The outbox file cannot be used."""


class Outbox:
    """The outbox of one deployment. Not thread-safe: one per thread or process."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_schema()
                self._conn.execute("COMMIT")
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            self._conn.close()
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def _check_schema(self) -> None:
        conn = self._conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchone()[0]
        if app_id == 0 and version == 0 and tables == 0:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif app_id != APPLICATION_ID:
            raise OutboxError(f"{self.path} is not a webhook outbox; refusing to use it")
        elif version != SCHEMA_VERSION:
            raise OutboxError(f"outbox {self.path} has schema version {version}, not 1")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- feeding -------------------------------------------------------------------------------

    def enqueue(self, messages: Sequence[Message], now: datetime) -> int:
        """Store new messages (durably, in one transaction); return how many were new."""
        if not messages:
            return 0
        at = to_ts(now)
        rows = [
            (
                m.webhook_id,
                m.endpoint,
                str(m.event_id),
                str(m.alert_id),
                m.type,
                m.estate,
                m.device,
                to_ts(m.occurred_at),
                at,
                m.body,
                at,
            )
            for m in messages
        ]
        with self._transaction(durable=True) as conn:
            cursor = conn.executemany(
                "INSERT INTO messages (webhook_id, endpoint, event_id, alert_id, type, estate,"
                " device, occurred_at, enqueued_at, body, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO NOTHING",
                rows,
            )
            return cursor.rowcount

    # --- the queue of one endpoint -------------------------------------------------------------

    def endpoint(self, key: str) -> EndpointState:
        row = self._conn.execute(
            "SELECT failures, epoch, paused_until, disabled_at, disabled_reason"
            " FROM endpoints WHERE key = ?",
            (key,),
        ).fetchone()
        return EndpointState(key) if row is None else EndpointState(key, *row)

    def due(
        self, key: str, now: datetime, limit: int, exclude: Iterable[int] = ()
    ) -> list[PendingMessage]:
        """Pending messages of ``key`` due by ``now``, oldest first, skipping ``exclude``
        (in flight) and any message behind an earlier pending one of the same alert."""
        skip = tuple(exclude)
        marks = ",".join("?" * len(skip))
        rows = self._conn.execute(
            "SELECT seq, webhook_id, endpoint, body, attempts FROM messages m"  # noqa: S608
            f" INDEXED BY messages_queue WHERE {_PENDING_HEAD} AND m.next_attempt_at <= ?"
            f" AND m.seq NOT IN ({marks}) ORDER BY m.seq LIMIT ?",
            (key, to_ts(now), *skip, limit),
        ).fetchall()
        return [PendingMessage(*row) for row in rows]

    def next_due(self, key: str, exclude: Iterable[int] = ()) -> datetime | None:
        """When the next pending message of ``key`` that could be sent falls due."""
        skip = tuple(exclude)
        marks = ",".join("?" * len(skip))
        row = self._conn.execute(
            "SELECT min(m.next_attempt_at) FROM messages m"  # noqa: S608
            f" INDEXED BY messages_queue WHERE {_PENDING_HEAD} AND m.seq NOT IN ({marks})",
            (key, *skip),
        ).fetchone()
        return _opt(row[0])

    def record(
        self,
        message: PendingMessage,
        *,
        started_at: datetime,
        latency_ms: float,
        status: int | None,
        error: str | None,
        outcome: Outcome,
        next_attempt_at: datetime | None,
        epoch: int,
        now: datetime,
    ) -> bool:
        """Record one attempt and its consequences in one transaction.

        ``next_attempt_at`` is the message's own next attempt (``retry``) or the end of
        the endpoint's pause (``paused``). A ``paused`` outcome pauses the endpoint only
        if its ``epoch`` is still the one the attempt started in (several attempts in
        flight when an office goes down make one backoff step, not several); returns
        whether it did.
        """
        at = to_ts(now)
        nxt = None if next_attempt_at is None else to_ts(next_attempt_at)
        attempt = message.attempts + 1
        state = {"delivered": "delivered", "gave_up": "failed"}.get(outcome, "pending")
        finished = at if state != "pending" else None
        paused = False
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO attempts (webhook_id, endpoint, attempt, started_at, latency_ms,"
                " status, error, outcome, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.webhook_id,
                    message.endpoint,
                    attempt,
                    to_ts(started_at),
                    latency_ms,
                    status,
                    error,
                    outcome,
                    nxt,
                ),
            )
            conn.execute(
                "UPDATE messages SET attempts = ?, state = ?, last_status = ?, last_error = ?,"
                " finished_at = ?, next_attempt_at = coalesce(?, next_attempt_at) WHERE seq = ?",
                (
                    attempt,
                    state,
                    status,
                    error,
                    finished,
                    nxt if outcome == "retry" else None,
                    message.seq,
                ),
            )
            conn.execute(
                "INSERT INTO endpoints (key) VALUES (?) ON CONFLICT DO NOTHING", (message.endpoint,)
            )
            if outcome == "delivered":
                conn.execute(
                    "UPDATE endpoints SET epoch = epoch + (failures > 0 OR paused_until IS NOT"
                    " NULL), failures = 0, paused_until = NULL, last_success_at = ? WHERE key = ?",
                    (at, message.endpoint),
                )
                return False
            conn.execute(
                "UPDATE endpoints SET last_error = ?, last_error_at = ? WHERE key = ?",
                (error or f"HTTP {status}", at, message.endpoint),
            )
            if outcome == "paused":
                paused = (
                    conn.execute(
                        "UPDATE endpoints SET failures = failures + 1, epoch = epoch + 1,"
                        " paused_until = ? WHERE key = ? AND epoch = ?",
                        (nxt, message.endpoint, epoch),
                    ).rowcount
                    == 1
                )
            elif outcome == "disabled":
                conn.execute(
                    "UPDATE endpoints SET disabled_at = ?, disabled_reason = ?,"
                    " epoch = epoch + 1 WHERE key = ?",
                    (at, error or f"HTTP {status}", message.endpoint),
                )
        return paused

    # --- publishing attempts to the log --------------------------------------------------------

    def unpublished(self, limit: int = 1000) -> list[AttemptRow]:
        """Attempts not yet appended to the log's ``deliveries`` stream, oldest first."""
        start = self._meta("published_attempt")
        rows = self._conn.execute(
            "SELECT a.id, a.webhook_id, a.endpoint, a.attempt, a.started_at, a.latency_ms,"
            " a.status, a.error, a.outcome, a.next_attempt_at, m.event_id, m.alert_id, m.type,"
            " m.estate, m.device FROM attempts a JOIN messages m USING (webhook_id)"
            " WHERE a.id > ? ORDER BY a.id LIMIT ?",
            (start, limit),
        ).fetchall()
        return [AttemptRow(*row) for row in rows]

    def mark_published(self, attempt_id: int) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('published_attempt', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                (attempt_id,),
            )

    def _meta(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    # --- operations ----------------------------------------------------------------------------

    def status(self, keys: Iterable[str] = ()) -> list[EndpointStatus]:
        """Per endpoint (those with messages or state, plus ``keys``): counts and health."""
        counts: dict[str, dict[str, int]] = {key: {} for key in keys}
        for endpoint, state, n in self._conn.execute(
            "SELECT endpoint, state, count(*) FROM messages GROUP BY endpoint, state"
        ):
            counts.setdefault(endpoint, {})[state] = n
        health = {
            row[0]: row[1:]
            for row in self._conn.execute(
                "SELECT key, disabled_at, disabled_reason, failures, paused_until,"
                " last_success_at, last_error, last_error_at FROM endpoints"
            )
        }
        result = []
        for key in sorted(set(counts) | set(health)):
            by_state = counts.get(key, {})
            disabled_at, reason, failures, paused, success, error, error_at = health.get(
                key, (None, None, 0, None, None, None, None)
            )
            result.append(
                EndpointStatus(
                    endpoint=key,
                    pending=by_state.get("pending", 0),
                    delivered=by_state.get("delivered", 0),
                    failed=by_state.get("failed", 0),
                    disabled=disabled_at is not None,
                    disabled_reason=reason,
                    failures=failures,
                    paused_until=_opt(paused),
                    last_success_at=_opt(success),
                    last_error=error,
                    last_error_at=_opt(error_at),
                )
            )
        return result

    def endpoints(self) -> list[str]:
        """Every endpoint key the outbox knows (with messages or state)."""
        return [status.endpoint for status in self.status()]

    def redrive(self, key: str, since: datetime | None, now: datetime) -> int:
        """Re-enable ``key`` and its backoff, and make its failed messages (of alerts
        events at or after ``since``) pending again with a fresh round of attempts.
        Returns how many messages were made pending."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE endpoints SET disabled_at = NULL, disabled_reason = NULL, failures = 0,"
                " paused_until = NULL, epoch = epoch + 1 WHERE key = ?",
                (key,),
            )
            return conn.execute(
                "UPDATE messages SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                " finished_at = NULL WHERE endpoint = ? AND state = 'failed'"
                " AND occurred_at >= ?",
                (to_ts(now), key, -1e18 if since is None else to_ts(since)),
            ).rowcount

    def recent_attempts(self, key: str, limit: int) -> list[dict[str, object]]:
        """The newest ``limit`` attempts to endpoint ``key``, newest first (for the console)."""
        rows = self._conn.execute(
            "SELECT a.webhook_id, a.attempt, a.started_at, a.latency_ms, a.status, a.error,"
            " a.outcome, m.type, m.alert_id, m.estate, m.device FROM attempts a"
            " JOIN messages m ON m.webhook_id = a.webhook_id WHERE a.endpoint = ?"
            " ORDER BY a.id DESC LIMIT ?",
            (key, limit),
        )
        names = ("webhook_id", "attempt", "started_at", "latency_ms", "status", "error")
        out: list[dict[str, object]] = []
        for row in rows:
            item: dict[str, object] = dict(zip(names, row[:6], strict=True))
            item["started_at"] = from_ts(row[2]).isoformat()
            item.update(
                zip(("outcome", "type", "alert_id", "estate", "device"), row[6:], strict=True)
            )
            out.append(item)
        return out

    def attempts_of(self, webhook_id: str) -> list[tuple[int, int | None, str | None, str]]:
        """``(attempt, status, error, outcome)`` of every attempt of one message."""
        return [
            (int(a), s, e, str(o))
            for a, s, e, o in self._conn.execute(
                "SELECT attempt, status, error, outcome FROM attempts WHERE webhook_id = ?"
                " ORDER BY id",
                (webhook_id,),
            )
        ]

    def _transaction(self, *, durable: bool = False) -> _Transaction:
        return _Transaction(self._conn, durable)


class _Transaction:
    """One write transaction; ``durable``: synced to disk at commit (``synchronous=FULL``)."""

    def __init__(self, conn: sqlite3.Connection, durable: bool) -> None:
        self._conn = conn
        self._durable = durable

    def __enter__(self) -> sqlite3.Connection:
        if self._durable:
            self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            if self._durable:
                self._conn.execute("PRAGMA synchronous = NORMAL")


class OutboxStatus:
    """Delivery status for the console: opens the outbox per call (any thread may call)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def endpoint_status(self, endpoint: str) -> dict[str, JsonValue] | None:
        if not self.path.exists():
            return None
        with Outbox(self.path) as outbox:
            found = [s for s in outbox.status([endpoint]) if s.endpoint == endpoint]
        return cast("dict[str, JsonValue]", found[0].as_dict()) if found else None

    def deliveries(self, endpoint: str, limit: int) -> list[dict[str, JsonValue]]:
        if not self.path.exists():
            return []
        with Outbox(self.path) as outbox:
            return cast("list[dict[str, JsonValue]]", outbox.recent_attempts(endpoint, limit))
