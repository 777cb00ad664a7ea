"""Valid example payloads of every catalogued (kind, stream), as a device sends them.

Each payload is JSON-like (``dict``/``list``/``str``/``int``/``float``/``bool``), so
``json.dumps`` turns it into the bytes a device would publish. Device time ``ts``
is ISO-8601 text with an offset (devices on the estates run on China Standard
Time, ``+08:00``); ``seq`` is an integer.

For every (kind, stream) the list holds, in this order:

1. a *full* reading: every field of the model present, with typical values;
2. a *minimal* reading: only the required fields (a heartbeat has none, so ``{}``);
3. further realistic variants (each waste-sorting category, every OCPP status, ...).

Ingest tests and simulators reuse these; :func:`example` returns a fresh copy of
the first (full) one. ``tests/devices`` checks that every catalogue entry has a
full and a minimal example and that all of them validate.
"""

from __future__ import annotations

import copy
from typing import Any

from devices.catalogue import CATALOGUE, DeviceKind

K = DeviceKind

#: Salted hashes (hex) as an access gate reports them: never the raw card id, face
#: template id or QR token.
_CARD_HASH = "9cb0124f7f0a1728b7316a62071bb9dff48037a3d9f0b777d1140a11bde3f941"
_FACE_HASH = "ab9dc3ea69a81ea470bc72334cebf121884a5a1c89928082b263ca5095e7c7c2"
_QR_HASH = "923be7aca9a97312c7b09a9de42613d28bccaacdbd208dcc8acbabb5736fd171"
_PIN_HASH = "442a44457137672b3218c1007dc8f76a"

