"""``estate simulate``: run the estate simulator, a scenario or the load mode.

:func:`register` adds the ``simulate`` subcommand to an argparse parser; its handler
(``args.handler(args)``) returns the exit code: 0 done, 1 the broker failed, 2 the
command line, registry or scenario is wrong, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from devices.demo_estate import generate_registry
from devices.registry import Registry, RegistryError, load_registry
from simulators.clock import SimClock
from simulators.estate import EstateSimulator
from simulators.load import load_messages
from simulators.model import Imperfections, Message
from simulators.mqtt import BrokerUrl, MqttError, MqttPublisher
from simulators.scenario import (
    ScenarioError,
    load_scenario,
    parse_duration,
    scenario_descriptions,
)

#: Ingest refuses device times older than this (ingest.pipeline.Policy.horizon).
_HORIZON = timedelta(days=7)


class UsageError(Exception):
    """A problem with the command line: the message says what to change."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` to ``subparsers`` (the caller's ``add_subparsers()``)."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate an estate's devices (optionally a scenario) and publish over MQTT",
        description=(
            "Simulate every device of a registry (or a demo registry) and publish the readings "
            "over MQTT at QoS 1, or just count them. Time runs accelerated (--speed), in real "
            "time (--speed 1) or as fast as possible with historical device times (--backfill)."
        ),
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--registry", type=Path, help="estate.yaml (or a folder of them)")
    where.add_argument(
        "--households", type=int, help="generate a demo registry of N households (default 100)"
    )
    p.add_argument("--scenario", help="a shipped scenario name or a scenario file")
    p.add_argument("--list-scenarios", action="store_true", help="list shipped scenarios")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's, else 1)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--speed", type=float, help="simulated seconds per wall second (default 600)")
    mode.add_argument(
        "--backfill", action="store_true", help="as fast as possible, historical device times"
    )
    p.add_argument("--start", help="simulated start, ISO-8601 with offset (default: see docs)")
    p.add_argument("--end", help="simulated end, ISO-8601 with offset")
    p.add_argument(
        "--duration", help="simulated span, e.g. 6h or 2d (default: the scenario's, else 1h)"
    )
    p.add_argument(
        "--imperfect",
        metavar="NAME=RATE,...",
        help="device imperfections, e.g. batching=0.1,duplicates=0.01,malformed=0.001 "
        f"(names: {', '.join(Imperfections.model_fields)}; overrides the scenario's)",
    )
    p.add_argument("--mqtt-url", help="mqtt://user:pass@host:port; without it nothing is sent")
    p.add_argument("--client-id", default="estate-simulator", help="MQTT client id")
    p.add_argument("--max-inflight", type=int, default=1000, help="QoS 1 messages awaiting PUBACK")
    p.add_argument("--devices", type=int, help="load mode: number of devices")
    p.add_argument("--rate", type=float, help="load mode: readings per second (all devices)")
    p.add_argument("--truth", type=Path, help="write the ground truth (JSON) to this file")
    p.add_argument("--jsonl", type=Path, help="write every message as a JSON line to this file")
    p.add_argument(
        "--progress", type=float, default=5.0, help="seconds between progress lines (0: none)"
    )
    p.set_defaults(handler=run_simulate)


def _time(text: str, flag: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not an ISO-8601 time") from None
    if at.tzinfo is None:
        raise UsageError(f"{flag} {text!r} needs a UTC offset, e.g. 2026-05-04T08:00:00+08:00")
    return at


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from None


def _imperfections(text: str) -> Imperfections:
    rates: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            raise UsageError(f"--imperfect: {part!r} is not NAME=RATE")
        rates[name.strip()] = value.strip()
    try:
        return Imperfections.model_validate(rates)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"--imperfect: {where}: {first['msg']}") from None


def _registry(args: argparse.Namespace) -> Registry | None:
    if args.registry is not None:
        return load_registry(args.registry)
    if args.households is not None:
        if args.households < 1:
            raise UsageError("--households must be at least 1")
        return Registry.model_validate(generate_registry(args.households))
    return None


def _window(
    args: argparse.Namespace, default_start: datetime | None, default_span: timedelta
) -> tuple[datetime, datetime]:
    """Start and end: flags first, then the scenario's, then so that the run ends at now."""
    span = _duration(args.duration) if args.duration else default_span
    start = _time(args.start, "--start") if args.start else None
    end = _time(args.end, "--end") if args.end else None
    if start is None and end is not None:
        start = end - span
    if start is None:
        paced = not args.backfill
        start = default_start if default_start is not None and not paced else None
    if start is None:
        now = datetime.now(UTC).replace(microsecond=0)
        # paced runs that end in the past keep device times behind the wall clock; a run
        # too long for ingest's horizon starts now instead (device times then run ahead)
        speed = 600.0 if args.speed is None else args.speed
        start = now - span if args.backfill or (speed > 1 and span <= _HORIZON) else now
    end = end or start + span
    if end <= start:
        raise UsageError("--end must be after --start")
    return start, end


