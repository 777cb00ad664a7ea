"""How each kind of device behaves: deterministic event streams from a seed.

Every device gets its own ``random.Random`` seeded from (scenario seed, estate, device)
(:func:`rng_for`), so the same seed gives the same traffic, and an injection on one
device does not change the traffic of any other. A behaviour is a generator of
``(time, stream, data)`` in time order over ``[env.start, env.end)``; times are POSIX
seconds (UTC), ``data`` is the reading without ``ts`` and ``seq`` (the encoder adds
them). Amounts that accumulate (litres, Wh, fill) are drawn per hour from
(device, hour) alone (:class:`Hourly`), so a master meter can add up its sub-meters
without replaying them.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from devices.catalogue import DeviceKind
from devices.registry import DeviceRef, Estate, RegistryIndex
from simulators import shapes

Data = dict[str, object]
Event = tuple[float, str, Data]

HOUR = 3600.0
DAY = 86400.0
#: Reporting interval (s) of readings sent while an anomaly alarms (burst, fire, ...).
ALARM_INTERVAL = 300.0
#: An e-bike port that is not charging repeats its unchanged status after this long
#: (reports on change plus an hourly status, like the parking sensors).
PORT_STATUS_INTERVAL = HOUR
#: Kinds with a battery (reported in heartbeats, or in the bin's own reading).
BATTERY_KINDS = frozenset({DeviceKind.PARKING_SENSOR, DeviceKind.WASTE_BIN, DeviceKind.WATER_METER})


def rng_for(seed: int, *parts: object) -> random.Random:
    """A generator seeded from ``seed`` and ``parts`` (stable across runs and machines)."""
    return random.Random(":".join(str(p) for p in (seed, *parts)))  # noqa: S311 - simulation


@dataclass(frozen=True, slots=True)
class Effect:
    """An injected anomaly on one device over ``[start, end)`` (POSIX seconds)."""

    kind: str
    start: float
    end: float
    params: dict[str, float] = field(default_factory=dict)

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end

    def overlap(self, t0: float, t1: float) -> float:
        return max(0.0, min(t1, self.end) - max(t0, self.start))


class Env:
    """What every behaviour of one estate shares: window, time zone, registry, effects."""

    def __init__(
        self,
        *,
        seed: int,
        start: float,
        end: float,
        tz: ZoneInfo,
        estate: str,
        index: RegistryIndex,
        effects: dict[str, list[Effect]],
        batteries: dict[str, float],
    ) -> None:
        self.seed = seed
        self.start = start
        self.end = end
        self.tz = tz
        self.estate = estate
        self.index = index
        self.effects = effects
        self.batteries = batteries
        self._hourly: dict[str, Hourly] = {}
        self._ev_plans: dict[tuple[str, int], list[Session]] = {}
        self._hour_of: dict[int, tuple[int, int, int]] = {}

    def effects_of(self, device: str, kind: str | None = None) -> list[Effect]:
        found = self.effects.get(device, [])
        return found if kind is None else [e for e in found if e.kind == kind]

    def local(self, hour_index: int) -> tuple[int, int, int]:
        """(local hour, local day ordinal, day of year) of the UTC hour ``hour_index``."""
        found = self._hour_of.get(hour_index)
        if found is None:
            at = datetime.fromtimestamp(hour_index * HOUR, self.tz)
            found = (at.hour, at.toordinal(), at.timetuple().tm_yday)
            self._hour_of[hour_index] = found
        return found

    def local_hour(self, t: float) -> float:
        at = datetime.fromtimestamp(t, self.tz)
        return at.hour + at.minute / 60 + at.second / 3600

    def days(self, margin: int = 1) -> Iterator[tuple[date, float]]:
        """Local dates overlapping the window (plus ``margin`` days before), with midnight."""
        day = datetime.fromtimestamp(self.start, self.tz).date() - timedelta(days=margin)
        last = datetime.fromtimestamp(self.end, self.tz).date()
        while day <= last:
            yield day, datetime.combine(day, time(0), tzinfo=self.tz).timestamp()
            day += timedelta(days=1)

    def ticks(self, interval: float, phase: float) -> Iterator[float]:
        """``phase + k * interval`` within the window."""
        t = self.start + (phase - self.start) % interval
        while t < self.end:
            yield t
            t += interval

    def ambient_c(self, t: float) -> float:
        """Shanghai air temperature: ~5 °C in January, ~29 °C in July, warmest at 15 h."""
        hour, _, yday = self.local(int(t // HOUR))
        season = math.cos(2 * math.pi * (yday - 200) / 365.25)
        return 17.0 + 12.0 * season + 4.0 * math.cos(2 * math.pi * (hour - 15) / 24)

    def daylight(self, t: float) -> bool:
        """Between sunrise and sunset in Shanghai (05:00/19:00 in June, 06:50/17:00 in Dec)."""
        _, _, yday = self.local(int(t // HOUR))
        season = math.cos(2 * math.pi * (yday - 172) / 365.25)
        hour = self.local_hour(t)
        return 5.9 - 0.95 * season < hour < 18.0 + 1.0 * season

    def hourly(self, device: str, make: Callable[[], Hourly]) -> Hourly:
        found = self._hourly.get(device)
        if found is None:
            found = self._hourly[device] = make()
        return found

    def ev_plan(self, charger: str, connector: int) -> list[Session]:
        key = (charger, connector)
        if key not in self._ev_plans:
            self._ev_plans[key] = _plan_ev(self, charger, connector)
        return self._ev_plans[key]


class Hourly:
    """An amount per UTC hour (litres, Wh, % of a bin) drawn from (key, hour) alone."""

    def __init__(
        self, env: Env, key: str, draw: Callable[[random.Random, int, int], float]
    ) -> None:
        self.env = env
        self.key = key
        self.draw = draw  #: (rng, local hour, local day ordinal) -> amount in that hour
        self._cache: dict[int, float] = {}

    def amount(self, hour_index: int) -> float:
        found = self._cache.get(hour_index)
        if found is None:
            local_hour, day, _ = self.env.local(hour_index)
            found = self.draw(rng_for(self.env.seed, self.key, hour_index), local_hour, day)
            if len(self._cache) > 512:
                self._cache = {h: v for h, v in self._cache.items() if h > hour_index - 96}
            self._cache[hour_index] = found
        return found

    def between(self, t0: float, t1: float) -> float:
        """The amount over ``[t0, t1)``, hours shared pro rata."""
        total = 0.0
        h = int(t0 // HOUR)
        while h * HOUR < t1:
            part = min(t1, (h + 1) * HOUR) - max(t0, h * HOUR)
            if part > 0:
                total += self.amount(h) * part / HOUR
            h += 1
        return total


def _extra(effects: Iterable[Effect], t0: float, t1: float, param: str, per_s: float) -> float:
    """What effects add over ``[t0, t1)``: ``params[param] * per_s`` per second of overlap."""
    return sum(e.overlap(t0, t1) * e.params[param] * per_s for e in effects)


def merge_events(streams: Iterable[Iterable[Event]]) -> Iterator[Event]:
    return heapq.merge(*streams, key=lambda e: e[0])


def within(env: Env, events: Iterable[Event]) -> Iterator[Event]:
    return (e for e in events if env.start <= e[0] < env.end)


# --- heartbeats ----------------------------------------------------------------------------


class Health:
    """A device's health report: battery (slowly draining), signal, firmware, uptime."""

    def __init__(self, env: Env, ref: DeviceRef, rng: random.Random) -> None:
        self.env = env
        self.battery = env.batteries.get(ref.device) if ref.kind in BATTERY_KINDS else None
        self.rssi = rng.uniform(-105, -60)
        self.boot = env.start - rng.uniform(1, 60) * DAY
        self.firmware = f"{ref.kind.value[:3]}-{rng.choice(('2.3.1', '2.4.0', '2.4.2'))}"
        self.rng = rng

    def battery_at(self, t: float) -> float | None:
        if self.battery is None:
            return None
        return round(max(0.0, self.battery - 0.05 * (t - self.env.start) / DAY), 1)

    def heartbeat(self, t: float) -> Data:
        data: Data = {
            "rssi_dbm": round(self.rssi + self.rng.uniform(-4, 4), 1),
            "firmware": self.firmware,
            "uptime_s": int(t - self.boot),
        }
        battery = self.battery_at(t)
        if battery is not None:
            data["battery_pct"] = battery
        return data


