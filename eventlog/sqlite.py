"""The embedded backend of the event log: one SQLite file in WAL mode.

Layout
    A stream has exactly one partition (0) and one table of its own
    (``stream_<n>``; the table ``streams`` maps names to numbers). A record's
    position is the rowid of that table (``INTEGER PRIMARY KEY AUTOINCREMENT``):
    it starts at 1, grows with append order and is never reused, so a consumer
    can keep it as a checkpoint. (A skipped duplicate may use up a number:
    positions can have gaps, as the contract allows.) Each row stores the
    envelope id as a 16-byte blob, the partition key, the kind and the
    envelope JSON (:meth:`Envelope.to_json`, stored as TEXT so that
    ``json_extract`` works in the ``sqlite3`` shell). ``UNIQUE (id)`` makes
    append idempotent per stream: rows are written with ``INSERT ... ON
    CONFLICT (id) DO NOTHING``, the first write of an id wins, and later ones
    (in the same batch or in later calls) count as duplicates. ``checkpoints``
    maps (consumer, stream, partition) to the position of the next record the
    consumer wants. An index on ``(key, position)`` of every stream table serves
    :meth:`SqliteEventLog.read_key` (the records of one device); it is created with
    the table, and on opening for tables of files written before it existed
    (``CREATE INDEX IF NOT EXISTS``, in the schema check's write transaction).

Cost
    Most of the cost of an append is the unique index of ids: uuid5 ids are
    random, so each record of a batch lands on its own index page once a
    stream holds more than about half a million records, and every touched
    page is written to the WAL at commit. With 16 KiB pages, a 64 MiB page
    cache and a 64 MiB WAL between checkpoints, a 2-core machine appends
    ~55,000 records/s in batches of 1,000 to a fresh stream and ~25,000-30,000
    on average over the first million; smaller pages are slower at first but
    better past half a million records (``docs/performance.md``).

Durability
    The file runs in WAL mode. One :meth:`SqliteEventLog.append` call is one
    transaction, so a batch is stored entirely or not at all. With
    ``synchronous="NORMAL"`` (the default) a committed transaction is in the
    WAL file as soon as ``append`` returns: it survives a crash or SIGKILL of
    the process. Only a power loss or an operating-system crash can lose the
    last transactions committed before it (the file stays consistent; nothing
    is corrupted). ``synchronous="FULL"`` syncs the WAL on every commit and
    survives power loss too, at the cost of one fsync per ``append`` and per
    checkpoint commit.

Concurrency
    One connection per :class:`SqliteEventLog`, used under a lock, so the
    object can be shared between threads (ingest appends from paho's network
    thread while projections read). Envelopes are serialised and parsed outside
    the lock. Several processes may open the same file: SQLite
    serialises writers (``BEGIN IMMEDIATE`` with a busy timeout) and readers
    never block.

Schema version
    ``PRAGMA application_id`` marks the file as an estate-monitor event log and
    ``PRAGMA user_version`` holds the schema version. A file that is not SQLite,
    a SQLite database of another application, or one written by a newer version
    of this code is refused with :class:`LogError` and left untouched.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, Self

from pydantic import ValidationError

from eventlog.envelope import Envelope
from eventlog.log import AppendResult, EventLog, LogError, StoredRecord

#: Marks a SQLite file as an estate-monitor event log (``PRAGMA application_id``, "EsLg").
APPLICATION_ID: Final = 0x45734C67

#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION: Final = 1

#: How long a writer waits for another process holding the write lock.
BUSY_TIMEOUT_MS: Final = 10_000

Synchronous = Literal["NORMAL", "FULL"]

#: Page size of new files (see "Cost" in the module docstring).
PAGE_SIZE: Final = 16384

#: Page cache of the connection: keeps the id index of a few million records in memory.
CACHE_KIB: Final = 64 * 1024

#: Checkpoint the WAL into the file once it holds this much, and truncate it back to it.
WAL_BYTES: Final = 64 * 1024 * 1024

_SCHEMA: Final = (
    "CREATE TABLE streams (number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    """
    CREATE TABLE checkpoints (
        consumer TEXT    NOT NULL,
        stream   TEXT    NOT NULL,
        part     INTEGER NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (consumer, stream, part)
    ) WITHOUT ROWID
    """,
)
_TABLES: Final = frozenset({"streams", "checkpoints"})

_STREAM_TABLE: Final = """
    CREATE TABLE {table} (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        id       BLOB NOT NULL UNIQUE,
        key      TEXT NOT NULL,
        kind     TEXT NOT NULL,
        envelope TEXT NOT NULL
    )
