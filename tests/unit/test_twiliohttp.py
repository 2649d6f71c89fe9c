"""The Twilio HTTP client: where requests may go, and how long it waits before a retry."""

from __future__ import annotations

import logging
import random

import pytest
from twilio.base.exceptions import TwilioException
from twilio.http.response import Response

from probes.errors import ChannelUnavailable, ProbeError, ProviderError
from probes.twilio.http import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    RedirectingHttpClient,
    RefusedHost,
    twilio_call,
)


async def client(**options: float) -> RedirectingHttpClient:
    return RedirectingHttpClient(
        "http://127.0.0.1:8030/",
        timeout=options.get("timeout", 5.0),
        retry_for=options.get("retry_for", 10.0),
        logger=logging.getLogger("test.twiliohttp"),
        rng=random.Random(3),
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json",
            "http://127.0.0.1:8030/2010-04-01/Accounts/AC1/Calls.json",
        ),
        ("https://messaging.twilio.com/v1/Services", "http://127.0.0.1:8030/v1/Services"),
    ],
)
async def test_twilio_urls_are_rewritten_to_the_base_url(url: str, expected: str) -> None:
    http = await client()
    try:
        assert http.rewrite(url) == expected
    finally:
        await http.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://api.twilio.com.evil.example/2010-04-01/Calls.json",
        "http://api.twilio.com/2010-04-01/Calls.json",
        "https://example.com/https://api.twilio.com/",
        "https://twilio.com/2010-04-01/Calls.json",
    ],
)
async def test_any_other_host_is_refused(url: str) -> None:
    http = await client()
    try:
        with pytest.raises(RefusedHost, match="refusing"):
            http.rewrite(url)
        with pytest.raises(RefusedHost):
            await http.request("GET", url)
    finally:
        await http.close()


async def test_retry_after_is_honoured_and_backoff_is_jittered_and_capped() -> None:
    http = await client()
    try:
        assert http._backoff(0, Response(429, "", {"Retry-After": "3"})) == 3.0
        assert http._backoff(0, Response(429, "", {"retry-after": "600"})) == BACKOFF_CAP
        waits = [http._backoff(attempt, Response(503, "", {})) for attempt in range(12)]
        for attempt, wait in enumerate(waits):
            assert 0 <= wait <= min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        assert len(set(waits)) == len(waits)  # jittered, not a fixed ladder
    finally:
        await http.close()


async def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(
    ("status", "error"), [(503, ProviderError), (429, ProviderError), (401, ChannelUnavailable)]
)
async def test_a_list_page_that_fails_is_a_probe_error(
    status: int, error: type[ProbeError]
) -> None:
    # What the SDK raises when a list page does not answer 200: its base exception, not
    # TwilioRestException.
    failure = TwilioException("Unable to fetch page", Response(status, '{"code": 20500}'))
    with pytest.raises(error) as raised:
        await twilio_call("listing replies", _raise(failure), "http://127.0.0.1:1")
    assert str(raised.value).startswith(f"listing replies: Twilio answered HTTP {status}")
    assert "Unable to fetch page" in str(raised.value)


async def test_any_other_sdk_error_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match=r"^sending: Credentials are required"):
        await twilio_call(
            "sending", _raise(TwilioException("Credentials are required")), "http://127.0.0.1:1"
        )
