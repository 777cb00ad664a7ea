"""Malformed messages over a real broker land in `rejected`; the gateway keeps going."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import pytest

from devices.catalogue import DeviceKind
from devices.registry import DeviceRef
from devices.topics import topic_for
from eventlog import Stream
from ingest.gateway import Gateway
from tests.ingest_component.conftest import LogWatcher, Prober, check_exactly_once
from tests.support.brokers import Mosquitto, amqtt_broker
from tests.support.publisher import Message, Publisher, water_readings


@contextmanager
def _broker(
    name: str, mosquitto_factory: Callable[..., Mosquitto]
) -> Iterator[tuple[str, int, str]]:
    if name == "mosquitto":
        broker = mosquitto_factory()
        broker.start()
        yield broker.host, broker.port, broker.url
    else:
        with amqtt_broker() as embedded:
            yield embedded.host, embedded.port, embedded.url


def _bad_messages(meter: DeviceRef) -> list[tuple[Message, str]]:
    """(message, expected reason) for a handful of unacceptable messages."""
    topic = topic_for(meter.estate, meter.kind, meter.device, "register")
    body = {"ts": "2026-01-01T08:00:00+08:00", "seq": 1, "volume_m3": 12.5}
    valid = json.dumps(body).encode()
    cases = [
        (topic, b'{"ts": "2026-01-01T08:00:00+08:00", "seq": 1, "volume_m3": ', "invalid_json"),
        (topic, b'{"seq": 1, "seq": 2, "volume_m3": 1.0}', "duplicate_key"),
        (topic, b"\xff\xfe\x00\x01 not text", "invalid_utf8"),
        (topic, b"[1, 2, 3]", "not_an_object"),
        (topic, b"", "empty_payload"),
        (topic, json.dumps({**body, "volume_m3": -4.0}).encode(), "out_of_range"),
        (topic, json.dumps({**body, "volume_m3": "lots"}).encode(), "schema"),
        (
            topic_for(meter.estate, DeviceKind.WATER_METER, "wm-not-registered", "register"),
            valid,
            "unknown_device",
        ),
        (topic_for("elsewhere", meter.kind, meter.device, "register"), valid, "wrong_estate"),
        (topic_for(meter.estate, DeviceKind.ENERGY_METER, meter.device, "register"), valid, ""),
        (f"estates/{meter.estate}/water_meter/{meter.device}/nope", valid, "bad_topic"),
    ]
    out = []
    for t, payload, reason in cases:
        out.append((Message(t, payload), reason or "kind_mismatch"))
    return out


@pytest.mark.parametrize(
    ("broker_name", "protocol"),
    [("mosquitto", "5"), ("amqtt", "3.1.1")],
    ids=["mosquitto", "amqtt"],
)
def test_malformed_messages_are_rejected_and_the_gateway_keeps_going(
    broker_name: str,
    protocol: Literal["5", "3.1.1"],
    mosquitto_factory: Callable[..., Mosquitto],
    gateways: Callable[..., Gateway],
    publishers: Callable[..., Publisher],
    water_meters: list[DeviceRef],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    with _broker(broker_name, mosquitto_factory) as (host, port, url):
        gateway = gateways(url, client_id=f"ingest-bad-input-{protocol}", protocol=protocol)
        assert gateway.wait_connected(10)
        publisher = publishers(host, port, client_id=f"dev-bad-{protocol}", protocol=protocol)
        prober.until_logged(publisher, watcher, check=gateway.raise_if_failed)

        bad = _bad_messages(water_meters[0])
        before = water_readings(water_meters[:10], per_device=3)
        after = water_readings(water_meters[:10], per_device=3, first_seq=4)
        publisher.publish(before)
        publisher.publish(m for m, _ in bad)
        publisher.publish(after)
        publisher.wait_all_acked(timeout=30)
        good = before + after
        watcher.wait_for(good, 30, check=gateway.raise_if_failed)
        watcher.wait_for_count(Stream.REJECTED, len(bad), 30)
        gateway.stop()
        watcher.poll()

    check_exactly_once(watcher.readings, good)
    reasons = Counter(r.payload["reason"] for r in watcher.rejected)
    assert reasons == Counter(reason for _, reason in bad)
    by_reason = {r.payload["reason"]: r for r in watcher.rejected}
    for message, reason in bad:
        letter = by_reason[reason]
        assert letter.payload["topic"] == message.topic
        assert base64.b64decode(str(letter.payload["raw_b64"])) == message.payload, reason
        assert letter.payload["detail"], reason
        assert letter.kind == f"rejected.{reason}"
    assert gateway.stats.rejected_appended == len(bad)
    assert gateway.stats.readings_appended >= len(good)
