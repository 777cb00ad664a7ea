"""Delivery over real HTTP on loopback: signatures, answers and failures, isolation."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from datetime import timedelta

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from alerts.clock import VirtualClock
from alerts.delivery import DELIVERIES_STREAM, DeliveryConfig, parse_retry_after
from alerts.outbox import Outbox
from alerts.payload import DELIVERED_KINDS, webhook_id
from alerts.signing import generate_secret
from processors.alarm import AlertEventKind

from .conftest import (
    OFFICES,
    T0,
    Dispatching,
    Estate,
    Server,
    alert_event,
    app_with,
    append_events,
    eventually,
    free_port,
    receiver_for,
    stats_of,
    store_of,
)

LIFECYCLE = [
    AlertEventKind.RAISED,
    AlertEventKind.ESCALATED,
    AlertEventKind.ACKNOWLEDGED,
    AlertEventKind.CLEARED,
    AlertEventKind.RESOLVED,
]


class Capture:
    """A street office that records every request and answers what ``answer`` says."""

    def __init__(self, clock=None, answer=None):
        self.requests: list[tuple[dict[str, str], bytes, object]] = []
        self.clock = clock
        self.answer = answer or (lambda n, headers: web.Response(text="ok"))
        self.server = Server(app_with(self.handle))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((dict(request.headers), body, self.clock and self.clock.now()))
        result = self.answer(len(self.requests), request.headers)
        if asyncio.iscoroutine(result):
            result = await result
        return result


def events_with_lifecycle(office: str, alerts: int):
    events = []
    for n in range(alerts):
        for seq, kind in enumerate(LIFECYCLE, start=1):
            at = T0 + timedelta(minutes=seq)
            events.append(alert_event(office, n, kind, at=at, seq=seq, actor="op-1"))
    return events


def test_every_message_verifies_with_the_reference_library(tmp_path):
    async def main():
        captures = {o: Capture() for o in OFFICES[:2]}
        estate = Estate(tmp_path, {o: c.server.url + f"/hooks/{o}" for o, c in captures.items()})
        rotated = generate_secret()
        estate.environ["SECRET_HUAMU"] = f"{rotated} {estate.secrets['huamu']}"  # rotation
        for c in captures.values():
            await c.server.start()
        for office in captures:
            append_events(estate.log, events_with_lifecycle(office, 4))
        async with Dispatching(estate, config=DeliveryConfig(max_event_age=None)):
            await eventually(lambda: all(len(c.requests) == 20 for c in captures.values()))
        for office, capture in captures.items():
            secrets = [estate.secrets[office]] + ([rotated] if office == "huamu" else [])
            types = []
            for headers, body, _ in capture.requests:
                for secret in secrets:
                    assert Webhook(secret).verify(body, headers) == json.loads(body)
                assert headers["Content-Type"] == "application/json"
                assert len(headers["webhook-signature"].split(" ")) == len(secrets)
                types.append(json.loads(body)["type"])
            assert sorted(types) == sorted(
                [
                    "alert.raised",
                    "alert.escalated",
                    "alert.acknowledged",
                    "alert.cleared",
                    "alert.resolved",
                ]
                * 4
            )
            ids = [h["webhook-id"] for h, _, _ in capture.requests]
            assert len(set(ids)) == 20
            # one alert's messages arrive in lifecycle order (concurrency is per endpoint)
            by_alert: dict[str, list[str]] = {}
            for _, body, _ in capture.requests:
                doc = json.loads(body)
                by_alert.setdefault(doc["data"]["alert_id"], []).append(doc["type"])
            assert all(
                t == [DELIVERED_KINDS[k.value] for k in LIFECYCLE] for t in by_alert.values()
            )
            await capture.server.stop()
        # every attempt is in the log's deliveries stream, as delivered
        deliveries = list(estate.log.iterate(DELIVERIES_STREAM))
        assert len(deliveries) == 40
        assert {r.envelope.kind for r in deliveries} == {"WebhookDelivered"}
        assert all(r.envelope.payload["status"] == 200 for r in deliveries)
        estate.close()

    asyncio.run(main())


def test_410_disables_the_endpoint_until_redriven(tmp_path):
    async def main():
        answers = {"status": 410}
        capture = Capture(answer=lambda n, h: web.Response(status=answers["status"]))
        estate = Estate(tmp_path, {"huamu": capture.server.url + "/gone"})
        await capture.server.start()
        append_events(estate.log, [alert_event("huamu", n) for n in range(5)])
        config = DeliveryConfig(max_event_age=None, poll_interval=0.02, concurrency=1)
        async with Dispatching(estate, config=config) as d:
            await eventually(lambda: d.counters.endpoints_disabled == 1)
            await asyncio.sleep(0.3)  # nothing more is sent to a disabled endpoint
            assert len(capture.requests) == 1
            with Outbox(estate.outbox) as other:  # like `estate webhooks status` / `redrive`
                (status,) = other.status()
                assert status.disabled and status.pending == 5 and status.delivered == 0
                assert "410" in (status.disabled_reason or "")
                answers["status"] = 204
                assert other.redrive("huamu/control", None, T0) == 0  # none failed, re-enabled
            await eventually(lambda: d.counters.delivered == 5)
        assert len(capture.requests) == 6
        kinds = [r.envelope.kind for r in estate.log.iterate(DELIVERIES_STREAM)]
        assert kinds == ["WebhookEndpointDisabled"] + ["WebhookDelivered"] * 5
        await capture.server.stop()
        estate.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [
        (429, lambda now: "120", 120),
        (
            503,
            lambda now: email.utils.format_datetime(now + timedelta(seconds=90), usegmt=True),
            90,
        ),
        (503, lambda now: None, None),  # no Retry-After: backoff from the first step
    ],
)
def test_retry_after_is_honoured(tmp_path, status, retry_after, wait):
    async def main():
        clock = VirtualClock(T0)

        def answer(n, headers):
            if n > 1:
                return web.Response(text="ok")
            value = retry_after(clock.now())
            return web.Response(status=status, headers={"Retry-After": value} if value else {})

        capture = Capture(clock, answer)
        estate = Estate(tmp_path, {"huamu": capture.server.url})
        await capture.server.start()
        append_events(estate.log, [alert_event("huamu", n) for n in range(3)])
        config = DeliveryConfig(concurrency=1, poll_interval=0.02)
        async with Dispatching(estate, clock=clock, config=config) as d:
            await clock.autojump(lambda: d.counters.delivered == 3)
        times = [at for _, _, at in capture.requests]
        assert len(times) == 4  # the refused one again, then the two that waited behind it
        assert capture.requests[0][0]["webhook-id"] == capture.requests[1][0]["webhook-id"]
        gap = (times[1] - times[0]).total_seconds()
        if wait is None:
            assert 0 <= gap <= DeliveryConfig().backoff_base
            assert d.counters.retry_after_honoured == 0
        else:
            assert wait <= gap <= wait + 1
            assert d.counters.retry_after_honoured == 1
        assert all(t == times[1] for t in times[1:])  # nothing was sent during the pause
        await capture.server.stop()
        estate.close()

    asyncio.run(main())


def test_parse_retry_after():
    assert parse_retry_after("0", T0) == 0
    assert parse_retry_after(" 30 ", T0) == 30
    assert parse_retry_after("Sun, 22 Nov 2026 01:02:00 GMT", T0) == 120
    assert parse_retry_after("Sun, 22 Nov 2026 00:00:00 GMT", T0) == 0  # in the past
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after("-5", T0) is None
    assert parse_retry_after(None, T0) is None


def test_unreachable_offices_back_off_and_never_give_up(tmp_path):
    """Connection refused, DNS failure and TLS failure each pause their endpoint with
    backoff (capped at 4 minutes), recorded with the error; the messages stay pending."""

    async def main():
        plain = Capture()  # plain HTTP: an https:// URL to it fails the TLS handshake
        await plain.server.start()
        urls = {
            "huamu": f"http://127.0.0.1:{free_port()}/closed",
            "gumei": "http://no-such-office.invalid/hook",
            "tianlin": f"https://127.0.0.1:{plain.server.port}/hook",
            "wujiao": f"{plain.server.url}/no-secret",
        }
        estate = Estate(tmp_path, urls)
        del estate.environ["SECRET_WUJIAO"]  # never sent unsigned
        append_events(estate.log, [alert_event(o, n) for o in urls for n in range(10)])
        clock = VirtualClock(T0)
        async with Dispatching(estate, clock=clock) as d:
            await eventually(lambda: d.counters.attempts >= 4)
            await clock.autojump(lambda: False, until=T0 + timedelta(minutes=30))
        with Outbox(estate.outbox) as outbox:
            rows = {s.endpoint: s for s in outbox.status()}
            for office, needle in (
                ("huamu", "cannot connect"),
                ("gumei", "cannot connect"),
                ("tianlin", "SSL"),
                ("wujiao", "secret unavailable: webhook control: environment variable"),
            ):
                status = rows[f"{office}/control"]
                assert (status.pending, status.delivered, status.failed) == (10, 0, 0)
                assert needle in (status.last_error or ""), status.last_error
                assert status.paused_until is not None
                assert status.paused_until <= clock.now() + timedelta(minutes=4)
        # one probe at a time: a handful of attempts per endpoint in 30 minutes, not hundreds
        assert 4 * 5 <= d.counters.attempts <= 4 * 30
        assert plain.requests == []
        await plain.server.stop()
        estate.close()

    asyncio.run(main())


def test_a_200_after_a_timeout_is_retried_and_processed_once(tmp_path):
    async def main():
        port = free_port()
        estate = Estate(tmp_path, {"huamu": f"http://127.0.0.1:{port}/hook"})
        receiver = receiver_for(estate, "huamu", port)
        slow_once: set[str] = set()

        @web.middleware
        async def late(request, handler):
            response = await handler(request)  # processed and stored...
            if request.headers["webhook-id"] not in slow_once:
                slow_once.add(request.headers["webhook-id"])
                await asyncio.sleep(1.5)  # ...but answered after the sender gave up
            return response

        receiver.app.middlewares.append(late)
        await receiver.start()
        append_events(estate.log, [alert_event("huamu", 1)])
        config = DeliveryConfig(
            connect_timeout=1,
            total_timeout=1,
            backoff_base=0.1,
            max_event_age=None,
            poll_interval=0.02,
        )
        async with Dispatching(estate, config=config) as d:
            await eventually(lambda: d.counters.delivered == 1)
        assert store_of(receiver).count() == 1
        assert stats_of(receiver).duplicates == 1 and stats_of(receiver).accepted == 1
        with Outbox(estate.outbox) as outbox:
            (webhook_id,) = store_of(receiver).webhook_ids()
            attempts = outbox.attempts_of(webhook_id)
        assert [(a, s, o) for a, s, _, o in attempts] == [
            (1, None, "paused"),
            (2, 200, "delivered"),
        ]
        assert "timeout" in (attempts[0][2] or "")
        await receiver.stop()
        estate.close()

    asyncio.run(main())


def test_other_4xx_retries_the_message_a_bounded_number_of_times(tmp_path):
    async def main():
        def answer(n, headers):
            return web.Response(status=422) if headers["webhook-id"] == bad else web.Response()

        capture = Capture(answer=answer)
        estate = Estate(tmp_path, {"huamu": capture.server.url})
        events = [alert_event("huamu", n) for n in range(6)]
        bad = webhook_id(events[2].id, "huamu/control")
        await capture.server.start()
        append_events(estate.log, events)
        config = DeliveryConfig(
            max_message_attempts=3, backoff_base=0.05, max_event_age=None, poll_interval=0.02
        )
        async with Dispatching(estate, config=config) as d:
            await eventually(lambda: d.counters.gave_up == 1 and d.counters.delivered == 5)
            with Outbox(estate.outbox) as other:
                (status,) = other.status()
                assert (status.pending, status.delivered, status.failed) == (0, 5, 1)
                assert status.paused_until is None and status.failures == 0  # not the office
                assert [o for _, _, _, o in other.attempts_of(bad)] == ["retry", "retry", "gave_up"]
                assert other.redrive("huamu/control", T0 - timedelta(hours=1), T0) == 1
            await eventually(lambda: d.counters.gave_up == 2)
        assert sum(1 for h, _, _ in capture.requests if h["webhook-id"] == bad) == 6
        await capture.server.stop()
        estate.close()

    asyncio.run(main())


async def _silent_server(port: int) -> asyncio.Server:
    """Accepts connections and never answers (nor reads)."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    return await asyncio.start_server(hold, "127.0.0.1", port)


