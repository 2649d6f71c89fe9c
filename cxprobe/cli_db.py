"""``cxprobe db upgrade|current``: the evidence store's schema (README, "Upgrading").

Registered in :mod:`cxprobe.cli` as ``app.add_typer(db_app, name="db")``. Every command that
opens the store upgrades it to this cxprobe's schema first; ``db upgrade`` does only that, to
upgrade deliberately (after a backup, before the monitors start) and see from and to what.

Exit codes: 0 success; 2 invalid configuration, or a store that cannot be used (unreachable,
or written by a newer cxprobe: the message names it and says what to do).
"""

from __future__ import annotations

import asyncio

import typer

from cxprobe.cli_config import STORE_SECRETS, ConfigOption, load_or_exit
from cxprobe.cli_output import JsonOption, make_console, plain, print_json, typer_markup_mode
from cxprobe.store.database import EvidenceStore
from cxprobe.store.migrations import SchemaState

db_app = typer.Typer(
    name="db",
    help="The evidence store's schema: show its revision, upgrade it (README: Upgrading).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=typer_markup_mode(),
)


async def _open_schema(url: str, *, upgrade: bool) -> tuple[str, SchemaState]:
    async with EvidenceStore(url, upgrade_schema=upgrade) as store:
        if store.schema is None:  # pragma: no cover - set by every successful open
            raise RuntimeError("the store was opened without its schema state")
        return store.where, store.schema


def _legacy(state: SchemaState) -> str:
    if state.legacy_version is None:
        return ""
    return f" (schema_version {state.legacy_version}, from before Alembic)"


@db_app.command("upgrade")
def upgrade_command(config: ConfigOption) -> None:
    """Upgrade the store to this cxprobe's schema; print the revisions before and after.

    Every run and the evidence chain are kept; a store of a newer cxprobe is refused."""
    loaded = load_or_exit(config, make_console(stderr=True), secrets=STORE_SECRETS)
    where, state = asyncio.run(_open_schema(loaded.monitor.store_url, upgrade=True))
    if state.created:
        message = f"{where}: created at revision {state.revision} (head)"
    elif state.upgraded:
        message = (
            f"{where}: upgraded from revision {state.found}{_legacy(state)} "
            f"to {state.revision} (head)"
        )
    elif state.stamped:
        message = f"{where}: at revision {state.revision} (head){_legacy(state)}; now stamped"
    else:
        message = f"{where}: already at revision {state.revision} (head), nothing to do"
    make_console().print(plain(message))


@db_app.command("current")
def current_command(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Print the store's schema revision and whether it needs an upgrade; change nothing."""
    loaded = load_or_exit(config, make_console(stderr=True), secrets=STORE_SECRETS)
    where, state = asyncio.run(_open_schema(loaded.monitor.store_url, upgrade=False))
    if as_json:
        print_json(
            {
                "store": where,
                "revision": state.revision,
                "head": state.head,
                "pending": state.pending,
                "legacy_version": state.legacy_version,
            }
        )
        return
    if state.revision is None:
        message = (
            f"{where}: no schema yet (an empty database); cxprobe creates it at revision "
            f"{state.head} when it first opens the store"
        )
    elif state.pending:
        message = (
            f"{where}: revision {state.revision}{_legacy(state)}; this cxprobe is at "
            f"{state.head}: `cxprobe db upgrade -c {config}` (or the next start) upgrades it"
        )
    else:
        message = f"{where}: revision {state.revision} (head){_legacy(state)}"
    make_console().print(plain(message))
