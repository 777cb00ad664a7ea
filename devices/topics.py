"""The MQTT topic scheme.

* ``estates/{estate}/{kind}/{device}/{stream}`` — one reading of one device;
* ``estates/{estate}/gateway/{gateway}/batch`` — a gateway's batch: many readings,
  each naming its own kind, device and stream (see :class:`BatchMessage`).

Identifiers are 1–64 characters of ``A-Z a-z 0-9 _ - .``. Anything else is
refused by :func:`parse_topic` with a reason a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from devices.catalogue import CATALOGUE, DeviceKind

TOPIC_ROOT = "estates"
BATCH_STREAM = "batch"
_IDENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class TopicError(ValueError):
    """A topic outside the scheme; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class Topic:
    estate: str
    kind: DeviceKind
    device: str
    stream: str

    @property
    def is_batch(self) -> bool:
        return self.kind is DeviceKind.GATEWAY and self.stream == BATCH_STREAM

    def __str__(self) -> str:
        return topic_for(self.estate, self.kind, self.device, self.stream)


def topic_for(estate: str, kind: DeviceKind | str, device: str, stream: str) -> str:
    return f"{TOPIC_ROOT}/{estate}/{DeviceKind(kind).value}/{device}/{stream}"


def batch_topic(estate: str, gateway: str) -> str:
    return topic_for(estate, DeviceKind.GATEWAY, gateway, BATCH_STREAM)


def subscription(estate: str = "+") -> str:
    """The MQTT filter that matches every reading topic (of one estate, or of all)."""
    return f"{TOPIC_ROOT}/{estate}/+/+/+"


def parse_topic(topic: str) -> Topic:
    """Split ``topic`` into estate, kind, device and stream, or raise :class:`TopicError`."""
    parts = topic.split("/")
    if len(parts) != 5:
        raise TopicError(
            f"topic {topic!r} has {len(parts)} levels; expected "
            f"{TOPIC_ROOT}/{{estate}}/{{kind}}/{{device}}/{{stream}}"
        )
    root, estate, kind_text, device, stream = parts
    if root != TOPIC_ROOT:
        raise TopicError(f"topic {topic!r} does not start with {TOPIC_ROOT}/")
    for name, value in (("estate", estate), ("device", device)):
        if not _IDENT.fullmatch(value):  # not .match: its $ also matches before a final \n
            raise TopicError(
                f"topic {topic!r}: {name} {value!r} is not 1-64 characters of A-Z a-z 0-9 _ - ."
            )
    try:
        kind = DeviceKind(kind_text)
    except ValueError:
        known = ", ".join(k.value for k in DeviceKind)
        raise TopicError(
            f"topic {topic!r}: unknown device kind {kind_text!r} (known: {known})"
        ) from None
    if (kind, stream) not in CATALOGUE and not (
        kind is DeviceKind.GATEWAY and stream == BATCH_STREAM
    ):
        known = ", ".join(s for (k, s) in CATALOGUE if k is kind)
        raise TopicError(
            f"topic {topic!r}: kind {kind.value} has no stream {stream!r} (known: {known})"
        )
    return Topic(estate, kind, device, stream)


class BatchItem(BaseModel):
    """One reading inside a gateway batch; ``data`` is validated by the kind's model."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: DeviceKind = Field(strict=False)
    device: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
    stream: Annotated[str, Field(min_length=1, max_length=32)]
    data: dict[str, Any]


class BatchMessage(BaseModel):
    """A gateway batch: ``{"readings": [{"kind", "device", "stream", "data"}, ...]}``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    readings: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10_000)]
