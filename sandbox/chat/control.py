"""Control API of the sandbox chat site, under `/_control/` on the site itself (127.0.0.1 only).

Built like every peer's (sandbox/control.py): every switch answers with the new state, so a
demo script can flip one and see the effect in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from sandbox.control import Body, ControlRoutes, number

PREFIX = "/_control"


def chat_control_routes(
    controls: ControlRoutes,
    switches: Mapping[str, Callable[[bool], None]],
    set_misroute_rate: Callable[[float], None],
) -> list[web.RouteDef]:
    """controls (state, clock, ground truth), POST /_control/<switch> {"on": ...} for each of
    switches, and POST /_control/misroute_rate {"rate": 0..1}."""

    def misroute_rate(body: Body) -> None:
        rate = number(body, "rate")
        if not 0.0 <= rate <= 1.0:
            raise web.HTTPBadRequest(text=f"rate must be between 0 and 1, not {rate}")
        set_misroute_rate(rate)

    for name, setter in switches.items():
        controls.switch(name, setter)
    return controls.post("misroute_rate", misroute_rate).routes()
