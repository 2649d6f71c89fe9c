"""The HTTP server under every sandbox peer: one aiohttp app on 127.0.0.1, on given or free ports.

    async with HttpServer(app, name="the generic peer", ports=(settings.port,)) as server:
        server.url("/v1/conversations/messages")   # http://127.0.0.1:<the port it got>/...

Several ports serve the same app (the chat site's second origin). A port that is taken fails
the start with an OSError naming the server and the address.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Self

from aiohttp import web

from sandbox.net import LOOPBACK

# aiohttp's own default: how long open requests may take to finish when the server stops.
DEFAULT_SHUTDOWN_TIMEOUT = 60.0


class HttpServer:
    host: str = LOOPBACK

    def __init__(
        self,
        app: web.Application,
        *,
        name: str,
        ports: Sequence[int] = (0,),
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        """ports: one listener each; 0 takes a free port. name says whose server it is."""
        self.name = name
        self._requested = tuple(ports) or (0,)
        self._ports: tuple[int, ...] = ()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports listened on, in the order they were asked for."""
        if not self._ports:
            raise RuntimeError(f"{self.name}'s HTTP server is not running")
        return self._ports

    @property
    def port(self) -> int:
        return self.ports[0]

    def url(self, path: str = "", *, port: int | None = None) -> str:
        """http://127.0.0.1:PORT followed by path; the first port unless another is given."""
        return f"http://{self.host}:{port or self.port}{path}"

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        try:
            self._ports = tuple([await self._listen(port) for port in self._requested])
        except BaseException:
            await self._runner.cleanup()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()

    async def _listen(self, port: int) -> int:
        """Start one more listener of the app on 127.0.0.1:port; returns the port it got."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
        except OSError as err:
            sock.close()
            raise OSError(
                err.errno, f"{self.name} cannot listen on {self.host}:{port}: {err}"
            ) from err
        bound: int = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return bound
