"""Push the generated boards to a Grafana with ``grafana-client`` (idempotent, by uid)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import TokenAuth

from dashboards.build import JSON_DIR, render

#: The folder the boards go into.
FOLDER_UID = "estate-monitor"
FOLDER_TITLE = "Estate monitor"


def client(grafana_url: str, token: str) -> GrafanaApi:
    parts = urlsplit(grafana_url)
    return GrafanaApi(
        auth=TokenAuth(token),  # type: ignore[no-untyped-call]
        host=parts.hostname or "localhost",
        port=parts.port,
        protocol=parts.scheme or "http",
        url_path_prefix=parts.path.strip("/"),
        timeout=30.0,
    )


def _folder(api: GrafanaApi) -> str:
    """The uid of the boards' folder, created when missing."""
    for folder in api.folder.get_all_folders():  # type: ignore[no-untyped-call]
        if folder.get("uid") == FOLDER_UID:
            return FOLDER_UID
    api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)  # type: ignore[no-untyped-call]
    return FOLDER_UID


def push(api: GrafanaApi, dashboards: Iterable[dict[str, Any]]) -> list[str]:
    """Create or update each board in place (same uid, ``overwrite``); their uids.

    A board's ``id`` is dropped and ``version`` left to Grafana, so pushing twice
    updates the same board instead of creating a second one.
    """
    folder = _folder(api)
    pushed = []
    for board in dashboards:
        body = {k: v for k, v in board.items() if k not in ("id", "version")}
        api.dashboard.update_dashboard(  # type: ignore[no-untyped-call]
            {
                "dashboard": body,
                "folderUid": folder,
                "overwrite": True,
                "message": "estate dashboards push",
            }
        )
        pushed.append(str(body["uid"]))
    return pushed


def load(directory: Path = JSON_DIR) -> list[dict[str, Any]]:
    """The boards to push: the committed JSON, or freshly generated when the folder is empty."""
    files = sorted(directory.glob("*.json"))
    texts = [f.read_text(encoding="utf-8") for f in files] or list(render().values())
    return [json.loads(text) for text in texts]
