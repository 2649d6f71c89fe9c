"""The sandbox web-chat site: a support page whose chat widget talks to the chat desk over
WebSocket, served on two loopback ports so the cross-origin iframe variant has a second origin.

`async with ChatSite(profile, workdir) as site:` runs it; everything (sockets, pending answers,
servers, the ground-truth file) is closed when the block ends.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from sandbox.chat.control import control_routes
from sandbox.chat.desk import ChatDesk, ChatSwitches, Frame
from sandbox.chat.page import (
    PageOptions,
    WidgetAssets,
    iframe_host_page,
    shadow_page,
    support_page,
    widget_page,
)
from sandbox.clock import DeskClock, Period
from sandbox.ground_truth import Event, GroundTruthLog
from sandbox.net import LOOPBACK
from sandbox.profile import Profile

_T = TypeVar("_T")
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


class ChatSite:
    """`async with ChatSite(profile, workdir) as site:` runs the web-chat sandbox."""

    host: str = LOOPBACK

    def __init__(self, profile: Profile, workdir: Path) -> None:
        if profile.chat is None:
            raise ValueError(
                "the sandbox profile has no `chat:` section; add one "
                "(see sandbox/profiles/default.yaml)"
            )
        self.profile = profile
        self.settings = profile.chat
        self.workdir = Path(workdir).resolve()
        chat = profile.chat
        self._switches = ChatSwitches(
            outage=chat.outage,
            misroute_rate=chat.misroute_rate,
            page_error=chat.page_error,
            widget_missing=chat.widget_missing,
            alert_on_load=chat.alert_on_load,
        )
        self._clock = DeskClock(profile.clock.offset_seconds)
        self._assets = WidgetAssets.load()
        self._sockets: set[web.WebSocketResponse] = set()
        self._stack = AsyncExitStack()
        self._log: GroundTruthLog | None = None
        self._desk: ChatDesk | None = None
        self._port: int | None = None
        self._alt_port: int | None = None

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._started(self._port)

    @property
    def alt_port(self) -> int:
        """The second origin (same app): the source of the cross-origin iframe."""
        return self._started(self._alt_port)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def alt_url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.alt_port}{path}"

    @property
    def ground_truth_path(self) -> Path:
        return self.workdir / "chat_ground_truth.jsonl"

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

    def set_clock_offset(self, seconds: float) -> None:
        self._clock.offset_seconds = seconds

    def period_now(self) -> Period:
        return self.profile.business_hours.period_at(self._clock.now(), self.profile.zone)

    def state(self) -> dict[str, Any]:
        desk = self._started(self._desk)
        switches = self._switches
        return {
            "outage": switches.outage,
            "page_error": switches.page_error,
            "widget_missing": switches.widget_missing,
            "alert_on_load": switches.alert_on_load,
            "misroute_rate": switches.misroute_rate,
            "clock_offset_seconds": self._clock.offset_seconds,
            "desk_time": self._clock.now().astimezone(self.profile.zone).isoformat(),
            "period": self.period_now(),
            "open_sessions": desk.open_sessions,
            "pending_replies": desk.pending_replies,
            "url": self.url(),
            "alt_url": self.alt_url(),
            "ground_truth_path": str(self.ground_truth_path),
        }

    # -- ground truth ------------------------------------------------------------------

    def ground_truth(self) -> list[Event]:
        return self._started(self._log).events()

    async def wait_for(self, predicate: Callable[[Event], bool], count: int = 1) -> list[Event]:
        """Wait (bound it with asyncio.timeout) until count events match; returns all matches."""
        return await self._started(self._log).wait_for(predicate, count)

    # Same name as MailDesk's, so helpers can wait on either sandbox.
    wait_for_events = wait_for

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> ChatSite:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._log = GroundTruthLog(self.ground_truth_path)
            self._stack.callback(self._log.close)
            self._desk = ChatDesk(
                self.profile, self.settings, self._switches, self._clock, self._log
            )
            runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=_CLOSE_TIMEOUT)
            await runner.setup()
            self._stack.push_async_callback(runner.cleanup)
            # Runs before the runner's cleanup: answers are cancelled and recorded as ended
            # while the log is open, and sockets are closed rather than cut off.
            self._stack.push_async_callback(self._close_sockets)
            self._port = await _serve(runner, self.settings.port)
            self._alt_port = await _serve(runner, self.settings.alt_port)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

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
                *control_routes(self),
            ]
        )
        return app

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
                widget_delay_seconds=self.settings.widget_delay.sample(desk.rng),
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

    @staticmethod
    def _started(part: _T | None) -> _T:
        if part is None:
            raise RuntimeError("the chat site is not running; use `async with ChatSite(...)`")
        return part


async def _serve(runner: web.AppRunner, port: int) -> int:
    """Start one more listener of runner on 127.0.0.1:port; returns the port it got."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
    except OSError as err:
        sock.close()
        raise OSError(err.errno, f"chat site cannot listen on {LOOPBACK}:{port}: {err}") from err
    bound: int = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    return bound
