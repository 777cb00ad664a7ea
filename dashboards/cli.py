"""``estate dashboards build`` and ``estate dashboards push``: wired by ``estate/cli.py``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dashboards build|push`` to the ``estate`` command."""
    parser = subparsers.add_parser("dashboards", help="Grafana boards as code: build, push")
    commands = parser.add_subparsers(dest="dashboards_command", required=True)
    build = commands.add_parser("build", help="regenerate the boards' JSON (dashboards/json)")
    build.add_argument("-o", "--output", type=Path, default=None, help="another folder")
    build.set_defaults(func=_build)
    push = commands.add_parser("push", help="create or update the boards in a Grafana by uid")
    push.add_argument("--grafana-url", required=True, help="e.g. http://grafana:3000")
    push.add_argument(
        "--token",
        default=os.environ.get("ESTATE_GRAFANA_TOKEN"),
        help="service-account token (default: $ESTATE_GRAFANA_TOKEN)",
    )
    push.set_defaults(func=_push)


def _build(args: argparse.Namespace) -> int:
    from dashboards.build import JSON_DIR, build  # noqa: PLC0415 - keep `estate --help` fast

    paths = build(args.output or JSON_DIR)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from dashboards.push import client, load, push  # noqa: PLC0415 - keep `estate --help` fast

    if not args.token:
        print(
            "estate dashboards push: --token or ESTATE_GRAFANA_TOKEN is required", file=sys.stderr
        )
        return 2
    uids = push(client(args.grafana_url, args.token), load())
    for uid in uids:
        print(f"pushed {uid}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the dashboards commands alone (``python -m dashboards.cli build``)."""
    parser = argparse.ArgumentParser(prog="estate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dashboards", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
