"""The sandbox web-chat site: a support page whose chat widget talks to the chat desk over
WebSocket, served on two loopback ports so the cross-origin iframe variant has a second origin.

`async with ChatSite(profile, workdir) as site:` runs it; everything (sockets, pending answers,
servers, the ground-truth file) is closed when the block ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from sandbox.chat.control import PREFIX, chat_control_routes
from sandbox.chat.desk import ChatDesk, ChatSwitches, Frame
from sandbox.chat.page import (
    PageOptions,
    WidgetAssets,
    iframe_host_page,
    shadow_page,
    support_page,
    widget_page,
)
from sandbox.peer import SandboxPeer, hours_and_clock
from sandbox.profile import Profile

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A client that does not answer the close handshake must not hold up the site's shutdown.
_CLOSE_TIMEOUT = 2.0


class _SocketOutbox:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def send(self, frame: Frame) -> bool:
        if self._ws.closed:
            return False
        try:
            await self._ws.send_json(frame)
        except ConnectionResetError:  # closed by the peer while the frame was being written
            return False
        return True


class ChatSite(SandboxPeer):
    """`async with ChatSite(profile, workdir) as site:` runs the web-chat sandbox."""

    ground_truth_file = "chat_ground_truth.jsonl"
    not_running = "the chat site is not running; use `async with ChatSite(...)`"
    control_prefix = PREFIX

    def __init__(self, profile: Profile, workdir: Path) -> None:
        if profile.chat is None:
            raise ValueError(
                "the sandbox profile has no `chat:` section; add one "
                "(see sandbox/profiles/default.yaml)"
            )
        super().__init__(workdir, **hours_and_clock(profile))
        self.profile = profile
        self.settings = profile.chat
        chat = profile.chat
        self._switches = ChatSwitches(
            outage=chat.outage,
            misroute_rate=chat.misroute_rate,
            page_error=chat.page_error,
            widget_missing=chat.widget_missing,
            alert_on_load=chat.alert_on_load,
        )
        self._assets = WidgetAssets.load()
        self._sockets: set[web.WebSocketResponse] = set()
        self._desk: ChatDesk | None = None

    # -- addresses ---------------------------------------------------------------------

    @property
    def alt_port(self) -> int:
        """The second origin (same app): the source of the cross-origin iframe."""
        return self._started(self._http).ports[1]

    def url(self, path: str = "/") -> str:
        return self._started(self._http).url(path)

    def alt_url(self, path: str = "/") -> str:
        return self._started(self._http).url(path, port=self.alt_port)

    # -- switches ----------------------------------------------------------------------

    def set_outage(self, on: bool) -> None:
        self._switches.outage = on

    def set_page_error(self, on: bool) -> None:
        self._switches.page_error = on

    def set_widget_missing(self, on: bool) -> None:
        self._switches.widget_missing = on

    def set_alert_on_load(self, on: bool) -> None:
        self._switches.alert_on_load = on

    def set_misroute_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"misroute rate must be between 0 and 1, not {rate}")
        self._switches.misroute_rate = rate

    def state(self) -> dict[str, Any]:
        desk = self._started(self._desk)
        switches = self._switches
        return {
            "outage": switches.outage,
            "page_error": switches.page_error,
            "widget_missing": switches.widget_missing,
            "alert_on_load": switches.alert_on_load,
            "misroute_rate": switches.misroute_rate,
            **self.clock_state(),
            "open_sessions": desk.open_sessions,
            "pending_replies": desk.pending_replies,
            "url": self.url(),
            "alt_url": self.alt_url(),
            "ground_truth_path": str(self.ground_truth_path),
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def _start(self, stack: AsyncExitStack) -> None:
        self._desk = ChatDesk(self.profile, self.settings, self._switches, self._clock, self._truth)
        ports = [self.settings.port, self.settings.alt_port]
        await self._serve(self._app(), "chat site", ports, _CLOSE_TIMEOUT)
        # Runs before the server stops: answers are cancelled and recorded as ended while the
        # log is open, and sockets are closed rather than cut off.
        stack.push_async_callback(self._close_sockets)

    async def _close_sockets(self) -> None:
        await self._started(self._desk).close_all("site_stopped")
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"site stopped")

    # -- HTTP --------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                *(web.get(path, self._page(render)) for path, render in self._pages().items()),
                web.get("/ws", self._socket),
                *self._control_routes(),
            ]
        )
        return app

    def _control_routes(self) -> list[web.RouteDef]:
        switches = {
            "outage": self.set_outage,
            "page_error": self.set_page_error,
            "widget_missing": self.set_widget_missing,
            "alert_on_load": self.set_alert_on_load,
        }
        return chat_control_routes(self._controls(), switches, self.set_misroute_rate)

    def _pages(self) -> dict[str, Callable[[web.Request, PageOptions], str]]:
        """Every page variant by path; the widget DOM is the same in each."""
        assets = self._assets
        return {
            "/": lambda request, options: support_page(assets, options),
            "/iframe-same": lambda request, options: iframe_host_page("/widget", options),
            "/iframe-cross": lambda request, options: iframe_host_page(
                self._other_origin(request), options
            ),
            "/widget": lambda request, options: widget_page(assets, options),
            "/shadow": lambda request, options: shadow_page(assets, options),
        }

    def _page(self, render: Callable[[web.Request, PageOptions], str]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if self._switches.page_error:
                return web.Response(
                    status=500,
                    text="500 Internal Server Error: the support site is down "
                    "(sandbox page_error switch)\n",
                    headers={"Cache-Control": "no-store"},
                )
            desk = self._started(self._desk)
            options = PageOptions(
                widget=not self._switches.widget_missing,
                widget_delay_seconds=self.settings.widget_delay.sample(desk.streams.latency),
                alert_on_load=self._switches.alert_on_load,
            )
            return web.Response(
                text=render(request, options),
                content_type="text/html",
                headers={"Cache-Control": "no-store"},
            )

        return handler

    def _other_origin(self, request: web.Request) -> str:
        """The widget's URL on the port this request did not come in on."""
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local_port = sockname[1] if sockname else self.port
        return self.url("/widget") if local_port == self.alt_port else self.alt_url("/widget")

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, timeout=_CLOSE_TIMEOUT)
        await ws.prepare(request)
        session = self._started(self._desk).session(_SocketOutbox(ws))
        self._sockets.add(ws)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT and not await session.handle(message.data):
                    break
        finally:
            self._sockets.discard(ws)
            await session.close("socket_closed")
            await ws.close()
        return ws
