"""Routing of alert lifecycle events to street-office endpoints, and the webhook payload.

Five lifecycle kinds are delivered, each as its own message (``docs/webhooks.md``):
``AlertRaised``, ``AlertEscalated``, ``AlertAcknowledged``, ``AlertCleared`` and
``AlertResolved``. An event goes to the endpoints of its estate's street office
(``RegistryIndex.webhooks_for``) whose filters take it: ``min_severity`` against the
alert's severity after the event, ``estates`` against its estate, and ``events``
(shell-style patterns) against the alert's condition (``water_night_flow``), its
lifecycle kind (``AlertRaised``) or its message type (``alert.raised``) — any match
counts.

The ``webhook-id`` of a message is derived from the event id and the endpoint, so
feeding the same event again (after a crash, a replay) yields the same message, which
the outbox stores once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from devices.registry import RegistryIndex, WebhookEndpoint
from eventlog.envelope import Envelope, deterministic_id
from processors.alarm import AlertEvent, AlertEventKind, from_envelope

__all__ = [
    "DELIVERED_KINDS",
    "PAYLOAD_VERSION",
    "Message",
    "Route",
    "build_payload",
    "encode",
    "endpoint_key",
    "messages_for",
    "routes_for",
    "webhook_id",
]

#: The payload schema version (``"version"`` in every body). Additive changes keep it.
PAYLOAD_VERSION: Final = 1

#: Lifecycle kinds delivered to street offices, and their message ``type``.
DELIVERED_KINDS: Final[dict[str, str]] = {
    AlertEventKind.RAISED.value: "alert.raised",
    AlertEventKind.ESCALATED.value: "alert.escalated",
    AlertEventKind.ACKNOWLEDGED.value: "alert.acknowledged",
    AlertEventKind.CLEARED.value: "alert.cleared",
    AlertEventKind.RESOLVED.value: "alert.resolved",
}


def endpoint_key(office_id: str, endpoint_id: str) -> str:
    """Endpoint ids are unique per street office; ``office/endpoint`` is unique everywhere."""
    return f"{office_id}/{endpoint_id}"


def webhook_id(event_id: UUID, key: str) -> str:
    """The ``webhook-id`` of the message of event ``event_id`` to endpoint ``key``."""
    return "msg_" + deterministic_id("webhook-message", event_id, key).hex


@dataclass(frozen=True, slots=True)
class Route:
    key: str
    office: str
    endpoint: WebhookEndpoint


@dataclass(frozen=True, slots=True)
class Message:
    """One message to enqueue: a body for one endpoint."""

    webhook_id: str
    endpoint: str
    event_id: UUID
    alert_id: UUID
    type: str
    estate: str
    device: str
    occurred_at: datetime
    body: bytes


def _takes(endpoint: WebhookEndpoint, event: AlertEvent, message_type: str) -> bool:
    return any(
        endpoint.accepts(name, event.severity, event.estate)
        for name in (event.condition, event.kind.value, message_type)
    )


def routes_for(event: AlertEvent, index: RegistryIndex) -> list[Route]:
    """The endpoints ``event`` is delivered to (none for kinds that are not delivered)."""
    message_type = DELIVERED_KINDS.get(event.kind.value)
    ref = index.estate(event.estate)
    if message_type is None or ref is None:
        return []
    office = ref.street_office.id
    return [
        Route(endpoint_key(office, hook.id), office, hook)
        for hook in index.webhooks_for(event.estate)
        if _takes(hook, event, message_type)
    ]


def build_payload(event: AlertEvent, index: RegistryIndex, recorded_at: datetime) -> dict[str, Any]:
    """The JSON document of one message (``docs/webhooks.md`` describes every field)."""
    device = index.device(event.estate, event.device)
    estate = index.estate(event.estate)
    return {
        "type": DELIVERED_KINDS[event.kind.value],
        "version": PAYLOAD_VERSION,
        "timestamp": event.at,
        "event_id": event.id,
        "data": {
            "alert_id": event.alert_id,
            "occurrence": event.occurrence,
            "condition": event.condition,
            "severity": event.severity.value,
            "explanation": event.explanation,
            "values": event.values,
            "evidence": list(event.evidence),
            "detector": event.detector,
            "rule_version": event.rule_version,
            "district": None if estate is None else estate.district.id,
            "street_office": None if estate is None else estate.street_office.id,
            "estate": event.estate,
            "estate_name": None if estate is None else estate.estate.name,
            "building": None if device is None else device.building,
            "device": event.device,
            "device_kind": None if device is None else device.kind.value,
            "zone": None if device is None else device.zone,
            "occurred_at": event.at,
            "recorded_at": recorded_at,
            "actor": event.actor,
            "reason": event.reason,
            "comment": event.comment,
            "requested_at": event.requested_at,
        },
    }


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; datetimes as RFC 3339 UTC with ``Z``, UUIDs as strings."""
    return orjson.dumps(payload, option=orjson.OPT_UTC_Z)


def messages_for(envelope: Envelope, index: RegistryIndex) -> list[Message]:
    """The messages one record of the ``events`` stream makes (none for other kinds)."""
    if envelope.kind not in DELIVERED_KINDS:
        return []
    event = from_envelope(envelope)
    routes = routes_for(event, index)
    if not routes:
        return []
    body = encode(build_payload(event, index, envelope.received_at))
    return [
        Message(
            webhook_id=webhook_id(event.id, route.key),
            endpoint=route.key,
            event_id=event.id,
            alert_id=event.alert_id,
            type=DELIVERED_KINDS[event.kind.value],
            estate=event.estate,
            device=event.device,
            occurred_at=event.at,
            body=body,
        )
        for route in routes
    ]
