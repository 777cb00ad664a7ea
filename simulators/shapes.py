"""Numbers that shape simulated behaviour, and where each one comes from.

Derived from real data (the data stays under ``../shared/data/real/``; only these
aggregates are in the repository, see ``docs/simulators.md`` for licences):

* water: ``simulators/shape/water_daiad.py`` over DAIAD trial A (CC-BY-SA 4.0), 76 of
  92 households with at least 30 complete days, intervals of 45-75 min;
* EV sessions: ``simulators/shape/ev_acn.py`` over ACN-Data, Caltech site (ACN-Data
  terms of use), 1,207 weekday workplace sessions mirrored into home sessions.

Everything else (energy, bins, gates, parking, e-bikes) is a stated assumption about a
Shanghai residential estate, not fitted to data; each constant says so.
"""

from __future__ import annotations

# --- water (DAIAD, derived) -----------------------------------------------------------------

#: Share of a household's daily water use in each local hour 0..23 (sums to 1): a night
#: minimum at 03-04 h, a morning peak 07-10 h and an evening peak 19-21 h.
WATER_HOURLY_SHARE: tuple[float, ...] = (
    0.0183, 0.0096, 0.0054, 0.0038, 0.0038, 0.0066, 0.0398, 0.0621, 0.0544, 0.057, 0.063,
    0.0604, 0.0543, 0.0493, 0.0494, 0.044, 0.0401, 0.043, 0.0508, 0.0675, 0.0752, 0.0631,
    0.0464, 0.0327,
)  # fmt: skip
#: Per local hour, the fraction of household-hours with no use at all.
WATER_HOURLY_DRY: tuple[float, ...] = (
    0.598, 0.746, 0.819, 0.858, 0.86, 0.806, 0.562, 0.426, 0.419, 0.436, 0.45, 0.46, 0.465,
    0.441, 0.411, 0.427, 0.452, 0.441, 0.424, 0.415, 0.354, 0.325, 0.38, 0.446,
)  # fmt: skip
#: Median over households of the mean daily use (litres).
WATER_DAILY_L = 252.6
#: Spread between households: sigma of log(mean daily use).
WATER_HOUSEHOLD_SIGMA = 0.569
#: Spread of one household's days: median sigma of log(daily use / own mean).
WATER_DAY_SIGMA = 0.727

# --- EV sessions (ACN-Data Caltech, derived, mirrored: see simulators/shape/ev_acn.py) ------

#: Share of home arrivals (plug-ins) per local hour 0..23.
EV_ARRIVAL_SHARE: tuple[float, ...] = (
    0.012, 0.009, 0.005, 0.001, 0.001, 0.0, 0.0, 0.0, 0.002, 0.004, 0.003, 0.016, 0.061,
    0.075, 0.066, 0.039, 0.071, 0.1, 0.226, 0.135, 0.065, 0.051, 0.036, 0.022,
)  # fmt: skip
#: Home stay, hours: log-normal (mu, sigma of the natural log); median ~17 h.
EV_STAY_H_LOGNORMAL = (2.788, 0.168)
#: Energy per session, kWh: log-normal (mu, sigma); median ~6.2 kWh.
EV_ENERGY_KWH_LOGNORMAL = (1.711, 1.015)
#: Assumption: the chance that a connector's car plugs in on a given day.
EV_SESSIONS_PER_DAY = 0.55

# --- assumptions (not fitted to data) -------------------------------------------------------

#: Household mean active power per local hour (W): a Shanghai flat with a fridge and
#: standby base, breakfast at 07-08 h and air conditioning / cooking in the evening.
ENERGY_HOUSEHOLD_W: tuple[float, ...] = (
    160, 140, 130, 130, 130, 150, 260, 420, 330, 250, 240, 280, 330, 260, 240, 240, 270,
    380, 620, 800, 850, 760, 560, 300,
)  # fmt: skip
#: Gate passages per household per day, and the share of each local hour 0..23.
GATE_TRIPS_PER_HOUSEHOLD = 2.4
GATE_HOURLY_SHARE: tuple[float, ...] = (
    0.004, 0.002, 0.001, 0.001, 0.002, 0.008, 0.035, 0.11, 0.1, 0.05, 0.04, 0.04, 0.045,
    0.04, 0.035, 0.04, 0.05, 0.08, 0.1, 0.075, 0.05, 0.035, 0.02, 0.017,
)  # fmt: skip
#: Share of passages going out, per local hour (mornings out, evenings in).
GATE_OUT_SHARE: tuple[float, ...] = (
    0.3, 0.3, 0.3, 0.3, 0.5, 0.7, 0.8, 0.8, 0.75, 0.6, 0.55, 0.5, 0.5, 0.5, 0.5, 0.45, 0.4,
    0.25, 0.2, 0.25, 0.35, 0.3, 0.25, 0.25,
)  # fmt: skip
#: Waste drops per local hour (Shanghai's fixed drop-off times, 定时定点: 07-09 and 18-20).
WASTE_DROP_SHARE: tuple[float, ...] = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.17, 0.15, 0.03, 0.02, 0.02, 0.03, 0.03, 0.02, 0.02,
    0.03, 0.05, 0.18, 0.16, 0.04, 0.02, 0.01, 0.0,
)  # fmt: skip
#: Per sorting category: fill (% of capacity) per day, and collection rounds as
#: (local hours of the day, every n days). Kitchen waste goes twice daily (日产日清).
WASTE_CATEGORIES: dict[str, tuple[float, tuple[float, ...], int]] = {
    "kitchen": (70.0, (9.5, 20.5), 1),
    "other": (55.0, (10.0,), 1),
    "recyclable": (28.0, (14.0,), 2),
    "hazardous": (2.5, (14.0,), 7),
}
#: Share of residential (unmarked) bays whose car leaves on a given day.
PARKING_COMMUTE_SHARE = 0.7
#: Share of unmarked bays that hold no resident car at all.
PARKING_EMPTY_SHARE = 0.15
#: Visitor-bay arrivals per hour (09-21 h) and the median visit (hours).
VISITOR_ARRIVALS_PER_H = 0.35
VISITOR_STAY_H = 1.5
#: Share of e-bike ports used on a given night; charger power (W) and hours of charge.
EBIKE_NIGHT_SHARE = 0.6
EBIKE_POWER_W = 380.0
EBIKE_CHARGE_H = (4.0, 7.0)
#: A charging port's socket runs this much above the air at full power (°C), and warms up
#: to it with this time constant (minutes) after the plug-in (assumptions: a loaded socket
#: warms over tens of minutes, far slower than the overheating fire-risk detectors look for).
EBIKE_PORT_RISE_C = 14.0
EBIKE_WARM_MIN = 20.0
