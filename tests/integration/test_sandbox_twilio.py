"""The Twilio sandbox driven by Twilio's own Python library, with a webhook app as the monitor.

The client is the real `twilio` package (its async API) redirected to the sandbox; the webhook
app checks every X-Twilio-Signature with the package's RequestValidator. So a request the real
library sends that the spec forbids, or a signature the real library would reject, fails here.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sandbox.clock import WeeklyHours
from sandbox.twilio.profile import TwilioSettings
from sandbox.twilio.server import TwilioSandbox

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "sandbox-auth-token"
TWILIO_API = "https://api.twilio.com"
SUPPORT_LINE = "+442071234567"
PROBE_NUMBER = "+15005550006"
ROOT_PROMPT = "Welcome to Acme. For billing press 1 or say billing. For support press 2."
CLOSED = "Our lines are open Monday to Friday 9 to 5:30. Please call back then."
HOLD = "Please hold."
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
WAIT = 10.0  # seconds any single test step may take before the test fails
BASIC_AUTH = {
    "Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
}


def settings(**overrides: Any) -> TwilioSettings:
    """A fast line: short fixed delays, speech at 100 characters a second."""
    profile: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "speech_rate": 100,
        "post_dial_delay": {"distribution": "fixed", "seconds": 0.05},
        "ring_time": {"distribution": "fixed", "seconds": 0.1},
        "max_call_seconds": 30,
        "hangup_delay_seconds": 0.5,
        "price_per_minute": "0.0130",
        "ivr": {
            "root": "main",
            "menus": {
                "main": {
                    "prompt": ROOT_PROMPT,
                    "options": [
                        {"digit": "1", "keywords": ["billing"], "goto": "billing"},
                        {
                            "digit": "2",
                            "keywords": ["support"],
                            "goto": "sales",
                            "intended": "tech",
                        },
                    ],
                    "no_input_seconds": 2,
                }
            },
            "queues": {
                "billing": {
                    "label": "Billing",
                    "hold_message": HOLD,
                    "wait": {"distribution": "fixed", "seconds": 0.3},
                    "agents": ["Sam"],
                },
                "tech": {"wait": {"distribution": "fixed", "seconds": 0.3}, "agents": ["Jo"]},
                "sales": {"wait": {"distribution": "fixed", "seconds": 0.3}, "agents": ["Al"]},
            },
        },
        "after_hours": {"message": CLOSED},
    }
    profile.update(overrides)
    return TwilioSettings.model_validate(profile)


class SandboxHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Sends the library's https://api.twilio.com requests to the sandbox, and nothing else.

    Credentials go in an Authorization header: the library's own aiohttp.BasicAuth (and the
    `auth=` argument) are deprecated in aiohttp 3.14, and warnings are errors in this suite.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

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
    ) -> Any:
        if not url.startswith(TWILIO_API + "/"):
            raise AssertionError(f"the client tried to reach {url}, not the Twilio API")
        headers = dict(headers or {})
        if auth is not None:
            user_password = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(user_password).decode()
        return await super().request(
            method,
            self.base_url + url[len(TWILIO_API) :],
            params=params,
            data=data,
            headers=headers,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


@dataclass
class Webhook:
    path: str
    params: dict[str, str]
    received_at: datetime
    signature_valid: bool


@dataclass
class Monitor:
    """The monitor's webhook endpoints: TwiML that walks the IVR, and status callbacks."""

    base_url: str = ""
    digits_for_menu: str = "w1"
    partial_results: str | None = None  # the partialResultCallback of its Gathers, if any
    requests: list[Webhook] = field(default_factory=list)
    # Replaced on every request: a waiter holds the current one and is woken when it is set.
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, webhook: Webhook) -> None:
        self.requests.append(webhook)
        arrived, self.arrived = self.arrived, asyncio.Event()
        arrived.set()

    async def wait_for(self, path: str, count: int = 1) -> list[Webhook]:
        async with asyncio.timeout(WAIT):
            while len(self.seen(path)) < count:
                await self.arrived.wait()
        return self.seen(path)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def seen(self, path: str) -> list[Webhook]:
        return [r for r in self.requests if r.path == path]

    def speech(self) -> list[str]:
        return [r.params["SpeechResult"] for r in self.seen("/heard") if "SpeechResult" in r.params]


