"""What the command line prints: Rich consoles for people, one JSON document for scripts.

Every command makes its consoles here (:func:`make_console`), so they all behave alike: on a
terminal, Rich's usual width and wrapping; anywhere else (a pipe, a file, a log collector) no
wrapping and no width limit, so one line printed is one line in the log. Markup, emoji codes
and highlighting are Rich features for text the program writes; text that comes from a user
or a peer (a reason quoting a selector such as ``li[data-author=assistant]``, a target named
``[bold]``, a subject, a config problem) enters markup only through :func:`markup`, which
escapes every value, or as :func:`plain` text.

``--json`` output (:func:`print_json`) is one JSON document on stdout with stable keys
(README, "Output for scripts"): datetimes as ISO 8601 in UTC, enumerations as their values,
durations in seconds.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import string
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from typer.core import MarkupMode

#: The width of a console that is not a terminal: no limit a line would ever reach.
UNLIMITED_WIDTH = 1_000_000


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that wraps only on a terminal."""
    terminal = Console(stderr=stderr, highlight=False, emoji=False)
    if terminal.is_terminal:
        return terminal
    return Console(
        stderr=stderr, highlight=False, emoji=False, soft_wrap=True, width=UNLIMITED_WIDTH
    )


def typer_markup_mode() -> MarkupMode:
    """Typer's own help and usage errors: Rich panels on a terminal; elsewhere Click's plain
    lines (a panel is drawn 80 columns wide, and would split a usage error in a log)."""
    return "rich" if make_console(stderr=True).is_terminal else None


class _EscapingFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return escape(super().format_field(value, format_spec))


_ESCAPING = _EscapingFormatter()


def markup(template: str, /, *args: object, **kwargs: object) -> str:
    """``template.format(...)`` with each value escaped: the template's own markup applies,
    the values print exactly as they are (``{!r}`` and format specs work as usual)."""
    return _ESCAPING.format(template, *args, **kwargs)


def plain(value: object) -> Text:
    """``value`` as text no markup is read in (a table cell, a line of user text)."""
    return Text(str(value))


def json_ready(value: Any) -> Any:
    """``value`` as JSON types: dataclasses as objects, datetimes as ISO 8601, enums as their
    values, paths as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: json_ready(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, enum.Enum):
        return json_ready(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [json_ready(item) for item in items]
    if hasattr(value, "model_dump"):  # a pydantic model
        return json_ready(value.model_dump(mode="json"))
    return value


def print_json(document: dict[str, Any]) -> None:
    """``document`` as one JSON document on stdout (what ``--json`` prints)."""
    sys.stdout.write(json.dumps(json_ready(document), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document instead (README: Output for scripts)."),
]
