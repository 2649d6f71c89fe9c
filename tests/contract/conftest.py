"""The contract suite's fixtures: one harness per registered channel kind."""

from __future__ import annotations

from typing import Any

import pytest

from probes import CHANNEL_TYPES
from tests.contract.harness import Harness
from tests.contract.harnesses import HARNESSES
from tests.support import PHONE_AUTH_TOKEN, PROBE_PASSWORD


@pytest.fixture(params=list(CHANNEL_TYPES))
def harness(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Harness[Any]:
    """The sandbox harness of each kind in the registry (a kind without one fails here)."""
    kind: str = request.param
    assert kind in HARNESSES, (
        f"channel kind {kind!r} has no sandbox harness: add one to tests/contract/harnesses/"
    )
    # The configs take their secrets from the environment, as real ones do.
    monkeypatch.setenv("CXPROBE_TEST_IMAP_PASSWORD", PROBE_PASSWORD)
    monkeypatch.setenv("CXPROBE_TEST_TWILIO_TOKEN", PHONE_AUTH_TOKEN)
    return HARNESSES[kind]
