"""HTTP control API of the sandbox mail desk, on a port of its own (127.0.0.1 only).

    GET /healthz, GET /state, GET /ground-truth,
    POST /outage {"on": ...}, POST /reject {"on": ...}, POST /defer {"on": ...},
    POST /clock {"offset_seconds": ...}

The routes sit at the root (the other peers put theirs under `/_control/` of their own API,
which the desk, an SMTP and IMAP service, does not have).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from sandbox.control import ControlRoutes

Switch = Callable[[bool], None]


def build_app(controls: ControlRoutes, switches: Mapping[str, Switch]) -> web.Application:
    """controls: the desk's state, clock and ground truth routes at the root; switches: the
    desk's on/off switches by route name (outage, reject, defer)."""
    controls.get("healthz", lambda: {"ok": True})
    for name, setter in switches.items():
        controls.switch(name, setter)
    routes = controls.routes()
    app = web.Application()
    app.add_routes(routes)
    return app
