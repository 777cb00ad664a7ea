"""``estate demo`` end to end: simulator → MQTT → ingest → detectors → webhooks → receiver."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_raises_and_delivers_alerts_within_seconds(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "estate.cli",
            "demo",
            "--duration",
            "20",
            "--http",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in result.stderr
    assert "log in with est_" in out
    status = [line for line in out.splitlines() if line.startswith("[")]
    assert status, out
    assert "bin_fire_risk" in status[-1]  # the scenario's first anomaly, 15 simulated minutes in
    delivered = int(re.findall(r"webhooks delivered (\d+)", status[-1])[0])
    assert delivered >= 1
    table = out.split("ground truth:", 1)[1]
    fire = next(line for line in table.splitlines() if line.startswith("bin_fire_risk"))
    assert fire.split()[1:3] == ["1", "1"]  # one label, found
    assert (tmp_path / "demo" / "received.sqlite").exists()
