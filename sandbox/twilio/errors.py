"""Twilio's error responses: the JSON shape every REST error has (code, message, more_info,
status), shared by the Calls and Messages APIs."""

from __future__ import annotations

from aiohttp import web

#: The resource (or path) does not exist.
NOT_FOUND = 20404


def twilio_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
        headers=headers,
    )
