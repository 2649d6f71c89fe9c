"""The fault suite's fixtures: the configs take their secrets from the environment, as real
ones do (the same secrets the contract suite sets)."""

from __future__ import annotations

import pytest

from tests.support import PHONE_AUTH_TOKEN, PROBE_PASSWORD


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPROBE_TEST_IMAP_PASSWORD", PROBE_PASSWORD)
    monkeypatch.setenv("CXPROBE_TEST_TWILIO_TOKEN", PHONE_AUTH_TOKEN)