def listen(then: str = "", partial_results: str | None = None) -> str:
    partial = "" if partial_results is None else f' partialResultCallback="{partial_results}"'
    gather = f'<Gather input="speech" action="/heard" speechTimeout="auto" timeout="10"{partial}/>'
    return f"<Response>{then}{gather}</Response>"


def twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")


async def start_monitor(monitor: Monitor) -> AsyncIterator[Monitor]:
    validator = RequestValidator(AUTH_TOKEN)

    async def record(request: web.Request) -> dict[str, str]:
        signature = request.headers.get("X-Twilio-Signature", "")
        if request.method == "GET":  # parameters in the query, which the signed URL covers
            params = dict(request.query)
            valid = validator.validate(str(request.url), {}, signature)
        else:
            params = {k: str(v) for k, v in (await request.post()).items()}
            valid = validator.validate(str(request.url), params, signature)
        monitor.add(Webhook(request.path, params, datetime.now(UTC), valid))
        return params

    async def voice(request: web.Request) -> web.Response:
        await record(request)
        return twiml(listen(partial_results=monitor.partial_results))

    async def heard(request: web.Request) -> web.Response:
        said = (await record(request)).get("SpeechResult", "")
        if "through to" in said:  # an agent's greeting: the probe got its human
            return twiml("<Response><Hangup/></Response>")
        if "press 1" in said:
            digits = f'<Play digits="{monitor.digits_for_menu}"/>'
            return twiml(listen(digits, monitor.partial_results))
        return twiml(listen(partial_results=monitor.partial_results))

    async def done(request: web.Request) -> web.Response:
        await record(request)
        return twiml("<Response><Hangup/></Response>")

    async def status(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="")

    app = web.Application()
    app.add_routes(
        [
            web.post("/voice", voice),
            web.post("/heard", heard),
            web.route("*", "/done", done),
            web.route("*", "/status", status),
            web.route("*", "/partial", status),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    monitor.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield monitor
    finally:
        await runner.cleanup()


@pytest.fixture
async def monitor() -> AsyncIterator[Monitor]:
    async for running in start_monitor(Monitor()):
        yield running


@dataclass
class Twilio:
    sandbox: TwilioSandbox
    client: Client


async def open_twilio(
    tmp_path: Path, profile: TwilioSettings, token: str = AUTH_TOKEN, **kwargs: Any
) -> AsyncIterator[Twilio]:
    async with TwilioSandbox(profile, workdir=tmp_path / "twilio", **kwargs) as sandbox:
        http = SandboxHttpClient(sandbox.base_url)
        try:
            yield Twilio(sandbox, Client(ACCOUNT_SID, token, http_client=http))
        finally:
            await http.close()


@pytest.fixture
async def twilio(tmp_path: Path) -> AsyncIterator[Twilio]:
    async for running in open_twilio(tmp_path, settings()):
        yield running


def event(name: str, **match: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == name and all(e.get(k) == v for k, v in match.items())


async def call_ends(sandbox: TwilioSandbox, sid: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        (done,) = await sandbox.wait_for(event("completed", call_sid=sid))
    return done


async def test_probe_walks_the_ivr_to_a_billing_agent(twilio: Twilio, monitor: Monitor) -> None:
    call = await twilio.client.calls.create_async(
        to=SUPPORT_LINE,
        from_=PROBE_NUMBER,
        url=monitor.url("/voice"),
        status_callback=monitor.url("/status"),
        status_callback_event=ALL_EVENTS,
    )
    assert call.sid.startswith("CA") and len(call.sid) == 34
    assert call.status == "queued"
    assert call.direction == "outbound-api"

    await call_ends(twilio.sandbox, call.sid)
    await monitor.wait_for("/status", 4)  # the completed callback follows the ground truth

    assert twilio.sandbox.violations == []
    assert monitor.requests and all(r.signature_valid for r in monitor.requests)
    greeting = "Hi, you're through to Sam in Billing. How can I help?"
    assert monitor.speech() == [ROOT_PROMPT, HOLD, greeting]
    statuses = [
        (r.params["CallStatus"], r.params["SequenceNumber"]) for r in monitor.seen("/status")
    ]
    assert statuses == [
        ("initiated", "0"),
        ("ringing", "1"),
        ("in-progress", "2"),
        ("completed", "3"),
    ]
    assert int(monitor.seen("/status")[-1].params["CallDuration"]) >= 1

    truth = [e for e in twilio.sandbox.ground_truth() if e["call_sid"] == call.sid]
    names = [e["event"] for e in truth]
    assert names == [
        "call_created",
        "ringing",
        "answered",
        "ivr_prompt",
        "digits_received",
        "queue_entered",
        "ivr_prompt",
        "agent_answered",
        "hangup",
        "completed",
    ]
    by_name = {e["event"]: e for e in reversed(truth)}  # the first of each name
    assert by_name["ivr_prompt"]["text"] == ROOT_PROMPT
    assert by_name["digits_received"]["digits"] == "1"
    assert (
        by_name["queue_entered"]["queue"] == by_name["queue_entered"]["intended_queue"] == "billing"
    )
    agent = by_name["agent_answered"]
    assert (agent["agent"], agent["queue"], agent["text"]) == ("Sam", "billing", greeting)
    assert agent["at"] == agent["started_at"] < agent["ended_at"]
    # The greeting reaches the monitor as a SpeechResult when the agent has finished saying it.
    greeting_post = next(
        r for r in monitor.seen("/heard") if r.params.get("SpeechResult") == greeting
    )
    assert greeting_post.received_at >= datetime.fromisoformat(agent["ended_at"])
    assert by_name["hangup"]["by"] == "caller"
    assert not monitor.seen("/partial")  # no partialResultCallback, no partial results

    fetched = await twilio.client.calls(call.sid).fetch_async()
    assert fetched.status == "completed"
    assert fetched.start_time is not None and fetched.end_time is not None
    assert fetched.price == "-0.0130" and fetched.price_unit == "USD"
    assert fetched.duration == str(by_name["completed"]["duration"])
    assert twilio.sandbox.violations == []


async def test_spoken_keyword_and_a_miswired_menu_option(twilio: Twilio, monitor: Monitor) -> None:
    # "support" is wired to the sales queue while the prompt promises technical support.
    call = await twilio.client.calls.create_async(
        to=SUPPORT_LINE,
        from_=PROBE_NUMBER,
        twiml='<Response><Pause length="1"/><Say>support</Say>'
        f'<Gather input="speech" action="{monitor.url("/heard")}" speechTimeout="auto"/>'
        "</Response>",
    )
    async with asyncio.timeout(WAIT):
        (entered,) = await twilio.sandbox.wait_for(event("queue_entered", call_sid=call.sid))
    assert (entered["queue"], entered["intended_queue"]) == ("sales", "tech")
    await call_ends(twilio.sandbox, call.sid)
    assert twilio.sandbox.violations == []


async def test_wrong_keys_get_sorry_then_goodbye(twilio: Twilio, monitor: Monitor) -> None:
    monitor.digits_for_menu = "9"  # not an option of the menu
    call = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, url=monitor.url("/voice")
    )
    await call_ends(twilio.sandbox, call.sid)
    sorry = f"Sorry, I didn't get that. {ROOT_PROMPT}"
    assert monitor.speech() == [ROOT_PROMPT, sorry, sorry, "Thank you for calling. Goodbye."]
    truth = twilio.sandbox.ground_truth()
    assert [e["digits"] for e in truth if e["event"] == "digits_received"] == ["9", "9", "9"]
    assert not [e for e in truth if e["event"] == "queue_entered"]
    hangup = next(e for e in truth if e["event"] == "hangup")
    assert hangup["by"] == "callee" and "invalid input after 3 prompts" in hangup["reason"]
    assert twilio.sandbox.violations == []


async def test_rest_hangup_redirect_and_paged_listing(twilio: Twilio, monitor: Monitor) -> None:
    silent = '<Response><Pause length="20"/></Response>'
    first = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml=silent
    )
    second = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml=silent
    )
    async with asyncio.timeout(WAIT):
        await twilio.sandbox.wait_for(event("answered"), count=2)

    redirected = await twilio.client.calls(first.sid).update_async(url=monitor.url("/voice"))
    assert redirected.status == "in-progress"
    await monitor.wait_for("/heard")  # the new TwiML is running: it heard the IVR
    assert monitor.seen("/voice")[0].params["CallSid"] == first.sid

    ended = await twilio.client.calls(second.sid).update_async(status="completed")
    assert ended.status == "completed"
    hangup = [e for e in twilio.sandbox.ground_truth() if e["event"] == "hangup"]
    assert [(e["call_sid"], e["by"]) for e in hangup] == [(second.sid, "api")]

    listed = await twilio.client.calls.list_async(page_size=1)
    assert [c.sid for c in listed] == [second.sid, first.sid]  # newest first, over two pages
    completed = await twilio.client.calls.list_async(status="completed", page_size=20)
    assert [c.sid for c in completed] == [second.sid]
    assert twilio.sandbox.violations == []


async def test_busy_call_reports_busy(twilio: Twilio, monitor: Monitor) -> None:
    twilio.sandbox.set_call_result("busy", count=1)
    call = await twilio.client.calls.create_async(
        to=SUPPORT_LINE,
        from_=PROBE_NUMBER,
        url=monitor.url("/voice"),
        status_callback=monitor.url("/status"),
    )
    done = await call_ends(twilio.sandbox, call.sid)
    assert (done["status"], done["duration"], done["price"]) == ("busy", 0, None)
    (callback,) = await monitor.wait_for("/status")  # without StatusCallbackEvent: completed only
    assert callback.params["CallStatus"] == "busy" and callback.signature_valid
    assert not monitor.seen("/voice")  # never answered, so no TwiML was fetched
    assert (await twilio.client.calls(call.sid).fetch_async()).status == "busy"
    assert twilio.sandbox.violations == []


async def test_outage_rings_until_the_timeout(twilio: Twilio, monitor: Monitor) -> None:
    twilio.sandbox.set_outage(True)
    call = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, url=monitor.url("/voice"), timeout=1
    )
    done = await call_ends(twilio.sandbox, call.sid)
    assert done["status"] == "no-answer"
    assert not monitor.seen("/voice")
    # A ringing call that the client cancels ends as canceled.
    ringing = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, url=monitor.url("/voice")
    )
    async with asyncio.timeout(WAIT):
        await twilio.sandbox.wait_for(event("ringing", call_sid=ringing.sid))
    canceled = await twilio.client.calls(ringing.sid).update_async(status="canceled")
    assert canceled.status == "canceled"
    assert twilio.sandbox.violations == []


