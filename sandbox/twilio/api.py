"""The HTTP face of the Twilio sandbox: the Calls and Messages REST subsets and `/_control`.

Every REST request goes through the same steps, in Twilio's order as far as it is visible:
match the path and method in the spec (404/405), check the parameters (every break recorded as
a violation), authenticate (401), apply request faults (429/5xx), answer 400 for the breaks,
then run the operation. Errors have Twilio's JSON shape: code, message, more_info, status.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from sandbox.control import Body
from sandbox.twilio.calls import CallBook, CallSimulation
from sandbox.twilio.errors import NOT_FOUND, twilio_error
from sandbox.twilio.executor import Fetch, Inline
from sandbox.twilio.faults import Faults
from sandbox.twilio.messages_api import MessagesApi
from sandbox.twilio.profile import TwilioSettings
from sandbox.twilio.resource import CallRequest
from sandbox.twilio.spec import Matched, Problem, SpecMismatch, TwilioSpec, Violation

CONTROL_PREFIX = "/_control"
_DEFAULT_PAGE_SIZE = 50

# Twilio error codes.
AUTHENTICATE = 20003
METHOD_NOT_ALLOWED = 20004
UNKNOWN_PARAMETER = 20001
CALLS_RESOURCE = 21200
NOT_IN_PROGRESS = 21220


class RestApi:
    def __init__(
        self,
        spec: TwilioSpec,
        settings: TwilioSettings,
        faults: Faults,
        calls: CallBook,
        report: Callable[[Violation], None],
        messages: MessagesApi | None = None,
    ) -> None:
        self._spec = spec
        self._settings = settings
        self._faults = faults
        self._calls = calls
        self._report = report
        self._messages = messages  # None: the profile has no messaging: section

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(f"{CONTROL_PREFIX}/"):
            return twilio_error(
                404, NOT_FOUND, f"no control endpoint {request.method} {request.path}"
            )
        try:
            matched = self._spec.match(request.method, request.path)
        except SpecMismatch as err:
            self._report(
                Violation("request", _mismatch_code(err), err.message, request.method, request.path)
            )
            return twilio_error(err.status, _mismatch_code(err), err.message)
        query = list(request.query.items())
        form, body_problem = await _read_form(request)
        problems = self._spec.check(matched, query, form, request.content_type if form else None)
        if body_problem is not None:
            problems.insert(0, body_problem)
        operation = matched.operation.operation_id
        for problem in problems:
            self._report(
                Violation(
                    "request",
                    _problem_code(problem),
                    problem.message,
                    request.method,
                    request.path,
                    operation,
                    problem.parameter,
                    problem.rule,
                )
            )
        if not self._authenticated(request):
            return twilio_error(
                401,
                AUTHENTICATE,
                "Authenticate",
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        fault = self._faults.take_request_fault()
        if fault is not None:
            headers = None if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return twilio_error(fault.status, fault.code, fault.message, headers)
        if any(p.location == "path" for p in problems):
            # Twilio answers a malformed SID like an unknown one.
            return _not_found(request.path)
        if problems:
            return twilio_error(
                400, _problem_code(problems[0]), "; ".join(p.message for p in problems)
            )
        if matched.path_values.get("AccountSid") != self._settings.account_sid:
            return _not_found(request.path)
        return await self._dispatch(request, matched, query, form)

    def _authenticated(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self._settings.account_sid) and hmac.compare_digest(
            password, self._settings.auth_token
        )

    # -- operations --------------------------------------------------------------------

    async def _dispatch(
        self,
        request: web.Request,
        matched: Matched,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> web.StreamResponse:
        operation = matched.operation.operation_id
        account = self._settings.account_sid
        if operation == "CreateCall":
            call_request = CallRequest.from_form(form)
            if call_request.url is None and call_request.twiml is None:
                return twilio_error(
                    400,
                    CALLS_RESOURCE,
                    "the sandbox does not simulate Applications (ApplicationSid); "
                    "pass Url or Twiml",
                )
            call = self._calls.create(account, call_request)
            return web.json_response(call.resource(), status=201)
        if operation == "ListCall":
            return web.json_response(self._list(request.path, query))
        if operation in ("FetchCall", "UpdateCall"):
            simulation = self._calls.get(matched.path_values["Sid"])
            if simulation is None:
                return _not_found(request.path)
            if operation == "UpdateCall":
                problem = await self._update(simulation, dict(form))
                if problem is not None:
                    return problem
            return web.json_response(simulation.call.resource())
        if self._messages is not None:
            answer = self._messages.handle(
                operation, account, request.path, matched.path_values, query, form
            )
            if answer is not None:
                return answer
        hint = ""
        if operation in ("CreateMessage", "FetchMessage", "ListMessage"):
            hint = "; add a messaging: section to the sandbox profile"
        return twilio_error(
            404,
            NOT_FOUND,
            f"{operation} ({matched.operation.method} {matched.operation.template}) is in "
            f"Twilio's API but not simulated by the sandbox{hint}",
        )

    async def _update(
        self, simulation: CallSimulation, form: dict[str, str]
    ) -> web.Response | None:
        status = form.get("Status")
        if status is not None:  # the spec allows only completed and canceled
            await simulation.hang_up("canceled" if status == "canceled" else "completed")
            return None
        url, twiml = form.get("Url"), form.get("Twiml")
        if url is None and twiml is None:
            return None
        document = (
            Fetch(url, "GET" if form.get("Method") == "GET" else "POST")
            if url is not None
            else Inline(twiml or "")
        )
        if not simulation.redirect(document):
            return twilio_error(400, NOT_IN_PROGRESS, "Call is not in-progress. Cannot redirect.")
        return None

    def _list(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        filters = dict(query)
        size = int(filters.get("PageSize", _DEFAULT_PAGE_SIZE))
        page = int(filters.get("Page", 0))
        calls = [
            call
            for call in reversed(self._calls.records())  # Twilio lists the newest first
            if filters.get("To", call.request.to) == call.request.to
            and filters.get("From", call.request.from_) == call.request.from_
            and filters.get("Status", call.status) == call.status
        ]
        start = page * size
        shown = calls[start : start + size]
        kept = [(k, v) for k, v in query if k not in ("Page", "PageSize", "PageToken")]

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode([*kept, ('PageSize', str(size)), ('Page', str(number))])}"

        last_page = max(0, math.ceil(len(calls) / size) - 1)
        return {
            "calls": [call.resource() for call in shown],
            "end": start + max(0, len(shown) - 1),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if page < last_page else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": page_uri(page),
        }


def build_app(api: RestApi, controls: Sequence[web.RouteDef]) -> web.Application:
    """The control routes, then the REST API for every other path."""
    app = web.Application()
    app.add_routes([*controls, web.route("*", "/{tail:.*}", api.handle)])
    return app


def call_result_switch(faults: Faults) -> Callable[[Body], None]:
    """The body of POST /_control/call-result, {"result": "busy"|..|null, "count": N|null}."""

    def apply(body: Body) -> None:
        result, count = body.get("result"), body.get("count")
        if result not in ("busy", "failed", "no-answer", None):
            raise web.HTTPBadRequest(text='"result" must be busy, failed, no-answer or null')
        if count is not None and (not isinstance(count, int) or count < 1):
            raise web.HTTPBadRequest(text='"count" must be a positive integer or null')
        faults.set_call_result(result, count)

    return apply


def stream_fault_switch(faults: Faults) -> Callable[[Body], None]:
    """The body of POST /_control/stream-fault: {"fault": "drop"|"silence"|"noise"|
    "bad_signature"|null, "drop_after": seconds}."""

    def apply(body: Body) -> None:
        fault, drop_after = body.get("fault"), body.get("drop_after", 2.0)
        if fault not in ("drop", "silence", "noise", "bad_signature", None):
            raise web.HTTPBadRequest(
                text='"fault" must be drop, silence, noise, bad_signature or null'
            )
        if not isinstance(drop_after, int | float) or drop_after <= 0:
            raise web.HTTPBadRequest(text='"drop_after" must be a positive number of seconds')
        faults.set_stream_fault(fault, float(drop_after))

    return apply


# -- helpers -----------------------------------------------------------------------------


async def _read_form(request: web.Request) -> tuple[list[tuple[str, str]], Problem | None]:
    raw = await request.read()
    if not raw:
        return [], None
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True), None
    except (UnicodeDecodeError, ValueError) as err:
        return [], Problem(None, "body", f"the body is not UTF-8 form data: {err}")


def _problem_code(problem: Problem) -> int:
    return UNKNOWN_PARAMETER if problem.rule == "unknown" else CALLS_RESOURCE


def _mismatch_code(err: SpecMismatch) -> int:
    return NOT_FOUND if err.status == 404 else METHOD_NOT_ALLOWED


def _not_found(path: str) -> web.Response:
    return twilio_error(404, NOT_FOUND, f"The requested resource {path} was not found")
