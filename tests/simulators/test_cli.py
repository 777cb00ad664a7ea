"""``estate simulate`` through a small argparse parser, as estate/cli.py will wire it."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from ingest.embedded_broker import free_port
from simulators.cli import register
from simulators.scenario import scenario_names


def simulate(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="estate")
    register(parser.add_subparsers())
    args = parser.parse_args(["simulate", *argv])
    code: int = args.handler(args)
    return code


def test_backfill_of_a_scenario_writes_messages_and_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth, lines = tmp_path / "truth.json", tmp_path / "messages.jsonl"
    code = simulate(
        "--scenario", "bin-fire", "--households", "10", "--backfill", "--duration", "7h",
        "--truth", str(truth), "--jsonl", str(lines), "--progress", "0",
    )  # fmt: skip
    assert code == 0
    labels = json.loads(truth.read_text())
    assert [(x["kind"], x["detector"]) for x in labels] == [("bin_fire", "bin_fire_risk")]
    assert labels[0]["start"] == "2026-05-04T14:00:00+08:00"
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert records[0]["at"] >= "2026-05-04T00:00:00+00:00"
    fire = [
        json.loads(r["payload"])
        for r in records
        if r["topic"].endswith(f"/{labels[0]['device']}/level")
    ]
    assert max(f["temperature_c"] for f in fire) > 60
    out = capsys.readouterr().out
    assert "(backfill)" in out and f"done: {len(records):,} messages in " in out
    assert out.endswith("simulated to 2026-05-04T15:00:00+08:00\n")


def test_same_seed_same_jsonl(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert simulate(
            "--households", "10", "--backfill", "--start", "2026-05-04T00:00:00+08:00",
            "--duration", "30m", "--jsonl", str(tmp_path / name), "--progress", "0",
        ) == 0  # fmt: skip
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_accelerated_time_paces_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    assert simulate("--households", "5", "--speed", "1800", "--duration", "30m") == 0
    assert 0.8 < time.monotonic() - began < 10
    assert "(speed 1800)" in capsys.readouterr().out


def test_load_mode_publishes_devices_times_rate(tmp_path: Path) -> None:
    lines = tmp_path / "load.jsonl"
    began = time.monotonic()
    code = simulate(
        "--devices", "20", "--rate", "400", "--duration", "1s", "--jsonl", str(lines),
    )  # fmt: skip
    assert code == 0 and time.monotonic() - began >= 0.9
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(records) == 400
    assert len({r["topic"] for r in records}) == 20


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "nope"], "nope: no such scenario"),
        (["--devices", "5"], "load mode needs both --devices and --rate"),
        (["--start", "2026-05-04T00:00:00"], "needs a UTC offset"),
        (["--duration", "forever"], "--duration: duration 'forever' is not like"),
        (["--mqtt-url", "http://x"], "scheme must be mqtt:// or mqtts://"),
        (["--registry", "/no/such/estate.yaml"], "no such file or folder"),
        (["--imperfect", "batching=2"], "--imperfect: batching: Input should be less than or"),
        (["--imperfect", "rain=0.1"], "--imperfect: rain: Extra inputs are not permitted"),
        (["--imperfect", "batching"], "--imperfect: 'batching' is not NAME=RATE"),
    ],
)
def test_bad_command_lines_exit_2_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert simulate(*argv) == 2
    assert message in capsys.readouterr().err


def test_a_broken_scenario_file_is_reported_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nregistry: {households: 5}\nseed: 1\nstart: x\nduration: 1h\n")
    assert simulate("--scenario", str(path)) == 2
    assert f"{path}:4: start: 'x' is neither a time" in capsys.readouterr().err


def test_an_unreachable_broker_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = simulate("--households", "5", "--backfill", "--duration", "1m",
                    "--mqtt-url", f"mqtt://127.0.0.1:{free_port()}")  # fmt: skip
    assert code == 1
    assert "cannot connect to 127.0.0.1" in capsys.readouterr().err


def test_list_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate("--list-scenarios") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.partition(": ")[0] for line in lines] == scenario_names()
    assert lines[0].startswith("bin-fire: A discarded cigarette")


def test_imperfections_are_summarised(capsys: pytest.CaptureFixture[str]) -> None:
    code = simulate(
        "--households", "10", "--backfill", "--start", "2026-05-04T00:00:00+08:00",
        "--duration", "2h", "--imperfect", "batching=0.2,malformed=0.05", "--progress", "0",
    )  # fmt: skip
    assert code == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("imperfections: ") and "gateway batches, 0 retries" in last
    assert "ingest should refuse " in last and "schema" in last


def test_ground_truth_holds_the_labels_made_while_the_traffic_is(tmp_path: Path) -> None:
    """Labels come from behaviour and imperfections too, made as the messages are (here:
    door closes that ingest will refuse); the file is written after the run."""
    truth = tmp_path / "truth.json"
    code = simulate(
        "--scenario", "door-held-open", "--households", "24", "--backfill", "--duration", "12h",
        "--imperfect", "malformed=0.05", "--truth", str(truth), "--progress", "0",
    )  # fmt: skip
    assert code == 0
    kinds = Counter(x["kind"] for x in json.loads(truth.read_text()))
    assert kinds["door_held_open"] == 1 and kinds["lost_door_close"] >= 1, kinds
