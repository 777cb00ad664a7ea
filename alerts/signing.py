"""Standard Webhooks signatures (https://www.standardwebhooks.com/), both sides.

A message carries three headers: ``webhook-id`` (unique per message, the same on
every retry), ``webhook-timestamp`` (integer seconds since the epoch, the time of the
attempt) and ``webhook-signature``: space-separated ``v1,<base64>`` items, each the
HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under one secret. During a secret rotation
the sender signs with every secret it holds, so a receiver that knows either verifies.

Secrets are ``whsec_`` followed by the base64 of 24 to 64 random bytes (the prefix is
optional on input, as in the reference library). A secret *value* (the environment
variable or secret file) may hold several secrets separated by whitespace: the new one
and the one being retired. Error messages never quote a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

__all__ = [
    "MAX_SIGNATURE_HEADER",
    "SECRET_PREFIX",
    "TOLERANCE_SECONDS",
    "SecretError",
    "VerificationError",
    "generate_secret",
    "parse_secrets",
    "sign",
    "signed_headers",
    "verify",
]

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: Bytes of key material a secret must hold (the specification's recommendation).
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
#: A receiver refuses timestamps further than this from its clock (either way).
TOLERANCE_SECONDS: Final = 300
#: Longest ``webhook-signature`` header a receiver reads (a few rotations' worth).
MAX_SIGNATURE_HEADER: Final = 1024
#: Longest ``webhook-id``; characters allowed in it.
_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_TIMESTAMP_PATTERN: Final = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE_BYTES: Final = 32  # SHA-256


class SecretError(ValueError):
    """A secret value is not usable (the message never includes the secret)."""


class VerificationError(ValueError):
    """A received message fails verification; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _b64decode(text: str) -> bytes:
    """Strict base64 (standard alphabet); missing padding is tolerated."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def parse_secrets(value: str) -> tuple[bytes, ...]:
    """The keys of a secret value: one or more ``whsec_…`` secrets separated by whitespace."""
    keys: list[bytes] = []
    for n, item in enumerate(value.split(), start=1):
        try:
            key = _b64decode(item.removeprefix(SECRET_PREFIX))
        except (binascii.Error, ValueError):
            raise SecretError(
                f"secret #{n} is not base64 (expected {SECRET_PREFIX} followed by base64)"
            ) from None
        if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
            raise SecretError(
                f"secret #{n} holds {len(key)} bytes; a secret holds "
                f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes"
            )
        keys.append(key)
    if not keys:
        raise SecretError("the secret is empty")
    return tuple(keys)


def generate_secret(nbytes: int = 32) -> str:
    """A new random secret in the ``whsec_`` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,`` signature per key, space-separated."""
    if not keys:
        raise SecretError("no key to sign with")
    return " ".join(
        "v1," + base64.b64encode(_mac(key, msg_id, timestamp, body)).decode() for key in keys
    )


def signed_headers(
    keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, msg_id, timestamp, body),
    }


def verify(
    keys: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check one received message; return its ``webhook-id``.

    Raises :class:`VerificationError` with 400 for missing or malformed headers and
    401 for a timestamp outside ``±tolerance`` seconds of ``now`` or no matching
    signature. ``headers`` must look names up case-insensitively (aiohttp's do).
    """
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if msg_id is None or stamp is None or signature is None:
        raise VerificationError(400, "missing webhook-id, webhook-timestamp or webhook-signature")
    if not _ID_PATTERN.match(msg_id):
        raise VerificationError(400, "malformed webhook-id")
    if not _TIMESTAMP_PATTERN.match(stamp):
        raise VerificationError(400, "malformed webhook-timestamp (integer seconds expected)")
    if len(signature) > MAX_SIGNATURE_HEADER:
        raise VerificationError(400, "webhook-signature header too long")
    candidates: list[bytes] = []
    for item in signature.split(" "):
        parts = item.split(",")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise VerificationError(400, "malformed webhook-signature (expected v1,<base64>)")
        version, encoded = parts
        if version != "v1":
            continue  # other schemes (e.g. v1a) are not ours to check
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise VerificationError(400, "malformed webhook-signature (not base64)") from None
        if len(decoded) != _SIGNATURE_BYTES:
            raise VerificationError(400, "malformed webhook-signature (not an HMAC-SHA256)")
        candidates.append(decoded)
    if not candidates:
        raise VerificationError(401, "no v1 signature")
    timestamp = int(stamp)
    skew = timestamp - now.timestamp()
    if abs(skew) > tolerance:
        side = "ahead of" if skew > 0 else "behind"
        raise VerificationError(401, f"timestamp {side} the receiver by {abs(skew):.0f} s")
    for key in keys:
        expected = _mac(key, msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return msg_id
    raise VerificationError(401, "no matching signature")