async def test_after_hours_closed_message(tmp_path: Path, monitor: Monitor) -> None:
    closed_all_week = WeeklyHours()
    async for twilio in open_twilio(tmp_path, settings(), hours=closed_all_week):
        call = await twilio.client.calls.create_async(
            to=SUPPORT_LINE, from_=PROBE_NUMBER, url=monitor.url("/voice")
        )
        await call_ends(twilio.sandbox, call.sid)
        truth = {e["event"]: e for e in twilio.sandbox.ground_truth()}
        assert truth["answered"]["period"] == "after_hours"
        assert truth["closed_message"]["text"] == CLOSED
        assert truth["hangup"]["by"] == "callee"
        assert "ivr_prompt" not in truth and "queue_entered" not in truth
        assert monitor.speech() == [CLOSED]
        assert twilio.sandbox.violations == []


async def test_get_webhooks_and_an_empty_gather(twilio: Twilio, monitor: Monitor) -> None:
    # A dtmf Gather hears nothing (the far end never presses keys); actionOnEmptyResult posts.
    first = await twilio.client.calls.create_async(
        to=SUPPORT_LINE,
        from_=PROBE_NUMBER,
        twiml=f'<Response><Gather timeout="1" actionOnEmptyResult="true" method="GET" '
        f'action="{monitor.url("/done")}?step=empty"/></Response>',
        status_callback=monitor.url("/status?probe=1"),
        status_callback_method="GET",
    )
    (empty,) = await monitor.wait_for("/done")
    assert empty.signature_valid and empty.params["step"] == "empty"
    assert "SpeechResult" not in empty.params and empty.params["CallSid"] == first.sid
    (callback,) = await monitor.wait_for("/status")
    assert callback.signature_valid and callback.params["CallStatus"] == "completed"

    # A speech Gather posting by GET: the result, punctuation and all, travels in the URL.
    second = await twilio.client.calls.create_async(
        to=SUPPORT_LINE,
        from_=PROBE_NUMBER,
        twiml=f'<Response><Gather input="speech" speechTimeout="auto" method="GET" '
        f'action="{monitor.url("/done")}"/></Response>',
    )
    _, heard = await monitor.wait_for("/done", 2)
    assert heard.signature_valid and heard.params["SpeechResult"] == ROOT_PROMPT
    assert heard.params["CallSid"] == second.sid
    await call_ends(twilio.sandbox, second.sid)
    assert twilio.sandbox.violations == []


