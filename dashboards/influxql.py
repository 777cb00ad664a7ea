"""An InfluxQL query target for the Grafana Foundation SDK.

The SDK ships typed query models for Prometheus, Loki, Elasticsearch and others but
none for the InfluxDB data source, so this module adds one the way the SDK's own
generated variants are written: a :class:`~grafana_foundation_sdk.cog.variants.Dataquery`
model with ``to_json``/``from_json``, its builder, and a registration under the data
source type ``influxdb`` so that ``Dashboard.from_json`` parses our targets back into
this type (which is how the tests validate the generated JSON).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dm

#: The data source type of InfluxDB in Grafana.
DATASOURCE_TYPE = "influxdb"

ResultFormat = Literal["time_series", "table", "logs"]


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target (``rawQuery: true``) of a panel."""

    def __init__(
        self,
        query: str = "",
        ref_id: str = "A",
        alias: str | None = None,
        result_format: ResultFormat = "time_series",
        datasource: dm.DataSourceRef | None = None,
        hide: bool | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.alias = alias
        self.result_format: ResultFormat = result_format
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        if data.get("rawQuery") is not True or not isinstance(data.get("query"), str):
            raise ValueError(f"target {data.get('refId')!r} is not a raw InfluxQL query")
        if data.get("resultFormat", "time_series") not in ("time_series", "table", "logs"):
            raise ValueError(f"target {data.get('refId')!r}: unknown resultFormat")
        datasource = data.get("datasource")
        return cls(
            query=data["query"],
            ref_id=data.get("refId", "A"),
            alias=data.get("alias"),
            result_format=data.get("resultFormat", "time_series"),
            datasource=None if datasource is None else dm.DataSourceRef.from_json(datasource),
            hide=data.get("hide"),
        )


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of :class:`InfluxQLQuery`, in the style of the SDK's builders."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def result_format(self, result_format: ResultFormat) -> Self:
        self._internal.result_format = result_format
        return self

    def datasource(self, datasource: dm.DataSourceRef) -> Self:
        self._internal.datasource = datasource
        return self


def register() -> None:
    """Let ``Dashboard.from_json`` parse ``influxdb`` targets as :class:`InfluxQLQuery`."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(
            identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json
        )
    )
