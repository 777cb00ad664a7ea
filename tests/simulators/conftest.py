"""Shared fixtures: a small demo estate and one simulated day of its clean traffic."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from devices.demo_estate import generate_registry
from devices.registry import Registry
from simulators.estate import EstateSimulator
from simulators.model import Message

#: A Monday in May, midnight in Shanghai.
START = datetime.fromisoformat("2026-05-04T00:00:00+08:00")
HOUSEHOLDS = 24


def small_registry(households: int = HOUSEHOLDS) -> Registry:
    return Registry.model_validate(generate_registry(households, seed=1))


@pytest.fixture(scope="session")
def registry() -> Registry:
    return small_registry()


@pytest.fixture(scope="session")
def day(registry: Registry) -> list[Message]:
    """One clean simulated day of the small estate."""
    sim = EstateSimulator(registry, seed=5, start=START, end=START + timedelta(days=1))
    return list(sim.messages())


def body(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(message.payload)
    return data


def device_of(message: Message) -> str:
    return message.topic.split("/")[3]


def stream_of(message: Message) -> str:
    return message.topic.split("/")[4]


def local_hour(message: Message) -> int:
    return message.at.astimezone(START.tzinfo).hour