async def test_gather_timeout_goes_on_and_time_limit_ends_calls(twilio: Twilio) -> None:
    # No actionOnEmptyResult: after the timeout the next verb runs.
    moves_on = await twilio.client.calls.create_async(
        to=SUPPORT_LINE,
        from_=PROBE_NUMBER,
        twiml='<Response><Gather input="dtmf" timeout="1"/><Hangup/></Response>',
    )
    limited = await twilio.client.calls.create_async(
        to=SUPPORT_LINE,
        from_=PROBE_NUMBER,
        twiml='<Response><Pause length="30"/></Response>',
        time_limit=1,
    )
    await call_ends(twilio.sandbox, moves_on.sid)
    await call_ends(twilio.sandbox, limited.sid)
    hangups = {e["call_sid"]: e for e in twilio.sandbox.ground_truth() if e["event"] == "hangup"}
    assert (hangups[moves_on.sid]["by"], hangups[moves_on.sid]["reason"]) == ("caller", "<Hangup/>")
    assert hangups[limited.sid]["by"] == "time_limit"
    assert twilio.sandbox.violations == []


async def test_rate_limit_answers_429_with_retry_after(twilio: Twilio, monitor: Monitor) -> None:
    twilio.sandbox.rate_limit(1, retry_after=3)
    url = f"{twilio.sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    form = {"To": SUPPORT_LINE, "From": PROBE_NUMBER, "Twiml": "<Response><Hangup/></Response>"}
    async with (
        aiohttp.ClientSession(headers=BASIC_AUTH) as http,
        http.post(url, data=form) as response,
    ):
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        assert await response.json() == {
            "code": 20429,
            "message": "Too Many Requests",
            "more_info": "https://www.twilio.com/docs/errors/20429",
            "status": 429,
        }
    # The limit was for one request: the library's next attempt goes through.
    call = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml="<Response><Hangup/></Response>"
    )
    await call_ends(twilio.sandbox, call.sid)
    assert twilio.sandbox.violations == []


