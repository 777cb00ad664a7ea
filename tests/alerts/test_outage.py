"""Street offices down for 40 minutes (virtual time), the sender crashing in the middle."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from alerts.clock import VirtualClock
from alerts.delivery import DELIVERIES_STREAM, DeliveryConfig, DeliveryCounters, run_dispatcher
from alerts.outbox import Outbox
from alerts.payload import endpoint_key, webhook_id

from .conftest import (
    OFFICES,
    T0,
    Estate,
    alert_event,
    append_events,
    eventually,
    free_port,
    receiver_for,
    stats_of,
    store_of,
)

ALERTS = 500
OUTAGE = timedelta(minutes=40)


def test_40_minute_outage_with_a_sender_crash_loses_and_duplicates_nothing(tmp_path):
    async def main():
        clock = VirtualClock(T0 + timedelta(seconds=1))
        ports = {o: free_port() for o in OFFICES}
        estate = Estate(
            tmp_path, {o: f"http://127.0.0.1:{p}/webhooks/{o}" for o, p in ports.items()}
        )
        receivers = {o: receiver_for(estate, o, ports[o], clock) for o in OFFICES}
        events = [alert_event(OFFICES[n % 3], n) for n in range(ALERTS)]
        expected = {
            o: {
                webhook_id(e.id, endpoint_key(o, "control"))
                for e in events
                if e.estate.startswith(o)
            }
            for o in OFFICES
        }
        append_events(estate.log, events)
        config = DeliveryConfig(poll_interval=0.02)
        down_until = T0 + OUTAGE

        def start(counters):
            stop = asyncio.Event()
            task = asyncio.create_task(
                run_dispatcher(
                    estate.log,
                    estate.index,
                    estate.outbox,
                    stop,
                    clock=clock,
                    config=config,
                    counters=counters,
                    environ=estate.environ,
                )
            )
            return stop, task

        # offices down; the first sender runs for 20 minutes, then crashes (cancelled)
        first = DeliveryCounters()
        _, task = start(first)
        await eventually(lambda: clock.next_deadline() is not None)  # every office refused once
        await clock.autojump(lambda: False, until=T0 + OUTAGE / 2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert first.messages_enqueued == ALERTS and first.delivered == 0

        # a new sender over the same outbox: the pending messages resume, backoff included
        second = DeliveryCounters()
        stop, task = start(second)
        await eventually(lambda: clock.next_deadline() is not None)  # resumed backing off
        await clock.autojump(lambda: False, until=down_until)
        assert second.messages_enqueued == 0 and second.delivered == 0
        outage_attempts = first.attempts + second.attempts
        print(
            f"attempts during the 40-minute outage: {outage_attempts} "
            f"({first.attempts} before the crash)"
        )
        assert first.attempts > 0 and second.attempts > 0
        assert outage_attempts <= 3 * 40  # one probe at a time per office, not 500 retries

        # the offices come back
        for receiver in receivers.values():
            await receiver.start()
        recovered, real_start = clock.now(), time.monotonic()
        await clock.autojump(lambda: sum(store_of(r).count() for r in receivers.values()) == ALERTS)
        took, real = clock.now() - recovered, time.monotonic() - real_start
        print(
            f"all {ALERTS} delivered {took.total_seconds():.0f} s (virtual) after recovery, "
            f"draining took {real:.2f} s of real time"
        )
        assert took <= timedelta(minutes=5)
        stop.set()
        await asyncio.wait_for(task, 10)

        for office, receiver in receivers.items():
            assert set(store_of(receiver).webhook_ids()) == expected[office]
            assert store_of(receiver).count() == len(expected[office])  # each id stored once
            assert stats_of(receiver).rejected == {}
            await receiver.stop()
        with Outbox(estate.outbox) as outbox:
            assert all(
                (s.pending, s.delivered, s.failed)
                == (0, len(expected[s.endpoint.split("/")[0]]), 0)
                for s in outbox.status()
            )
        delivered = [
            r
            for r in estate.log.iterate(DELIVERIES_STREAM)
            if r.envelope.kind == "WebhookDelivered"
        ]
        assert len(delivered) == ALERTS
        assert len({r.envelope.payload["webhook_id"] for r in delivered}) == ALERTS
        estate.close()

    asyncio.run(main())
