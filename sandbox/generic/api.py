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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from sandbox.control import Body
from sandbox.faults import RequestFaults

SEND_PATH = "/v1/conversations/messages"
CONTROL_PREFIX = "/_control"
MAX_TEXT = 2000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


class Peer(Protocol):
    """What the send API needs from the generic peer."""

    faults: RequestFaults

    def accept(self, inbound: Inbound) -> Accepted: ...


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


def build_app(
    peer: Peer, access_token: str, page_id: str, controls: Sequence[web.RouteDef]
) -> web.Application:
    """The send API, the control routes, and a JSON 404 for anything else."""
    app = web.Application()
    app.add_routes(
        [
            web.post(SEND_PATH, _send_handler(peer, access_token, page_id)),
            *controls,
            web.route("*", "/{tail:.*}", _not_found),
        ]
    )
    return app


def webhook_switch(set_webhook_url: Callable[[str | None], None]) -> Callable[[Body], None]:
    """The body of POST /_control/webhook, {"url": "http..." | null}, applied."""

    def apply(body: Body) -> None:
        url = body.get("url")
        if not (url is None or isinstance(url, str)):
            raise web.HTTPBadRequest(text='expected {"url": "http..." | null}')
        set_webhook_url(url)

    return apply


def _send_handler(peer: Peer, access_token: str, page_id: str) -> Handler:
    async def send(request: web.Request) -> web.Response:
        # Not `or`: an aiohttp response is a mapping, and an empty one is falsy.
        refusal = _unauthorized(request, access_token)
        if refusal is None:
            refusal = _fault_response(peer.faults)  # counts a fault down: only when authorized
        if refusal is not None:
            return refusal
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

    return send


def _unauthorized(request: web.Request, access_token: str) -> web.Response | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), access_token):
        return None
    return error_response(
        401,
        "unauthorized",
        "missing or invalid access token (Authorization: Bearer <token>)",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _fault_response(faults: RequestFaults) -> web.Response | None:
    fault = faults.take()
    if fault is None:
        return None
    if fault == 429:
        return error_response(
            429,
            "rate_limited",
            f"too many requests; retry after {faults.retry_after} s",
            headers={"Retry-After": str(faults.retry_after)},
        )
    return error_response(fault, "server_error", "the platform failed; try again")


async def _not_found(request: web.Request) -> web.Response:
    return error_response(
        404,
        "not_found",
        f"no endpoint {request.method} {request.path}; sends go to POST {SEND_PATH}",
    )
