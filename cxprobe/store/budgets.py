"""Money budgets in the claim: what a contact is estimated to cost, and what is spent already.

A claim that carries a :class:`ContactCost` is checked, in the claim's write transaction,
against every :class:`BudgetWindow` that applies to it (a budget per provider account or per
target, each with a day and a month window in its own time zone). A window's spend is the
sum over its runs of the actual price where the provider has reported it, else the estimate;
runs skipped on purpose and runs closed without ever sending are not counted, runs in flight
(open, not yet sent) are, so monitors claiming at once cannot all slip under the limit.

On PostgreSQL every budget involved is locked with a transaction-level advisory lock, all keys
taken in ascending order (with the contact quota's key), so two monitors never deadlock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cxprobe.store.schema import runs
from scenarios.model import Outcome

#: How far spends are compared: amounts are stored as floats rounded to this many decimals.
MONEY_DECIMALS = 5


@dataclass(frozen=True)
class BudgetWindow:
    """One budget's limit over one window (the current day or month in its time zone)."""

    budget: str  # the budget's name (``budgets.<name>``)
    scope: Literal["account", "target"]
    key: str  # the account (e.g. a Twilio account SID) or the target id
    period: Literal["daily", "monthly"]
    start: datetime  # UTC: the window's start in the budget's time zone
    limit: float
    currency: str

    @property
    def name(self) -> str:
        """How the skip reason and the metrics name it: ``<budget> <period>``."""
        return f"{self.budget} {self.period}"


@dataclass(frozen=True)
class ContactCost:
    """What a contact is estimated to cost, where it is billed, and the budgets it spends."""

    amount: float
    currency: str | None  # None: no price table, nothing to compare with
    account: str  # the provider account billed ("" when the channel has none)
    windows: tuple[BudgetWindow, ...] = ()
    #: False for a channel whose contacts are free (email, web chat): nothing is recorded on
    #: the run and no provider price is asked for.
    priced: bool = True


@dataclass(frozen=True)
class WindowSpend:
    """A budget window and what is spent in it (actual prices where known, else estimates)."""

    window: BudgetWindow
    spent: float

    @property
    def left(self) -> float:
        return max(0.0, round(self.window.limit - self.spent, MONEY_DECIMALS))


def money(amount: float) -> float:
    return round(amount, MONEY_DECIMALS)


def spend_query(window: BudgetWindow) -> Select[Any]:
    """The spend of ``window``: actual price, else estimate, of its counted runs."""
    in_scope = (
        runs.c.cost_account == window.key
        if window.scope == "account"
        else runs.c.target == window.key
    )
    sent_or_in_flight = or_(runs.c.sent_at.is_not(None), runs.c.status == "open")
    not_skipped = or_(runs.c.outcome.is_(None), runs.c.outcome != str(Outcome.SKIPPED))
    return select(
        func.coalesce(func.sum(func.coalesce(runs.c.actual_cost, runs.c.estimated_cost)), 0.0)
    ).where(
        and_(
            in_scope,
            runs.c.currency == window.currency,
            runs.c.created_at >= window.start,
            sent_or_in_flight,
            not_skipped,
        )
    )


async def spends(conn: AsyncConnection, windows: tuple[BudgetWindow, ...]) -> list[WindowSpend]:
    """What is spent in each window, read on ``conn`` (inside the claim: under its locks)."""
    found = []
    for window in windows:
        spent = (await conn.execute(spend_query(window))).scalar_one()
        found.append(WindowSpend(window, money(float(spent))))
    return found


def exceeded(spent: list[WindowSpend], amount: float) -> WindowSpend | None:
    """The first window the contact would take over its limit; None if it fits them all."""
    return next(
        (each for each in spent if money(each.spent + amount) > money(each.window.limit)), None
    )


def skip_reason(over: WindowSpend) -> str:
    """The reason a run skipped for its budget says: which, and how much of how much."""
    window = over.window
    return f"skipped: budget {window.name} ({over.spent:g}/{window.limit:g} {window.currency})"


def budget_lock_keys(windows: tuple[BudgetWindow, ...]) -> set[int]:
    """PostgreSQL advisory lock keys of the budgets involved (one per budget, both windows)."""
    return {_lock_key(f"cxprobe money budget\0{window.budget}") for window in windows}


def contact_quota_lock_key(target: str, channel: str) -> int:
    """The advisory lock key of one target's contact quota on one channel."""
    return _lock_key(f"cxprobe contact budget\0{target}\0{channel}")


def _lock_key(text: str) -> int:
    """A signed 64-bit number, the same in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)
