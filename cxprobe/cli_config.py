"""What every command that reads the configuration shares: its option and loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cxprobe.errors import ConfigError
from cxprobe.settings import Config, load_config

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The YAML configuration.", show_default=False)
]


def load_or_exit(path: Path, console: Console) -> Config:
    """The validated configuration, or every problem printed and exit status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        console.print(f"[bold red]{path}: invalid configuration[/]", highlight=False)
        for problem in exc.problems:
            console.print(f"  - {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
