"""The live feed: alert lifecycle and device-health changes as Server-Sent Events.

The projections call :meth:`Feed.on_alert_event` from their worker thread for every
alert lifecycle event. The message is built there (where the views are consistent) and
handed to the event loop with ``call_soon_threadsafe``; the loop fans it out to the
subscribers whose scope covers the estate. A subscriber that cannot keep up (its queue
is full) is disconnected: EventSource reconnects and the page reloads its state.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiohttp import web

from console.tokens import Principal
from console.views import alert_out, device_out
from devices.registry import RegistryIndex
from processors import alarm
from processors.projections import HEALTH_CONDITIONS, AlertView, Projections

#: Messages queued per subscriber before it is dropped as too slow.
QUEUE_SIZE: Final = 1000


@dataclass(frozen=True, slots=True)
class Message:
    estate: str
    event: str  #: the SSE event name: ``alert`` or ``device``
    data: bytes  #: JSON
    id: str


@dataclass(eq=False, slots=True)
class Subscriber:
    principal: Principal
    queue: asyncio.Queue[Message | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Feed:
    def __init__(
        self, projections: Projections, index: RegistryIndex, heartbeat_s: float = 15.0
    ) -> None:
        self.projections = projections
        self.heartbeat_s = heartbeat_s
        self.index = index
        self.subscribers: set[Subscriber] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.published = 0
        self.dropped = 0

    # --- the projection's side (worker thread) ---------------------------------------------

    def on_alert_event(self, view: AlertView, event: alarm.AlertEvent) -> None:
        loop = self.loop
        if loop is None or loop.is_closed() or not self.subscribers:
            return  # nobody listens (e.g. the projections catching up at start): no work
        alert: dict[str, Any] = alert_out(self.index, view, history=False).model_dump(
            mode="json", exclude={"history"}
        )
        alert["event"] = event.kind.value
        messages = [Message(view.estate, "alert", orjson.dumps(alert), str(event.id))]
        if view.condition in HEALTH_CONDITIONS:
            ref = self.index.device(view.estate, view.device)
            if ref is not None:
                device = device_out(ref, self.projections).model_dump(mode="json")
                messages.append(
                    Message(view.estate, "device", orjson.dumps(device), f"{event.id}/device")
                )
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._publish, messages)

    # --- the loop's side -------------------------------------------------------------------

    def _publish(self, messages: list[Message]) -> None:
        for message in messages:
            self.published += 1
            for sub in list(self.subscribers):
                if not sub.principal.can_read(message.estate):
                    continue
                try:
                    sub.queue.put_nowait(message)
                except asyncio.QueueFull:
                    self.dropped += 1
                    self.subscribers.discard(sub)
                    _close(sub)

    def close(self) -> None:
        for sub in list(self.subscribers):
            _close(sub)
        self.subscribers.clear()

    async def stream(self, request: web.Request, principal: Principal) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache, no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        sub = Subscriber(principal)
        self.subscribers.add(sub)
        try:
            await response.write(b"retry: 3000\nevent: hello\ndata: {}\n\n")
            while True:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), self.heartbeat_s)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if message is None:
                    break
                await response.write(
                    b"id: %s\nevent: %s\ndata: %s\n\n"
                    % (message.id.encode(), message.event.encode(), message.data)
                )
        except ConnectionResetError:
            pass
        finally:
            self.subscribers.discard(sub)
        return response


def _close(sub: Subscriber) -> None:
    while True:
        try:
            sub.queue.put_nowait(None)
            return
        except asyncio.QueueFull:
            sub.queue.get_nowait()
