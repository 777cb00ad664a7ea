"""Reading hand-edited YAML files (registry, rules) with errors that name file and line.

One place for what both the registry and the rule files need: PyYAML composed with
line marks (libyaml when available), duplicate keys refused (PyYAML silently keeps
the last), a plain ``22:00`` read as text rather than YAML 1.1's base-60 number, and
:class:`Problem` — one thing wrong, located as precisely as the YAML allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file, located as precisely as the YAML allows."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def format_loc(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("districts", 0, "name")`` → ``districts[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def show(value: object, limit: int = 60) -> str:
    """A value as a person reads it in a message (YAML's words for booleans and null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """The safe loader, but a plain ``22:00`` is text (a time), not YAML 1.1 base-60 1320."""


_Loader.yaml_implicit_resolvers = {
    key: list(value) for key, value in _BASE_LOADER.yaml_implicit_resolvers.items()
}
for _digit in "0123456789":
    _Loader.yaml_implicit_resolvers[_digit] = [
        (_STR, re.compile(r"^[0-9]{1,2}:[0-9]{2}$")),
        *_Loader.yaml_implicit_resolvers.get(_digit, []),
    ]


class _Builder:
    """Python data from the composed YAML, refusing duplicate keys.

    Plain strings, lists and mappings are built here (much faster than the generic
    constructor); everything else (numbers, booleans, null, merge keys ``<<``,
    timestamps, ...) goes to the safe constructor.
    """

    def __init__(self, loader: Any, name: str) -> None:
        self.loader = loader
        self.name = name
        self.problems: list[Problem] = []
        self.memo: dict[int, Any] = {}

    def build(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR else self.loader.construct_object(node, True)
        known = self.memo.get(id(node))
        if known is not None:
            return known  # an alias
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            items: list[Any] = []
            self.memo[id(node)] = items
            items.extend(self.build(child) for child in node.value)
            return items
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            return self.mapping(node)
        return self.loader.construct_object(node, True)

    def mapping(self, node: yaml.MappingNode) -> Any:
        first: dict[str, int] = {}
        merged = False
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            if key.tag == _MERGE:
                merged = True
                continue
            line = key.start_mark.line + 1
            if key.value in first:
                self.problems.append(
                    Problem(
                        self.name,
                        line,
                        "",
                        f"key {key.value!r} appears twice in one mapping (first at line "
                        f"{first[key.value]}); YAML would silently keep only the last",
                    )
                )
            else:
                first[key.value] = line
        if merged:  # `<<: *defaults`: the safe constructor knows the merge rules
            return self.loader.construct_object(node, True)
        out: dict[Any, Any] = {}
        self.memo[id(node)] = out
        for key, value in node.value:
            k = key.value if key.tag == _STR else self.loader.construct_object(key, True)
            if not isinstance(k, str | int | float | bool | None):
                raise yaml.MarkedYAMLError(
                    problem="a mapping key must be text", problem_mark=key.start_mark
                )
            out[k] = self.build(value)
        return out


def _yaml_problem(name: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = None if mark is None else mark.line + 1
    message = f"YAML syntax error: {exc.problem or exc}"
    if exc.context and exc.context_mark is not None:
        message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    return Problem(name, line, "", message)


def read_mapping(path: Path, top_hint: str) -> tuple[dict[str, Any], yaml.Node] | list[Problem]:
    """The top-level mapping of a YAML file and its node, or the problems that stop it.

    ``top_hint`` says what the top level should look like (used for an empty file or a
    top level that is not a mapping).
    """
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [Problem(name, None, "", f"cannot read the file: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [Problem(name, line, "", "the file is not UTF-8 text")]
    loader = _Loader(text)
    try:
        root: yaml.Node | None = loader.get_single_node()
        if root is None:
            return [Problem(name, 1, "", f"the file is empty; {top_hint}")]
        builder = _Builder(loader, name)
        data = builder.build(root)
        if builder.problems:
            return builder.problems
    except yaml.MarkedYAMLError as exc:
        return [_yaml_problem(name, exc)]
    except yaml.YAMLError as exc:
        return [Problem(name, None, "", f"YAML error: {exc}")]
    except RecursionError:
        return [Problem(name, None, "", "the YAML nests too deeply (recursive alias?)")]
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else show(data)
        return [Problem(name, root.start_mark.line + 1, "", f"{top_hint}, got {got}")]
    return data, root


def line_of(root: yaml.Node, loc: tuple[str | int, ...] | list[str | int]) -> int:
    """The 1-based line of the deepest node along ``loc`` (a key's line for mapping entries)."""
    node = root
    line = root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in reversed(node.value):  # the last duplicate wins, as in PyYAML
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
