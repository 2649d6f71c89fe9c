"""The harness of every channel kind the contract suite knows, by kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.contract.harness import Harness
from tests.contract.harnesses.chat import WebchatHarness
from tests.contract.harnesses.generic import GenericHarness
from tests.contract.harnesses.mail import EmailHarness
from tests.contract.harnesses.messaging import SmsHarness, WhatsAppHarness
from tests.contract.harnesses.phone import PhoneHarness

HARNESSES: Mapping[str, Harness[Any]] = {
    harness.kind: harness
    for harness in (
        EmailHarness(),
        WebchatHarness(),
        PhoneHarness(),
        SmsHarness(),
        WhatsAppHarness(),
        GenericHarness(),
    )
}
