"""``webhooks status``, ``webhooks redrive`` and ``receiver`` through argparse, as wired in."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

from alerts.cli import register
from alerts.outbox import Outbox
from alerts.payload import build_payload, encode, messages_for
from alerts.signing import generate_secret, parse_secrets, signed_headers
from processors.alarm import to_envelope

from .conftest import T0, Estate, alert_event, free_port

CLI = """
import argparse, sys
from alerts.cli import register
parser = argparse.ArgumentParser(prog="estate")
register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def run(*argv):
    parser = argparse.ArgumentParser(prog="estate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def outbox_with_states(estate):
    """huamu/control: one delivered, one failed, one pending; gumei/control: disabled."""
    events = [alert_event("huamu", n) for n in range(3)] + [alert_event("gumei", 9)]
    messages = [m for e in events for m in messages_for(to_envelope(e, e.at), estate.index)]
    with Outbox(estate.outbox) as outbox:
        outbox.enqueue(messages, T0)
        for message, outcome, status in zip(
            messages, ["delivered", "gave_up", None, "disabled"], [200, 400, None, 410], strict=True
        ):
            if outcome is None:
                continue
            pending = next(
                p
                for p in outbox.due(message.endpoint, T0, 10)
                if p.webhook_id == message.webhook_id
            )
            outbox.record(
                pending,
                started_at=T0,
                latency_ms=3.0,
                status=status,
                error=None if status == 200 else f"HTTP {status}: no",
                outcome=outcome,
                next_attempt_at=None,
                epoch=0,
                now=T0 + timedelta(seconds=1),
            )


def test_status_and_redrive(tmp_path, capsys):
    estate = Estate(tmp_path, {"huamu": "http://127.0.0.1:9/a", "gumei": "http://127.0.0.1:9/b"})
    assert run("webhooks", "status", "--data-dir", str(tmp_path / "none")) == 1
    outbox_with_states(estate)
    capsys.readouterr()
    assert run("webhooks", "status", "--outbox", str(estate.outbox), "--json") == 0
    rows = {r["endpoint"]: r for r in json.loads(capsys.readouterr().out)}
    assert (
        rows["huamu/control"]["pending"],
        rows["huamu/control"]["delivered"],
        rows["huamu/control"]["failed"],
    ) == (1, 1, 1)
    assert rows["huamu/control"]["last_success_at"] == "2026-11-22T01:00:01+00:00"
    assert rows["huamu/control"]["last_error"] == "HTTP 400: no"
    assert rows["gumei/control"]["disabled"] is True
    assert run("webhooks", "status", "--data-dir", str(tmp_path)) == 0
    text = capsys.readouterr().out
    assert "DISABLED (HTTP 410: no)" in text and "huamu/control" in text

    assert run("webhooks", "redrive", "--data-dir", str(tmp_path), "--endpoint", "nope") == 1
    assert run("webhooks", "redrive", "--data-dir", str(tmp_path), "--endpoint", "control") == 1
    assert (
        run(
            "webhooks",
            "redrive",
            "--data-dir",
            str(tmp_path),
            "--endpoint",
            "huamu/control",
            "--since",
            "2026-11-22T01:00",
        )
        == 2
    )  # no offset
    capsys.readouterr()
    assert (
        run(
            "webhooks",
            "redrive",
            "--data-dir",
            str(tmp_path),
            "--endpoint",
            "huamu/control",
            "--since",
            "2026-11-22T09:00+08:00",
        )
        == 0
    )
    assert "1 failed message(s) pending again" in capsys.readouterr().out
    assert (
        run("webhooks", "redrive", "--data-dir", str(tmp_path), "--endpoint", "gumei/control") == 0
    )
    with Outbox(estate.outbox) as outbox:
        rows2 = {s.endpoint: s for s in outbox.status()}
    assert (rows2["huamu/control"].pending, rows2["huamu/control"].failed) == (2, 0)
    assert not rows2["gumei/control"].disabled
    estate.close()


def test_receiver_command_serves_until_interrupted(tmp_path):
    secret = generate_secret()
    port = free_port()
    env = {**os.environ, "OFFICE_SECRET": secret}
    assert run("receiver", "--listen", "nohost", "--secret-env", "OFFICE_SECRET") == 2
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "receiver",
            "--listen",
            f"127.0.0.1:{port}",
            "--secret-env",
            "OFFICE_SECRET",
            "--db",
            str(tmp_path / "r.sqlite"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        estate = Estate(tmp_path, {"huamu": "http://127.0.0.1:9/a"})
        body = encode(build_payload(alert_event("huamu", 1), estate.index, T0))
        headers = signed_headers(parse_secrets(secret), "msg_cli", int(time.time()), body)
        deadline = time.monotonic() + 10
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/hook", body, headers)
                with urllib.request.urlopen(request, timeout=2) as response:
                    assert json.load(response) == {"status": "accepted"}
                break
            except OSError:
                assert time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/alerts.json", timeout=2) as response:
            assert json.load(response)["count"] == 1
        estate.close()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    bad = subprocess.run(
        [sys.executable, "-c", CLI, "receiver", "--secret-env", "NOT_SET_ANYWHERE"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "NOT_SET_ANYWHERE" in bad.stderr
