"""Generate the boards' JSON (``dashboards/json/``) from :mod:`dashboards.boards`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards import Board, boards

#: Where the generated JSON is committed (and where the provisioning file points Grafana).
JSON_DIR = Path(__file__).resolve().parent / "json"


def to_json(board: Board) -> dict[str, Any]:
    """The Grafana JSON model of ``board``.

    The SDK types an annotation's ``target`` for Grafana's built-in annotation source
    only, so the InfluxQL target of the ``Alerts`` annotation is added here, in the
    shape Grafana's InfluxDB data source stores it.
    """
    data: dict[str, Any] = json.loads(JSONEncoder().encode(board.build()))
    for annotation in data.get("annotations", {}).get("list", []):
        if annotation.get("name") == "Alerts":
            annotation["target"] = board.annotation_target()
    return data


def render() -> dict[str, str]:
    """File name -> JSON text of every board (stable: sorted keys, two-space indent)."""
    return {
        f"{board.uid}.json": json.dumps(
            to_json(board), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
        for board in boards()
    }


def build(directory: Path = JSON_DIR) -> list[Path]:
    """Write every board's JSON into ``directory``; remove boards that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    files = render()
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