"""
#: Skips only a known id (``INSERT OR IGNORE`` would also skip, silently, any other violation).
_INSERT: Final = (
    "INSERT INTO {table} (id, key, kind, envelope) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
#: The records of one partition key (device) in log order: ``read_key`` (one per stream table).
_KEY_INDEX: Final = "CREATE INDEX IF NOT EXISTS {table}_key ON {table} (key, position)"
#: ``read_key``: rows of one key after/before a position, filtered by device time. The time
#: filter in SQL (julianday, millisecond precision) only narrows; Python checks exactly.
_READ_KEY: Final = (
    "SELECT position, envelope FROM {table} WHERE key = ? AND position {op} ?"
    " AND julianday(json_extract(envelope, '$.occurred_at')) >= julianday(?) - 0.00000002"
    " AND julianday(json_extract(envelope, '$.occurred_at')) <= julianday(?) + 0.00000002"
    " ORDER BY position {order} LIMIT ?"
)
_READ: Final = (
    "SELECT position, envelope FROM {table} WHERE position >= ? ORDER BY position LIMIT ?"
)


class SqliteEventLog(EventLog):
    """The event log in one SQLite file (WAL mode); one partition per stream."""

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        self._path = Path(path)
        self._synchronous: Synchronous = synchronous
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._tables: dict[str, str] = {}  # stream name -> its table, once known to exist
        if self._path.is_dir():
            raise LogError(f"event log {self._path} is a directory, not a SQLite file")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # autocommit; append opens its own transaction
                check_same_thread=False,  # shared between threads under self._lock
            )
        except (OSError, sqlite3.Error) as exc:
            raise LogError(f"cannot open event log {self._path}: {exc}") from exc
        try:
            self._open(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # --- opening -------------------------------------------------------------------------------

    def _open(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("BEGIN")  # one read snapshot: another process may be creating it now
            try:
                self._check_schema(conn, create=False)  # read-only: refuse foreign files untouched
            finally:
                conn.execute("COMMIT")
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # no-op unless the file is new
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LogError(f"event log {self._path}: cannot switch to WAL mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]  # older files may differ
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_BYTES // page_size}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_BYTES}")
            conn.execute("BEGIN IMMEDIATE")  # another process may be creating it right now
            try:
                self._check_schema(conn, create=True)
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise LogError(self._describe(exc, "open")) from exc

    def _check_schema(self, conn: sqlite3.Connection, *, create: bool) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if app_id == 0 and version == 0 and not tables:
            if create:  # a new (or empty) file: make it an event log
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        if app_id != APPLICATION_ID:
            found = ", ".join(sorted(tables)) or "none"
            raise LogError(
                f"{self._path} is a SQLite database of another application "
                f"(application_id {app_id}, tables: {found}), not an estate event log; "
                "refusing to use it"
            )
        if version > SCHEMA_VERSION:
            raise LogError(
                f"event log {self._path} has schema version {version}, newer than the "
                f"version {SCHEMA_VERSION} this program understands; upgrade estate-monitor"
            )
        if version < 1 or not _TABLES.issubset(tables):
            raise LogError(
                f"event log {self._path} is damaged: schema version {version}, "
                f"tables {sorted(tables)} (expected {sorted(_TABLES)})"
            )
        if create:  # logs written before read_key existed get its index (once, then a no-op)
            for (number,) in conn.execute("SELECT number FROM streams").fetchall():
                table = f"stream_{int(number)}"
                if table in tables:
                    conn.execute(_KEY_INDEX.format(table=table))

    def _describe(self, exc: sqlite3.Error, what: str) -> str:
        text = str(exc)
        if "file is not a database" in text:
            return (
                f"{self._path} is not a valid SQLite database ({text}); "
                "it is not an event log, refusing to use it"
            )
        if "malformed" in text or "corrupt" in text:
            return f"event log {self._path} is corrupt ({text}); {what} failed"
        return f"event log {self._path}: {what} failed: {text}"

    @contextmanager
    def _connection(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise LogError(f"event log {self._path} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise LogError(self._describe(exc, what)) from exc

    # --- the contract --------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def synchronous(self) -> Synchronous:
        return self._synchronous

    def partitions(self, stream: str) -> int:
        _stream_name(stream)
        with self._connection("partitions"):
            return 1

    def append(self, stream: str, records: Sequence[Envelope]) -> AppendResult:
        name = _stream_name(stream)
        # Envelope.to_json() is model_dump_json().encode(); calling the compiled serializer
        # directly gives the same bytes without the Python wrapper's keyword handling (~2 us a
        # record, a tenth of a batched append). test_stored_row checks the bytes are the same.
        to_json = Envelope.__pydantic_serializer__.to_json
        rows = [
            (envelope.id.bytes, envelope.key, envelope.kind, to_json(envelope).decode())
            for envelope in records
        ]
        with self._connection("append") as conn:
            if not rows:
                return AppendResult(appended=0, duplicates=0)
            conn.execute("BEGIN IMMEDIATE")
            try:
                table = self._find_table(conn, name) or self._create_table(conn, name)
                appended = conn.executemany(_INSERT.format(table=table), rows).rowcount
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self._tables[name] = table  # only once the commit made it exist for sure
        return AppendResult(appended=appended, duplicates=len(rows) - appended)

    def read(
        self, stream: str, partition: int = 0, start: int = 0, limit: int = 1000
    ) -> list[StoredRecord]:
        name = _stream_name(stream)
        rows = self.read_json(name, partition, start, limit)
        return [StoredRecord(name, 0, p, self._parse(name, p, data)) for p, data in rows]

    def read_json(
        self, stream: str, partition: int = 0, start: int = 0, limit: int = 1000
    ) -> list[tuple[int, str]]:
        """:meth:`read` without parsing: ``(position, envelope JSON as stored)`` of each record.

        Not part of the contract. For a projection that turns every record into something
        else (the InfluxDB writer): each envelope was validated on append, so it can decode
        the JSON itself instead of paying for a pydantic parse per record.
        """
        name = _stream_name(stream)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        with self._connection("read") as conn:
            _check_partition(partition)
            table = self._find_table(conn, name)
            if table is None:
                return []
            rows: list[tuple[int, str]] = conn.execute(
                _READ.format(table=table), (start, limit)
            ).fetchall()
        return rows

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
    ) -> list[StoredRecord]:
        """Up to ``limit`` records of ``stream`` whose partition key is ``key`` (an
        ``estate/device``) and whose ``occurred_at`` is within ``[since, until]``
        (aware datetimes; ``None`` is open), in log order, or newest first.

        ``after`` continues a previous page: records past that position in the chosen
        order (greater positions in log order, smaller ones newest first).
        """
        name = _stream_name(stream)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        low, high = (_bound(since, "since", "0001-01-01"), _bound(until, "until", "9999-12-31"))
        op, order = ("<", "DESC") if newest_first else (">", "ASC")
        if after is None:
            after = 1 << 62 if newest_first else -1
        records: list[StoredRecord] = []
        while len(records) < limit:
            with self._connection("read_key") as conn:
                table = self._find_table(conn, name)
                if table is None:
                    return []
                rows: list[tuple[int, str]] = conn.execute(
                    _READ_KEY.format(table=table, op=op, order=order),
                    (key, after, low, high, limit),
                ).fetchall()
            for position, data in rows:
                envelope = self._parse(name, position, data)
                if (since is None or envelope.occurred_at >= since) and (
                    until is None or envelope.occurred_at <= until
                ):
                    records.append(StoredRecord(name, 0, position, envelope))
            if len(rows) < limit:
                break
            after = rows[-1][0]
        return records[:limit]

    def _parse(self, name: str, position: int, data: str) -> Envelope:
        try:
            return Envelope.from_json(data)
        except ValidationError as exc:
            raise LogError(
                f"event log {self._path}: record {position} of {name!r} is unreadable: {exc}"
            ) from exc

    def end_position(self, stream: str, partition: int = 0) -> int:
        """One past the last position of ``stream`` (0 when it is empty).

        A consumer whose checkpoint is at least this has read everything; the
        next record appended will have a position at least this.
        """
        name = _stream_name(stream)
        with self._connection("end_position") as conn:
            _check_partition(partition)
            table = self._find_table(conn, name)
            if table is None:
                return 0
            row = conn.execute(f"SELECT max(position) FROM {table}").fetchone()  # noqa: S608
        return 0 if row[0] is None else int(row[0]) + 1

    def get_checkpoint(self, consumer: str, stream: str, partition: int = 0) -> int:
        name = _stream_name(stream)
        _consumer_name(consumer)
        with self._connection("get_checkpoint") as conn:
            _check_partition(partition)
            row = conn.execute(
                "SELECT position FROM checkpoints WHERE consumer = ? AND stream = ? AND part = ?",
                (consumer, name, partition),
            ).fetchone()
        return 0 if row is None else int(row[0])

    def commit_checkpoint(
        self, consumer: str, stream: str, position: int, partition: int = 0
    ) -> None:
        name = _stream_name(stream)
        _consumer_name(consumer)
        if position < 0:
            raise ValueError(f"a checkpoint position cannot be negative ({position})")
        with self._connection("commit_checkpoint") as conn:
            _check_partition(partition)
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (consumer, stream, part, position)"
                " VALUES (?, ?, ?, ?)",
                (consumer, name, partition, position),
            )

    def close(self) -> None:
        """Close the file; idempotent. Every other call afterwards raises :class:`LogError`."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass  # closing must not fail because of a statistics refresh
            finally:
                conn.close()

    def _find_table(self, conn: sqlite3.Connection, name: str) -> str | None:
        """The table of stream ``name``, or None while nothing was ever appended to it."""
        table = self._tables.get(name)
        if table is None:
            row = conn.execute("SELECT number FROM streams WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            table = self._tables[name] = f"stream_{int(row[0])}"
        return table

    def _create_table(self, conn: sqlite3.Connection, name: str) -> str:
        """Create the table of stream ``name`` inside the caller's write transaction."""
        number = conn.execute("INSERT INTO streams (name) VALUES (?)", (name,)).lastrowid
        table = f"stream_{number}"
        conn.execute(_STREAM_TABLE.format(table=table))
        conn.execute(_KEY_INDEX.format(table=table))
        return table  # cached by the caller once its transaction committed

    # --- operations ----------------------------------------------------------------------------

    def integrity_check(self) -> list[str]:
        """Run ``PRAGMA integrity_check``: the problems found (an empty list when sound)."""
        with self._connection("integrity_check") as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    def __enter__(self) -> Self:
        return self

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"SqliteEventLog({str(self._path)!r}, synchronous={self._synchronous!r}) [{state}]"


def _stream_name(stream: str) -> str:
    name = str(stream)  # a Stream member renders as its value
    if not name:
        raise ValueError("a stream name cannot be empty")
    return name


def _bound(value: datetime | None, what: str, default: str) -> str:
    if value is None:
        return default
    if value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.isoformat()


def _consumer_name(consumer: str) -> None:
    if not consumer:
        raise ValueError("a consumer name cannot be empty")


def _check_partition(partition: int) -> None:
    if partition != 0:
        raise LogError(f"the embedded event log has one partition per stream (0), not {partition}")