def with_heartbeats(
    env: Env, events: Iterable[Event], interval: float, health: Health
) -> Iterator[Event]:
    """``events`` plus a heartbeat whenever the device said nothing for ``interval``."""
    last = env.start - health.rng.uniform(0, interval)
    for event in events:
        while event[0] - last > interval:
            last += interval
            yield last, "heartbeat", health.heartbeat(last)
        last = event[0]
        yield event
    while env.end - last > interval:
        last += interval
        yield last, "heartbeat", health.heartbeat(last)


def daily_heartbeats(env: Env, health: Health, phase: float) -> Iterator[Event]:
    for t in env.ticks(DAY, phase):
        yield t, "heartbeat", health.heartbeat(t)


# --- water ---------------------------------------------------------------------------------


#: An elderly resident living alone is at home: at least this much a day (and no day below
#: 0.6 of it), and in the day's waking hours (07-22) at most this chance of a dry hour (the
#: DAIAD dry-hour shares include households away on holiday, which the welfare check must
#: not see as normal).
HOME_MIN_DAILY_L, HOME_MAX_DRY = 120.0, 0.1


def _household_litres(env: Env, device: str, at_home: bool = False) -> Hourly:
    rng = rng_for(env.seed, device, "household")
    mean = shapes.WATER_DAILY_L * rng.lognormvariate(0, shapes.WATER_HOUSEHOLD_SIGMA)
    if at_home:
        mean = max(mean, HOME_MIN_DAILY_L)
    day_sigma = shapes.WATER_DAY_SIGMA * 0.6  # the hour draws below add the rest of the spread

    days: dict[int, float] = {}

    def draw(r: random.Random, hour: int, day: int) -> float:
        day_factor = days.get(day)
        if day_factor is None:
            day_rng = rng_for(env.seed, device, "day", day)
            day_factor = day_rng.lognormvariate(-(day_sigma**2) / 2, day_sigma)
            days[day] = day_factor = max(day_factor, 0.6) if at_home else day_factor
        dry = shapes.WATER_HOURLY_DRY[hour]
        if at_home and 7 <= hour < 22:
            dry = min(dry, HOME_MAX_DRY)
        if r.random() < dry:
            return 0.0
        return mean * day_factor * shapes.WATER_HOURLY_SHARE[hour] / (1 - dry) * r.expovariate(1)

    return Hourly(env, device, draw)


