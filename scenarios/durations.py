"""Durations in config: ``90s``, ``15m``, ``1h30m``, ``2d``, ``250ms`` or a number of seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(
    r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?(?:(?P<s>\d+(?:\.\d+)?)s)?"
    r"(?:(?P<ms>\d+)ms)?$"
)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: Any) -> float:
    """Seconds in ``value``; raises ``ValueError`` with an example of the expected form."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m or 1h30m, not true/false")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())) and value.strip():
        seconds = sum(
            float(amount) * _UNIT_SECONDS[unit]
            for unit, amount in match.groupdict().items()
            if amount is not None
        )
    else:
        raise ValueError(
            f"invalid duration {value!r}: use a number of seconds or a form such as "
            "250ms, 90s, 15m, 1h30m, 2d"
        )
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative (got {value!r})")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: ``3600`` -> ``1h``, ``90`` -> ``1m30s``, ``1.5`` -> ``1.5s``."""
    if seconds < 60:
        return f"{seconds:g}s"
    parts = []
    remaining = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


#: A pydantic field type holding seconds, accepting the forms above.
Duration = Annotated[float, BeforeValidator(parse_duration)]
