"""``estate detect`` and ``estate rebuild`` as a user runs them, including a SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventlog.envelope import Stream
from eventlog.sqlite import SqliteEventLog
from processors.statestore import StateStore
from tests.processors.traffic import envelopes, load_index, write_registry

ESTATE = [sys.executable, "-m", "estate.cli"]
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "ESTATE_HASH_SALT": "tests-salt-0123456789abcdef"}


def estate(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ESTATE, *args, "--data-dir", str(data), "--registry", str(data / "estate.yaml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )


def event_ids(data: Path) -> set[str]:
    with SqliteEventLog(data / "estate.db") as log:
        return {str(r.envelope.id) for r in log.iterate(Stream.EVENTS)}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with a registry and four days of one building's readings in the log."""
    data = tmp_path_factory.mktemp("loaded")
    index = load_index(write_registry(data, households=60))
    with SqliteEventLog(data / "estate.db") as log:
        log.append(Stream.READINGS, envelopes(index, hours=96, meters=40))
    return data


def copy(loaded: Path, to: Path) -> Path:
    shutil.copytree(loaded, to)
    return to


def test_detector_runner_killed_mid_stream_ends_with_the_same_events(
    loaded: Path, tmp_path: Path
) -> None:
    whole = copy(loaded, tmp_path / "whole")
    done = estate("detect", data=whole)
    assert done.returncode == 0, done.stderr
    expected = event_ids(whole)
    assert len(expected) >= 10

    killed = copy(loaded, tmp_path / "killed")
    proc = subprocess.Popen(
        [*ESTATE, "detect", "--snapshot-every", "0", "--data-dir", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    # Kill it once it has snapshotted at least once and appended events: mid-stream.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        store = StateStore(killed / "state.db") if (killed / "state.db").exists() else None
        saved = store is not None and store.load("detectors") is not None
        if store is not None:
            store.close()
        if saved and event_ids(killed):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the runner finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = event_ids(killed)
    assert partial < expected, "killed after it had finished"

    resumed = estate("detect", data=killed)
    assert resumed.returncode == 0, resumed.stderr
    assert "from their snapshot" in resumed.stdout
    assert event_ids(killed) == expected


def test_rebuild_reproduces_the_projections(loaded: Path, tmp_path: Path) -> None:
    data = copy(loaded, tmp_path / "data")
    assert estate("detect", data=data).returncode == 0
    first = estate("rebuild", data=data)
    assert first.returncode == 0, first.stderr
    digest = first.stdout.rsplit("digest ", 1)[1].split()[0]
    again = estate("rebuild", "--detectors", data=data)
    assert again.returncode == 0, again.stderr
    assert f"digest {digest}" in again.stdout
    assert "0 events that were not already in the log" in again.stdout
    assert "alerts (" in again.stdout


def test_rebuild_without_a_log_says_so(tmp_path: Path) -> None:
    result = estate("rebuild", data=tmp_path / "nothing")
    assert result.returncode == 1
    assert "no event log" in result.stderr


def test_replay_stricter_and_looser_rules_move_alerts_the_expected_way(
    loaded: Path, tmp_path: Path
) -> None:
    data = copy(loaded, tmp_path / "data")
    assert estate("detect", data=data).returncode == 0
    live_before = event_ids(data)
    paths = {}
    for name, section in {
        "looser": "bin_overflow: {high_pct: 40, low_pct: 10}",
        "stricter": "bin_overflow: {high_pct: 95, low_pct: 30}",
    }.items():
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(
            f'version: "what-if-{name}"\nprofiles:\n  waste_bin:\n    {section}\n',
            encoding="utf-8",
        )
    rows = {}
    # looser than the shipped rules; then stricter than the looser ones
    for name, base in (("looser", []), ("stricter", ["--rules", str(paths["looser"])])):
        out = tmp_path / f"{name}.json"
        result = estate("replay", *base, "--with", str(paths[name]), "--json", str(out), data=data)
        assert result.returncode == 0, result.stderr
        assert "bin_overflow" in result.stdout
        rows[name] = {r["detector"]: r for r in json.loads(out.read_text())}["bin_overflow"]
    looser, stricter = rows["looser"], rows["stricter"]
    assert looser["after"] > looser["before"] and looser["added"] and not looser["removed"]
    assert stricter["after"] < stricter["before"] and stricter["removed"]
    assert not stricter["added"]
    assert event_ids(data) == live_before  # the live alert book's log is untouched


def test_replay_refuses_a_broken_rule_file(loaded: Path, tmp_path: Path) -> None:
    data = copy(loaded, tmp_path / "data")
    broken = tmp_path / "broken.yaml"
    broken.write_text('version: "x"\nprofiles:\n  waste_bin:\n    bin_overflow: {high_pct: -5}\n')
    result = estate("replay", "--with", str(broken), data=data)
    assert result.returncode == 2
    assert "broken.yaml:4" in result.stderr and "Traceback" not in result.stderr
