"""Every query of every board, with its template variables substituted, as InfluxQL to run."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: What Grafana puts for the built-in variables when the tests run a board's queries.
TIME_FILTER = "time > now() - 24h"
INTERVAL = "30m"


@dataclass(frozen=True)
class PanelQuery:
    board: str
    panel: str
    ref: str
    query: str


def substitute(query: str, values: dict[str, str]) -> str:
    """Replace ``$timeFilter``, ``$__interval`` and the board's variables like Grafana does
    (a single value as a regex-escaped literal; *All* as its ``allValue``)."""
    query = query.replace("$timeFilter", TIME_FILTER).replace("$__interval", INTERVAL)
    for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
        query = query.replace(f"${name}", value)
    leftover = re.findall(r"\$\w+", query)
    assert not leftover, f"unsubstituted variables {leftover} in {query}"
    return query


def variables(
    board: dict[str, Any], run: Callable[[str], list[str]], pick: int = 0
) -> dict[str, str]:
    """Values of the board's variables, in order, each from its own query (chained like
    Grafana): the first variable (estate, or street office) takes its ``pick``-th value,
    the later ones (building, estate of the office) *All*."""
    values: dict[str, str] = {}
    for n, variable in enumerate(board["templating"]["list"]):
        found = run(substitute(variable["query"], values))
        assert found, f"{board['uid']}: variable {variable['name']} has no values"
        if n == 0:
            values[variable["name"]] = re.escape(found[pick % len(found)])
        else:
            assert variable["includeAll"] and variable["allValue"] == ".*"
            values[variable["name"]] = variable["allValue"]
    return values


def queries(board: dict[str, Any], values: dict[str, str]) -> Iterator[PanelQuery]:
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield PanelQuery(
                board["uid"], panel["title"], target["refId"], substitute(target["query"], values)
            )
    for annotation in board["annotations"]["list"]:
        if "target" in annotation:
            yield PanelQuery(
                board["uid"], f"annotation {annotation['name']}", "Anno",
                substitute(annotation["target"]["query"], values),
            )  # fmt: skip
