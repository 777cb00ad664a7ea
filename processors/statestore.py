"""Snapshots of processor and projection state, in one SQLite file beside the log.

A snapshot is a named blob written atomically (one transaction), holding a consumer's
state *and* the log positions it corresponds to, so state and positions never
disagree. Losing the file loses nothing but time: everything is rebuilt from the log.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from eventlog.log import LogError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    name       TEXT PRIMARY KEY,
    data       BLOB NOT NULL,
    written_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""


class StateStore:
    """Named JSON snapshots in a SQLite file (WAL, synchronous FULL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA busy_timeout = 10000")
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LogError(f"cannot open state store {self.path}: {exc}") from exc

    def load(self, name: str) -> Any | None:
        """The snapshot stored under ``name`` (``None`` when there is none)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM snapshots WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            return None
        try:
            return orjson.loads(row[0])
        except orjson.JSONDecodeError as exc:
            raise LogError(
                f"state store {self.path}: snapshot {name!r} is unreadable: {exc}"
            ) from exc

    def save(self, name: str, data: Any) -> int:
        """Store ``data`` (JSON-compatible) under ``name``, durably; the size in bytes."""
        blob = orjson.dumps(data)
        with self._lock:
            self._conn.execute(
                "INSERT INTO snapshots (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                "SET data = excluded.data, written_at = excluded.written_at",
                (name, blob),
            )
        return len(blob)

    def delete(self, prefix: str) -> int:
        """Drop every snapshot whose name starts with ``prefix``; how many were dropped."""
        with self._lock:
            cursor = self._conn.execute(
                "DELETE FROM snapshots WHERE substr(name, 1, length(?)) = ?", (prefix, prefix)
            )
        return cursor.rowcount

    def names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT name FROM snapshots ORDER BY name")]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
