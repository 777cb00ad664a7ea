"""Replay the ACN-Data EV sessions (Caltech) through ``ev_overstay``; precision and recall.

Usage (from the repository root)::

    .venv/bin/python benchmarks/ev_acn_replay.py [--json PATH] [--grace-h 2] [--mode status|power]

Reads ``../shared/data/real/ev_acn_caltech/acndata_sessions_cal_dec2020_may2023.json``
in place (an ACN-Data API dump, ACN-Data terms of use; see
``../shared/data/real/ORIGIN.md``; never copied into this repository). Each charging
station (``stationID``) becomes connector 1 of an ``ev_charger``; its sessions, in
connection order, become an OCPP status/power timeline:

* ``preparing`` at ``connectionTime``; ``charging`` a minute later and every 5 minutes
  until ``doneChargingTime``, at the session's mean power (``kWhDelivered`` over the
  charging time) with ``session_energy_kwh`` rising;
* after ``doneChargingTime``, ``--mode status``: ``suspended_ev`` at that time (the car
  stopped drawing), then meter values of 0 kW every 15 minutes; ``--mode power``: the
  status stays ``charging`` at 0 kW, reported every 5 minutes (only the power tells that
  the charge ended: the detector's ``idle_kw``/``idle_min`` path);
* ``available`` at ``disconnectTime`` (the cable is out).

The detector runs with the shipped rules except ``grace_h`` (``--grace-h``, 2 h by
default: Caltech is a workplace where a car waiting two hours after its charge keeps
the bay from a colleague; the shipped residential default is 24 h), and is ticked every
5 minutes of event time. A session *has* an overstay when ``disconnect − done > grace``
(sessions with a done-charging time only); the replay *reports* one when the alarm
machine raised an ``ev_overstay`` alert for that session. Precision and recall are
printed with every disagreement; the figures are in ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devices.catalogue import DeviceKind  # noqa: E402
from devices.profiles import BUILTIN_PROFILES  # noqa: E402
from processors.alarm import AlarmBook, AlertEventKind, apply_signal  # noqa: E402
from processors.alarm import tick as alarm_tick  # noqa: E402
from processors.detector import DeviceContext, ReadingView  # noqa: E402
from processors.packs.charging import EvOverstay  # noqa: E402
from processors.rules import load_rules  # noqa: E402

DEFAULT_JSON = (
    ROOT.parent / "shared" / "data" / "real" / "ev_acn_caltech"
) / "acndata_sessions_cal_dec2020_may2023.json"
_FORMAT = "%a, %d %b %Y %H:%M:%S %Z"
EVERY = timedelta(minutes=5)
METER_EVERY = timedelta(minutes=15)
DETECTOR = EvOverstay()


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    station: str
    connect: datetime
    done: datetime | None
    disconnect: datetime
    kwh: float


@dataclass(slots=True)
class Outcome:
    session: Session
    truth: bool
    alerted: bool
    raised_at: datetime | None


def _at(text: str) -> datetime:
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def load(path: Path) -> list[Session]:
    items: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["_items"]
    out = []
    for item in items:
        if not item.get("disconnectTime"):
            continue
        done = item.get("doneChargingTime")
        out.append(
            Session(
                sid=str(item["sessionID"]),
                station=str(item["stationID"]),
                connect=_at(item["connectionTime"]),
                done=_at(done) if done else None,
                disconnect=_at(item["disconnectTime"]),
                kwh=float(item.get("kWhDelivered") or 0.0),
            )
        )
    return out


def context(grace_h: float, tz: ZoneInfo) -> DeviceContext:
    rules = load_rules().resolve("acn", "evc-acn", DeviceKind.EV_CHARGER.value, "ev_ac7")
    rule = rules.ev_overstay.model_copy(update={"grace_h": grace_h})
    return DeviceContext(
        estate="acn",
        device="evc-acn",
        building=None,
        kind=DeviceKind.EV_CHARGER,
        profile=BUILTIN_PROFILES["ev_ac7"],
        tags=frozenset(),
        tz=tz,
        rules=replace(rules, ev_overstay=rule),
    )


def _view(station: str, at: datetime, payload: dict[str, Any]) -> ReadingView:
    rid = uuid5(NAMESPACE_URL, f"acn/{station}/{at.isoformat()}/{payload['status']}")
    return ReadingView(id=rid, kind="ev_charger.connector", at=at, payload=payload)


def timeline(s: Session, mode: str) -> list[ReadingView]:
    """The connector readings of one session (see the module docstring)."""
    base = {"connector": 1, "session_id": s.sid[:64].replace(" ", "_")}
    done = s.done if s.done is not None else s.disconnect
    done = min(max(done, s.connect + timedelta(minutes=1)), s.disconnect)
    hours = max((done - s.connect).total_seconds() / 3600 - 1 / 60, 1 / 60)
    kw = min(s.kwh / hours, 500.0)
    out = [_view(s.station, s.connect, {**base, "status": "preparing", "power_kw": 0.0})]
    t = s.connect + timedelta(minutes=1)
    while t < done:
        energy = min(s.kwh, kw * (t - s.connect).total_seconds() / 3600)
        payload = {**base, "status": "charging", "power_kw": round(kw, 3)}
        out.append(_view(s.station, t, {**payload, "session_energy_kwh": round(energy, 3)}))
        t += EVERY
    if done < s.disconnect:
        status, every = ("suspended_ev", METER_EVERY) if mode == "status" else ("charging", EVERY)
        t = done if mode == "status" else t
        while t < s.disconnect:
            payload = {**base, "status": status, "power_kw": 0.0, "session_energy_kwh": s.kwh}
            out.append(_view(s.station, t, payload))
            t += every
    free = {"connector": 1, "status": "available", "power_kw": 0.0}
    out.append(_view(s.station, s.disconnect, free))  # unplugged: the session ends
    return out


def replay_station(
    sessions: list[Session], ctx: DeviceContext, mode: str, skipped: Counter[str]
) -> list[Outcome]:
    grace = timedelta(hours=ctx.rules.ev_overstay.grace_h)
    policy = DETECTOR.policy(ctx)
    state = DETECTOR.initial(ctx)
    book = AlarmBook()
    outcomes: list[Outcome] = []
    free_at: datetime | None = None
    for s in sorted(sessions, key=lambda x: x.connect):
        if free_at is not None and s.connect <= free_at:
            skipped["overlaps the previous session on its station"] += 1
            continue
        free_at = s.disconnect
        raised: datetime | None = None
        next_tick = s.connect
        for view in timeline(s, mode):
            signals = []
            while next_tick <= view.at:  # event-time ticks every 5 min before the reading
                state, more = DETECTOR.tick(state, next_tick, ctx)
                signals += more
                next_tick += EVERY
            state, more = DETECTOR.step(state, view, ctx)
            signals += more
            for sig in signals:
                book, events = apply_signal(book, sig, policy)
                for e in events:
                    if e.kind is AlertEventKind.RAISED and raised is None:
                        raised = e.at
            book, _ = alarm_tick(book, view.at)
        if s.done is None:
            skipped["no done-charging time"] += 1
            continue
        truth = s.disconnect - s.done > grace
        outcomes.append(Outcome(s, truth, raised is not None, raised))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--grace-h", type=float, default=2.0)
    parser.add_argument("--mode", choices=("status", "power"), default="status")
    parser.add_argument("--tz", default="America/Los_Angeles")
    args = parser.parse_args(argv)
    sessions = load(args.json)
    ctx = context(args.grace_h, ZoneInfo(args.tz))
    by_station: dict[str, list[Session]] = defaultdict(list)
    for s in sessions:
        by_station[s.station].append(s)
    skipped: Counter[str] = Counter()
    outcomes: list[Outcome] = []
    for station in sorted(by_station):
        outcomes += replay_station(by_station[station], ctx, args.mode, skipped)
    tp = sum(1 for o in outcomes if o.truth and o.alerted)
    fp = sum(1 for o in outcomes if not o.truth and o.alerted)
    fn = sum(1 for o in outcomes if o.truth and not o.alerted)
    tn = len(outcomes) - tp - fp - fn
    print(
        f"sessions {len(sessions)} on {len(by_station)} stations; mode {args.mode}; "
        f"grace {args.grace_h:g} h"
    )
    for why, n in sorted(skipped.items()):
        print(f"  skipped: {n} {why}")
    print(f"judged (with a done-charging time): {len(outcomes)}")
    print(f"  overstays (disconnect - done > grace): {tp + fn}; alerts: {tp + fp}")
    print(f"  TP {tp}  FP {fp}  FN {fn}  TN {tn}")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    print(f"  precision {precision:.4f}  recall {recall:.4f}")
    for o in outcomes:
        if o.truth != o.alerted:
            s = o.session
            assert s.done is not None
            idle = s.disconnect - s.done
            print(
                f"  {'FP' if o.alerted else 'FN'} {s.station} {s.connect:%Y-%m-%d %H:%M} "
                f"done {s.done:%H:%M:%S} disconnect {s.disconnect:%H:%M:%S} "
                f"idle {idle.total_seconds() / 60:.1f} min, charging "
                f"{(s.done - s.connect).total_seconds() / 60:.1f} min"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
