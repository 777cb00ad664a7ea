"""The simulator's data: messages out, imperfection rates in, ground-truth labels out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class Message(NamedTuple):
    """One MQTT message: its topic, its bytes and the simulated time it is sent at (UTC)."""

    topic: str
    payload: bytes
    at: datetime


class Imperfections(BaseModel):
    """Rates of device imperfections; all zero (the default) gives clean traffic.

    Per device (drawn once from the seed): ``batching`` (the device speaks through a
    gateway's batch topic), ``clock_skew`` (its clock runs off: half of them ahead by
    6-30 min, which ingest refuses for trusted clocks, half behind by 1-10 min),
    ``low_battery`` (battery-powered devices start at 8-18 %), ``offline`` (chance per
    device and simulated day of a silent period of 2-4 times the offline threshold).
    Per message: ``duplicates`` (sent again a few seconds later, same bytes: a retry)
    and ``malformed`` (the payload is broken in one of several ways ingest refuses).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    batching: Rate = 0.0
    duplicates: Rate = 0.0
    clock_skew: Rate = 0.0
    offline: Rate = 0.0
    low_battery: Rate = 0.0
    malformed: Rate = 0.0
    #: How long a gateway collects readings before it publishes a batch (seconds).
    batch_s: Annotated[float, Field(gt=0, le=3600)] = 60.0

    @property
    def any(self) -> bool:
        rates = (self.batching, self.duplicates, self.clock_skew, self.offline)
        return any(rates) or bool(self.low_battery or self.malformed)


@dataclass(frozen=True, slots=True)
class Label:
    """One labelled interval of ground truth: an anomaly a detector should report."""

    kind: str  #: what was injected: water_leak, bin_fire, device_offline, ...
    detector: str  #: the detector expected to raise, e.g. water_night_flow
    estate: str
    device: str
    start: datetime
    end: datetime
    source: str = "scenario"  #: "scenario" (an injection) or "imperfection"
    injection: str = ""  #: the injection's name in the scenario (or the imperfection)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat()
        return out