VALID_EXAMPLES: dict[tuple[DeviceKind, str], list[dict[str, Any]]] = {
    # --- access gate ---------------------------------------------------------------------
    (K.ACCESS_GATE, "passage"): [
        {
            "ts": "2026-05-01T07:42:13+08:00",
            "seq": 18342,
            "direction": "out",
            "result": "granted",
            "method": "face",
            "credential_hash": _FACE_HASH,
            "persons_sensed": 1,
        },
        {"direction": "in", "result": "granted", "method": "card"},
        {
            "ts": "2026-05-01T18:05:40+08:00",
            "seq": 18977,
            "direction": "in",
            "result": "granted",
            "method": "card",
            "credential_hash": _CARD_HASH,
            "persons_sensed": 2,
        },
        {
            "ts": "2026-05-01T23:17:02+08:00",
            "seq": 19310,
            "direction": "in",
            "result": "denied",
            "method": "qr",
            "credential_hash": _QR_HASH,
            "persons_sensed": 0,
        },
        {
            "ts": "2026-05-02T09:30:00+08:00",
            "seq": 19588,
            "direction": "in",
            "result": "granted",
            "method": "pin",
            "credential_hash": _PIN_HASH,
        },
        {
            "ts": "2026-05-02T10:02:51+08:00",
            "seq": 19601,
            "direction": "in",
            "result": "granted",
            "method": "remote",
        },
    ],
    (K.ACCESS_GATE, "door"): [
        {"ts": "2026-05-01T07:42:14+08:00", "seq": 18343, "state": "open", "forced": False},
        {"state": "closed"},
        {"ts": "2026-05-02T02:13:05+08:00", "seq": 19402, "state": "open", "forced": True},
        {"ts": "2026-05-01T07:42:21+08:00", "seq": 18344, "state": "closed"},
    ],
    (K.ACCESS_GATE, "heartbeat"): [
        {
            "ts": "2026-05-01T08:00:00+08:00",
            "seq": 18350,
            "battery_pct": 100,
            "rssi_dbm": -58,
            "firmware": "GT-A200 v3.2.1",
            "uptime_s": 2592000,
        },
        {},
        {"ts": "2026-05-01T08:05:00+08:00", "seq": 18351, "firmware": "GT-A200 v3.2.1"},
    ],
    # --- parking -------------------------------------------------------------------------
    (K.PARKING_SENSOR, "occupancy"): [
        {
            "ts": "2026-05-01T18:32:10+08:00",
            "seq": 5521,
            "occupied": True,
            "changed_at": "2026-05-01T18:31:47+08:00",
            "plate_hash": "5be3e1c0a9d2f4b7c6e8a1d3f5b7c9e2",
        },
        {"occupied": False},
        {
            "ts": "2026-05-01T08:00:00+08:00",
            "seq": 5498,
            "occupied": False,
            "changed_at": "2026-05-01T07:55:02+08:00",
        },
        {"ts": "2026-05-02T01:00:00+08:00", "seq": 5540, "occupied": True},
    ],
    (K.PARKING_SENSOR, "heartbeat"): [
        {
            "ts": "2026-05-01T12:00:00+08:00",
            "seq": 5510,
            "battery_pct": 76.5,
            "rssi_dbm": -97,
            "firmware": "NB-GM01 1.4.0",
            "uptime_s": 15724800,
        },
        {},
        {"ts": "2026-05-01T13:00:00+08:00", "seq": 5512, "battery_pct": 12, "rssi_dbm": -118.5},
    ],
    # --- waste (one example per sorting category at least) ------------------------------------
    (K.WASTE_BIN, "level"): [
        {
            "ts": "2026-05-01T09:30:00+08:00",
            "seq": 40213,
            "fill_pct": 62.5,
            "temperature_c": 24.3,
            "battery_pct": 87,
            "lid": "closed",
            "tilted": False,
            "category": "recyclable",
        },
        {"fill_pct": 35, "category": "kitchen"},
        {
            "ts": "2026-05-01T19:30:00+08:00",
            "seq": 40233,
            "fill_pct": 91.0,
            "temperature_c": 29.8,
            "battery_pct": 86.5,
            "lid": "closed",
            "tilted": False,
            "category": "kitchen",
        },
        {
            "ts": "2026-05-01T10:00:00+08:00",
            "seq": 7702,
            "fill_pct": 12.0,
            "battery_pct": 93,
            "lid": "closed",
            "category": "hazardous",
        },
        {
            "ts": "2026-05-01T20:00:00+08:00",
            "seq": 8120,
            "fill_pct": 100,
            "temperature_c": 31.0,
            "lid": "open",
            "tilted": False,
            "category": "other",
        },
        {
            "ts": "2026-05-02T03:14:00+08:00",
            "seq": 40251,
            "fill_pct": 0,
            "temperature_c": 18.6,
            "battery_pct": 85,
            "lid": "closed",
            "tilted": True,
            "category": "recyclable",
        },
    ],
    (K.WASTE_BIN, "heartbeat"): [
        {
            "ts": "2026-05-01T06:00:00+08:00",
            "seq": 40201,
            "battery_pct": 87,
            "rssi_dbm": -104,
            "firmware": "US-BIN 2.0.7",
            "uptime_s": 7776000,
        },
        {},
        {"ts": "2026-05-01T12:00:00+08:00", "seq": 40213, "battery_pct": 86.5},
    ],
    # --- water ---------------------------------------------------------------------------
    (K.WATER_METER, "register"): [
        {
            "ts": "2026-05-01T08:00:00+08:00",
            "seq": 9021,
            "volume_m3": 1234.567,
            "flow_l_min": 6.2,
        },
        {"volume_m3": 87.412},
        {
            "ts": "2026-05-01T03:15:00+08:00",
            "seq": 30877,
            "volume_m3": 153402.88,
            "flow_l_min": 42.5,
        },
        {"ts": "2026-05-01T09:00:00+08:00", "seq": 9022, "volume_m3": 1234.571, "flow_l_min": 0},
        {
            "ts": "2026-05-01T10:00:00+08:00",
            "seq": 9023,
            "volume_m3": 1234.571,
            "flow_l_min": -0.4,
        },
    ],
    (K.WATER_METER, "heartbeat"): [
        {
            "ts": "2026-05-01T00:00:00+08:00",
            "seq": 9005,
            "battery_pct": 94,
            "rssi_dbm": -89.5,
            "firmware": "WM-NB 5.1",
            "uptime_s": 31536000,
        },
        {},
        {"ts": "2026-05-02T00:00:00+08:00", "seq": 9029, "battery_pct": 94, "rssi_dbm": -91},
    ],
    # --- energy --------------------------------------------------------------------------
    (K.ENERGY_METER, "register"): [
        {
            "ts": "2026-05-01T19:15:00+08:00",
            "seq": 66120,
            "energy_kwh": 4821.36,
            "power_w": 1830.5,
        },
        {"energy_kwh": 12873.4},
        {
            "ts": "2026-05-01T21:00:00+08:00",
            "seq": 208511,
            "energy_kwh": 30511.2,
            "power_w": 2400,
        },
        {
            "ts": "2026-05-01T13:00:00+08:00",
            "seq": 208467,
            "energy_kwh": 30498.95,
            "power_w": 0,
        },
    ],
    (K.ENERGY_METER, "heartbeat"): [
        {
            "ts": "2026-05-01T08:00:00+08:00",
            "seq": 66070,
            "rssi_dbm": -71,
            "battery_pct": 100,
            "firmware": "DDSU666 V2.03",
            "uptime_s": 10368000,
        },
        {},
        {"ts": "2026-05-01T08:15:00+08:00", "seq": 66071, "uptime_s": 10368900},
    ],
    # --- EV charger (every OCPP 1.6 connector status) --------------------------------------
    (K.EV_CHARGER, "connector"): [
        {
            "ts": "2026-05-01T19:40:00+08:00",
            "seq": 31877,
            "connector": 1,
            "status": "charging",
            "power_kw": 6.9,
            "session_energy_kwh": 12.4,
            "session_id": "TX-20260501-000318",
        },
        {"connector": 1, "status": "available", "power_kw": 0},
        {
            "ts": "2026-05-01T17:58:30+08:00",
            "seq": 31820,
            "connector": 1,
            "status": "preparing",
            "power_kw": 0,
            "session_energy_kwh": 0,
            "session_id": "TX-20260501-000318",
        },
        {
            "ts": "2026-05-01T23:20:00+08:00",
            "seq": 31990,
            "connector": 1,
            "status": "suspended_ev",
            "power_kw": 0,
            "session_energy_kwh": 38.1,
            "session_id": "TX-20260501-000318",
        },
        {
            "ts": "2026-05-01T19:55:00+08:00",
            "seq": 14022,
            "connector": 2,
            "status": "suspended_evse",
            "power_kw": 0,
            "session_energy_kwh": 4.7,
            "session_id": "TX-20260501-000321",
        },
        {
            "ts": "2026-05-02T07:05:12+08:00",
            "seq": 32101,
            "connector": 1,
            "status": "finishing",
            "power_kw": 0,
            "session_energy_kwh": 41.85,
            "session_id": "TX-20260501-000318",
        },
        {
            "ts": "2026-05-01T17:30:00+08:00",
            "seq": 13990,
            "connector": 2,
            "status": "reserved",
            "power_kw": 0,
        },
        {
            "ts": "2026-05-01T10:00:00+08:00",
            "seq": 2210,
            "connector": 1,
            "status": "unavailable",
            "power_kw": 0,
        },
        {
            "ts": "2026-05-01T21:47:09+08:00",
            "seq": 2291,
            "connector": 2,
            "status": "faulted",
            "power_kw": 0,
            "session_energy_kwh": 3.2,
            "session_id": "TX-20260501-000322",
        },
        {
            "ts": "2026-05-01T13:00:00Z",
            "seq": 512,
            "connector": 2,
            "status": "charging",
            "power_kw": 60.2,
            "session_energy_kwh": 25.5,
            "session_id": "f1c7b0a2-93d4-4e5b-8a61-2b7f0d4c9e13",
        },
    ],
    (K.EV_CHARGER, "heartbeat"): [
        {
            "ts": "2026-05-01T19:40:00+08:00",
            "seq": 31876,
            "battery_pct": 100,
            "rssi_dbm": -67,
            "firmware": "AC7-OCPP16 1.9.4",
            "uptime_s": 4406400,
        },
        {},
        {"ts": "2026-05-01T19:41:00+08:00", "seq": 31878, "firmware": "AC7-OCPP16 1.9.4"},
    ],
    # --- e-bike station ------------------------------------------------------------------
    (K.EBIKE_STATION, "port"): [
        {
            "ts": "2026-05-01T20:10:00+08:00",
            "seq": 77301,
            "port": 3,
            "status": "charging",
            "power_w": 400,
            "temperature_c": 35,
            "session_id": "EB-0501-2003-03",
        },
        {"port": 7, "status": "available", "power_w": 0},
        {
            "ts": "2026-05-01T23:55:00+08:00",
            "seq": 77488,
            "port": 3,
            "status": "finished",
            "power_w": 2.5,
            "temperature_c": 29.5,
            "session_id": "EB-0501-2003-03",
        },
        {
            "ts": "2026-05-01T20:40:00+08:00",
            "seq": 77330,
            "port": 5,
            "status": "charging",
            "power_w": 182.4,
            "temperature_c": 31.2,
            "session_id": "EB-0501-1932-05",
        },
        {
            "ts": "2026-05-01T21:12:44+08:00",
            "seq": 77352,
            "port": 9,
            "status": "faulted",
            "power_w": 0,
            "temperature_c": 68.0,
        },
        {
            "ts": "2026-05-01T12:00:00+08:00",
            "seq": 76944,
            "port": 10,
            "status": "available",
            "power_w": 0,
            "temperature_c": 27.4,
        },
    ],
    (K.EBIKE_STATION, "heartbeat"): [
        {
            "ts": "2026-05-01T20:10:00+08:00",
            "seq": 77300,
            "battery_pct": 100,
            "rssi_dbm": -79,
            "firmware": "EBS10 4.2.0",
            "uptime_s": 1296000,
        },
        {},
        {"ts": "2026-05-01T20:11:00+08:00", "seq": 77305, "rssi_dbm": -80.5, "uptime_s": 1296060},
    ],
    # --- gateway -------------------------------------------------------------------------
    (K.GATEWAY, "heartbeat"): [
        {
            "ts": "2026-05-01T08:00:00+08:00",
            "seq": 120455,
            "battery_pct": 100,
            "rssi_dbm": -71,
            "firmware": "lora-gw 2.6.3",
            "uptime_s": 1209600,
        },
        {},
        {
            "ts": "2026-05-01T08:05:00+08:00",
            "seq": 120456,
            "battery_pct": 64,
            "rssi_dbm": -83,
            "uptime_s": 1209900,
        },
    ],
}


def example(kind: DeviceKind | str, stream: str) -> dict[str, Any]:
    """A fresh copy of the first (full) valid example of ``kind``/``stream``.

    ``KeyError`` names the pair when there is no such catalogue entry.
    """
    try:
        key = (DeviceKind(kind), stream)
        examples = VALID_EXAMPLES[key]
    except (ValueError, KeyError):
        known = ", ".join(f"{k.value}/{s}" for k, s in CATALOGUE)
        raise KeyError(f"no example for {kind}/{stream}; known: {known}") from None
    return copy.deepcopy(examples[0])
