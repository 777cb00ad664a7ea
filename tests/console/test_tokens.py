"""Tokens: stored hashed, scoped by role; the ``tokens`` CLI."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from console import cli
from console.tokens import Role, TokenStore, hash_token, principal_of


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="estate")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_the_file_holds_hashes_only(tmp_path: Path) -> None:
    store = TokenStore.in_data_dir(tmp_path)
    token, record = store.create("ops", Role.OPERATOR, estates=["lvcheng"])
    text = (tmp_path / "tokens.json").read_text()
    assert token not in text
    assert hash_token(token) in text
    assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600
    assert store.check(token) == record
    assert store.check(token + "x") is None
    assert TokenStore.in_data_dir(tmp_path).check(token) == record  # another process


def test_scopes_by_role(tmp_path: Path) -> None:
    store = TokenStore.in_data_dir(tmp_path)
    offices = {"huamu": ["lvcheng", "jinqiao"]}
    admin = principal_of(store.create("a", Role.ADMIN)[1], offices.__getitem__)
    op = principal_of(store.create("o", Role.OPERATOR, estates=["cuihu"])[1], offices.__getitem__)
    office = principal_of(
        store.create("s", Role.STREET_OFFICE, office="huamu")[1], offices.__getitem__
    )
    assert admin.can_read("anything") and admin.can_act
    assert op.can_read("cuihu") and not op.can_read("lvcheng") and op.can_act
    assert office.visible(["lvcheng", "cuihu", "jinqiao"]) == ["lvcheng", "jinqiao"]
    assert not office.can_act


@pytest.mark.parametrize(
    ("role", "kw", "message"),
    [
        (Role.OPERATOR, {}, "at least one estate"),
        (Role.STREET_OFFICE, {}, "needs its office"),
        (Role.ADMIN, {"estates": ["x"]}, "only operator"),
        (Role.OPERATOR, {"estates": ["x"], "office": "y"}, "only street_office"),
    ],
)
def test_a_scope_that_does_not_fit_the_role_is_refused(
    tmp_path: Path, role: Role, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TokenStore.in_data_dir(tmp_path).create("n", role, **kw)  # type: ignore[arg-type]
    assert not (tmp_path / "tokens.json").exists()


def test_cli_create_prints_once_and_list_never(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(
            "tokens",
            "create",
            "--role",
            "operator",
            "--estates",
            "lvcheng,cuihu",
            "--name",
            "night shift",
            "--data-dir",
            str(tmp_path),
        )
        == 0
    )
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("est_")
    record = TokenStore.in_data_dir(tmp_path).check(token)
    assert record is not None
    assert record.estates == ("lvcheng", "cuihu")
    assert record.name == "night shift"
    assert run("tokens", "list", "--data-dir", str(tmp_path)) == 0
    listed = capsys.readouterr().out
    assert "night shift" in listed and "lvcheng,cuihu" in listed
    assert token not in listed and record.sha256 not in listed
    stored = json.loads((tmp_path / "tokens.json").read_text())
    assert [r["role"] for r in stored] == ["operator"]


def test_cli_refuses_a_bad_scope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            "tokens",
            "create",
            "--role",
            "street_office",
            "--name",
            "x",
            "--data-dir",
            str(tmp_path),
        )
        == 2
    )
    assert "needs its office" in capsys.readouterr().err
    assert run("tokens", "list", "--data-dir", str(tmp_path)) == 0
    assert "no tokens" in capsys.readouterr().out
