"""The generic peer's HTTP face: the send API and its `/_control` switches.

    POST /v1/conversations/messages
    Authorization: Bearer <access_token>
    {"recipient": {"id": "<page id>"}, "sender": {"id": "<customer id>"},
     "message": {"text": "...", "metadata": {"ref": "CXP-..."}}}
    -> 201 {"message_id": "m_...", "created_at": "<ISO 8601, UTC>"}

A request is checked in this order: the bearer token (401), the fault switches (429 with
Retry-After, 500/503), then the body (400). Every error is JSON,
`{"error": {"type": ..., "code": <HTTP status>, "message": ..., "field": ...}}`, and a bad body
names the field (`message.text`), so a client bug reads as one. Unknown keys are refused: a
misspelt `metadata` would otherwise lose the reference the monitor matches replies with.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aiohttp import web

from sandbox.generic.profile import GenericPeerFaults
from sandbox.ground_truth import Event

SEND_PATH = "/v1/conversations/messages"
CONTROL_PREFIX = "/_control/"
MAX_TEXT = 2000


@dataclass(frozen=True)
class Inbound:
    """A customer message the API accepted."""

    sender_id: str
    text: str
    ref: str | None


@dataclass(frozen=True)
class Accepted:
    message_id: str
    created_at: str


class BadRequest(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class PeerFaults:
    """Counted request faults: "the next N sends" get 429 or a server error."""

    def __init__(self, initial: GenericPeerFaults) -> None:
        self._rate_limited = initial.rate_limit
        self._retry_after = initial.retry_after
        self._server_errors = initial.server_error
        self._server_error_status: Literal[500, 503] = initial.server_error_status

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        self._rate_limited, self._retry_after = count, retry_after

    def server_error(self, count: int, status: Literal[500, 503] = 500) -> None:
        self._server_errors, self._server_error_status = count, status

    def take(self) -> web.Response | None:
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return error_response(
                429,
                "rate_limited",
                f"too many requests; retry after {self._retry_after} s",
                headers={"Retry-After": str(self._retry_after)},
            )
        if self._server_errors > 0:
            self._server_errors -= 1
            status = self._server_error_status
            return error_response(status, "server_error", "the platform failed; try again")
        return None

    def state(self) -> dict[str, Any]:
        return {
            "rate_limited_requests_left": self._rate_limited,
            "retry_after_seconds": self._retry_after,
            "server_errors_left": self._server_errors,
            "server_error_status": self._server_error_status,
        }


class Peer(Protocol):
    """What the HTTP face needs from the generic peer."""

    faults: PeerFaults

    def accept(self, inbound: Inbound) -> Accepted: ...
    def state(self) -> dict[str, Any]: ...
    def set_outage(self, on: bool) -> None: ...
    def set_webhook_url(self, url: str | None) -> None: ...
    def set_clock_offset(self, seconds: float) -> None: ...
    def ground_truth(self) -> list[Event]: ...


def error_response(
    status: int,
    kind: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"type": kind, "code": status, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status, headers=headers)


def parse_send(body: Any, page_id: str) -> Inbound:
    """The message in a send request's JSON body; BadRequest names the first bad field."""
    top = _object(body, "(body)", required=("recipient", "sender", "message"))
    recipient = _object(top["recipient"], "recipient", required=("id",))
    recipient_id = _string(recipient["id"], "recipient.id")
    if recipient_id != page_id:
        raise BadRequest(
            "recipient.id",
            f"unknown recipient {recipient_id!r}; this platform's page is {page_id!r}",
        )
    sender = _object(top["sender"], "sender", required=("id",))
    sender_id = _string(sender["id"], "sender.id")
    message = _object(top["message"], "message", required=("text",), optional=("metadata",))
    text = _string(message["text"], "message.text")
    if len(text) > MAX_TEXT:
        raise BadRequest("message.text", f"must be at most {MAX_TEXT} characters")
    ref: str | None = None
    if "metadata" in message:
        metadata = _object(message["metadata"], "message.metadata", optional=("ref",))
        if "ref" in metadata:
            ref = _string(metadata["ref"], "message.metadata.ref")
    return Inbound(sender_id, text, ref)


