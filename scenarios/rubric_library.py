"""Library rubrics: a scenario's ``rubric: <name>`` is ``scenarios/library/rubrics/<name>.yaml``.

Each file is read once per process and validated as the scenario's ``rubric`` (by
``scenarios.model``, which this module does not import); an unknown name lists the ones there
are.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

RUBRICS_DIR = Path(__file__).resolve().parent / "library" / "rubrics"


def library_rubrics() -> list[str]:
    """The names of the library's rubrics."""
    return sorted(path.stem for path in RUBRICS_DIR.glob("*.yaml"))


def load_library_rubric(name: str) -> Any:
    """The library rubric ``name`` as data (a fresh copy); ValueError (shown at the scenario's
    ``rubric`` key) when there is none or its file is not YAML."""
    return copy.deepcopy(_read(name))


@functools.cache
def _read(name: str) -> Any:
    path = RUBRICS_DIR / f"{name}.yaml"
    if name not in library_rubrics():
        available = ", ".join(library_rubrics()) or "none"
        raise ValueError(
            f"unknown library rubric {name!r}; available: {available} "
            "(or write the rubric's items here)"
        )
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"library rubric {path} is not YAML: {exc}") from None