async def test_server_errors_are_twilio_shaped(twilio: Twilio) -> None:
    twilio.sandbox.server_error(1, status=503)
    hang_up = "<Response><Hangup/></Response>"
    with pytest.raises(TwilioRestException) as raised:
        await twilio.client.calls.create_async(to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml=hang_up)
    assert (raised.value.status, raised.value.code) == (503, 20503)
    assert twilio.sandbox.calls() == []
    await twilio.client.calls.create_async(to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml=hang_up)
    assert len(twilio.sandbox.calls()) == 1


async def test_wrong_auth_token_gets_401(tmp_path: Path) -> None:
    async for twilio in open_twilio(tmp_path, settings(), token="not-the-token"):
        with pytest.raises(TwilioRestException) as raised:
            await twilio.client.calls.create_async(
                to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml="<Response><Hangup/></Response>"
            )
        assert (raised.value.status, raised.value.code) == (401, 20003)
        assert twilio.sandbox.calls() == []


async def test_nonconforming_requests_are_rejected_and_recorded(twilio: Twilio) -> None:
    calls_url = f"{twilio.sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    bad_event = [
        ("To", SUPPORT_LINE),
        ("From", PROBE_NUMBER),
        ("Url", "https://monitor.example/voice"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "picked-up"),
        ("StatusCalback", "https://monitor.example/status"),
    ]
    async with aiohttp.ClientSession(headers=BASIC_AUTH) as http:
        async with http.post(calls_url, data=bad_event) as response:
            body = await response.json()
        async with http.get(calls_url.replace("Calls.json", "Calls/CA123.json")) as missing:
            not_found = await missing.json()
    assert response.status == 400
    assert body["status"] == 400 and body["more_info"].endswith(str(body["code"]))
    assert "StatusCallbackEvent='picked-up'" in body["message"]
    assert "'StatusCalback'; did you mean 'StatusCallback'" in body["message"]
    assert missing.status == 404 and not_found["code"] == 20404
    rules = [(v.parameter, v.rule) for v in twilio.sandbox.violations]
    assert rules == [
        ("StatusCalback", "unknown"),
        ("StatusCallbackEvent", "enum"),
        ("Sid", "length"),
    ]
    assert twilio.sandbox.calls() == []