def water_used(env: Env, ref: DeviceRef, t0: float, t1: float) -> float:
    """Litres through meter ``ref`` over ``[t0, t1)``: its household's use plus injections;
    a master meter adds up its sub-meters (plus 2 % unmetered common use)."""
    subs = env.index.submeters_of(ref.estate, ref.device)
    if subs:
        base = 1.02 * sum(water_used(env, sub, t0, t1) for sub in subs)
    elif ref.spec.is_master_meter:
        base = 0.0
    else:
        at_home = "elderly_alone" in ref.tags
        base = env.hourly(ref.device, lambda: _household_litres(env, ref.device, at_home)).between(
            t0, t1
        )
    effects = env.effects_of(ref.device)
    base += _extra((e for e in effects if e.kind == "water_leak"), t0, t1, "flow_l_h", 1 / HOUR)
    base += _extra((e for e in effects if e.kind == "water_burst"), t0, t1, "flow_l_min", 1 / 60)
    base -= _extra((e for e in effects if e.kind == "water_backflow"), t0, t1, "flow_l_min", 1 / 60)
    return base


def water(env: Env, ref: DeviceRef, rng: random.Random) -> Iterator[Event]:
    interval = float(ref.profile.reporting_interval_s)
    master = ref.spec.is_master_meter
    litres = rng.uniform(20_000, 400_000) * (40 if master else 1)
    bursts = env.effects_of(ref.device, "water_burst") + env.effects_of(
        ref.device, "water_backflow"
    )
    # The meter reports every 5 min once it sees a burst's (or a backflow's) flow: the first
    # alarm reading comes 5 min in (one at the very onset would carry the flow before it).
    alarm = [t for e in bursts for t in _alarm_ticks(env, e) if t > e.start]
    times = sorted(set(env.ticks(interval, rng.uniform(0, interval))) | set(alarm))
    health = Health(env, ref, rng)
    yield from merge_events(
        [
            _registers(env, ref, times, litres, bursts, master),
            daily_heartbeats(env, health, rng.uniform(0, DAY)),
        ]
    )


def _registers(
    env: Env, ref: DeviceRef, times: list[float], litres: float, bursts: list[Effect], master: bool
) -> Iterator[Event]:
    last = env.start
    for t in times:
        used = water_used(env, ref, last, t)
        litres += used
        data: Data = {"volume_m3": round(litres / 1000, 3)}
        if master or any(e.covers(t) for e in bursts):
            data["flow_l_min"] = round(used / max(1.0, (t - last) / 60), 2)
        last = t
        yield t, "register", data


def _alarm_ticks(env: Env, effect: Effect) -> Iterator[float]:
    t = max(effect.start, env.start)
    while t < min(effect.end + ALARM_INTERVAL, env.end):
        yield t
        t += ALARM_INTERVAL


# --- energy --------------------------------------------------------------------------------


def ebike_power_w(elapsed_h: float, charge_h: float) -> float:
    """An e-bike charger: constant current for 70 % of the charge, then a linear taper."""
    if not 0 <= elapsed_h < charge_h:
        return 0.0
    taper_from = 0.7 * charge_h
    if elapsed_h < taper_from:
        return shapes.EBIKE_POWER_W
    return shapes.EBIKE_POWER_W * (1 - 0.95 * (elapsed_h - taper_from) / (charge_h - taper_from))


def _household_wh(env: Env, device: str) -> Hourly:
    scale = rng_for(env.seed, device, "household").lognormvariate(0, 0.35)

    def draw(r: random.Random, hour: int, _day: int) -> float:
        return shapes.ENERGY_HOUSEHOLD_W[hour] * scale * r.lognormvariate(-0.06, 0.35)

    return Hourly(env, device, draw)


