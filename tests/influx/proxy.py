"""An HTTP proxy in front of the real influxd that can answer some requests itself.

It records every write request (path, query, headers, the body as aiohttp decoded it) and
answers the next queued faults (e.g. 503 with ``Retry-After``) before forwarding
to the real server again, so that retries and the v2 request shape can be tested
without replacing InfluxDB itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from ingest.embedded_broker import free_port


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str


@dataclass
class FaultyProxy:
    upstream: str
    faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None
    _client: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultyProxy:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._client = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()  # aiohttp has already decoded a gzip body (or refused it)
        if request.path.endswith("write"):
            seen = Seen(request.path, dict(request.query), dict(request.headers), raw.decode())
            self.seen.append(seen)
        if self.faults and request.path.endswith("write"):
            status, headers = self.faults.pop(0)
            return web.Response(status=status, headers=headers, text="" if status == 204 else
                                '{"error":"injected"}')  # fmt: skip
        assert self._client is not None
        dropped = ("host", "content-encoding", "content-length")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        async with self._client.request(
            request.method, f"{self.upstream}{request.path_qs}", data=raw, headers=headers
        ) as answer:
            payload = await answer.read()
            wanted = ("content-type", "x-influxdb-error", "retry-after")
            keep = {k: v for k, v in answer.headers.items() if k.lower() in wanted}
            return web.Response(status=answer.status, body=payload, headers=keep)