async def test_control_endpoints_switch_faults(twilio: Twilio) -> None:
    control = twilio.sandbox.control_url
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{control}/call-result", json={"result": "failed", "count": 1}):
            pass
        async with http.post(f"{control}/clock", json={"offset_seconds": 3600}) as response:
            state = await response.json()
    assert state["call_result"] == "failed" and state["clock_offset_seconds"] == 3600
    call = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml="<Response><Hangup/></Response>"
    )
    assert (await call_ends(twilio.sandbox, call.sid))["status"] == "failed"
    async with aiohttp.ClientSession() as http, http.get(f"{control}/ground-truth") as response:
        truth = await response.json()
    assert [e["event"] for e in truth] == ["call_created", "completed"]


async def test_the_stream_fault_is_switched_over_control(twilio: Twilio) -> None:
    control = twilio.sandbox.control_url
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{control}/stream-fault", json={"fault": "loud"}) as refused:
            pass
        body = {"fault": "drop", "drop_after": 1.5}
        async with http.post(f"{control}/stream-fault", json=body) as response:
            state = await response.json()
    assert refused.status == 400
    assert (state["stream"], state["stream_drop_after"]) == ("drop", 1.5)


async def test_bad_twiml_is_a_violation_and_ends_the_call(twilio: Twilio) -> None:
    call = await twilio.client.calls.create_async(
        to=SUPPORT_LINE,
        from_=PROBE_NUMBER,
        twiml='<Response><Gather input="speech" actionOnEmptyResults="true"/></Response>',
    )
    await call_ends(twilio.sandbox, call.sid)
    (violation,) = twilio.sandbox.violations
    assert violation.source == "twiml" and violation.code == 12200
    assert "actionOnEmptyResults" in violation.message
    hangup = next(e for e in twilio.sandbox.ground_truth() if e["event"] == "hangup")
    assert hangup["by"] == "error"


async def test_partial_results_time_the_start_of_the_agent_greeting(
    tmp_path: Path, monitor: Monitor
) -> None:
    monitor.partial_results = "/partial"  # relative: resolved against the TwiML's URL
    delay = 0.4
    # Slower speech than the other tests, so the greeting (1.3 s) gets several partial results.
    profile = settings(
        speech_rate=40,
        partial_result_delay={"distribution": "fixed", "seconds": delay},
        partial_result_interval=0.25,
    )
    async for twilio in open_twilio(tmp_path, profile):
        call = await twilio.client.calls.create_async(
            to=SUPPORT_LINE, from_=PROBE_NUMBER, url=monitor.url("/voice")
        )
        await call_ends(twilio.sandbox, call.sid)
        truth = twilio.sandbox.ground_truth()
        assert twilio.sandbox.violations == []

    partials = monitor.seen("/partial")
    assert partials and all(r.signature_valid for r in partials)
    first = partials[0].params
    assert first["CallSid"] == call.sid and first["AccountSid"] == ACCOUNT_SID
    assert (first["From"], first["To"]) == (PROBE_NUMBER, SUPPORT_LINE)
    assert (first["CallStatus"], first["Direction"]) == ("in-progress", "outbound-api")
    assert first["ApiVersion"] == "2010-04-01"
    assert all(0.0 <= float(r.params["Stability"]) <= 1.0 for r in partials)

    agent = next(e for e in truth if e["event"] == "agent_answered")
    greeting = agent["text"]
    posted = [r for r in partials if r.params["UnstableSpeechResult"].startswith("Hi,")]
    recorded = [
        e
        for e in truth
        if e["event"] == "partial_result" and e["utterance_started_at"] == agent["started_at"]
    ]
    # Several results for the greeting, numbered from 1, each with more of it than the last.
    assert len(posted) >= 3
    assert [int(r.params["SequenceNumber"]) for r in posted] == list(range(1, len(posted) + 1))
    texts = [r.params["UnstableSpeechResult"] for r in posted]
    assert all(greeting.startswith(text) for text in texts)
    assert [len(t) for t in texts] == sorted(len(t) for t in texts) and texts[0] != texts[-1]
    assert [(e["sequence"], e["text"]) for e in recorded] == [
        (int(r.params["SequenceNumber"]), r.params["UnstableSpeechResult"]) for r in posted
    ]
    assert all(e["at"] <= agent["ended_at"] for e in recorded)  # none after the greeting ends

    # The first one comes a recognizer delay after the agent starts talking, not at the end.
    started = datetime.fromisoformat(agent["at"])
    since_start = (posted[0].received_at - started).total_seconds()
    assert delay - 0.05 <= since_start <= delay + 0.3
    assert posted[0].received_at < datetime.fromisoformat(agent["ended_at"])
    # The whole greeting still goes to the action once the agent has finished.
    assert greeting in monitor.speech()
    greeting_post = next(
        r for r in monitor.seen("/heard") if r.params.get("SpeechResult") == greeting
    )
    assert greeting_post.received_at >= datetime.fromisoformat(agent["ended_at"])
    # An utterance shorter than the delay ("Please hold." takes 0.3 s) gets one, at its end.
    hold = [
        r.params["UnstableSpeechResult"]
        for r in partials
        if "hold" in r.params["UnstableSpeechResult"]
    ]
    assert hold == [HOLD]