def _object(
    value: Any, field: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(field, f"{field} must be a JSON object")
    for key in required:
        if key not in value:
            name = key if field == "(body)" else f"{field}.{key}"
            raise BadRequest(name, f"{name} is required")
    for key in value:
        if key not in required and key not in optional:
            name = key if field == "(body)" else f"{field}.{key}"
            allowed = ", ".join((*required, *optional))
            raise BadRequest(name, f"unknown field {name!r} (allowed here: {allowed})")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(field, f"{field} must be a non-empty string")
    return value


def build_app(peer: Peer, access_token: str, page_id: str) -> web.Application:
    async def send(request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), access_token):
            return error_response(
                401,
                "unauthorized",
                "missing or invalid access token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        fault = peer.faults.take()
        if fault is not None:
            return fault
        try:
            body = await request.json()
        except ValueError as err:
            return error_response(400, "invalid_request", f"body is not JSON: {err}", "(body)")
        try:
            inbound = parse_send(body, page_id)
        except BadRequest as err:
            return error_response(400, "invalid_request", err.message, err.field)
        accepted = peer.accept(inbound)
        return web.json_response(
            {"message_id": accepted.message_id, "created_at": accepted.created_at}, status=201
        )

    async def state(request: web.Request) -> web.Response:
        return web.json_response(peer.state())

    async def outage(request: web.Request) -> web.Response:
        on = (await _json_body(request)).get("on")
        if not isinstance(on, bool):
            raise web.HTTPBadRequest(text='expected {"on": true} or {"on": false}')
        peer.set_outage(on)
        return web.json_response(peer.state())

    async def webhook(request: web.Request) -> web.Response:
        url = (await _json_body(request)).get("url")
        if not (url is None or isinstance(url, str)):
            raise web.HTTPBadRequest(text='expected {"url": "http..." | null}')
        try:
            peer.set_webhook_url(url)
        except ValueError as err:
            raise web.HTTPBadRequest(text=str(err)) from err
        return web.json_response(peer.state())

    async def rate_limit(request: web.Request) -> web.Response:
        body = await _json_body(request)
        peer.faults.rate_limit(_natural(body, "count"), _natural(body, "retry_after", 1))
        return web.json_response(peer.state())

    async def server_error(request: web.Request) -> web.Response:
        body = await _json_body(request)
        status = body.get("status", 500)
        if status not in (500, 503):
            raise web.HTTPBadRequest(text='"status" must be 500 or 503')
        peer.faults.server_error(_natural(body, "count"), status)
        return web.json_response(peer.state())

    async def clock(request: web.Request) -> web.Response:
        offset = (await _json_body(request)).get("offset_seconds")
        if isinstance(offset, bool) or not isinstance(offset, int | float):
            raise web.HTTPBadRequest(text='expected {"offset_seconds": <number>}')
        peer.set_clock_offset(float(offset))
        return web.json_response(peer.state())

    async def ground_truth(request: web.Request) -> web.Response:
        return web.json_response(peer.ground_truth())

    async def not_found(request: web.Request) -> web.Response:
        return error_response(
            404,
            "not_found",
            f"no endpoint {request.method} {request.path}; sends go to POST {SEND_PATH}",
        )

    app = web.Application()
    app.add_routes(
        [
            web.post(SEND_PATH, send),
            web.get(f"{CONTROL_PREFIX}state", state),
            web.post(f"{CONTROL_PREFIX}outage", outage),
            web.post(f"{CONTROL_PREFIX}webhook", webhook),
            web.post(f"{CONTROL_PREFIX}rate-limit", rate_limit),
            web.post(f"{CONTROL_PREFIX}server-error", server_error),
            web.post(f"{CONTROL_PREFIX}clock", clock),
            web.get(f"{CONTROL_PREFIX}ground-truth", ground_truth),
            web.route("*", "/{tail:.*}", not_found),
        ]
    )
    return app


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _natural(body: dict[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise web.HTTPBadRequest(text=f'"{key}" must be a non-negative integer')
    return value
