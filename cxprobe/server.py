"""The monitor's one HTTP server: ``/metrics``, ``/healthz``, and provider webhooks.

Webhook handlers (e.g. telephony status callbacks) mount on the same server with
:meth:`HttpServer.add_routes` before it starts, so a deployment exposes a single port.
It binds 127.0.0.1 unless told otherwise: metrics and webhooks are exposed deliberately.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CollectorRegistry

from exporters.exposition import Exposition

#: Returns the monitor's health: a JSON-serialisable mapping whose ``status`` is ``"ok"``
#: when the monitor is serving.
HealthCheck = Callable[[], Mapping[str, Any]]

_INDEX = """cxprobe

/metrics  Prometheus metrics (text format; OpenMetrics on request)
/healthz  health as JSON (HTTP 200 when ok, 503 otherwise)
"""

#: gzip level of /metrics: level 3 compresses 1.5 MB of exposition to ~4 % in ~4 ms; the
#: default 6 takes three times as long for a few KB less.
METRICS_GZIP_LEVEL = 3


class _DebugAccessLogger(AbstractAccessLogger):
    """Access log at debug level: Prometheus scrapes every few seconds and would drown the
    monitor's own log at info."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "http request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "seconds": round(time, 6),
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


class HttpServer:
    """An aiohttp server for one monitor; use as ``async with HttpServer(...) as server``.

    ``port=0`` binds a free port; :attr:`port` reports the bound one once started.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        health: HealthCheck,
        logger: logging.Logger,
        host: str = "127.0.0.1",
        port: int = 9464,
    ) -> None:
        self.host = host
        self.port = port
        self._exposition = Exposition(registry)
        self._health = health
        self._logger = logger
        self._app = web.Application()
        self._app.router.add_get("/", self._index)
        self._app.router.add_get("/metrics", self._metrics)
        self._app.router.add_get("/healthz", self._healthz)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Mount more routes (e.g. provider webhooks); only before the server starts."""
        if self._runner is not None:
            raise RuntimeError("add routes before the HTTP server starts")
        self._app.router.add_routes(routes)

    @property
    def url(self) -> str:
        """The server's base URL (with the bound port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Self:
        runner = web.AppRunner(
            self._app,
            access_log_class=_DebugAccessLogger,
            access_log=self._logger.getChild("access"),
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._logger.info("http server listening", extra={"url": self.url})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- handlers --------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text=_INDEX)

    async def _metrics(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        gzipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        # Rendering (a few ms for 10,000 series, BENCHMARKS.md) and compressing (zlib lets go
        # of the GIL) happen in a worker thread: the timestamps the probes take on the event
        # loop wait at most the interpreter's thread switch interval, not the whole scrape.
        body, content_type = await asyncio.to_thread(self._scrape_body, accept, gzipped)
        headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    def _scrape_body(self, accept: str, gzipped: bool) -> tuple[bytes, str]:
        body, content_type = self._exposition.render(accept)
        if gzipped:
            body = gzip.compress(body, compresslevel=METRICS_GZIP_LEVEL)
        return body, content_type

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            state = dict(self._health())
        except Exception:
            # A broken health check is an unhealthy monitor, not a 500 with a traceback.
            self._logger.exception("health check failed")
            state = {"status": "error"}
        status = 200 if state.get("status") == "ok" else 503
        dumps = functools.partial(json.dumps, default=str)  # datetimes, enums
        return web.json_response(state, status=status, dumps=dumps)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip: listed, or ``*``, with ``q`` > 0
    (an explicit ``gzip`` entry wins over ``*``)."""
    qualities: dict[str, float] = {}
    for coding in accept_encoding.split(","):
        name, *parameters = (part.strip() for part in coding.split(";"))
        quality = next((p[2:] for p in parameters if p.lower().startswith("q=")), "1")
        try:
            qualities[name.lower()] = float(quality)
        except ValueError:
            qualities[name.lower()] = 0.0  # unreadable: not an acceptance
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0