async def test_partial_results_by_get_and_failing_ones_leave_the_call_up(
    twilio: Twilio, monitor: Monitor
) -> None:
    def gather(partial_results: str, method: str) -> str:
        return (
            f'<Response><Gather input="speech" speechTimeout="auto" action="{monitor.url("/done")}"'
            f' partialResultCallback="{partial_results}" partialResultCallbackMethod="{method}"/>'
            "</Response>"
        )

    by_get = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml=gather(monitor.url("/partial?leg=1"), "GET")
    )
    failing = await twilio.client.calls.create_async(
        to=SUPPORT_LINE, from_=PROBE_NUMBER, twiml=gather(monitor.url("/missing"), "POST")
    )
    await call_ends(twilio.sandbox, by_get.sid)
    await call_ends(twilio.sandbox, failing.sid)

    got = monitor.seen("/partial")
    assert got and all(r.signature_valid and r.params["leg"] == "1" for r in got)
    assert {r.params["CallSid"] for r in got} == {by_get.sid}
    # Twilio ignores partial-result answers: a 404 is a violation, but the Gather goes on.
    done = {r.params["CallSid"]: r.params.get("SpeechResult") for r in monitor.seen("/done")}
    assert done == {by_get.sid: ROOT_PROMPT, failing.sid: ROOT_PROMPT}
    truth = twilio.sandbox.ground_truth()
    failed = [e for e in truth if e["event"] == "partial_result" and e["call_sid"] == failing.sid]
    violations = twilio.sandbox.violations
    assert failed and len(violations) == len(failed)
    assert all(
        (v.source, v.code, v.method, v.target)
        == ("webhook", 11200, "POST", monitor.url("/missing"))
        for v in violations
    )
    hangups = {e["call_sid"]: e["by"] for e in truth if e["event"] == "hangup"}
    assert hangups == {by_get.sid: "caller", failing.sid: "caller"}


async def test_partial_results_stop_when_the_call_ends(tmp_path: Path, monitor: Monitor) -> None:
    interval = 0.5
    # The root prompt takes 3.7 s: partial results would go on well after the hangup.
    profile = settings(speech_rate=20, partial_result_interval=interval)
    async for twilio in open_twilio(tmp_path, profile):
        call = await twilio.client.calls.create_async(
            to=SUPPORT_LINE,
            from_=PROBE_NUMBER,
            twiml=f'<Response><Gather input="speech" action="{monitor.url("/done")}" '
            f'partialResultCallback="{monitor.url("/partial")}"/></Response>',
        )
        await monitor.wait_for("/partial")
        await twilio.client.calls(call.sid).update_async(status="completed")
        await call_ends(twilio.sandbox, call.sid)
        await asyncio.sleep(2 * interval)  # past the next ones' due times: none may come
        truth = twilio.sandbox.ground_truth()
        assert twilio.sandbox.violations == []

    hangup = next(e for e in truth if e["event"] == "hangup")
    sent = [e for e in truth if e["event"] == "partial_result"]
    assert hangup["by"] == "api"
    assert sent and all(e["at"] <= hangup["at"] for e in sent)
    assert len(monitor.seen("/partial")) == len(sent)
    assert not monitor.seen("/done")