def _circuit_power(env: Env, ref: DeviceRef, rng: random.Random) -> Callable[[float], float]:
    """Instantaneous power (W) of a corridor, common-area or lighting circuit."""
    size = rng.uniform(0.7, 1.3)
    wires = env.effects_of(ref.device, "flying_wire")
    daylight_on = env.effects_of(ref.device, "lighting_daylight")
    if ref.profile.role == "lighting":

        def lighting(t: float) -> float:
            on = not env.daylight(t) or any(e.covers(t) for e in daylight_on)
            return 1800.0 * size if on else 6.0

        return lighting
    if "common_area" in ref.tags:

        def common(t: float) -> float:
            hour = int(env.local_hour(t))
            return 900.0 * size * (0.6 + 0.4 * 24 * shapes.WATER_HOURLY_SHARE[hour])

        return common

    def corridor(t: float) -> float:
        power = 260.0 * size + (0.0 if env.daylight(t) else 90.0 * size)
        for e in wires:
            power += ebike_power_w((t - e.start) / HOUR, (e.end - e.start) / HOUR + 1)
        return power

    return corridor


def energy(env: Env, ref: DeviceRef, rng: random.Random) -> Iterator[Event]:
    interval = float(ref.profile.reporting_interval_s)
    wh = rng.uniform(2_000, 30_000) * 1000 * (10 if ref.profile.role != "household" else 1)
    factor = 1.0 if ref.profile.units.get("energy_kwh") == "wh" else 0.001
    last = env.start
    if ref.profile.role == "household":
        use = env.hourly(ref.device, lambda: _household_wh(env, ref.device))
        for t in env.ticks(interval, rng.uniform(0, interval)):
            wh += use.between(last, t)
            power = use.amount(int(t // HOUR)) * rng.lognormvariate(-0.12, 0.5)
            last = t
            yield t, "register", {"energy_kwh": round(wh * factor, 3), "power_w": round(power, 1)}
        return
    power_at = _circuit_power(env, ref, rng)
    for t in env.ticks(interval, rng.uniform(0, interval)):
        steps = max(1, int((t - last) // 60))
        wh += sum(power_at(last + (k + 0.5) * (t - last) / steps) for k in range(steps)) * (
            (t - last) / steps / HOUR
        )
        last = t
        power = power_at(t) * rng.uniform(0.97, 1.03)
        yield t, "register", {"energy_kwh": round(wh * factor, 3), "power_w": round(power, 1)}


# --- waste bins ----------------------------------------------------------------------------


def _collections(
    env: Env, ref: DeviceRef, rng: random.Random, rounds: tuple[float, ...], every: int
) -> list[float]:
    held = env.effects_of(ref.device, "bin_overflow") + env.effects_of(
        ref.device, "bin_not_emptied"
    )
    out: list[float] = []
    for day, midnight in env.days(margin=every):
        if day.toordinal() % every:
            continue
        for hour in rounds:
            t = midnight + hour * HOUR + rng.uniform(-1200, 1200)
            if not any(e.covers(t) for e in held):
                out.append(t)
    out += [e.end for e in held]
    return sorted(out)


def waste_bin(env: Env, ref: DeviceRef, rng: random.Random) -> Iterator[Event]:
    category = ref.spec.category or "other"
    per_day, rounds, every = shapes.WASTE_CATEGORIES[category]
    rate = per_day * rng.lognormvariate(-0.02, 0.2)

    def draw(r: random.Random, hour: int, _day: int) -> float:
        return rate * shapes.WASTE_DROP_SHARE[hour] * r.lognormvariate(-0.08, 0.4)

    drops = env.hourly(ref.device, lambda: Hourly(env, ref.device, draw))
    held = env.effects_of(ref.device, "bin_overflow") + env.effects_of(
        ref.device, "bin_not_emptied"
    )
    fires = env.effects_of(ref.device, "bin_fire")
    stuck = env.effects_of(ref.device, "bin_stuck_sensor")
    stuck_at: float | None = None  # the level a stuck sensor keeps reporting
    collections = _collections(env, ref, rng, rounds, every)
    interval = float(ref.profile.reporting_interval_s)
    alarm = {t for e in fires for t in _alarm_ticks(env, e)}
    times = sorted(set(env.ticks(interval, rng.uniform(0, interval))) | alarm)
    health = Health(env, ref, rng)
    fraction = ref.profile.units.get("fill_pct") == "fraction"
    # the fill at the window start: what accumulated since the last collection before it
    last = max([c for c in collections if c <= env.start], default=env.start - DAY)
    fill = rng.uniform(1, 4)
    pending = [c for c in collections if c > last]
    for t in times:
        while pending and pending[0] <= t:
            fill += drops.between(last, pending[0])
            last = pending.pop(0)
            fill = rng.uniform(1, 4)
        fill += drops.between(last, t) + _extra(held, last, t, "rate_pct_h", 1 / HOUR)
        fill = min(fill, 100.0)
        last = t
        shown = min(100.0, max(0.0, fill + rng.uniform(-0.8, 0.8)))
        if any(e.covers(t) for e in stuck):
            stuck_at = shown = shown if stuck_at is None else stuck_at
        else:
            stuck_at = None
        temperature = env.ambient_c(t) + rng.uniform(-0.5, 0.5)
        for e in fires:
            if e.covers(t):
                temperature += min(e.params["rise_c"], e.params["rise_c"] * (t - e.start) / 900)
        data: Data = {
            "fill_pct": round(shown / 100, 4) if fraction else round(shown, 1),
            "temperature_c": round(temperature, 1),
            "battery_pct": health.battery_at(t),
            "lid": "closed",
            "tilted": False,
            "category": category,
        }
        yield t, "level", data


# --- parking -------------------------------------------------------------------------------

Change = tuple[float, bool]


def _resident_changes(env: Env, rng: random.Random) -> list[Change]:
    if rng.random() < shapes.PARKING_EMPTY_SHARE:
        return []
    out: list[Change] = []
    for day, midnight in env.days():
        weekend = day.weekday() >= 5
        if rng.random() < shapes.PARKING_COMMUTE_SHARE * (0.55 if weekend else 1.0):
            leave = midnight + min(11.0, max(6.0, rng.gauss(9.5 if weekend else 8.0, 0.9))) * HOUR
            back = midnight + min(23.5, max(11.5, rng.gauss(18.5, 1.6))) * HOUR
            out += [(leave, False), (back, True)]
    return out


def _visitor_changes(env: Env, rng: random.Random) -> list[Change]:
    out: list[Change] = []
    for _, midnight in env.days():
        t = midnight + 9 * HOUR
        while True:
            t += rng.expovariate(shapes.VISITOR_ARRIVALS_PER_H) * HOUR
            if t > midnight + 21 * HOUR:
                break
            stay = shapes.VISITOR_STAY_H * rng.lognormvariate(0, 0.6) * HOUR
            out += [(t, True), (t + stay, False)]
            t += stay + 300
    return out


def _blocked(changes: list[Change], effects: list[Effect]) -> list[Change]:
    """``changes`` with the bay held occupied over each effect's window."""
    for e in effects:
        before = [c for c in changes if c[0] < e.start]
        was = before[-1][1] if before else False
        after = [c for c in changes if c[0] >= e.end]
        changes = [*before, (e.start, True), (e.end, was), *after]
    return changes


def parking(env: Env, ref: DeviceRef, rng: random.Random) -> Iterator[Event]:
    link = ref.spec.connector_ref
    if link is not None:  # the car parks before it plugs in and leaves after unplugging
        plan = env.ev_plan(*link)
        changes = [c for s in plan for c in ((s.arrive - 20, True), (s.depart + 60, False))]
        initial = False
    elif "fire_lane" in ref.tags:
        changes, initial = [], False
    elif "visitor_bay" in ref.tags:
        changes, initial = _visitor_changes(env, rng), False
    else:
        changes, initial = _resident_changes(env, rng), True
    blocks = env.effects_of(ref.device, "fire_lane_blocked") + env.effects_of(
        ref.device, "ev_bay_blocked"
    )
    changes = _blocked(sorted(changes), sorted(blocks, key=lambda e: e.start))
    state, since = initial, env.start - DAY
    pending = [c for c in changes]
    while pending and pending[0][0] < env.start:
        (since, state), pending = pending[0], pending[1:]
    interval = float(ref.profile.reporting_interval_s)
    events: list[Event] = []
    for t in env.ticks(interval, rng.uniform(0, interval)):
        while pending and pending[0][0] <= t:
            at, occupied = pending.pop(0)
            if occupied != state:
                state, since = occupied, at
                events.append((at, "occupancy", _occupancy(state, since)))
        events.append((t, "occupancy", _occupancy(state, since)))
    for at, occupied in pending:
        if at < env.end and occupied != state:
            state, since = occupied, at
            events.append((at, "occupancy", _occupancy(state, since)))
    health = Health(env, ref, rng)
    yield from merge_events([events, daily_heartbeats(env, health, rng.uniform(0, DAY))])


def _occupancy(occupied: bool, since: float) -> Data:
    """``changed_at`` stays a POSIX time here: the encoder writes it with the device clock."""
    return {"occupied": occupied, "changed_at": since}


# --- EV chargers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """A car at a connector: plugged in, charged until ``charged``, left at ``depart``."""

    sid: str
    arrive: float
    charged: float
    depart: float
    power_kw: float


def _plan_ev(env: Env, charger: str, connector: int) -> list[Session]:
    rng = rng_for(env.seed, charger, connector, "sessions")
    sessions: list[Session] = []
    cursor = -math.inf
    mu, sigma = shapes.EV_STAY_H_LOGNORMAL
    e_mu, e_sigma = shapes.EV_ENERGY_KWH_LOGNORMAL
    for day, midnight in env.days(margin=2):
        if rng.random() >= shapes.EV_SESSIONS_PER_DAY:
            continue
        hour = rng.choices(range(24), weights=shapes.EV_ARRIVAL_SHARE)[0]
        arrive = midnight + (hour + rng.random()) * HOUR
        stay = rng.lognormvariate(mu, sigma) * HOUR
        energy_kwh = min(60.0, rng.lognormvariate(e_mu, e_sigma))
        power = rng.uniform(6.6, 7.0)
        if arrive < cursor:
            continue
        charged = arrive + 60 + min(energy_kwh / power * HOUR, stay - 600)
        sessions.append(
            Session(f"TX-{charger}-{connector}-{day:%Y%m%d}", arrive, charged, arrive + stay, power)
        )
        cursor = arrive + stay + 600
    forced: list[Session] = []
    stays = env.effects_of(charger, "ev_overstay") + env.effects_of(charger, "ev_session_too_long")
    for e in stays:
        if int(e.params.get("connector", 1)) == connector:
            charge = e.params.get("charge_h", 1.5) * HOUR
            forced.append(
                Session(
                    f"TX-{charger}-{connector}-X{int(e.start)}",
                    e.start,
                    min(e.start + 60 + charge, e.end - 60),  # a short stay cuts the charge
                    e.end,
                    6.9,
                )
            )
    bay = env.index.bay_for_connector(env.estate, charger, connector)
    windows = [(s.arrive, s.depart) for s in forced]
    windows += [(e.start, e.end) for e in _faults(env, charger, connector)]
    if bay is not None:
        windows += [(e.start, e.end) for e in env.effects_of(bay.device, "ev_bay_blocked")]
    kept = [
        s
        for s in sessions
        if not any(s.arrive < b + 600 and a - 600 < s.depart for a, b in windows)
    ]
    return sorted(kept + forced, key=lambda s: s.arrive)


def _connector_events(env: Env, connector: int, sessions: list[Session]) -> Iterator[Event]:
    def reading(status: str, power: float, s: Session | None, energy_kwh: float = 0.0) -> Data:
        data: Data = {"connector": connector, "status": status, "power_kw": round(power, 2)}
        if s is not None:
            data["session_energy_kwh"] = round(energy_kwh, 3)
            data["session_id"] = s.sid
        return data

    current = [s for s in sessions if s.arrive < env.start < s.depart + 30]
    if not current:
        yield env.start, "connector", reading("available", 0.0, None)
    for s in sessions:
        start = s.arrive + 60
        full = (s.charged - start) / HOUR * s.power_kw
        yield s.arrive, "connector", reading("preparing", 0.0, s)
        t = start
        while t < s.charged:
            yield (
                t,
                "connector",
                reading("charging", s.power_kw, s, (t - start) / HOUR * s.power_kw),
            )
            t += ALARM_INTERVAL
        yield s.charged, "connector", reading("suspended_ev", 0.0, s, full)
        yield s.depart, "connector", reading("finishing", 0.0, s, full)
        yield s.depart + 30, "connector", reading("available", 0.0, None)


def _faults(env: Env, charger: str, connector: int) -> list[Effect]:
    """The injected faults of one connector (no session overlaps them)."""
    return [
        e
        for e in env.effects_of(charger, "ev_charger_faulted")
        if int(e.params.get("connector", 1)) == connector
    ]


def _fault_events(env: Env, charger: str, connector: int) -> list[Event]:
    """A connector ``faulted`` for each injected fault, ``available`` again at its end."""
    out: list[Event] = []
    for e in _faults(env, charger, connector):
        out.append(
            (e.start, "connector", {"connector": connector, "status": "faulted", "power_kw": 0.0})
        )
        out.append(
            (e.end, "connector", {"connector": connector, "status": "available", "power_kw": 0.0})
        )
    return out


def ev_charger(env: Env, ref: DeviceRef, rng: random.Random) -> Iterator[Event]:
    ports = ref.spec.ports or 1
    streams = [
        within(
            env,
            merge_events(
                [
                    _connector_events(env, n, env.ev_plan(ref.device, n)),
                    _fault_events(env, ref.device, n),
                ]
            ),
        )
        for n in range(1, ports + 1)
    ]
    health = Health(env, ref, rng)
    yield from with_heartbeats(env, merge_events(streams), ref.profile.reporting_interval_s, health)


# --- e-bike stations -----------------------------------------------------------------------


def _port_events(env: Env, ref: DeviceRef, port: int) -> Iterator[Event]:
    """A port's readings: every 5 min while it charges, each change of status, and the
    status of a port not charging (available, finished, faulted) again every hour."""
    since = next(env.days())[1]  # before its first session the port is available
    last: Data = _port(port, "available", 0.0, env.ambient_c(since), None)
    for t, stream, data in _port_sessions(env, ref, port):
        yield from _status_repeats(env, since, t, last)
        yield t, stream, data
        since, last = t, data
    yield from _status_repeats(env, since, env.end, last)


def _status_repeats(env: Env, since: float, until: float, data: Data) -> Iterator[Event]:
    """``data`` (a port's last reading) repeated every hour in ``(since, until)`` unless
    the port is charging (then it reports every 5 minutes anyway); idle ports are at air
    temperature."""
    if data["status"] == "charging":
        return
    t = since + PORT_STATUS_INTERVAL
    while t < until:
        yield t, "port", {**data, "temperature_c": round(env.ambient_c(t), 1)}
        t += PORT_STATUS_INTERVAL


def _port_sessions(env: Env, ref: DeviceRef, port: int) -> Iterator[Event]:
    """A port's charging sessions: plug-in, 5-minute readings, the end, the unplug."""
    rng = rng_for(env.seed, ref.device, port, "port")
    injected = [
        e
        for kind in ("ebike_over_temperature", "ebike_session_too_long")
        for e in env.effects_of(ref.device, kind)
        if int(e.params.get("port", 1)) == port
    ]
    nights: list[tuple[float, float, float, Effect | None]] = []  # plug, charge_h, unplug, effect
    for _, midnight in env.days():
        plug = midnight + min(23.75, max(17.5, rng.gauss(20.5, 1.2))) * HOUR
        charge_h = rng.uniform(*shapes.EBIKE_CHARGE_H)
        unplug = midnight + DAY + rng.uniform(6.5, 8.5) * HOUR
        if rng.random() < shapes.EBIKE_NIGHT_SHARE:
            nights.append((plug, charge_h, unplug, None))
    for e in injected:
        nights = [n for n in nights if not (n[0] < e.end + HOUR and e.start - HOUR < n[2])]
        charge_h = e.params.get("charge_h", (e.end - e.start) / HOUR + 2)
        nights.append((e.start, charge_h, e.end + 600, e))
    for sid, (plug, charge_h, unplug, effect) in enumerate(sorted(nights), 1):
        session = f"EB-{ref.device}-{port}-{sid}"
        t = plug
        end = plug + charge_h * HOUR if effect is None else effect.end
        while t < min(end, unplug):
            power = ebike_power_w((t - plug) / HOUR, charge_h) * rng.uniform(0.97, 1.03)
            if effect is not None and effect.kind == "ebike_session_too_long":
                power = max(power, effect.params["trickle_w"])  # the charger never stops
            warm = 1 - math.exp(-(t - plug) / (shapes.EBIKE_WARM_MIN * 60))
            temperature = (
                env.ambient_c(t)
                + shapes.EBIKE_PORT_RISE_C * warm * power / shapes.EBIKE_POWER_W
                + rng.uniform(-0.5, 0.5)
            )
            if effect is not None and effect.kind == "ebike_over_temperature":
                temperature += min(
                    effect.params["rise_c"], effect.params["rise_c"] * (t - plug) / 1200
                )
            yield t, "port", _port(port, "charging", power, temperature, session)
            t += ALARM_INTERVAL
        status = (
            "faulted"
            if effect is not None and effect.kind == "ebike_over_temperature"
            else "finished"
        )
        yield t, "port", _port(port, status, 0.0, env.ambient_c(t) + 3, session)
        yield unplug, "port", _port(port, "available", 0.0, env.ambient_c(unplug), None)


def _port(port: int, status: str, power: float, temperature: float, session: str | None) -> Data:
    data: Data = {
        "port": port,
        "status": status,
        "power_w": round(power, 1),
        "temperature_c": round(temperature, 1),
    }
    if session is not None:
        data["session_id"] = session
    return data


def ebike_station(env: Env, ref: DeviceRef, rng: random.Random) -> Iterator[Event]:
    ports = ref.spec.ports or 1
    streams = [within(env, _port_events(env, ref, n)) for n in range(1, ports + 1)]
    health = Health(env, ref, rng)
    yield from with_heartbeats(env, merge_events(streams), ref.profile.reporting_interval_s, health)


# --- access gates --------------------------------------------------------------------------


def _estate_of(env: Env) -> Estate:
    found = env.index.estate(env.estate)
    assert found is not None  # the simulator builds an Env for registered estates only
    return found.estate


def _gate_rate(env: Env, ref: DeviceRef) -> float:
    """Passages per day through this gate."""
    estate = _estate_of(env)
    if ref.building is not None:
        building = next(b for b in estate.buildings if b.id == ref.building)
        doors = sum(1 for d in building.devices if d.kind is DeviceKind.ACCESS_GATE)
        return building.households * shapes.GATE_TRIPS_PER_HOUSEHOLD / max(1, doors)
    gates = sum(1 for d in estate.devices if d.kind is DeviceKind.ACCESS_GATE)
    return estate.households * shapes.GATE_TRIPS_PER_HOUSEHOLD * 0.8 / max(1, gates)


def access_gate(env: Env, ref: DeviceRef, rng: random.Random) -> Iterator[Event]:
    per_day = _gate_rate(env, ref)
    households = max(1, _estate_of(env).households)
    passages: list[Event] = []
    doors: list[tuple[float, float, bool]] = []  # open, close, forced
    hour = int(env.start // HOUR)
    while hour * HOUR < env.end:
        local_hour, _, _ = env.local(hour)
        rate = per_day * shapes.GATE_HOURLY_SHARE[local_hour]  # per hour
        t = hour * HOUR
        while rate > 0:
            t += rng.expovariate(rate) * HOUR
            if t >= (hour + 1) * HOUR:
                break
            data = _passage(rng, local_hour, households)
            passages.append((t, "passage", data))
            if data["result"] == "granted":
                close = t + 1 + rng.uniform(4, 12)
                if doors and doors[-1][1] >= t + 1:
                    doors[-1] = (doors[-1][0], max(close, doors[-1][1]), False)
                else:
                    doors.append((t + 1, close, False))
        hour += 1
    for kind, forced in (("door_forced", True), ("door_held_open", False)):
        for e in env.effects_of(ref.device, kind):
            doors = [d for d in doors if not (d[0] <= e.end and e.start <= d[1])]
            doors.append((e.start, e.end, forced))
            if not forced:
                passages.append(
                    (e.start - 1, "passage", _passage(rng, 12, households, granted=True))
                )
    for e in env.effects_of(ref.device, "gate_denied_attempts"):
        denied = {**_passage(rng, 12, households), "result": "denied", "persons_sensed": 0}
        t = e.start
        while t < e.end:
            passages.append((t, "passage", denied))
            t += e.params["every_s"]
    for e in env.effects_of(ref.device, "gate_tailgating"):
        crowd = {
            **_passage(rng, 12, households, granted=True),
            "persons_sensed": int(e.params["persons"]),
        }
        passages.append((e.start, "passage", crowd))
        doors = [d for d in doors if not (d[0] <= e.start + 9 and e.start <= d[1])]
        doors.append((e.start + 1, e.start + 9, False))
    door_events: list[Event] = []
    for opened, closed, forced in sorted(doors):
        door_events.append(
            (opened, "door", {"state": "open", "forced": True} if forced else {"state": "open"})
        )
        door_events.append((closed, "door", {"state": "closed"}))
    events = within(env, merge_events([sorted(passages, key=lambda e: e[0]), door_events]))
    health = Health(env, ref, rng)
    yield from with_heartbeats(env, events, ref.profile.reporting_interval_s, health)


def _passage(
    rng: random.Random, local_hour: int, households: int, *, granted: bool = False
) -> Data:
    method = rng.choices(("face", "card", "qr", "pin", "remote"), weights=(45, 35, 12, 3, 5))[0]
    result = "granted" if granted or rng.random() >= 0.03 else "denied"
    data: Data = {
        "direction": "out" if rng.random() < shapes.GATE_OUT_SHARE[local_hour] else "in",
        "result": result,
        "method": method,
    }
    if method != "remote":
        data["credential"] = f"{method}-{rng.randrange(households * 3):06d}"
    data["persons_sensed"] = (
        0 if result == "denied" else rng.choices((1, 2, 3), weights=(85, 12, 3))[0]
    )
    return data


# --- gateways ------------------------------------------------------------------------------


def gateway(env: Env, ref: DeviceRef, rng: random.Random) -> Iterator[Event]:
    yield from with_heartbeats(env, (), ref.profile.reporting_interval_s, Health(env, ref, rng))


Behaviour = Callable[[Env, DeviceRef, random.Random], Iterator[Event]]

BEHAVIOURS: dict[DeviceKind, Behaviour] = {
    DeviceKind.WATER_METER: water,
    DeviceKind.ENERGY_METER: energy,
    DeviceKind.WASTE_BIN: waste_bin,
    DeviceKind.PARKING_SENSOR: parking,
    DeviceKind.EV_CHARGER: ev_charger,
    DeviceKind.EBIKE_STATION: ebike_station,
    DeviceKind.ACCESS_GATE: access_gate,
    DeviceKind.GATEWAY: gateway,
}
