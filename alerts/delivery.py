"""Durable delivery of alert messages to street offices.

Three kinds of task run under :class:`Dispatcher` (``run_dispatcher`` is the entry
point the runtime calls):

* the **feed** reads the ``events`` stream from its checkpoint, turns delivered alert
  kinds into messages (:mod:`alerts.payload`), stores them in the outbox (durably,
  idempotently by ``webhook-id``) and only then commits its checkpoint;
* one **endpoint worker** per street-office endpoint, with its own HTTP session,
  connection pool and concurrency limit, so a slow or dead office never holds up the
  others. It sends due messages, signs each attempt afresh (``webhook-timestamp`` is
  the attempt's time) and records every attempt in the outbox;
* the **publisher** appends recorded attempts to the ``deliveries`` stream of the log
  (ids derived from the attempt, so republishing after a crash is a no-op).

What each response leads to (``docs/webhooks.md`` has the table): 2xx delivered;
connection errors (refused, DNS, TLS), timeouts, 408, 429 and 5xx pause the whole
endpoint with exponential backoff and full jitter (``Retry-After`` on 429/503 is
honoured instead); while an endpoint is failing only one message at a time probes
it; 410 disables the endpoint; other 3xx/4xx answers are about the message: it is
retried with backoff up to ``max_message_attempts`` times, then failed (``redrive``
sends it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import logging
import random
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import aiohttp

from alerts.clock import Clock, SystemClock
from alerts.outbox import AttemptRow, Outbox, Outcome, PendingMessage, from_ts
from alerts.payload import Message, endpoint_key, messages_for
from alerts.signing import SecretError, parse_secrets, signed_headers
from devices.registry import RegistryIndex, WebhookEndpoint
from eventlog.envelope import Envelope, Stream, deterministic_id
from eventlog.log import EventLog, StoredRecord

__all__ = [
    "CONSUMER",
    "DELIVERIES_STREAM",
    "DeliveryConfig",
    "DeliveryCounters",
    "Dispatcher",
    "backoff_delay",
    "parse_retry_after",
    "run_dispatcher",
]

log = logging.getLogger("alerts.delivery")

#: The log stream every attempt is appended to.
DELIVERIES_STREAM: Final = "deliveries"
#: The feed's checkpoint name on the ``events`` stream.
CONSUMER: Final = "alerts.webhooks"

#: Delivery-event kinds in the ``deliveries`` stream, by attempt outcome.
DELIVERY_KINDS: Final[dict[str, str]] = {
    "delivered": "WebhookDelivered",
    "retry": "WebhookAttemptFailed",
    "paused": "WebhookAttemptFailed",
    "gave_up": "WebhookGaveUp",
    "disabled": "WebhookEndpointDisabled",
}

_MAX_TIMEOUT: Final = 15.0


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Every knob of delivery; the defaults are the documented behaviour."""

    #: TCP (and TLS) connect timeout, seconds.
    connect_timeout: float = 10.0
    #: Whole attempt (connect, send, response headers and up to 4 KiB of body), seconds.
    total_timeout: float = 15.0
    #: Attempts in flight per endpoint (and its connection pool size).
    concurrency: int = 4
    #: First backoff step, seconds; doubles per consecutive failure.
    backoff_base: float = 1.0
    #: Longest wait between attempts, seconds (full jitter draws in ``[0, cap]``). Four
    #: minutes: an office that recovers is probed within 4 minutes and its backlog,
    #: sent at full concurrency, is through well within 5.
    backoff_cap: float = 240.0
    #: ``Retry-After`` is honoured up to this many seconds.
    max_retry_after: float = 3600.0
    #: Attempts a message gets when the office answers 3xx/4xx (not 408/410/429).
    max_message_attempts: int = 5
    #: On the feed's *first* start (no checkpoint yet), events produced longer ago than
    #: this are not delivered: switching delivery on over a long history must not flood
    #: offices with old alerts. Once a checkpoint exists nothing is skipped, however long
    #: the sender was down. None: no limit.
    max_event_age: timedelta | None = timedelta(hours=24)
    #: Real seconds between looks at the log and the outbox for work other tasks or
    #: processes created (the feed also wakes on :meth:`Dispatcher.notify`).
    poll_interval: float = 0.1
    #: Events the feed reads per batch.
    feed_batch: int = 500
    #: Real seconds in-flight attempts get to finish when stopping.
    shutdown_grace: float = 2.0
    #: User-Agent of every request.
    user_agent: str = "estate-monitor-webhooks/1"

    def __post_init__(self) -> None:
        if not 0 < self.connect_timeout <= self.total_timeout <= _MAX_TIMEOUT:
            raise ValueError(
                "timeouts must satisfy 0 < connect_timeout <= total_timeout <= 15 s, got "
                f"connect {self.connect_timeout}, total {self.total_timeout}"
            )
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0 < self.backoff_base <= self.backoff_cap <= 300:
            raise ValueError("backoff must satisfy 0 < backoff_base <= backoff_cap <= 300 s")
        if self.max_message_attempts < 1:
            raise ValueError("max_message_attempts must be at least 1")


