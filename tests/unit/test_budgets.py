"""Estimating a contact's cost before it is sent: units from the channel, prices by country,
and the budget windows (day and month in the budget's time zone) it spends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cxprobe.budgets import Budget, CostEstimator, PriceTable
from probes import CHANNEL_TYPES
from probes.base import Contact, CostUnits
from probes.messaging.segments import sms_segments
from probes.messaging.settings import MessagingAddress, TwilioMessagingSettings

ACCOUNT = "AC" + "a" * 32
NOW = datetime(2025, 3, 31, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets: 160
        ("€" * 81, 2),
        ("é" * 160, 1),  # in the GSM basic set
        ("ł" * 70, 1),  # not GSM-7: UCS-2
        ("ł" * 71, 2),
        ("ł" * 134, 2),
        ("ł" * 135, 3),
    ],
)
def test_sms_segments_follow_gsm7_and_ucs2(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


def contact(text: str) -> Contact:
    return Contact(token="CXP-0000000001", subject="", text=text, sender_name="Alex")


def test_channels_say_what_a_contact_is_charged_in() -> None:
    settings = TwilioMessagingSettings.model_validate(
        {
            "twilio": {"account_sid": ACCOUNT, "auth_token": "x"},
            "from_numbers": ["+15005550006"],
        }
    )
    address = MessagingAddress(to="+442071234567")
    sms = CHANNEL_TYPES["sms"].cost_units(settings, address, contact("ł" * 100))
    assert sms == CostUnits("segment", 2, "+442071234567", ACCOUNT)
    whatsapp = CHANNEL_TYPES["whatsapp"].cost_units(settings, address, contact("ł" * 100))
    assert whatsapp == CostUnits("message", 1, "+442071234567", ACCOUNT)
    assert CHANNEL_TYPES["email"].estimate_cost is None  # free


def test_prices_by_the_destinations_country() -> None:
    table = PriceTable.model_validate(
        {
            "currency": "USD",
            "channels": {"sms": {"default": 0.05, "countries": {"GB": 0.04, "CA": 0.01}}},
            "country_prefixes": {"CA": ["+1416"]},
        }
    )
    assert table.country_of("+442071234567") == "GB"
    assert table.country_of("+14165550100") == "CA"  # the longest prefix wins over +1
    assert table.country_of("+12125550100") == "US"
    assert table.unit_price("sms", "+442071234567") == 0.04
    assert table.unit_price("sms", "+12125550100") == 0.05
    assert table.unit_price("whatsapp", "+442071234567") == 0.0  # no price: counted at 0


def test_a_contact_spends_every_budget_that_applies_in_its_windows() -> None:
    budgets = {
        "twilio": Budget(currency="USD", account=ACCOUNT, monthly=50),
        "acme": Budget(currency="USD", target="acme", daily=2, time_zone="Asia/Tokyo"),
        "other": Budget(currency="USD", target="other", daily=2),
    }
    prices = PriceTable.model_validate({"currency": "USD", "channels": {"sms": {"default": 0.1}}})
    units = CostUnits("segment", 3, "+442071234567", ACCOUNT)
    cost = CostEstimator(budgets, prices).cost("sms", "acme", units, NOW)
    assert (cost.amount, cost.currency, cost.account) == (0.3, "USD", ACCOUNT)
    assert [(w.name, w.start) for w in cost.windows] == [
        # Tokyo is already on 1 April: its day started at 15:00 UTC.
        ("acme daily", datetime(2025, 3, 31, 15, 0, tzinfo=UTC)),
        ("twilio monthly", datetime(2025, 3, 1, tzinfo=UTC)),
    ]


def test_a_budget_needs_a_scope_and_a_limit() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Budget(currency="USD", daily=1)
    with pytest.raises(ValueError, match="'daily' or a 'monthly'"):
        Budget(currency="USD", target="acme")
    with pytest.raises(ValueError, match="no price"):
        PriceTable.model_validate({"currency": "USD", "channels": {"email": {"default": 1}}})
