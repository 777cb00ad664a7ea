"""The event log: the envelope, stream names, backends and checkpoints.

This package knows nothing of devices, ingest or processors.
"""

from eventlog.envelope import Envelope, Stream, deterministic_id, utc
from eventlog.log import AppendResult, EventLog, LogError, StoredRecord

__all__ = [
    "AppendResult",
    "Envelope",
    "EventLog",
    "LogError",
    "StoredRecord",
    "Stream",
    "deterministic_id",
    "utc",
]
