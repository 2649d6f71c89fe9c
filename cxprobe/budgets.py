"""Money budgets and the price table: the configuration, and a contact's cost before it is sent.

``budgets.<name>`` caps what contacts billed to one provider account (``account``: e.g. a
Twilio account SID) or made to one target (``target``) may cost per day and per month, in the
budget's time zone (default UTC) and in its ``currency`` (ISO 4217, required: cxprobe never
converts between currencies). ``prices`` is the table estimates come from: per channel kind a
price per unit (the channel says its unit: an SMS segment, a call minute, a WhatsApp template
message) by destination country, the country found from the number's E.164 prefix (longest
prefix wins). Channels without a unit (email, web chat) cost nothing.

:class:`CostEstimator` turns a contact into a :class:`~cxprobe.store.budgets.ContactCost`: its
estimated amount and the budget windows it spends, which the store checks in the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cxprobe.store.budgets import BudgetWindow, ContactCost, money
from probes import CHANNEL_TYPES
from probes.base import CostUnits

#: ISO 4217 currency codes are three capital letters.
CURRENCY_PATTERN = r"^[A-Z]{3}$"

#: Calling codes of common destinations (ITU-T E.164 assignments); ``prices.country_prefixes``
#: adds or overrides. The North American +1 is shared by the US, Canada and the Caribbean:
#: configure their area codes (e.g. ``CA: ["+1416", ...]``) to tell them apart.
DEFAULT_COUNTRY_PREFIXES: dict[str, tuple[str, ...]] = {
    "US": ("+1",), "GB": ("+44",), "IE": ("+353",), "FR": ("+33",), "DE": ("+49",),
    "NL": ("+31",), "BE": ("+32",), "LU": ("+352",), "CH": ("+41",), "AT": ("+43",),
    "ES": ("+34",), "PT": ("+351",), "IT": ("+39",), "DK": ("+45",), "SE": ("+46",),
    "NO": ("+47",), "FI": ("+358",), "PL": ("+48",), "CZ": ("+420",), "AU": ("+61",),
    "NZ": ("+64",), "JP": ("+81",), "IN": ("+91",), "BR": ("+55",), "MX": ("+52",),
    "ZA": ("+27",), "SG": ("+65",), "HK": ("+852",), "AE": ("+971",), "IL": ("+972",),
}  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Strict):
    """``budgets.<name>``: a money limit per day and/or month on an account or a target."""

    currency: str = Field(
        pattern=CURRENCY_PATTERN, description="ISO 4217 code of the limits (required)."
    )
    account: str | None = Field(
        None, min_length=1, description="The provider account billed (e.g. a Twilio AC… SID)."
    )
    target: str | None = Field(None, min_length=1, description="A target id.")
    daily: float | None = Field(None, gt=0, description="Most spent per day (time_zone).")
    monthly: float | None = Field(None, gt=0, description="Most spent per calendar month.")
    time_zone: str = Field("UTC", description="IANA time zone the day and month follow.")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as UTC") from None
        return value

    @model_validator(mode="after")
    def _scoped_and_limited(self) -> Budget:
        if (self.account is None) == (self.target is None):
            raise ValueError("a budget applies to one 'account' or one 'target': set exactly one")
        if self.daily is None and self.monthly is None:
            raise ValueError("a budget needs a 'daily' or a 'monthly' limit (or both)")
        return self

    def windows(self, name: str, now: datetime) -> list[BudgetWindow]:
        """The budget's current day and month windows at ``now``."""
        zone = ZoneInfo(self.time_zone)
        local = now.astimezone(zone)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        scope: Literal["account", "target"] = "account" if self.account is not None else "target"
        key = self.account if self.account is not None else self.target
        assert key is not None
        periods: list[tuple[Literal["daily", "monthly"], float | None, datetime]] = [
            ("daily", self.daily, day),
            ("monthly", self.monthly, month),
        ]
        return [
            BudgetWindow(
                name, scope, key, period, start.astimezone(now.tzinfo), limit, self.currency
            )
            for period, limit, start in periods
            if limit is not None
        ]


