"""HTTP control API of the sandbox desk (127.0.0.1 only): switches, clock and ground truth."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from sandbox.ground_truth import Event
from sandbox.net import LOOPBACK


class Controllable(Protocol):
    def state(self) -> dict[str, Any]: ...
    def set_outage(self, on: bool) -> None: ...
    def set_reject(self, on: bool) -> None: ...
    def set_clock_offset(self, seconds: float) -> None: ...
    def ground_truth(self) -> list[Event]: ...


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


async def _switch(request: web.Request) -> bool:
    on = (await _json_body(request)).get("on")
    if not isinstance(on, bool):
        raise web.HTTPBadRequest(text='expected {"on": true} or {"on": false}')
    return on


def build_app(desk: Controllable) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def state(request: web.Request) -> web.Response:
        return web.json_response(desk.state())

    async def outage(request: web.Request) -> web.Response:
        desk.set_outage(await _switch(request))
        return web.json_response(desk.state())

    async def reject(request: web.Request) -> web.Response:
        desk.set_reject(await _switch(request))
        return web.json_response(desk.state())

    async def clock(request: web.Request) -> web.Response:
        offset = (await _json_body(request)).get("offset_seconds")
        if isinstance(offset, bool) or not isinstance(offset, int | float):
            raise web.HTTPBadRequest(text='expected {"offset_seconds": <number>}')
        desk.set_clock_offset(float(offset))
        return web.json_response(desk.state())

    async def ground_truth(request: web.Request) -> web.Response:
        return web.json_response(desk.ground_truth())

    app = web.Application()
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/state", state),
            web.post("/outage", outage),
            web.post("/reject", reject),
            web.post("/clock", clock),
            web.get("/ground-truth", ground_truth),
        ]
    )
    return app


class ControlServer:
    def __init__(self, desk: Controllable, port: int = 0) -> None:
        self.host = LOOPBACK
        self.port = port
        self._runner = web.AppRunner(build_app(desk), access_log=None)

    async def __aenter__(self) -> ControlServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()
