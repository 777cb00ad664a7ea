"""A real InfluxDB 1.x (Debian ``influxdb``) for tests and benchmarks.

Each server runs on free loopback ports (HTTP and the RPC/backup ``bind-address``)
with its meta, data and WAL directories in its own temporary directory, usage
reporting and the internal monitor store disabled, and is stopped by its context
manager. It can be stopped gracefully (SIGTERM), killed (SIGKILL) and started again
on the same ports and directories, to test that a writer loses nothing across an
outage. A server that fails to start reports its own error output.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from devices.catalogue import model_for
from devices.codec import to_payload
from devices.demo_estate import generate_registry
from devices.registry import Registry, RegistryIndex
from devices.severity import Severity
from eventlog.envelope import Envelope, deterministic_id
from eventlog.log import EventLog
from ingest.embedded_broker import free_port
from processors.alarm import AlertEvent, AlertEventKind, to_envelope

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"
  logging-enabled = false

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"

[retention]
  enabled = true

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  write-tracing = false
  pprof-enabled = false

[continuous_queries]
  enabled = true
  log-enabled = false

[subscriber]
  enabled = false

[logging]
  level = "warn"
"""


class InfluxD:
    """An ``influxd`` 1.x process on 127.0.0.1:<free port> (HTTP, no authentication)."""

    def __init__(self) -> None:
        if not Path(INFLUXD).exists():
            raise RuntimeError("influxd is not installed: run scripts/setup.sh")
        self.dir = Path(tempfile.mkdtemp(prefix="influxd-"))
        self.host = "127.0.0.1"
        self.port = free_port()
        self.rpc_port = free_port()
        (self.dir / "influxdb.conf").write_text(
            _CONFIG.format(dir=self.dir, http_port=self.port, rpc_port=self.rpc_port)
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        path = self.dir / "stderr.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as response:
                return bool(response.status == 204)
        except (OSError, urllib.error.URLError):
            return False

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            raise RuntimeError(f"influxd on port {self.port} is already running")
        self._stderr = open(self.dir / "stderr.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [INFLUXD, "run", "-config", str(self.dir / "influxdb.conf")],
            stdout=self._stderr,
            stderr=self._stderr,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.dir)},
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"influxd exited with {code} at start:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise TimeoutError(
                    f"influxd not answering on {self.port} after {timeout} s:\n{self.log_text()}"
                )
            time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the process with ``sig`` (SIGKILL: as in a crash; the WAL keeps acked writes)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def query(self, q: str, db: str | None = None, *, method: str = "GET") -> dict[str, Any]:
        """Run InfluxQL ``q``; the JSON answer (raises on an HTTP error or a statement error)."""
        params = {"q": q, "epoch": "ns"}
        if db is not None:
            params["db"] = db
        data = urllib.parse.urlencode(params)
        if method == "GET":
            request = urllib.request.Request(f"{self.url}/query?{data}")
        else:
            request = urllib.request.Request(f"{self.url}/query", data=data.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
        for result in answer.get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxQL error for {q!r}: {result['error']}")
        return answer

    def write(self, lines: str, db: str, precision: str = "ns") -> None:
        """Write line protocol directly (to set up conflicts the writer must then meet)."""
        query = urllib.parse.urlencode({"db": db, "precision": precision})
        request = urllib.request.Request(
            f"{self.url}/write?{query}", data=lines.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def count(self, measurement: str, field: str, db: str, where: str = "") -> int:
        """How many points of ``measurement`` have ``field`` (0 when there are none)."""
        clause = f" WHERE {where}" if where else ""
        answer = self.query(f'SELECT count("{field}") FROM "{measurement}"{clause}', db)
        series = answer["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    def __enter__(self) -> InfluxD:
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the process (if running) and remove its directory."""
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- a generated log: a day of an estate's readings and alerts -----------------------------

#: Alert conditions the generated log raises (the detectors' names where they exist).
GENERATED_CONDITIONS: dict[str, tuple[str, ...]] = {
    "waste_bin": ("bin_overflow", "bin_not_emptied", "bin_fill_forecast", "bin_fire_risk"),
    "water_meter": ("water_night_flow", "water_continuous_flow", "water_burst", "water_balance"),
    "energy_meter": ("lighting_daylight", "flying_wire", "low_battery"),
    "ev_charger": ("ev_overstay",),
    "ebike_station": ("ebike_over_temperature", "ebike_session_too_long"),
    "parking_sensor": ("fire_lane_blocked", "device_offline"),
    "access_gate": ("door_held_open", "door_forced"),
}


def demo_index(households: int = 40, estates: int = 2, seed: int = 3) -> RegistryIndex:
    """The registry index of a small demo registry (two estates in two street offices)."""
    data = generate_registry(households=households, estates=estates, seed=seed)
    return Registry.model_validate(data).index()


def _payloads(ref: Any, n: int, step: int) -> list[tuple[str, dict[str, Any]]]:
    """(stream, payload) of the ``n``-th device of its kind at ``step`` (30-minute steps)."""
    kind = ref.kind.value
    tags = ref.tags
    if kind == "access_gate":
        return [
            (
                "passage",
                {
                    "direction": "in" if step % 2 else "out",
                    "result": "denied" if (step + n) % 5 == 0 else "granted",
                    "method": "card",
                    "persons_sensed": 1,
                },
            ),
            ("door", {"state": "open" if step % 2 else "closed", "forced": step % 7 == n % 7}),
        ]
    if kind == "parking_sensor":
        occupied = (step // 3 + n) % 2 == 0 if "fire_lane" not in tags else step % 6 < 2
        return [("occupancy", {"occupied": occupied})]
    if kind == "waste_bin":
        fill = min(99.0, step * 3.0) if n == 0 else float((step * 5 + n * 13) % 100)
        return [
            (
                "level",
                {
                    "fill_pct": fill,
                    "temperature_c": 65.0 if n == 0 and step % 8 == 0 else 24.0 + n % 5,
                    "battery_pct": 80.0,
                    "lid": "closed",
                    "tilted": False,
                    "category": str(ref.spec.category),
                },
            )
        ]
    if kind == "water_meter":
        per_step = 1.5 if "master" in tags else 0.02 + (n % 4) * 0.01
        leaking = n % 5 == 0
        return [
            (
                "register",
                {
                    "volume_m3": round(100 + n + step * per_step, 4),
                    "flow_l_min": 0.4 if leaking else float(step % 3) * 2.5,
                },
            )
        ]
    if kind == "energy_meter":
        per_step = 2.0 if tags & {"lighting", "common_area"} else 0.3
        return [
            (
                "register",
                {"energy_kwh": round(500 + n + step * per_step, 3), "power_w": 400.0 + n % 9},
            )
        ]
    if kind == "ev_charger":
        charging = (step + n) % 8 < 5
        return [
            (
                "connector",
                {
                    "connector": connector,
                    "status": "charging" if charging else "available",
                    "power_kw": 6.9 if charging else 0.0,
                    "session_energy_kwh": float((step % 8) * 3) if charging else 0.0,
                },
            )
            for connector in (1, 2)
        ]
    if kind == "ebike_station":
        return [
            (
                "port",
                {
                    "port": port,
                    "status": "charging" if (step + port) % 3 else "available",
                    "power_w": 380.0 if (step + port) % 3 else 0.0,
                    "temperature_c": 58.0 if port == 1 and step % 10 == 0 else 31.0,
                },
            )
            for port in (1, 2, 3, 4)
        ]
    return []


def generated_log(
    log: EventLog, now: datetime, *, hours: int = 24, index: RegistryIndex | None = None
) -> tuple[RegistryIndex, int, int]:
    """Append :func:`generated_records`; (index, readings appended, events appended)."""
    index = index or demo_index()
    readings, events = generated_records(index, now, hours=hours)
    appended = 0
    for i in range(0, len(readings), 5000):
        appended += log.append("readings", readings[i : i + 5000]).appended
    return index, appended, log.append("events", events).appended


def generated_records(
    index: RegistryIndex, now: datetime, *, hours: int = 24
) -> tuple[list[Envelope], list[Envelope]]:
    """``hours`` up to ``now`` of readings and alert events of the devices of ``index``.

    Every device reports every 30 minutes (its own stream, and a heartbeat every
    hour), built from the catalogue models through :class:`eventlog.Envelope`; each
    condition of :data:`GENERATED_CONDITIONS` is raised on two devices of each estate
    and resolved on one.
    """
    start = now - timedelta(hours=hours)
    readings: list[Envelope] = []
    events: list[Envelope] = []
    for estate in index.estate_ids():
        by_kind: dict[str, list[Any]] = {}
        for ref in index.devices_of(estate):
            peers = by_kind.setdefault(ref.kind.value, [])
            n = len(peers)  # the device's number among its kind in this estate
            peers.append(ref)
            for step in range(hours * 2):
                at = start + timedelta(minutes=30 * step, seconds=n % 60)
                items = _payloads(ref, n, step)
                if step % 2 == 0:
                    battery = 12.0 if n % 17 == 0 else 85.0
                    items.append(("heartbeat", {"battery_pct": battery, "rssi_dbm": -70.0}))
                for stream, data in items:
                    reading = model_for(ref.kind, stream).model_validate(data)
                    sub = data.get("connector", data.get("port", ""))
                    readings.append(
                        Envelope(
                            id=deterministic_id("reading", estate, ref.device, stream, sub, at),
                            kind=f"{ref.kind.value}.{stream}",
                            occurred_at=at,
                            received_at=at,
                            estate=estate,
                            building=ref.building,
                            device=ref.device,
                            payload=to_payload(reading),
                        )
                    )
        for kind, conditions in GENERATED_CONDITIONS.items():
            for c, condition in enumerate(conditions):
                targets = by_kind.get(kind, [])
                if kind == "parking_sensor" and condition == "fire_lane_blocked":
                    targets = [r for r in targets if "fire_lane" in r.tags] or targets
                for t, ref in enumerate(targets[:2]):
                    raised_at = start + timedelta(hours=2 + 3 * c + t)
                    alert_id = deterministic_id("alert", estate, ref.device, condition, raised_at)
                    severity = (Severity.WARNING, Severity.MAJOR, Severity.CRITICAL)[(c + t) % 3]
                    lifecycle = [(AlertEventKind.RAISED, raised_at)]
                    if t == 1:
                        lifecycle.append((AlertEventKind.RESOLVED, raised_at + timedelta(hours=1)))
                    for event_kind, at in lifecycle:
                        event = AlertEvent(
                            kind=event_kind,
                            id=deterministic_id("alert-event", alert_id, event_kind.value, at),
                            alert_id=alert_id,
                            estate=estate,
                            device=ref.device,
                            condition=condition,
                            severity=severity,
                            at=at,
                            occurrence=1,
                            explanation=f"generated {condition}",
                        )
                        events.append(to_envelope(event, at))
    return readings, events
