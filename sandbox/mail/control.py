"""HTTP control API of the sandbox mail desk, on a port of its own (127.0.0.1 only).

    GET /healthz, GET /state, GET /ground-truth,
    POST /outage {"on": ...}, POST /reject {"on": ...}, POST /clock {"offset_seconds": ...}

The routes sit at the root (the other peers put theirs under `/_control/` of their own API,
which the desk, an SMTP and IMAP service, does not have).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from sandbox.control import ControlRoutes


def build_app(
    controls: ControlRoutes, set_outage: Callable[[bool], None], set_reject: Callable[[bool], None]
) -> web.Application:
    """controls: the desk's state, clock and ground truth routes at the root."""
    routes = (
        controls.get("healthz", lambda: {"ok": True})
        .switch("outage", set_outage)
        .switch("reject", set_reject)
        .routes()
    )
    app = web.Application()
    app.add_routes(routes)
    return app
