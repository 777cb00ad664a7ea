"""The ``estate`` command line, run as a user would run it (subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.embedded_broker import free_port

ESTATE = [sys.executable, "-m", "estate.cli"]
ROOT = Path(__file__).resolve().parent.parent


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ESTATE, *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("up", "ingest", "registry", "log"):
        assert command in result.stdout


def test_registry_generate_then_check(tmp_path: Path) -> None:
    out = tmp_path / "estate.yaml"
    generated = run("registry", "generate", "-o", str(out), "--households", "300", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    checked = run("registry", "check", str(out), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "water_meter" in checked.stdout
    assert "300 households" in checked.stdout


def test_registry_check_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "estate.yaml"
    run("registry", "generate", "-o", str(bad), "--households", "100", cwd=tmp_path)
    text = bad.read_text().replace("kind: water_meter", "kind: water_metre", 1)
    bad.write_text(text)
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "water_metre" in ln)) + 1
    result = run("registry", "check", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert f"estate.yaml:{line}:" in result.stderr
    assert "kind" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_settings_are_a_clear_error(tmp_path: Path) -> None:
    result = run("up", cwd=tmp_path, env={"ESTATE_MQTT_PORT": "seventy"})
    assert result.returncode == 2
    assert "mqtt_port" in result.stderr and "ESTATE_MQTT_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_runs_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            *ESTATE,
            "up",
            "--mqtt-port",
            str(port),
            "--http",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "var"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "running; Ctrl-C to stop" in line or not line:
            break
    assert any("running" in ln for ln in lines), "".join(lines)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopped cleanly" in out
    assert (tmp_path / "var" / "estate.db").exists()
    assert (tmp_path / "var" / "estate.yaml").exists()


@pytest.mark.parametrize("args", [["log", "stats"]])
def test_log_stats_on_a_missing_log_says_so(tmp_path: Path, args: list[str]) -> None:
    result = run(*args, "--data-dir", str(tmp_path / "nothing"), cwd=tmp_path)
    assert result.returncode == 1
    assert "no event log" in result.stderr
