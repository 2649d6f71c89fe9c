"""What Twilio charged: a Message's or Call's ``price`` and ``price_unit``.

Twilio reports a charge as a negative decimal string (``"-0.00750"``) in ``price_unit`` (ISO
4217), and leaves ``price`` null until the message or call is rated, which can be minutes
after it was sent: callers ask again later (cxprobe's price collector).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from probes.base import Price


def price_of(resource: Any) -> Price | None:
    """The resource's price as a positive amount; None while Twilio has not rated it."""
    price, unit = getattr(resource, "price", None), getattr(resource, "price_unit", None)
    if price in (None, "") or not unit:
        return None
    try:
        amount = abs(Decimal(str(price)))
    except InvalidOperation:
        return None
    return Price(amount=float(amount), currency=str(unit).upper())
