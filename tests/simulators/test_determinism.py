"""Same seed, same bytes; another seed, other traffic; an injection touches one device."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from devices.registry import Registry
from simulators.estate import EstateSimulator, Injection
from simulators.model import Imperfections, Message
from tests.simulators.conftest import START

IMPERFECT = Imperfections(
    batching=0.2, duplicates=0.05, clock_skew=0.1, offline=0.2, low_battery=0.2, malformed=0.02
)


def run(
    registry: Registry,
    seed: int,
    imperfections: Imperfections | None = None,
    injections: Sequence[Injection] = (),
) -> list[tuple[str, bytes, str]]:
    end = START + timedelta(hours=6)
    sim = EstateSimulator(
        registry, seed=seed, start=START, end=end, imperfections=imperfections,
        injections=injections,
    )  # fmt: skip
    return [(m.topic, m.payload, m.at.isoformat()) for m in sim.messages()]


def test_the_same_seed_gives_byte_identical_traffic_with_imperfections(registry: Registry) -> None:
    first = run(registry, 7, imperfections=IMPERFECT)
    second = run(registry, 7, imperfections=IMPERFECT)
    assert len(first) > 1000
    assert first == second


def test_another_seed_gives_other_traffic(registry: Registry) -> None:
    assert run(registry, 7) != run(registry, 8)


def test_messages_come_in_send_time_order(day: list[Message]) -> None:
    times = [m.at for m in day]
    assert times == sorted(times)


def test_an_injection_changes_only_its_own_device(registry: Registry) -> None:
    fire = Injection(
        "fire", "bin_fire", "lvcheng", "bin-cp01-other", START + timedelta(hours=2),
        START + timedelta(hours=3), ("bin_fire_risk",), {"rise_c": 60.0},
    )  # fmt: skip
    plain = run(registry, 7)
    injected = run(registry, 7, injections=[fire])
    others = [m for m in plain if device_of_t(m) != "bin-cp01-other"]
    assert others == [m for m in injected if device_of_t(m) != "bin-cp01-other"]
    assert [m for m in plain if device_of_t(m) == "bin-cp01-other"] != [
        m for m in injected if device_of_t(m) == "bin-cp01-other"
    ]


def device_of_t(item: tuple[str, bytes, str]) -> str:
    return item[0].split("/")[3]


def test_a_subset_of_devices_sends_what_it_sends_in_the_full_run(registry: Registry) -> None:
    wanted = {"wm-01-master", "bin-cp01-kitchen", "evc-001", "gate-01-a", "p-S1-001"}
    full = EstateSimulator(registry, seed=7, start=START, end=START + timedelta(hours=6))
    part = EstateSimulator(
        registry, seed=7, start=START, end=START + timedelta(hours=6),
        only=lambda ref: ref.device in wanted,
    )  # fmt: skip
    subset = list(part.messages())
    assert {m.topic.split("/")[3] for m in subset} == wanted
    assert subset == [m for m in full.messages() if m.topic.split("/")[3] in wanted]
