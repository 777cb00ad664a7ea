"""``estate tokens create|list`` (wired in by ``estate/cli.py`` through :func:`register`).

The tokens file is ``DATA_DIR/tokens.json``; ``DATA_DIR`` is ``--data-dir``, else
``ESTATE_DATA_DIR``, else ``var``. ``create`` prints the token once: only its SHA-256
is stored. Handlers return the exit code: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from console.tokens import Role, TokenStore

__all__ = ["register", "tokens_path"]


def tokens_path(data_dir: Path | None) -> Path:
    base = data_dir or Path(os.environ.get("ESTATE_DATA_DIR") or "var")
    return TokenStore.in_data_dir(base).path


def register(subparsers: Any) -> None:
    """Add ``tokens`` to an argparse sub-command set."""
    tokens = subparsers.add_parser("tokens", help="API tokens of the console and HTTP API")
    sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")

    create = sub.add_parser("create", help="create a token (printed once, stored hashed)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True, help="who or what uses it (shown as actor)")
    create.add_argument("--estates", help="operator: comma-separated estate ids")
    create.add_argument("--office", help="street_office: the street office id")
    create.add_argument("--data-dir", type=Path)
    create.set_defaults(func=_cmd_create)

    listing = sub.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--data-dir", type=Path)
    listing.set_defaults(func=_cmd_list)


def _cmd_create(args: argparse.Namespace) -> int:
    store = TokenStore(tokens_path(args.data_dir))
    estates = [e.strip() for e in (args.estates or "").split(",") if e.strip()]
    try:
        token, record = store.create(
            args.name, Role(args.role), estates=estates, office=args.office
        )
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors(include_url=False))
        print(f"tokens create: {problems}", file=sys.stderr)
        return 2
    print(f"token {record.id} ({record.role.value}) for {record.name} in {store.path}:")
    print(token)
    print("store it now: it is not shown again.", file=sys.stderr)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    store = TokenStore(tokens_path(args.data_dir))
    records = store.records()
    if not records:
        print(f"no tokens in {store.path}")
        return 0
    for r in records:
        scope = ",".join(r.estates) if r.estates else (f"office {r.office}" if r.office else "all")
        print(f"{r.id}  {r.role.value:13}  {r.name:20}  {scope:24}  {r.created_at.isoformat()}")
    return 0
