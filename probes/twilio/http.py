"""The HTTP client the ``twilio`` package's async API uses, pointed at a configurable base URL.

The package has no base-URL option: it builds ``https://<product>.twilio.com/...`` URLs. This
client rewrites those to ``api_base_url`` (a Twilio-compatible provider, or the sandbox) and
refuses any other URL, so a misconfigured test can never reach the real Twilio and a request
cannot leak credentials to a host nobody configured.

It also retries what Twilio asks to be retried: a 429 (waiting its ``Retry-After``) and 5xx
answers, with exponential backoff and full jitter, for at most ``retry_for`` seconds (a run's
send is further bounded by ``monitor.send_timeout``). Each attempt is bounded by the request
timeout. A call *creation* is retried only on 429 and 503, the answers that
say the request was not processed: a retried create after any other 5xx could ring the target
twice.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from probes.errors import ChannelUnavailable, ContactRejected, OptedOut, ProviderError
from probes.twilio.account import TwilioAccount

_T = TypeVar("_T")

_TWILIO_URL = re.compile(r"^https://([a-z0-9-]+)\.twilio\.com(/.*)?$")
#: First backoff step; the n-th retry waits a random time in [0, BASE * 2**n] (full jitter).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


class RefusedHost(ValueError):
    """The library tried to reach a URL outside the Twilio API."""


class RedirectingHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """``https://<product>.twilio.com/…`` → ``base_url/…``, with polite retries."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retry_for: float,
        logger: logging.Logger,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(timeout=timeout, logger=logger)
        self.base_url = base_url.rstrip("/")
        self.request_timeout = timeout
        self.retry_for = retry_for
        self._log = logger
        self._rng = rng or random.Random()
        self.retries = 0

    def rewrite(self, url: str) -> str:
        match = _TWILIO_URL.match(url)
        if match is None:
            raise RefusedHost(f"refusing to send a Twilio API request to {url.split('?')[0]}")
        return self.base_url + (match.group(2) or "")

    async def request(
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the library's signature
        allow_redirects: bool = False,
    ) -> Response:
        target = self.rewrite(url)
        headers = dict(headers or {})
        if auth is not None:
            # Sent as a header: aiohttp 3.14 deprecates the library's BasicAuth argument.
            pair = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        # Creating a call or a message: a retry after an answer that may have been processed
        # would ring or text the target twice.
        path = url.split("?")[0].rstrip("/")
        creating = method.upper() == "POST" and path.endswith(("/Calls.json", "/Messages.json"))
        started = time.monotonic()
        attempt = 0
        # The library passes timeout=None, which aiohttp reads as "no limit": bound each
        # attempt here, so a stuck provider cannot hold a run (or a hang-up) forever.
        limit = timeout if timeout is not None else self.request_timeout
        while True:
            async with asyncio.timeout(limit):
                response: Response = await super().request(
                    method,
                    target,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=limit,
                    allow_redirects=allow_redirects,
                )
            status = response.status_code
            retryable = status == 429 or (status >= 500 and (not creating or status == 503))
            if not retryable:
                return response
            wait = self._backoff(attempt, response)
            if time.monotonic() + wait > started + self.retry_for:
                return response  # the caller turns it into an error with Twilio's message
            self._log.warning(
                "Twilio API answered %s; retrying in %.1fs",
                status,
                wait,
                extra={"status": status, "attempt": attempt + 1},
            )
            self.retries += 1
            attempt += 1
            await asyncio.sleep(wait)

    def _backoff(self, attempt: int, response: Response) -> float:
        retry_after = _header(response, "Retry-After")
        if retry_after is not None:
            try:
                return min(BACKOFF_CAP, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to backoff
        return self._rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def twilio_client(
    account: TwilioAccount, logger: logging.Logger
) -> tuple[RedirectingHttpClient, Client]:
    """The ``twilio`` client of ``account``, on a :class:`RedirectingHttpClient` (close that).

    The library logs every request at INFO; its logger is kept to warnings (it never logs the
    auth token either way).
    """
    library_log = logger.getChild("twilio")
    library_log.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    http = RedirectingHttpClient(
        account.api_base_url,
        timeout=account.request_timeout,
        retry_for=account.retry_for,
        logger=library_log,
    )
    client = Client(account.account_sid, account.auth_token.get_secret_value(), http_client=http)
    return http, client


@dataclass(frozen=True)
class OptOutCodes:
    """Twilio error codes that mean ``recipient`` opted out (e.g. 21610 after a STOP)."""

    recipient: str
    reasons: Mapping[int, str]


async def twilio_call(
    what: str,
    request: Awaitable[_T],
    base_url: str,
    refusals: Mapping[int, str] | None = None,
    opt_outs: OptOutCodes | None = None,
) -> _T:
    """Await a ``twilio`` client call; its failures as probe errors that say what failed.

    401/403 are the probe's credentials (:class:`ChannelUnavailable`); other API errors carry
    Twilio's status, code and message (:class:`ProviderError`); a host that cannot be reached
    is :class:`ChannelUnavailable`; an error code in ``refusals`` is the target refusing the
    contact (:class:`ContactRejected`), one in ``opt_outs`` the recipient having opted out
    (:class:`OptedOut`). Twilio's messages never contain credentials.
    """
    try:
        return await request
    except TwilioRestException as exc:
        if opt_outs and exc.code in opt_outs.reasons:
            raise OptedOut(
                f"{opt_outs.reasons[exc.code]} (Twilio error {exc.code})",
                recipient=opt_outs.recipient,
            ) from None
        if refusals and exc.code in refusals:
            raise ContactRejected(f"{refusals[exc.code]} (Twilio error {exc.code})") from None
        detail = f"{what}: Twilio answered HTTP {exc.status}"
        if exc.code:
            detail += f", error {exc.code}"
        detail += f": {exc.msg}"
        if exc.status in (401, 403):
            raise ChannelUnavailable(detail + " (check the twilio account settings)") from None
        raise ProviderError(detail) from None
    except TwilioException as exc:
        # The library's base error: a list page that did not answer 200 ("Unable to fetch
        # page", with the response as its second argument) and other SDK-side failures.
        raise _sdk_error(what, exc) from None
    except RefusedHost as exc:
        raise ChannelUnavailable(str(exc)) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ChannelUnavailable(
            f"{what}: cannot reach {base_url}: {type(exc).__name__}: {exc}"
        ) from None


def _sdk_error(what: str, exc: TwilioException) -> ProviderError | ChannelUnavailable:
    """A ``TwilioException`` that is not a ``TwilioRestException`` as a probe error."""
    response = next((arg for arg in exc.args if isinstance(arg, Response)), None)
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    if response is None:
        return ProviderError(f"{what}: {message}")
    detail = f"{what}: Twilio answered HTTP {response.status_code}: {message}"
    if response.status_code in (401, 403):
        return ChannelUnavailable(detail + " (check the twilio account settings)")
    return ProviderError(detail)


def _header(response: Response, name: str) -> str | None:
    headers = response.headers or {}
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


class TwilioApi:
    """A channel's ``twilio`` client: made when the channel starts, closed when it stops."""

    def __init__(self, account: TwilioAccount, logger: logging.Logger) -> None:
        self._account = account
        self._log = logger
        self._http: RedirectingHttpClient | None = None
        self._client: Client | None = None

    def connect(self) -> None:
        self._http, self._client = twilio_client(self._account, self._log)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def client(self) -> Client:
        assert self._client is not None, "start() first"
        return self._client

    @property
    def retries(self) -> int:
        return self._http.retries if self._http is not None else 0

    async def call(
        self,
        what: str,
        request: Awaitable[_T],
        refusals: Mapping[int, str] | None = None,
        opt_outs: OptOutCodes | None = None,
    ) -> _T:
        """:func:`twilio_call` on this account."""
        return await twilio_call(what, request, self._account.api_base_url, refusals, opt_outs)