class ChannelPrices(_Strict):
    """``prices.channels.<kind>``: the price of one of the channel's units."""

    default: float = Field(0.0, ge=0, description="Per unit, where no country is listed.")
    countries: dict[str, float] = Field(
        default_factory=dict, description="Per unit by destination country (ISO 3166 alpha-2)."
    )

    @field_validator("countries")
    @classmethod
    def _valid(cls, value: dict[str, float]) -> dict[str, float]:
        for country, price in value.items():
            if len(country) != 2 or not country.isupper() or price < 0:
                raise ValueError(
                    f"{country}: {price}: countries are ISO 3166 codes such as GB, each with a "
                    "price of 0 or more"
                )
        return value


class PriceTable(_Strict):
    """``prices``: what a unit of each channel costs, where estimates come from."""

    currency: str = Field(pattern=CURRENCY_PATTERN, description="ISO 4217 code of the prices.")
    channels: dict[str, ChannelPrices] = Field(default_factory=dict)
    country_prefixes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="E.164 prefixes of countries, added to (or replacing) the built-in ones.",
    )

    @field_validator("channels")
    @classmethod
    def _priced_kinds(cls, value: dict[str, ChannelPrices]) -> dict[str, ChannelPrices]:
        for kind in value:
            channel_type = CHANNEL_TYPES.get(kind)
            if channel_type is None or channel_type.estimate_cost is None:
                priced = [k for k, t in CHANNEL_TYPES.items() if t.estimate_cost is not None]
                raise ValueError(
                    f"channel kind {kind!r} has no price (priced kinds: {', '.join(priced)})"
                )
        return value

    @field_validator("country_prefixes")
    @classmethod
    def _prefixes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for country, prefixes in value.items():
            for prefix in prefixes:
                if not (prefix.startswith("+") and prefix[1:].isdigit()):
                    raise ValueError(f"{country}: {prefix!r} is not an E.164 prefix like +44")
        return value

    def country_of(self, number: str) -> str | None:
        """The destination country of an E.164 number: the longest matching prefix's."""
        prefixes = {country: list(found) for country, found in DEFAULT_COUNTRY_PREFIXES.items()}
        prefixes.update(self.country_prefixes)
        matches = [
            (len(prefix), country)
            for country, listed in prefixes.items()
            for prefix in listed
            if number.startswith(prefix)
        ]
        return max(matches)[1] if matches else None

    def unit_price(self, kind: str, destination: str) -> float:
        prices = self.channels.get(kind)
        if prices is None:
            return 0.0
        country = self.country_of(destination) if destination else None
        return prices.countries.get(country or "", prices.default)


@dataclass(frozen=True)
class CostEstimator:
    """A contact's estimated cost and the budget windows it spends, from the configuration."""

    budgets: dict[str, Budget]
    prices: PriceTable | None

    def windows(self, now: datetime) -> tuple[BudgetWindow, ...]:
        """Every configured budget's current windows (for the metrics)."""
        return tuple(
            window
            for name, budget in sorted(self.budgets.items())
            for window in budget.windows(name, now)
        )

    def cost(self, kind: str, target: str, units: CostUnits | None, now: datetime) -> ContactCost:
        amount = 0.0
        if units is not None and self.prices is not None:
            amount = money(units.count * self.prices.unit_price(kind, units.destination))
        account = units.account if units is not None else ""
        windows = [
            window
            for name, budget in sorted(self.budgets.items())
            if (budget.account is not None and budget.account == account)
            or (budget.target is not None and budget.target == target)
            for window in budget.windows(name, now)
        ]
        currency = self.prices.currency if self.prices is not None else None
        return ContactCost(amount, currency, account, tuple(windows), priced=units is not None)
