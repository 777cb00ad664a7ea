"""The ``estate`` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from estate.settings import Settings, SettingsError, load_settings
from processors.rules import RuleError


def _cmd_up(args: argparse.Namespace) -> int:
    from estate.runtime import run_embedded

    settings = load_settings(
        data_dir=args.data_dir,
        registry=args.registry,
        mqtt_url=args.mqtt_url,
        mqtt_port=args.mqtt_port,
        mqtt_protocol=args.protocol,
        rules=args.rules,
        lateness_s=args.lateness,
        http=args.http,
        grafana_url=args.grafana_url,
        influx_url=args.influx_url,
    )
    asyncio.run(run_embedded(settings, duration=args.duration))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from estate.demo import DemoOptions, run_demo

    settings = load_settings(
        data_dir=args.data_dir or Path("var/demo"),
        mqtt_port=0,
        rules=args.rules,
        lateness_s=args.lateness,
        http=args.http,
        grafana_url=args.grafana_url,
    )
    options = DemoOptions(
        scenario=args.scenario,
        speed=args.speed,
        duration=args.duration,
        keep=args.keep,
        receiver_port=args.receiver_port,
    )
    asyncio.run(run_demo(settings, options))
    return 0


def _existing_log(settings: Settings) -> Settings | None:
    """``settings`` when their event log exists; else say so (the caller exits 1)."""
    if settings.log_path.exists():
        return settings
    print(f"no event log at {settings.log_path}", file=sys.stderr)
    return None


def _processing_settings(args: argparse.Namespace) -> Settings | None:
    """Settings of the commands that process an existing log (rebuild, detect, replay)."""
    return _existing_log(
        load_settings(
            data_dir=args.data_dir,
            registry=args.registry,
            rules=args.rules,
            lateness_s=args.lateness,
        )
    )


def _cmd_rebuild(args: argparse.Namespace) -> int:
    from estate.runtime import rebuild

    settings = _processing_settings(args)
    if settings is None:
        return 1
    rebuild(settings, detectors=args.detectors)
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from estate.runtime import run_detectors

    settings = _processing_settings(args)
    if settings is None:
        return 1
    run_detectors(settings, follow=args.follow, snapshot_every_s=args.snapshot_every)
    return 0


def _evaluate(scenario_name: str, rules_path: Path | None, lateness: float | None) -> Any:
    from processors.engine import EngineConfig
    from processors.rules import load_rules
    from simulators.evaluate import evaluate
    from simulators.scenario import load_scenario

    scenario = load_scenario(scenario_name)
    rules = load_rules(rules_path)
    config = EngineConfig(lateness=timedelta(seconds=120 if lateness is None else lateness))
    print(
        f"evaluating {scenario.name}: {scenario.start.isoformat()} + {scenario.duration}, "
        f"seed {scenario.seed}, rules {rules.version}",
        flush=True,
    )

    def progress(at: datetime, readings: int) -> None:
        print(
            f"  simulated to {at.isoformat(timespec='minutes')}, {readings:,} readings", flush=True
        )

    return evaluate(scenario, rules, config=config, progress=progress)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from processors.scoring import score_table

    result = _evaluate(args.scenario, args.rules, args.lateness)
    print(
        f"{result.messages:,} messages, {result.readings:,} readings, "
        f"{result.duplicates:,} duplicates, rejected {dict(result.rejected) or 'none'}, "
        f"not judged {dict(result.not_judged) or 'none'}, {result.wall_s:.1f} s"
    )
    print(score_table(result.scores))
    if args.json is not None:
        args.json.write_text(
            json.dumps(result.to_json(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
        print(f"wrote {args.json}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    import json

    from estate.runtime import what_if
    from processors.replay import difference_table

    if args.scenario is not None:
        from processors.scoring import side_by_side

        before = _evaluate(args.scenario, args.rules, args.lateness)
        after = _evaluate(args.scenario, args.what_if_rules, args.lateness)
        print(side_by_side(before.scores, after.scores, before.rules_version, after.rules_version))
        return 0
    settings = _processing_settings(args)
    if settings is None:
        return 1
    rows = what_if(settings, args.what_if_rules, since=args.since, until=args.until)
    print(difference_table(rows))
    if args.json is not None:
        document = [
            {
                "detector": r.detector,
                "estate": r.estate,
                "before": r.before,
                "after": r.after,
                "added": [
                    {"device": s.device, "raised_at": s.start.isoformat(), "why": s.explanation}
                    for s in r.added
                ],
                "removed": [
                    {"device": s.device, "raised_at": s.start.isoformat(), "why": s.explanation}
                    for s in r.removed
                ],
            }
            for r in rows
        ]
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time (e.g. 2026-11-01 or 2026-11-01T08:00+08:00)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _http_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http", help="HOST:PORT of the console and HTTP API (default 127.0.0.1:8080; off)"
    )
    parser.add_argument("--grafana-url", help="Grafana base URL for the console's board links")


def _processing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="where the log and state live (default ./var)"
    )
    parser.add_argument(
        "--registry", type=Path, help="estate.yaml or folder (default: demo estate)"
    )
    parser.add_argument("--rules", type=Path, help="rule file or folder (default: shipped rules)")
    parser.add_argument(
        "--lateness", type=float, help="allowed lateness of readings in seconds (default 120)"
    )


def _cmd_ingest(args: argparse.Namespace) -> int:
    from estate.runtime import run_ingest

    settings = load_settings(
        data_dir=args.data_dir,
        registry=args.registry,
        mqtt_url=args.mqtt_url,
        mqtt_protocol=args.protocol,
        mqtt_client_id=args.client_id,
        mqtt_shared_group=args.shared_group,
    )
    run_ingest(settings)
    return 0


def _cmd_registry_generate(args: argparse.Namespace) -> int:
    from devices.demo_estate import write_registry

    paths = write_registry(
        args.output, households=args.households, estates=args.estates, seed=args.seed
    )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _cmd_registry_check(args: argparse.Namespace) -> int:
    from devices.registry import RegistryError, check_registry

    try:
        summary = check_registry(args.file)
    except RegistryError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return 1
    print(summary.to_text())
    return 0


def _cmd_log_stats(args: argparse.Namespace) -> int:
    from eventlog import Stream
    from eventlog.sqlite import SqliteEventLog

    settings = _existing_log(load_settings(data_dir=args.data_dir))
    if settings is None:
        return 1
    with SqliteEventLog(settings.log_path) as log:
        for stream in Stream:
            print(f"{stream.value:10} end position {log.end_position(stream.value)}")
    return 0


def _add_demo_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="the embedded service with a simulated estate: alerts within a minute"
    )
    demo.add_argument("--scenario", default="demo", help="shipped scenario or file (default demo)")
    demo.add_argument(
        "--speed", type=float, default=600.0, help="simulated seconds per second (default 600)"
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds, summarise")
    demo.add_argument("--data-dir", type=Path, help="where the demo keeps its data (var/demo)")
    demo.add_argument("--keep", action="store_true", help="keep the data of an earlier run")
    demo.add_argument("--receiver-port", type=int, help="port of the webhook receiver (any free)")
    demo.add_argument("--rules", type=Path, help="rule file or folder (default: shipped rules)")
    demo.add_argument("--lateness", type=float, help="allowed lateness, seconds (default 120)")
    _http_options(demo)
    demo.set_defaults(func=_cmd_demo)


def _add_processing_commands(commands: Any) -> None:
    """``rebuild``, ``detect`` and ``replay``: the detectors and projections over the log."""
    rebuild = commands.add_parser(
        "rebuild", help="drop the projections (alert book, device state) and rebuild them"
    )
    _processing_options(rebuild)
    rebuild.add_argument(
        "--detectors",
        action="store_true",
        help="also drop the detector state and re-run the detectors over the whole log",
    )
    rebuild.set_defaults(func=_cmd_rebuild)

    detect = commands.add_parser("detect", help="run the detectors over the log (no ingest)")
    _processing_options(detect)
    detect.add_argument("--follow", action="store_true", help="keep running for new readings")
    detect.add_argument(
        "--snapshot-every", type=float, default=5.0, help="seconds between snapshots (default 5)"
    )
    detect.set_defaults(func=_cmd_detect)

    replay = commands.add_parser(
        "replay", help="what-if: re-run the detectors over the log with other rules"
    )
    _processing_options(replay)
    replay.add_argument(
        "--with",
        dest="what_if_rules",
        type=Path,
        required=True,
        metavar="RULES",
        help="the other rule file or folder to compare with the current rules (--rules)",
    )
    replay.add_argument(
        "--since", type=_timestamp, help="device time from (ISO-8601; UTC if no offset)"
    )
    replay.add_argument("--until", type=_timestamp, help="device time until (exclusive)")
    replay.add_argument("--json", type=Path, help="also write the comparison as JSON here")
    replay.add_argument(
        "--scenario", help="instead of the log: run this scenario under both rule sets, score both"
    )
    replay.set_defaults(func=_cmd_replay)

    evaluate = commands.add_parser(
        "evaluate", help="run a scenario in-process and score every detector on its ground truth"
    )
    evaluate.add_argument("scenario", help="a shipped scenario name or a scenario file")
    evaluate.add_argument("--rules", type=Path, help="rule file or folder (default: shipped)")
    evaluate.add_argument("--lateness", type=float, help="allowed lateness, seconds (default 120)")
    evaluate.add_argument("--json", type=Path, help="also write the result as JSON here")
    evaluate.set_defaults(func=_cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="estate",
        description="Event-sourced IoT monitoring for residential estates.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the embedded service (broker, log, ...) until Ctrl-C")
    _processing_options(up)
    up.add_argument("--mqtt-url", help="use this external broker instead of the embedded one")
    up.add_argument("--mqtt-port", type=int, help="port of the embedded broker (default 1883)")
    up.add_argument("--protocol", choices=["5", "3.1.1"], help="MQTT version for --mqtt-url")
    up.add_argument("--duration", type=float, help="stop after this many seconds")
    up.add_argument(
        "--influx-url", help="project time series into this InfluxDB (http://host:8086?db=estate)"
    )
    _http_options(up)
    up.set_defaults(func=_cmd_up)

    ingest = commands.add_parser("ingest", help="run the MQTT ingest gateway alone")
    ingest.add_argument("--mqtt-url", help="broker, e.g. mqtt://user@host:1883 (required)")
    ingest.add_argument("--protocol", choices=["5", "3.1.1"], help="MQTT version (default 5)")
    ingest.add_argument("--client-id", help="fixed client id of the persistent session")
    ingest.add_argument("--shared-group", help="shared-subscription group for replicas")
    ingest.add_argument("--data-dir", type=Path)
    ingest.add_argument("--registry", type=Path)
    ingest.set_defaults(func=_cmd_ingest)

    _add_demo_command(commands)
    _add_processing_commands(commands)

    registry = commands.add_parser("registry", help="estate registry tools")
    reg = registry.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")
    gen = reg.add_parser("generate", help="write a realistic demo estate registry")
    gen.add_argument("-o", "--output", type=Path, default=Path("estate.yaml"))
    gen.add_argument("--households", type=int, default=2500)
    gen.add_argument("--estates", type=int, default=1)
    gen.add_argument("--seed", type=int, default=1)
    gen.set_defaults(func=_cmd_registry_generate)
    check = reg.add_parser("check", help="validate an estate.yaml (or folder) and summarise it")
    check.add_argument("file", type=Path)
    check.set_defaults(func=_cmd_registry_check)

    from alerts.cli import register as register_alerts
    from console.cli import register as register_console
    from dashboards.cli import register as register_dashboards
    from simulators.cli import register as register_simulators

    register_alerts(commands)
    register_simulators(commands)
    register_console(commands)
    register_dashboards(commands)

    logp = commands.add_parser("log", help="event log tools")
    logc = logp.add_subparsers(dest="log_command", required=True, metavar="COMMAND")
    stats = logc.add_parser("stats", help="end positions of every stream")
    stats.add_argument("--data-dir", type=Path)
    stats.set_defaults(func=_cmd_log_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = getattr(args, "func", None) or args.handler  # simulate sets `handler`
        code: int = handler(args)
    except KeyboardInterrupt:
        return 130
    except (SettingsError, OSError, ValueError, RuleError) as exc:
        # RegistryError and LogError messages are written for people: show them as they are.
        print(f"estate: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"estate: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
