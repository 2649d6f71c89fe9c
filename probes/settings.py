"""What the channels' settings models share: strictness, regex checks, automatic-answer phrases."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

#: Phrases that mark an automatic answer in most messaging desks (an address may replace them;
#: a target's ``responders`` rules can re-classify any reply, e.g. as a bot).
DEFAULT_AUTO = [
    r"\b(automatic|automated|auto-?)\s*(reply|response|message)\b",
    r"\bdo not reply\b",
    r"\b(virtual|digital) assistant\b",
]


class Strict(BaseModel):
    """A settings model that rejects unknown keys (a misspelt key is a probe that never runs)."""

    model_config = ConfigDict(extra="forbid")


def valid_regex(value: str) -> str:
    """``value`` if it compiles as a regular expression, else a ``ValueError`` saying why."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
    return value


def valid_regexes(values: list[str]) -> list[str]:
    for value in values:
        valid_regex(value)
    return values