def run_simulate(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        if args.list_scenarios:
            for name, description in scenario_descriptions().items():
                print(f"{name}: {description}", file=out)
            return 0
        if args.max_inflight < 1:
            raise UsageError("--max-inflight must be at least 1")
        if args.speed is not None and args.speed <= 0:
            raise UsageError("--speed must be positive")
        if args.mqtt_url:
            BrokerUrl.parse(args.mqtt_url)
        if (args.devices is None) != (args.rate is None):
            raise UsageError("load mode needs both --devices and --rate")
        registry = _registry(args)
        imperfect = _imperfections(args.imperfect) if args.imperfect else None
        sim: EstateSimulator | None = None
        if args.devices is not None:
            if args.scenario or args.backfill:
                raise UsageError("load mode (--devices/--rate) runs in real time, alone")
            if args.devices < 1 or args.rate <= 0:
                raise UsageError("--devices must be at least 1 and --rate positive")
            registry = registry or Registry.model_validate(
                generate_registry(max(1, args.devices // 2 + 1))
            )
            start, end = _window(args, None, timedelta(minutes=1))
            messages: Iterable[Message] = load_messages(
                registry, args.devices, args.rate, start, end - start
            )
            speed: float | None = 1.0
        else:
            if args.scenario:
                scenario = load_scenario(args.scenario)
                if registry is not None:
                    scenario = scenario.with_registry(registry)
                start, end = _window(args, scenario.start, scenario.duration)
                sim = scenario.simulator(
                    seed=args.seed, start=start, end=end, imperfections=imperfect
                )
            else:
                start, end = _window(args, None, timedelta(hours=1))
                sim = EstateSimulator(
                    registry or Registry.model_validate(generate_registry(100)),
                    seed=1 if args.seed is None else args.seed,
                    start=start,
                    end=end,
                    imperfections=imperfect,
                )
            messages = sim.messages()
            speed = None if args.backfill else (600.0 if args.speed is None else args.speed)
    except (UsageError, ScenarioError, RegistryError, ValueError) as exc:
        print(f"estate simulate: {exc}", file=sys.stderr)
        return 2
    mode = "backfill" if speed is None else f"speed {speed:g}"
    print(f"simulating {start.isoformat()} to {end.isoformat()} ({mode})", file=out)
    try:
        return _publish(args, messages, SimClock(start, speed), end, out, sim)
    finally:
        # After the run: behaviour and imperfections add labels as the traffic is made
        # (bins that filled up, door closes ingest will refuse); an interrupted run
        # writes the labels of the traffic made so far.
        if args.truth is not None:
            labels = [] if sim is None else sim.ground_truth
            args.truth.write_text(
                json.dumps([label.as_dict() for label in labels], indent=1, ensure_ascii=False)
                + "\n",
                encoding="utf-8",
            )


def _publish(
    args: argparse.Namespace,
    messages: Iterable[Message],
    clock: SimClock,
    end: datetime,
    out: IO[str],
    sim: EstateSimulator | None,
) -> int:
    publisher: MqttPublisher | None = None
    jsonl = args.jsonl.open("w", encoding="utf-8") if args.jsonl is not None else None
    sent = 0
    began = last_report = time.monotonic()

    def report(final: bool = False, upto: datetime | None = None) -> None:
        wall = time.monotonic() - began
        rate = sent / wall if wall > 0 else 0.0
        if final:
            line = f"done: {sent:,} messages in {wall:.1f} s ({rate:,.0f} msg/s), simulated to "
        else:
            line = f"progress: {sent:,} messages ({rate:,.0f} msg/s), simulated time "
        when = (upto or clock.now()).isoformat(timespec="seconds")
        print(line + when, file=out, flush=True)
        if final and sim is not None and sim.imperfections.any:
            stats = sim.stats
            refused = ", ".join(f"{k} {v}" for k, v in sorted(stats.expected_rejects.items()))
            print(
                f"imperfections: {stats.batches:,} gateway batches, {stats.duplicates:,} retries; "
                f"ingest should refuse {stats.expected_rejects.total():,}"
                + (f" ({refused})" if refused else ""),
                file=out,
            )

    try:
        if args.mqtt_url:
            publisher = MqttPublisher(
                args.mqtt_url, client_id=args.client_id, max_inflight=args.max_inflight
            ).connect()
        send: Callable[[Message], None] = publisher.publish if publisher else (lambda m: None)
        for message in messages:
            clock.wait_until(message.at)
            send(message)
            if jsonl is not None:
                jsonl.write(_json_line(message))
            sent += 1
            if args.progress and time.monotonic() - last_report >= args.progress:
                last_report = time.monotonic()
                report()
        if publisher is not None:
            publisher.flush()
        clock.wait_until(end)
        report(final=True, upto=end)
        return 0
    except (MqttError, ValueError, OSError) as exc:
        print(f"estate simulate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        report(final=True)
        return 130
    finally:
        if publisher is not None:
            publisher.close()
        if jsonl is not None:
            jsonl.close()


def _json_line(message: Message) -> str:
    record = {
        "topic": message.topic,
        "at": message.at.isoformat(),
        "payload": message.payload.decode("utf-8", "replace"),
    }
    return json.dumps(record, ensure_ascii=False) + "\n"
