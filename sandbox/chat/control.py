"""Control API of the sandbox chat site, under `/_control/` on the site itself (127.0.0.1 only).

Same shape as the mail desk's (sandbox/mail/control.py): every switch answers with the new state,
so a demo script can flip one and see the effect in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from sandbox.ground_truth import Event

PREFIX = "/_control"


class ChatControllable(Protocol):
    def state(self) -> dict[str, Any]: ...
    def set_outage(self, on: bool) -> None: ...
    def set_page_error(self, on: bool) -> None: ...
    def set_widget_missing(self, on: bool) -> None: ...
    def set_alert_on_load(self, on: bool) -> None: ...
    def set_misroute_rate(self, rate: float) -> None: ...
    def set_clock_offset(self, seconds: float) -> None: ...
    def ground_truth(self) -> list[Event]: ...


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


async def _number(request: web.Request, key: str) -> float:
    value = (await _json_object(request)).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise web.HTTPBadRequest(text=f'expected {{"{key}": <number>}}')
    return float(value)


def control_routes(site: ChatControllable) -> list[web.RouteDef]:
    switches: dict[str, Callable[[bool], None]] = {
        "outage": site.set_outage,
        "page_error": site.set_page_error,
        "widget_missing": site.set_widget_missing,
        "alert_on_load": site.set_alert_on_load,
    }

    def switch(setter: Callable[[bool], None]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            on = (await _json_object(request)).get("on")
            if not isinstance(on, bool):
                raise web.HTTPBadRequest(text='expected {"on": true} or {"on": false}')
            setter(on)
            return web.json_response(site.state())

        return handler

    async def state(request: web.Request) -> web.Response:
        return web.json_response(site.state())

    async def misroute_rate(request: web.Request) -> web.Response:
        rate = await _number(request, "rate")
        if not 0.0 <= rate <= 1.0:
            raise web.HTTPBadRequest(text=f"rate must be between 0 and 1, not {rate}")
        site.set_misroute_rate(rate)
        return web.json_response(site.state())

    async def clock(request: web.Request) -> web.Response:
        site.set_clock_offset(await _number(request, "offset_seconds"))
        return web.json_response(site.state())

    async def ground_truth(request: web.Request) -> web.Response:
        return web.json_response(site.ground_truth())

    return [
        web.get(f"{PREFIX}/state", state),
        *(web.post(f"{PREFIX}/{name}", switch(setter)) for name, setter in switches.items()),
        web.post(f"{PREFIX}/misroute_rate", misroute_rate),
        web.post(f"{PREFIX}/clock", clock),
        web.get(f"{PREFIX}/ground-truth", ground_truth),
    ]
