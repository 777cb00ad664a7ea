"""API tokens: stored hashed (SHA-256) in a JSON file of the data directory.

A token is ``est_`` + 32 random bytes (base64url); the file keeps only its SHA-256, the
name, the role and the scope, so a leaked file gives no working token. Roles:

* ``admin``: everything, every estate;
* ``operator``: reads and acts (acknowledge, assign, comment, resolve) on its estates;
* ``street_office``: reads only, the estates of its street office (resolved through
  the registry when the token is checked, so a registry change applies at once).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from eventlog.envelope import Ident, UtcDatetime

#: The file name of the token store inside the data directory.
TOKENS_FILE: Final = "tokens.json"
PREFIX: Final = "est_"


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    STREET_OFFICE = "street_office"


class TokenRecord(BaseModel):
    """One stored token (never the token itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(min_length=8, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Role
    estates: tuple[Ident, ...] = ()
    office: Ident | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    created_at: UtcDatetime

    @model_validator(mode="after")
    def _scope_fits_role(self) -> TokenRecord:
        if self.role is Role.OPERATOR and not self.estates:
            raise ValueError("an operator token needs at least one estate")
        if self.role is Role.STREET_OFFICE and self.office is None:
            raise ValueError("a street_office token needs its office")
        if self.role is not Role.OPERATOR and self.estates:
            raise ValueError("only operator tokens take --estates")
        if self.role is not Role.STREET_OFFICE and self.office is not None:
            raise ValueError("only street_office tokens take --office")
        return self


_RECORDS = TypeAdapter(list[TokenRecord])


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role, and the estates it may see."""

    token_id: str
    name: str
    role: Role
    #: The estates in scope; ``None`` means every estate (admin).
    estates: frozenset[str] | None

    def can_read(self, estate: str) -> bool:
        return self.estates is None or estate in self.estates

    @property
    def can_act(self) -> bool:
        """Whether the role may send operator commands (within its scope)."""
        return self.role in (Role.ADMIN, Role.OPERATOR)

    def visible(self, estates: Iterable[str]) -> list[str]:
        return [e for e in estates if self.can_read(e)]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """The tokens file: create, list and check tokens; re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._records: list[TokenRecord] = []

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> TokenStore:
        return cls(data_dir / TOKENS_FILE)

    def records(self) -> list[TokenRecord]:
        with self._lock:
            self._reload()
            return list(self._records)

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._records, self._mtime = [], None
            return
        if mtime != self._mtime:
            self._records = _RECORDS.validate_json(self.path.read_bytes())
            self._mtime = mtime

    def create(
        self,
        name: str,
        role: Role,
        *,
        estates: Iterable[str] = (),
        office: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> tuple[str, TokenRecord]:
        """A new token (returned once, in clear) and its stored record."""
        token = PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            id=secrets.token_hex(8),
            name=name,
            role=role,
            estates=tuple(estates),
            office=office,
            sha256=hash_token(token),
            created_at=now(),
        )
        with self._lock:
            self._reload()
            self._write([*self._records, record])
        return token, record

    def _write(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(_RECORDS.dump_json(records, indent=2))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        self._records, self._mtime = records, None

    def check(self, token: str) -> TokenRecord | None:
        """The record of ``token``, or ``None`` when it is unknown."""
        digest = hash_token(token)
        found = None
        for record in self.records():
            if hmac.compare_digest(record.sha256, digest):
                found = record
        return found


def principal_of(record: TokenRecord, office_estates: Callable[[str], Iterable[str]]) -> Principal:
    """The caller a stored token stands for; ``office_estates`` resolves a street office."""
    if record.role is Role.ADMIN:
        estates: frozenset[str] | None = None
    elif record.role is Role.OPERATOR:
        estates = frozenset(record.estates)
    else:
        assert record.office is not None
        estates = frozenset(office_estates(record.office))
    return Principal(record.id, record.name, record.role, estates)
