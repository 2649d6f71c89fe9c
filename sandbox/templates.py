"""Checking the texts of a sandbox profile that name placeholders ({name}, {agent}, …)."""

from __future__ import annotations

import string


def check_placeholders(text: str, allowed: tuple[str, ...]) -> str:
    """Reject a text naming a placeholder the sandbox cannot fill, when the profile loads."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as err:
        raise ValueError(
            f"{text!r} is not a valid template ({err}); write {{{{ for a '{{'"
        ) from err
    for name in names:
        if name not in allowed:
            choices = ", ".join(f"{{{a}}}" for a in allowed) or "none"
            raise ValueError(f"unknown placeholder {{{name}}}; allowed placeholders: {choices}")
    return text
