"""Real MQTT brokers for tests and benchmarks: Debian's Mosquitto and the embedded amqtt.

Each broker runs on a free loopback port in its own temporary directory and is
stopped by its context manager. Mosquitto can be restarted gracefully (SIGTERM)
or killed (SIGKILL) with persistence on, to test that nothing is lost, and
frozen (SIGSTOP/SIGCONT) to let unacknowledged messages pile up. It runs as the
current user (started as root it would otherwise switch to ``mosquitto`` and
could not read its password file nor write its persistence file), and a broker
that fails to start reports its own error output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ingest.embedded_broker import EmbeddedBroker, free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


class Mosquitto:
    """A Mosquitto 2 process on 127.0.0.1:<free port>, persistent sessions, no queue limits."""

    def __init__(
        self,
        *,
        persistence: bool = True,
        autosave_interval: int = 1,
        passwords: dict[str, str] | None = None,
        extra_config: str = "",
    ) -> None:
        if not Path(MOSQUITTO).exists():
            raise RuntimeError("mosquitto is not installed: run scripts/setup.sh")
        self.dir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.port = free_port()
        self.host = "127.0.0.1"
        lines = [
            f"listener {self.port} 127.0.0.1",
            # Started as root, Mosquitto would switch to the user "mosquitto", which can
            # neither read the password file nor write the persistence file in our 0700 dir.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.dir}/",
            f"autosave_interval {autosave_interval}",
            "max_inflight_messages 0",
            "max_queued_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if passwords:
            pwfile = self.dir / "passwd"
            pwfile.write_text("".join(f"{u}:{p}\n" for u, p in passwords.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n" + extra_config)
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._paused = False

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """What Mosquitto wrote to stderr (errors and warnings) over all its runs."""
        path = self.dir / "stderr.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            raise RuntimeError(f"mosquitto on port {self.port} is already running")
        self._stderr = open(self.dir / "stderr.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"mosquitto exited with {code} at start:\n{self.log_text()}")
            try:
                wait_for_port(self.host, self.port, timeout=0.1)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    self.stop(signal.SIGKILL)
                    raise TimeoutError(
                        f"mosquitto not listening on {self.port} after {timeout} s:\n"
                        f"{self.log_text()}"
                    ) from None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is read or acknowledged."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self._paused = False

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the process with ``sig`` (SIGTERM saves the persistence file, SIGKILL does not)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                if self._paused:
                    self.resume()  # a frozen process handles its SIGTERM only once it runs
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            self._paused = False
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self, sig: signal.Signals = signal.SIGTERM, down_for: float = 0.5) -> None:
        self.stop(sig)
        time.sleep(down_for)
        self.start()

    def __enter__(self) -> Mosquitto:
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the process (if running) and remove its directory."""
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def amqtt_broker() -> Iterator[EmbeddedBroker]:
    """The embedded amqtt broker, run on its own event loop in a background thread."""
    broker = EmbeddedBroker(port=free_port())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="amqtt", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(timeout=10)
    try:
        wait_for_port(broker.host, broker.port)
        yield broker
    finally:
        asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
