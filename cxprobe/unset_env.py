"""``${VAR}`` references left unset, for commands that never use the values.

``cxprobe rules``, ``plan`` and ``validate`` read the configuration and contact nothing; the
commands that open the evidence store need only ``monitor``'s references (its URL may carry
a password); only ``run`` and ``once`` need every channel's secrets. So the loader can defer
the unset ones: each becomes a placeholder naming the variable (nothing secret in it, so it
can leak nowhere) and is listed on the config, and a command asks for the references it
needs before using any (:meth:`cxprobe.settings.Config.require_environment`), which refuses
with the file, line, key and variable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cxprobe.yamlsource import KeyPath, YamlDocument

_PLACEHOLDER = re.compile(r"<unset \$\{([A-Za-z_][A-Za-z0-9_]*)\}>")


def placeholder(name: str) -> str:
    """What an unset ``${name}`` reads as when deferred: never a usable value."""
    return f"<unset ${{{name}}}>"


class DeferredEnvironment(Mapping[str, str]):
    """``environ`` in which every variable is set: the unset ones to their placeholder."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        value = self._environ.get(name)
        return placeholder(name) if value is None else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


@dataclass(frozen=True)
class UnsetVariable:
    """A ``${name}`` the environment did not set, and where the configuration uses it."""

    name: str
    key_path: KeyPath
    #: ``file:line: key.path``
    where: str

    def problem(self) -> str:
        return (
            f"{self.where}: environment variable {self.name} is not set; "
            f"export {self.name}=... before starting cxprobe"
        )

    def under(self, prefix: KeyPath) -> bool:
        return self.key_path[: len(prefix)] == prefix


def unset_variables(document: YamlDocument) -> list[UnsetVariable]:
    """Every placeholder left in ``document.data``, in document order."""
    found: list[UnsetVariable] = []

    def walk(value: Any, key_path: KeyPath) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*key_path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*key_path, index))
        elif isinstance(value, str):
            for name in _PLACEHOLDER.findall(value):
                found.append(UnsetVariable(name, key_path, document.where(key_path)))

    walk(document.data, ())
    return found
