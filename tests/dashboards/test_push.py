"""``dashboards push`` with grafana-client: the request shape, against a recording HTTP server.

Grafana itself cannot be installed on these machines, so this only checks what is
sent (folder, uid, overwrite, auth) and that a second push updates in place; the
boards' content is checked against the SDK types and a real InfluxDB elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from dashboards.build import JSON_DIR
from dashboards.cli import main
from dashboards.push import FOLDER_UID, client, load, push
from ingest.embedded_broker import free_port


class FakeGrafana:
    """Just enough of Grafana's HTTP API: folders and ``POST /api/dashboards/db`` by uid."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folders: list[dict[str, Any]] = []
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.posts: list[dict[str, Any]] = []
        self.auth: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _folders(self, request: web.Request) -> web.Response:
        self.auth.add(request.headers.get("Authorization", ""))
        if request.method == "POST":
            body = await request.json()
            self.folders.append({"uid": body["uid"], "title": body["title"], "id": 1})
            return web.json_response(self.folders[-1])
        return web.json_response(self.folders)

    async def _dashboard(self, request: web.Request) -> web.Response:
        self.auth.add(request.headers.get("Authorization", ""))
        body = await request.json()
        self.posts.append(body)
        uid = body["dashboard"]["uid"]
        if uid in self.dashboards and not body.get("overwrite"):
            return web.json_response({"status": "version-mismatch"}, status=412)
        version = self.dashboards.get(uid, {}).get("version", 0) + 1
        self.dashboards[uid] = {**body["dashboard"], "version": version}
        return web.json_response({"uid": uid, "status": "success", "version": version})

    def __enter__(self) -> FakeGrafana:
        app = web.Application()
        app.router.add_route("*", "/api/folders", self._folders)
        app.router.add_post("/api/dashboards/db", self._dashboard)
        self._runner = web.AppRunner(app)
        self._thread.start()

        async def start() -> None:
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with FakeGrafana() as fake:
        yield fake


def test_push_creates_then_updates_in_place(grafana: FakeGrafana) -> None:
    api = client(f"http://127.0.0.1:{grafana.port}", "glsa_token")
    boards = load()
    assert len(boards) == len(list(JSON_DIR.glob("*.json"))) == 8
    first = push(api, boards)
    second = push(api, boards)
    assert first == second and len(set(first)) == 8
    assert len(grafana.folders) == 1 and grafana.folders[0]["uid"] == FOLDER_UID
    assert sorted(grafana.dashboards) == sorted(first)
    assert all(d["version"] == 2 for d in grafana.dashboards.values())  # updated, not added
    for post in grafana.posts:
        assert post["overwrite"] is True and post["folderUid"] == FOLDER_UID
        assert "id" not in post["dashboard"] and "version" not in post["dashboard"]
    assert grafana.auth == {"Bearer glsa_token"}


def test_cli_push_and_build(grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["push", "--grafana-url", f"http://127.0.0.1:{grafana.port}", "--token", "t"])
    assert code == 0 and len(grafana.dashboards) == 8
    assert capsys.readouterr().out.count("pushed ") == 8
    assert json.loads((JSON_DIR / "estate-water.json").read_text())["uid"] == "estate-water"
