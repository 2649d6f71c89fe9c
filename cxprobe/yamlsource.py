"""Load YAML while remembering where every key came from, and fill in ``${ENV}`` secrets.

Error messages must name the file, the key path and the line. PyYAML's composed node tree
carries line marks; this module walks it once to build both the plain data and a map from key
path to line number, and rejects duplicate keys (which plain ``safe_load`` silently merges).

Anchors, aliases and merge keys (``<<: *block``, YAML 1.1's merge type) work as in any YAML
loader: a mapping's own keys win over merged ones, and of several merged mappings
(``<<: [*a, *b]``) the first that has a key wins. A merged key keeps the line where it is
written (in the anchored block), so an error in it names that line.
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
#: A ``${VAR}`` not inside quotes (in a flow collection YAML reads its braces as a mapping).
_UNQUOTED_ENV_REFERENCE = re.compile(r"(?<![\"'])\$\{[A-Za-z_][A-Za-z0-9_]*\}(?![\"'])")
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
        raise ConfigError(str(path), [_syntax_problem(path, text, exc)]) from exc
    document = YamlDocument(path=path, data=None)
    problems: list[str] = []
    if node is not None:
        document.data = _Builder(document, problems).build(node, ())
    if problems:
        raise ConfigError(str(path), problems)
    return document


def _syntax_problem(path: Path, text: str, exc: yaml.YAMLError) -> str:
    """PyYAML's complaint with the file and line, and the likely fix where one is known."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        unquoted = _UNQUOTED_ENV_REFERENCE.search(line)
        if unquoted is not None and any(opener in line[: unquoted.start()] for opener in "{["):
            reference = unquoted.group(0)
            problem = f'{reference} inside {{...}} or [...] must be quoted: write "{reference}"'
    return f"{where}: not valid YAML: {problem}"


class _Builder:
    """One walk over a composed node tree: plain data, each key path's line, and problems."""

    def __init__(self, doc: YamlDocument, problems: list[str]) -> None:
        self._doc = doc
        self._problems = problems
        # Nodes being built: an alias to one of them is a loop (``&a [*a]``).
        self._open: set[int] = set()

    def build(self, node: yaml.Node, key_path: KeyPath) -> Any:
        self._doc.lines.setdefault(key_path, node.start_mark.line + 1)
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return _scalar(node)
        if id(node) in self._open:
            self._problems.append(
                f"{self._doc.path}:{node.start_mark.line + 1}: {format_path(key_path)}: "
                "an alias refers to a block that contains it; YAML here cannot be recursive"
            )
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [
                    self.build(item, (*key_path, index)) for index, item in enumerate(node.value)
                ]
            return self._mapping(node, key_path)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, key_path: KeyPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node, own in self._pairs(node, key_path):
            key = _scalar(key_node)
            child_path = (*key_path, str(key))
            if key in result:
                if own:
                    self._problems.append(
                        f"{self._doc.path}:{key_node.start_mark.line + 1}: "
                        f"{format_path(child_path)}: duplicate key "
                        f"(first at line {self._doc.lines.get(child_path)}); keep only one"
                    )
                continue  # a merged key that the mapping (or an earlier merge) already has
            self._doc.lines[child_path] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, child_path)
        return result

    def _pairs(
        self, node: yaml.MappingNode, key_path: KeyPath
    ) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """The key/value nodes of ``node``, its own first (``True``), then those of the
        mappings it merges in order, themselves expanded the same way."""
        own: list[tuple[yaml.Node, yaml.Node, bool]] = []
        merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node, True))
                continue
            for source in self._merge_sources(value_node, key_node.start_mark.line + 1, key_path):
                if id(source) in self._open:
                    self._problems.append(
                        f"{self._doc.path}:{key_node.start_mark.line + 1}: "
                        f"{format_path(key_path)}: '<<' merges a block that contains it"
                    )
                    continue
                self._open.add(id(source))
                try:
                    merged += [
                        (key, value, False) for key, value, _ in self._pairs(source, key_path)
                    ]
                finally:
                    self._open.discard(id(source))
        return own + merged

    def _merge_sources(
        self, value_node: yaml.Node, line: int, key_path: KeyPath
    ) -> list[yaml.MappingNode]:
        """The mappings a ``<<`` key merges: one mapping, or a list of them."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        if all(isinstance(source, yaml.MappingNode) for source in sources):
            return [source for source in sources if isinstance(source, yaml.MappingNode)]
        self._problems.append(
            f"{self._doc.path}:{line}: {format_path(key_path)}: '<<' merges a mapping "
            "(<<: *block) or a list of mappings (<<: [*a, *b]), not this value"
        )
        return []


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
