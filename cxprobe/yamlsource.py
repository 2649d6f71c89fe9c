"""Load YAML while remembering where every key came from, and fill in ``${ENV}`` secrets.

Error messages must name the file, the key path and the line. PyYAML's composed node tree
carries line marks; this module walks it once to build both the plain data and a map from key
path to line number, and rejects duplicate keys (which plain ``safe_load`` silently merges).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cxprobe.errors import ConfigError

KeyPath = tuple[str | int, ...]

_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def format_path(path: KeyPath) -> str:
    """``("checks", 0, "schedule")`` -> ``checks[0].schedule``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


@dataclass
class YamlDocument:
    """A parsed YAML file with the line of each key path (1-based)."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of ``key_path`` or of its nearest ancestor that has one."""
        for end in range(len(key_path), -1, -1):
            line = self.lines.get(tuple(key_path[:end]))
            if line is not None:
                return line
        return None

    def where(self, key_path: KeyPath) -> str:
        line = self.line_of(key_path)
        location = f"{self.path}:{line}" if line else str(self.path)
        return f"{location}: {format_path(key_path)}"


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path``; raise :class:`ConfigError` naming the file and line on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"{path}: cannot read the file: {exc.strerror}"]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}: not valid YAML: {problem}"]) from exc
    document = YamlDocument(path=path, data=None)
    problems: list[str] = []
    document.data = _build(node, (), document, problems) if node is not None else None
    if problems:
        raise ConfigError(str(path), problems)
    return document


def _build(node: yaml.Node, key_path: KeyPath, doc: YamlDocument, problems: list[str]) -> Any:
    doc.lines.setdefault(key_path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(
                    f"{doc.path}:{line}: YAML merge keys ('<<') are not supported; "
                    "write the keys out"
                )
                continue
            key = _scalar(key_node)
            child_path = (*key_path, str(key))
            if key in result:
                problems.append(
                    f"{doc.path}:{line}: {format_path(child_path)}: duplicate key "
                    f"(first at line {doc.lines.get(child_path)}); keep only one"
                )
                continue
            doc.lines[child_path] = line
            result[key] = _build(value_node, child_path, doc, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*key_path, index), doc, problems) for index, item in enumerate(node.value)
        ]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    # A fresh constructor per scalar keeps YAML 1.1 typing (ints, bools, dates) without state.
    return yaml.SafeLoader("").construct_object(node, deep=True)


def substitute_env(doc: YamlDocument, environ: Mapping[str, str] | None = None) -> list[str]:
    """Replace ``${VAR}`` in every string of ``doc.data`` in place; ``$$`` is a literal ``$``.

    Returns one problem per reference to an unset variable (the caller raises).
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def fill(value: Any, key_path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {key: fill(item, (*key_path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item, (*key_path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:

            def replace(match: re.Match[str]) -> str:
                name = match.group(1)
                if name is None:
                    return "$"
                if name not in env:
                    problems.append(
                        f"{doc.where(key_path)}: environment variable {name} is not set; "
                        f"export {name}=... before starting cxprobe"
                    )
                    return ""
                return env[name]

            return _ENV_REFERENCE.sub(replace, value)
        return value

    doc.data = fill(doc.data, ())
    return problems