@pytest.mark.parametrize("slowness", ["answers-in-10s", "never-answers"])
def test_a_slow_office_does_not_delay_the_others(tmp_path, slowness):
    async def main():
        ports = {o: free_port() for o in OFFICES}
        estate = Estate(tmp_path, {o: f"http://127.0.0.1:{p}/hook" for o, p in ports.items()})
        fast = {o: receiver_for(estate, o, ports[o]) for o in OFFICES[1:]}
        slow_requests: list[float] = []
        silent = None
        if slowness == "answers-in-10s":

            async def ten_seconds(request):
                slow_requests.append(time.monotonic())
                await asyncio.sleep(10)
                return web.Response()

            slow = Server(app_with(ten_seconds), ports["huamu"])
            await slow.start()
        else:
            silent = await _silent_server(ports["huamu"])
        for server in fast.values():
            await server.start()
        config = DeliveryConfig(max_event_age=None, poll_interval=0.02, shutdown_grace=0.2)
        latencies = []
        async with Dispatching(estate, config=config) as d:
            await asyncio.sleep(0.1)
            for n in range(20):  # one alert per office every 20 ms, while the slow one hangs
                appended = time.monotonic()
                append_events(estate.log, [alert_event(o, n) for o in OFFICES])
                await eventually(
                    lambda n=n: all(store_of(s).count() == n + 1 for s in fast.values()), 2.0
                )
                latencies.append(time.monotonic() - appended)
            await eventually(lambda: d.counters.delivered == 40)  # answers recorded
        # the slow office had its concurrency's worth in flight the whole time
        assert len(slow_requests) == (4 if slowness == "answers-in-10s" else 0)
        latencies.sort()
        print(
            f"{slowness}: healthy offices' latency p50 {latencies[10] * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms"
        )
        assert latencies[-1] < 1.0
        with Outbox(estate.outbox) as outbox:
            rows = {s.endpoint: s for s in outbox.status()}
        assert rows["huamu/control"].pending == 20 and rows["huamu/control"].delivered == 0
        assert "interrupted" in (rows["huamu/control"].last_error or "")
        for server in fast.values():
            await server.stop()
        if silent is not None:
            silent.close()
        else:
            await slow.stop()
        estate.close()

    asyncio.run(main())
