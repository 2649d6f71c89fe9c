"""A small JSONPath subset for mapping webhook payloads: ``$``, ``.key``, ``['key']``, ``[n]``
and ``[*]`` (every element).

Enough to say where a platform puts the sender, the text and the time of a message
(``$.entry[*].messaging[*]``, ``$.message.text``) without a dependency; anything else is
refused when the config loads, with the position of the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)      # .key
      | \[(?P<index>-?[0-9]+)\]                  # [3]
      | \[(?P<star>\*)\]                         # [*]
      | \[['"](?P<quoted>[^'"]+)['"]\]           # ['key with spaces']
    """,
    re.VERBOSE,
)

Step = str | int | None  # a key, an index, or None for "every element"


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        if not text.startswith("$"):
            raise ValueError(f"JSONPath {text!r} must start with '$'")
        steps: list[Step] = []
        position = 1
        while position < len(text):
            match = _STEP.match(text, position)
            if match is None:
                raise ValueError(
                    f"JSONPath {text!r}: unsupported syntax at position {position} "
                    f"({text[position:]!r}); use .key, ['key'], [n] or [*]"
                )
            if match.group("name") is not None:
                steps.append(match.group("name"))
            elif match.group("quoted") is not None:
                steps.append(match.group("quoted"))
            elif match.group("index") is not None:
                steps.append(int(match.group("index")))
            else:
                steps.append(None)
            position = match.end()
        return cls(text, tuple(steps))

    def find(self, document: Any) -> list[Any]:
        """Every value the path selects (none when a step does not exist)."""
        return list(_walk(document, self.steps))

    def first(self, document: Any) -> Any:
        found = self.find(document)
        return found[0] if found else None


def _walk(value: Any, steps: tuple[Step, ...]) -> Iterator[Any]:
    if not steps:
        yield value
        return
    step, rest = steps[0], steps[1:]
    if step is None:
        children = (
            value
            if isinstance(value, list)
            else (list(value.values()) if isinstance(value, dict) else [])
        )
        for child in children:
            yield from _walk(child, rest)
    elif isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            yield from _walk(value[step], rest)
    elif isinstance(value, dict) and step in value:
        yield from _walk(value[step], rest)
