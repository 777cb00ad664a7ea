"""Routing, the payload, and the feed from the ``events`` stream into the outbox."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from alerts.clock import VirtualClock
from alerts.delivery import CONSUMER, DeliveryConfig, Dispatcher
from alerts.outbox import Outbox
from alerts.payload import DELIVERED_KINDS, messages_for, webhook_id
from processors.alarm import AlertEventKind, Severity, to_envelope

from .conftest import T0, Estate, alert_event, append_events

EXTRA = {
    "huamu": """\
          - id: critical-water
            url: http://127.0.0.1:9/critical
            secret_file: /run/secrets/none
            min_severity: critical
            events: ["water_*"]
          - id: by-kind
            url: http://127.0.0.1:9/kinds
            secret_env: SECRET_HUAMU
            events: [AlertResolved, "alert.acknowledged"]
            estates: [huamu-estate]
"""
}


@pytest.fixture
def estate(tmp_path):
    e = Estate(tmp_path, {o: f"http://127.0.0.1:9/{o}" for o in ("huamu", "gumei")}, EXTRA)
    yield e
    e.close()


def body_of(estate, event):
    (message,) = messages_for(to_envelope(event, event.at), estate.index)
    return message, json.loads(message.body)


def test_payload_is_versioned_and_complete(estate):
    event = alert_event("huamu", 1, device="wm-0101", condition="water_night_flow")
    message, body = body_of(estate, event)
    assert message.endpoint == "huamu/control"
    assert message.webhook_id == webhook_id(event.id, "huamu/control")
    assert body["type"] == "alert.raised" and body["version"] == 1
    assert body["timestamp"] == "2026-11-22T01:00:00Z"
    assert body["event_id"] == str(event.id)
    data = body["data"]
    assert data["alert_id"] == str(event.alert_id)
    assert (data["district"], data["street_office"], data["estate"]) == (
        "pudong",
        "huamu",
        "huamu-estate",
    )
    assert (data["building"], data["device"], data["device_kind"]) == (
        "b03",
        "wm-0101",
        "water_meter",
    )
    assert data["estate_name"] == "huamu garden"
    assert (data["condition"], data["severity"], data["rule_version"]) == (
        "water_night_flow",
        "major",
        "2026.11.1",
    )
    assert data["values"] == {"fill_pct": 97} and data["explanation"].startswith("alert 1")
    assert data["occurred_at"] == "2026-11-22T01:00:00Z"
    # estate-level devices have no building
    _, bin_body = body_of(estate, alert_event("gumei", 2))
    assert bin_body["data"]["building"] is None and bin_body["data"]["zone"] == "cp01"


@pytest.mark.parametrize("kind", list(AlertEventKind))
def test_each_lifecycle_kind_is_its_own_message_or_none(estate, kind):
    event = alert_event("gumei", 1, kind, actor="op-7", reason="operator")
    messages = messages_for(to_envelope(event, event.at), estate.index)
    if kind.value in DELIVERED_KINDS:
        (message,) = messages
        body = json.loads(message.body)
        assert body["type"] == DELIVERED_KINDS[kind.value] == message.type
        assert body["data"]["actor"] == "op-7"
    else:
        assert messages == []


def test_filters_on_severity_condition_kind_and_estate(estate):
    def endpoints(event):
        return sorted(m.endpoint for m in messages_for(to_envelope(event, event.at), estate.index))

    water = {"device": "wm-0101", "condition": "water_burst"}
    assert endpoints(alert_event("huamu", 1, **water)) == ["huamu/control"]
    critical = alert_event("huamu", 1, severity=Severity.CRITICAL, **water)
    assert endpoints(critical) == ["huamu/control", "huamu/critical-water"]
    critical_bin = alert_event("huamu", 1, severity=Severity.CRITICAL)
    assert endpoints(critical_bin) == ["huamu/control"]
    resolved = alert_event("huamu", 1, AlertEventKind.RESOLVED)
    assert endpoints(resolved) == ["huamu/by-kind", "huamu/control"]
    acked = alert_event("huamu", 1, AlertEventKind.ACKNOWLEDGED)
    assert endpoints(acked) == ["huamu/by-kind", "huamu/control"]
    # another office's estate never reaches huamu's endpoints
    assert endpoints(alert_event("gumei", 1, AlertEventKind.RESOLVED)) == ["gumei/control"]


def test_webhook_ids_are_deterministic_and_distinct(estate):
    event = alert_event("huamu", 1, AlertEventKind.RESOLVED)
    first = messages_for(to_envelope(event, event.at), estate.index)
    again = messages_for(to_envelope(event, event.at + timedelta(hours=1)), estate.index)
    assert [m.webhook_id for m in first] == [m.webhook_id for m in again]
    assert len({m.webhook_id for m in first}) == 2


def test_refeeding_after_a_crash_enqueues_nothing_twice(estate):
    events = [alert_event(o, n) for o in ("huamu", "gumei") for n in range(30)]
    events += [alert_event("huamu", 1, AlertEventKind.ASSIGNED, assignee="x")]  # not delivered
    append_events(estate.log, events)
    clock = VirtualClock(T0 + timedelta(minutes=5))
    dispatcher = Dispatcher(
        estate.log, estate.index, estate.outbox, clock=clock, config=DeliveryConfig(feed_batch=7)
    )
    with Outbox(estate.outbox) as outbox:
        while dispatcher.feed_once(outbox):
            pass
        assert dispatcher.counters.messages_enqueued == 60
        end = estate.log.end_position("events")
        assert estate.log.get_checkpoint(CONSUMER, "events") == end
        # a crash after the outbox commit and before the checkpoint: the batch is read again
        estate.log.commit_checkpoint(CONSUMER, "events", 0)
        while dispatcher.feed_once(outbox):
            pass
        assert dispatcher.counters.messages_enqueued == 60
        assert dispatcher.counters.messages_duplicate == 60
        assert [(s.endpoint, s.pending) for s in outbox.status()] == [
            ("gumei/control", 30),
            ("huamu/control", 30),
        ]


def test_events_older_than_max_age_are_not_delivered(estate):
    append_events(
        estate.log,
        [alert_event("huamu", 1, at=T0), alert_event("huamu", 2, at=T0 + timedelta(days=2))],
    )
    clock = VirtualClock(T0 + timedelta(days=2, minutes=1))
    dispatcher = Dispatcher(estate.log, estate.index, estate.outbox, clock=clock)
    with Outbox(estate.outbox) as outbox:
        assert dispatcher.feed_once(outbox)
        assert dispatcher.counters.events_stale == 1
        assert dispatcher.counters.messages_enqueued == 1


def test_after_the_first_start_no_event_is_too_old(estate):
    """A sender down for days delivers everything once it has a checkpoint."""
    append_events(estate.log, [alert_event("huamu", 1, at=T0)])
    clock = VirtualClock(T0 + timedelta(minutes=1))
    dispatcher = Dispatcher(estate.log, estate.index, estate.outbox, clock=clock)
    with Outbox(estate.outbox) as outbox:
        assert dispatcher.feed_once(outbox)
        append_events(estate.log, [alert_event("huamu", 2, at=T0 + timedelta(minutes=2))])
        clock.advance(3 * 86400)  # down for three days
        assert dispatcher.feed_once(outbox)
        assert dispatcher.counters.events_stale == 0
        assert dispatcher.counters.messages_enqueued == 2


def test_a_malformed_alert_event_is_skipped_and_counted(estate):
    good = alert_event("huamu", 1)
    broken = to_envelope(alert_event("huamu", 2), T0).with_payload(severity="apocalyptic")
    estate.log.append("events", [broken, to_envelope(good, T0)])
    dispatcher = Dispatcher(estate.log, estate.index, estate.outbox, clock=VirtualClock(T0))
    with Outbox(estate.outbox) as outbox:
        assert dispatcher.feed_once(outbox)
        assert dispatcher.counters.events_unreadable == 1
        assert dispatcher.counters.messages_enqueued == 1
        assert estate.log.get_checkpoint(CONSUMER, "events") == estate.log.end_position("events")
