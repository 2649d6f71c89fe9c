"""Library rubrics: a scenario's ``rubric: <name>`` is ``scenarios/library/rubrics/<name>.yaml``.

Each file is read and validated once per process; an unknown name lists the ones there are.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import ValidationError

from scenarios.model import Rubric

RUBRICS_DIR = Path(__file__).resolve().parent / "library" / "rubrics"


def library_rubrics() -> list[str]:
    """The names of the library's rubrics."""
    return sorted(path.stem for path in RUBRICS_DIR.glob("*.yaml"))


@functools.cache
def load_library_rubric(name: str) -> Rubric:
    """The library rubric ``name``; ValueError (shown at the scenario's ``rubric`` key) when
    there is none or its file is broken."""
    path = RUBRICS_DIR / f"{name}.yaml"
    if name not in library_rubrics():
        available = ", ".join(library_rubrics()) or "none"
        raise ValueError(
            f"unknown library rubric {name!r}; available: {available} "
            "(or write the rubric's items here)"
        )
    try:
        return Rubric.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"library rubric {path} is broken: {exc}") from None
