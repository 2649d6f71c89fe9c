"""What every command that reads the configuration shares: its option and loading it.

Each command says which ``${VAR}`` secrets it needs (README, "Secrets"): a command that
contacts channels needs them all (:data:`EVERY_SECRET`), one that opens the evidence store
only ``monitor``'s (:data:`STORE_SECRETS`, the store URL may carry a password), one that
only reads the file none (:data:`NO_SECRET`). The others are left unset and never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cxprobe.cli_output import markup
from cxprobe.errors import ConfigError
from cxprobe.settings import Config, load_config
from cxprobe.yamlsource import KeyPath

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The YAML configuration.", show_default=False)
]

#: The secrets a command needs: the key paths whose ``${VAR}`` must be set (None: none).
EVERY_SECRET: KeyPath = ()
STORE_SECRETS: KeyPath = ("monitor",)
NO_SECRET: KeyPath | None = None


def load_or_exit(path: Path, console: Console, *, secrets: KeyPath | None) -> Config:
    """The validated configuration, or every problem printed and exit status 2.

    ``secrets``: where every ``${VAR}`` must be set; the rest may be unset (deferred)."""
    try:
        config = load_config(path, environment="deferred")
        if secrets is not None:
            config.require_environment(secrets)
    except ConfigError as exc:
        print_problems(console, path, exc.problems)
        raise typer.Exit(2) from None
    return config


def print_problems(console: Console, path: Path, problems: list[str]) -> None:
    console.print(markup("[bold red]{}: invalid configuration[/]", path))
    for problem in problems:
        console.print(markup("  - {}", problem))
