"""The ``estate webhooks`` and ``estate receiver`` commands (wired in by ``estate/cli.py``).

``register(subparsers)`` adds:

* ``webhooks status [--data-dir D] [--outbox FILE] [--json]`` — per endpoint: pending,
  delivered, failed, disabled, backoff, last success, last error;
* ``webhooks redrive --endpoint X [--since T] [--data-dir D] [--outbox FILE]`` —
  re-enable endpoint ``X`` (``office/endpoint``, or the endpoint id alone when only
  one office has it) and make its failed messages of alerts at or after ``T`` (ISO
  8601 with an offset) pending again;
* ``receiver --listen HOST:PORT --secret-env NAME [--db FILE]`` — run the reference
  receiver until Ctrl-C.

The outbox lives at ``DATA_DIR/outbox.sqlite``; ``DATA_DIR`` is ``--data-dir``, else
``ESTATE_DATA_DIR``, else ``var``. Handlers return the exit code: 0 done, 1 nothing to
act on (no outbox, unknown endpoint), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from alerts.clock import SystemClock
from alerts.outbox import EndpointStatus, Outbox
from alerts.receiver import run_receiver
from alerts.signing import SecretError, parse_secrets

__all__ = ["OUTBOX_FILE", "outbox_path", "register"]

#: File name of the outbox inside the data directory.
OUTBOX_FILE: Final = "outbox.sqlite"


def outbox_path(data_dir: Path | None, outbox: Path | None = None) -> Path:
    """``--outbox``, else ``DATA_DIR/outbox.sqlite`` (``--data-dir``, ``ESTATE_DATA_DIR``,
    ``var``)."""
    if outbox is not None:
        return outbox
    base = data_dir or Path(os.environ.get("ESTATE_DATA_DIR") or "var")
    return base / OUTBOX_FILE


def register(subparsers: Any) -> None:
    """Add ``webhooks`` and ``receiver`` to an argparse sub-command set."""
    hooks = subparsers.add_parser("webhooks", help="alert delivery to street offices")
    sub = hooks.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")

    status = sub.add_parser("status", help="per endpoint: pending, delivered, failed, health")
    _outbox_args(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_cmd_status)

    redrive = sub.add_parser("redrive", help="re-enable an endpoint and resend its failures")
    _outbox_args(redrive)
    redrive.add_argument("--endpoint", required=True, help="office/endpoint (or endpoint id)")
    redrive.add_argument("--since", help="only alerts at or after this ISO 8601 time")
    redrive.set_defaults(func=_cmd_redrive)

    receiver = subparsers.add_parser("receiver", help="run the reference webhook receiver")
    receiver.add_argument("--listen", default="127.0.0.1:8787", help="HOST:PORT to listen on")
    receiver.add_argument(
        "--secret-env", required=True, help="environment variable holding the whsec_ secret(s)"
    )
    receiver.add_argument("--db", type=Path, default=Path("received.sqlite"))
    receiver.set_defaults(func=_cmd_receiver)


def _outbox_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data directory (default ./var)")
    parser.add_argument(
        "--outbox", type=Path, help="the outbox file (default DATA_DIR/outbox.sqlite)"
    )


def _open(args: argparse.Namespace) -> Outbox | None:
    path = outbox_path(args.data_dir, args.outbox)
    if not path.exists():
        print(f"no webhook outbox at {path}", file=sys.stderr)
        return None
    return Outbox(path)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def format_status(rows: list[EndpointStatus]) -> str:
    lines = [f"{'endpoint':32} {'pending':>7} {'deliver.':>8} {'failed':>6}  state"]
    for r in rows:
        if r.disabled:
            state = f"DISABLED ({r.disabled_reason})"
        elif r.paused_until is not None:
            state = f"backing off until {_when(r.paused_until)} after {r.failures} failure(s)"
        else:
            state = "ok"
        lines.append(f"{r.endpoint:32} {r.pending:7} {r.delivered:8} {r.failed:6}  {state}")
        lines.append(f"{'':32} last success {_when(r.last_success_at)}")
        if r.last_error is not None:
            lines.append(f"{'':32} last error {_when(r.last_error_at)}: {r.last_error}")
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace) -> int:
    outbox = _open(args)
    if outbox is None:
        return 1
    with outbox:
        rows = outbox.status()
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
    else:
        print(format_status(rows) if rows else "no endpoints have messages yet")
    return 0


def _cmd_redrive(args: argparse.Namespace) -> int:
    since = None
    if args.since is not None:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            print(f"--since {args.since!r} is not an ISO 8601 time", file=sys.stderr)
            return 2
        if since.utcoffset() is None:
            print("--since needs a UTC offset (e.g. 2026-11-22T08:00+08:00 or …Z)", file=sys.stderr)
            return 2
    outbox = _open(args)
    if outbox is None:
        return 1
    with outbox:
        known = outbox.endpoints()
        matches = [k for k in known if args.endpoint in (k, k.partition("/")[2])]
        if len(matches) != 1:
            what = "is ambiguous" if matches else "is not known to the outbox"
            print(
                f"endpoint {args.endpoint!r} {what} (known: {', '.join(known) or 'none'})",
                file=sys.stderr,
            )
            return 1
        count = outbox.redrive(matches[0], since, SystemClock().now())
    print(f"{matches[0]}: re-enabled; {count} failed message(s) pending again")
    return 0


def _cmd_receiver(args: argparse.Namespace) -> int:
    host, _, port_text = args.listen.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        print(f"--listen {args.listen!r}: expected HOST:PORT", file=sys.stderr)
        return 2
    value = os.environ.get(args.secret_env, "")
    try:
        keys = parse_secrets(value)
    except SecretError as exc:
        print(f"{args.secret_env}: {exc}", file=sys.stderr)
        return 2

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        ready = asyncio.Event()
        task = asyncio.create_task(
            run_receiver(host.strip("[]"), int(port_text), keys, args.db, stop, ready=ready)
        )
        await _first_done(ready, task)
        print(f"receiver on http://{args.listen}/ (alerts in {args.db}); Ctrl-C to stop")
        await task

    asyncio.run(serve())
    return 0


async def _first_done(ready: asyncio.Event, task: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # raises the bind error, if any