@dataclass(slots=True)
class DeliveryCounters:
    """Numbers for the metrics endpoint (monotonic, except ``in_flight``)."""

    events_read: int = 0
    events_stale: int = 0
    events_unreadable: int = 0
    messages_enqueued: int = 0
    messages_duplicate: int = 0
    attempts: int = 0
    delivered: int = 0
    attempts_failed: int = 0
    gave_up: int = 0
    endpoints_disabled: int = 0
    endpoint_pauses: int = 0
    retry_after_honoured: int = 0
    attempts_published: int = 0
    in_flight: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def count_status(self, status: int | None) -> None:
        name = "error" if status is None else str(status)
        self.by_status[name] = self.by_status.get(name, 0) + 1


def backoff_delay(failures: int, config: DeliveryConfig, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base·2^(n-1))]``."""
    ceiling = min(config.backoff_cap, config.backoff_base * 2.0 ** min(max(failures, 1) - 1, 30))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and len(value) <= 10:
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class _Result:
    status: int | None
    error: str | None
    retry_after: str | None = None
    #: Cut short by a shutdown: not the office's fault, sent again without backoff.
    interrupted: bool = False


class EndpointWorker:
    """Sends one endpoint's messages; never touches another endpoint's queue."""

    def __init__(
        self,
        key: str,
        endpoint: WebhookEndpoint,
        outbox: Outbox,
        *,
        clock: Clock,
        config: DeliveryConfig,
        counters: DeliveryCounters,
        environ: Mapping[str, str] | None,
        rng: random.Random,
    ) -> None:
        self.key = key
        self.endpoint = endpoint
        self._outbox = outbox
        self._clock = clock
        self._config = config
        self._counters = counters
        self._environ = environ
        self._rng = rng
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(
            total=self._config.total_timeout,
            connect=self._config.connect_timeout,
            sock_connect=self._config.connect_timeout,
        )
        connector = aiohttp.TCPConnector(limit=self._config.concurrency)
        async with aiohttp.ClientSession(
            timeout=timeout,
            connector=connector,
            headers={"User-Agent": self._config.user_agent, "Content-Type": "application/json"},
        ) as session:
            try:
                while not stop.is_set():
                    wait_until = self._start_due(session)
                    await self._wait(stop, wait_until)
            finally:
                await self._drain()

    def _start_due(self, session: aiohttp.ClientSession) -> datetime | None:
        """Start what may start now; return when to look again (None: on a wake-up)."""
        state = self._outbox.endpoint(self.key)
        now = self._clock.now()
        if state.disabled_at is not None:
            return None
        if state.paused_until is not None and state.paused_until > now.timestamp():
            return from_ts(state.paused_until)
        limit = 1 if state.failures > 0 else self._config.concurrency  # probe while failing
        free = limit - len(self._inflight)
        if free > 0:
            for message in self._outbox.due(self.key, now, free, exclude=self._inflight):
                task = asyncio.create_task(self._attempt(session, message, state.epoch))
                self._inflight[message.seq] = task
                task.add_done_callback(functools.partial(self._done, message.seq))
            if len(self._inflight) >= limit:
                return None
        nxt = self._outbox.next_due(self.key, exclude=self._inflight)
        return nxt if nxt is not None and nxt > now else None

    def _done(self, seq: int, _: object) -> None:
        self._inflight.pop(seq, None)
        self._wake.set()

    async def _wait(self, stop: asyncio.Event, until: datetime | None) -> None:
        waits: list[Awaitable[object]] = [
            self._wake.wait(),
            stop.wait(),
            asyncio.sleep(self._config.poll_interval),  # a redrive from another process
        ]
        if until is not None:
            waits.append(self._clock.sleep((until - self._clock.now()).total_seconds()))
        await _first(*waits)
        self._wake.clear()

    async def _drain(self) -> None:
        if not self._inflight:
            return
        pending = list(self._inflight.values())
        _, late = await asyncio.wait(pending, timeout=self._config.shutdown_grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _attempt(
        self, session: aiohttp.ClientSession, message: PendingMessage, epoch: int
    ) -> None:
        started = self._clock.now()
        t0 = time.perf_counter()
        self._counters.in_flight += 1
        try:
            result = await self._send(session, message, started)
        except asyncio.CancelledError:
            result = _Result(None, "interrupted: the sender stopped during the attempt", None, True)
            self._finish(message, started, t0, result, epoch)
            raise
        finally:
            self._counters.in_flight -= 1
        self._finish(message, started, t0, result, epoch)

    async def _send(
        self, session: aiohttp.ClientSession, message: PendingMessage, started: datetime
    ) -> _Result:
        try:
            keys = parse_secrets(self.endpoint.read_secret(self._environ))
        except (LookupError, SecretError) as exc:
            return _Result(None, f"secret unavailable: {exc}")
        headers = signed_headers(keys, message.webhook_id, int(started.timestamp()), message.body)
        try:
            async with session.post(
                self.endpoint.url, data=message.body, headers=headers, allow_redirects=False
            ) as response:
                text = (await response.content.read(4096)).decode("utf-8", "replace")
                error = None if response.status < 300 else f"HTTP {response.status}: {text[:200]}"
                return _Result(response.status, error, response.headers.get("Retry-After"))
        except TimeoutError:
            return _Result(
                None,
                f"timeout (connect {self._config.connect_timeout} s, "
                f"total {self._config.total_timeout} s)",
            )
        except aiohttp.ClientConnectorError as exc:
            return _Result(None, f"cannot connect: {exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return _Result(None, f"{type(exc).__name__}: {exc}")

    def _classify(
        self, message: PendingMessage, result: _Result, now: datetime
    ) -> tuple[Outcome, datetime | None]:
        status = result.status
        if result.interrupted:
            return "retry", now
        if status is not None and 200 <= status < 300:
            return "delivered", None
        if status == 410:
            return "disabled", None
        if status is not None and status < 500 and status not in (408, 429):
            if message.attempts + 1 >= self._config.max_message_attempts:
                return "gave_up", None
            delay = backoff_delay(message.attempts + 1, self._config, self._rng)
            return "retry", now + timedelta(seconds=delay)
        wait = None
        if status in (429, 503):
            wait = parse_retry_after(result.retry_after, now)
        if wait is not None:
            self._counters.retry_after_honoured += 1
            wait = min(wait, self._config.max_retry_after)
        else:
            failures = self._outbox.endpoint(self.key).failures + 1
            wait = backoff_delay(failures, self._config, self._rng)
        return "paused", now + timedelta(seconds=wait)

    def _finish(
        self, message: PendingMessage, started: datetime, t0: float, result: _Result, epoch: int
    ) -> None:
        latency_ms = (time.perf_counter() - t0) * 1000
        now = self._clock.now()
        outcome, next_at = self._classify(message, result, now)
        paused = self._outbox.record(
            message,
            started_at=started,
            latency_ms=latency_ms,
            status=result.status,
            error=result.error,
            outcome=outcome,
            next_attempt_at=next_at,
            epoch=epoch,
            now=now,
        )
        c = self._counters
        c.attempts += 1
        c.count_status(result.status)
        if outcome == "delivered":
            c.delivered += 1
        else:
            c.attempts_failed += 1
            c.gave_up += outcome == "gave_up"
            c.endpoints_disabled += outcome == "disabled"
            c.endpoint_pauses += paused
            log.info(
                "webhook %s to %s: %s (%s)", message.webhook_id, self.key, outcome, result.error
            )


class Dispatcher:
    """Feed, endpoint workers and publisher over one outbox file."""

    def __init__(
        self,
        log: EventLog,
        index: RegistryIndex,
        outbox_path: str | Path,
        *,
        clock: Clock | None = None,
        config: DeliveryConfig | None = None,
        counters: DeliveryCounters | None = None,
        environ: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._log = log
        self._index = index
        self._outbox_path = Path(outbox_path)
        self.clock: Clock = clock or SystemClock()
        self.config = config or DeliveryConfig()
        self.counters = counters if counters is not None else DeliveryCounters()
        self._environ = environ
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._feed_wake = asyncio.Event()
        self._workers: dict[str, EndpointWorker] = {}

    def notify(self) -> None:
        """Tell the feed that events were appended (it also polls)."""
        self._feed_wake.set()

    def endpoints(self) -> dict[str, WebhookEndpoint]:
        """Every endpoint of every street office that has an estate, by key."""
        found: dict[str, WebhookEndpoint] = {}
        for estate_id in self._index.estate_ids():
            ref = self._index.estate(estate_id)
            assert ref is not None
            for hook in ref.street_office.webhooks:
                found[endpoint_key(ref.street_office.id, hook.id)] = hook
        return found

    async def run(self, stop: asyncio.Event) -> None:
        with Outbox(self._outbox_path) as outbox:
            self._workers = {
                key: EndpointWorker(
                    key,
                    hook,
                    outbox,
                    clock=self.clock,
                    config=self.config,
                    counters=self.counters,
                    environ=self._environ,
                    rng=self._rng,
                )
                for key, hook in self.endpoints().items()
            }
            tasks = [
                asyncio.create_task(w.run(stop), name=f"webhooks {k}")
                for k, w in self._workers.items()
            ]
            tasks.append(asyncio.create_task(self._feed(outbox, stop), name="webhooks feed"))
            finished = asyncio.Event()
            publisher = asyncio.create_task(self._publisher(outbox, finished), name="webhooks log")
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                finished.set()
                await publisher  # publishes what the workers recorded last

    # --- feed ----------------------------------------------------------------------------------

    async def _feed(self, outbox: Outbox, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.feed_once(outbox):
                await _first(
                    stop.wait(), self._feed_wake.wait(), asyncio.sleep(self.config.poll_interval)
                )
                self._feed_wake.clear()

    def feed_once(self, outbox: Outbox) -> bool:
        """Move one batch of ``events`` per partition into the outbox; False when there was
        nothing new. Each partition has its own checkpoint (one partition on SQLite)."""
        stream = Stream.EVENTS.value
        moved = False
        for partition in range(self._log.partitions(stream)):
            start = self._log.get_checkpoint(CONSUMER, stream, partition)
            records = self._log.read(stream, partition, start, self.config.feed_batch)
            if records:
                self._enqueue(outbox, records, first_start=start == 0)
                # the outbox rows are on disk: only now may the checkpoint move
                self._log.commit_checkpoint(CONSUMER, stream, records[-1].position + 1, partition)
                moved = True
        return moved

    def _enqueue(self, outbox: Outbox, records: list[StoredRecord], *, first_start: bool) -> None:
        now = self.clock.now()
        limit = self.config.max_event_age
        oldest = now - limit if limit is not None and first_start else None
        messages: list[Message] = []
        for record in records:
            self.counters.events_read += 1
            envelope = record.envelope
            if oldest is not None and envelope.received_at < oldest:
                self.counters.events_stale += 1
                continue
            try:
                messages.extend(messages_for(envelope, self._index))
            except ValueError as exc:  # a malformed alert event: skipped, counted, logged
                self.counters.events_unreadable += 1
                log.warning(
                    "event %s at %s: not deliverable: %s", envelope.id, record.position, exc
                )
        added = outbox.enqueue(messages, now)
        self.counters.messages_enqueued += added
        self.counters.messages_duplicate += len(messages) - added
        for key in {m.endpoint for m in messages}:
            worker = self._workers.get(key)
            if worker is not None:
                worker.wake()

    # --- publisher -----------------------------------------------------------------------------

    async def _publisher(self, outbox: Outbox, finished: asyncio.Event) -> None:
        while True:
            done = finished.is_set()
            while self.publish_once(outbox):
                pass
            if done:
                return
            await _first(finished.wait(), asyncio.sleep(self.config.poll_interval))

    def publish_once(self, outbox: Outbox) -> bool:
        rows = outbox.unpublished()
        if not rows:
            return False
        received = self.clock.now()
        self._log.append(DELIVERIES_STREAM, [_delivery_envelope(r, received) for r in rows])
        outbox.mark_published(rows[-1].id)
        self.counters.attempts_published += len(rows)
        return True


def _delivery_envelope(row: AttemptRow, received_at: datetime) -> Envelope:
    started = from_ts(row.started_at)
    return Envelope(
        id=deterministic_id("webhook-attempt", row.webhook_id, row.attempt, started),
        kind=DELIVERY_KINDS[row.outcome],
        occurred_at=started,
        received_at=received_at,
        estate=row.estate,
        device=row.device,
        payload={
            "webhook_id": row.webhook_id,
            "endpoint": row.endpoint,
            "event_id": row.event_id,
            "alert_id": row.alert_id,
            "type": row.type,
            "attempt": row.attempt,
            "status": row.status,
            "latency_ms": round(row.latency_ms, 3),
            "error": row.error,
            "outcome": row.outcome,
            "next_attempt_at": None
            if row.next_attempt_at is None
            else from_ts(row.next_attempt_at).isoformat(),
        },
    )


async def _first(*waits: Awaitable[object]) -> None:
    """Wait until the first of ``waits`` completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


async def run_dispatcher(
    log: EventLog,
    index: RegistryIndex,
    outbox_path: str | Path,
    stop_event: asyncio.Event,
    *,
    clock: Clock | None = None,
    config: DeliveryConfig | None = None,
    counters: DeliveryCounters | None = None,
    environ: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> None:
    """Deliver alert events of ``log`` to the street offices of ``index`` until ``stop_event``.

    Pass ``counters`` to read the figures while it runs. ``environ`` replaces
    ``os.environ`` for ``secret_env`` lookups (tests).
    """
    dispatcher = Dispatcher(
        log,
        index,
        outbox_path,
        clock=clock,
        config=config,
        counters=counters,
        environ=environ,
        rng=rng,
    )
    await dispatcher.run(stop_event)
