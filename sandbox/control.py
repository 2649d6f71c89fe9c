"""The control API of every sandbox peer: JSON switches, the clock shift, ground truth, state.

    routes = (
        ControlRoutes("/_control", peer.state)       # GET /_control/state
        .clock(clock)                                # POST /_control/clock {"offset_seconds": 3600}
        .ground_truth(log)                           # GET /_control/ground-truth
        .switch("outage", peer.set_outage)           # POST /_control/outage {"on": true}
        .request_faults(faults)                      # POST /_control/rate-limit, /server-error
        .routes()
    )

Every POST answers with the peer's state after the change, so a demo script can flip a switch
and see the effect in one call. A bad body is a 400 whose text says what was expected; a
ValueError from a setter is one too, with its message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from aiohttp import web

from sandbox.clock import DeskClock
from sandbox.faults import RequestFaults
from sandbox.ground_truth import GroundTruthLog

Body = dict[str, Any]


class ControlRoutes:
    def __init__(self, prefix: str, state: Callable[[], dict[str, Any]]) -> None:
        """prefix: where the routes live ("" for the root, "/_control", ...); state: the peer's."""
        self._prefix = prefix.rstrip("/")
        self._state = state
        self._routes: list[web.RouteDef] = []
        self.get("state", state)

    def routes(self) -> list[web.RouteDef]:
        return list(self._routes)

    # -- building blocks ---------------------------------------------------------------

    def get(self, name: str, produce: Callable[[], Any]) -> Self:
        """GET prefix/name answers produce() as JSON."""

        async def handler(request: web.Request) -> web.Response:
            return web.json_response(produce())

        self._routes.append(web.get(f"{self._prefix}/{name}", handler))
        return self

    def post(self, name: str, apply: Callable[[Body], None]) -> Self:
        """POST prefix/name hands the JSON object it carries to apply, then answers the state."""

        async def handler(request: web.Request) -> web.Response:
            body = await json_body(request)
            try:
                apply(body)
            except ValueError as err:
                raise web.HTTPBadRequest(text=str(err)) from err
            return web.json_response(self._state())

        self._routes.append(web.post(f"{self._prefix}/{name}", handler))
        return self

    def switch(self, name: str, setter: Callable[[bool], None]) -> Self:
        """POST prefix/name {"on": true|false}."""
        return self.post(name, lambda body: setter(switch_value(body)))

    # -- what every peer has -----------------------------------------------------------

    def clock(self, clock: DeskClock) -> Self:
        """POST prefix/clock {"offset_seconds": N}: shift the peer's idea of "now"."""

        def shift(body: Body) -> None:
            clock.offset_seconds = number(body, "offset_seconds")

        return self.post("clock", shift)

    def ground_truth(self, log: GroundTruthLog) -> Self:
        """GET prefix/ground-truth: every event so far, oldest first."""
        return self.get("ground-truth", log.events)

    def request_faults(self, faults: RequestFaults) -> Self:
        """POST prefix/rate-limit {"count", "retry_after"} and prefix/server-error
        {"count", "status": 500|503}: the next count requests fail."""

        def rate_limit(body: Body) -> None:
            faults.rate_limit(natural(body, "count"), natural(body, "retry_after", 1))

        def server_error(body: Body) -> None:
            status = body.get("status", 500)
            if status not in (500, 503):
                raise web.HTTPBadRequest(text='"status" must be 500 or 503')
            faults.server_error(natural(body, "count"), status)

        return self.post("rate-limit", rate_limit).post("server-error", server_error)


# -- reading bodies ----------------------------------------------------------------------


async def json_body(request: web.Request) -> Body:
    """The request's JSON object; 400 when it is not JSON or not an object."""
    try:
        body = await request.json()
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def switch_value(body: Body) -> bool:
    on = body.get("on")
    if not isinstance(on, bool):
        raise web.HTTPBadRequest(text='expected {"on": true} or {"on": false}')
    return on


def number(body: Body, key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise web.HTTPBadRequest(text=f'expected {{"{key}": <number>}}')
    return float(value)


def natural(body: Body, key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise web.HTTPBadRequest(text=f'"{key}" must be a non-negative integer')
    return value
