"""Twilio's webhook requests, admitted only with a valid ``X-Twilio-Signature``."""

from __future__ import annotations

from aiohttp import web
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from probes.rejections import Rejections

SIGNATURE_HEADER = "X-Twilio-Signature"


class SignedRequests:
    """Checks each webhook request's signature over the URL Twilio used; counts refusals."""

    def __init__(self, auth_token: SecretStr, rejections: Rejections) -> None:
        self._validator = RequestValidator(auth_token.get_secret_value())
        self.rejections = rejections

    async def form(self, request: web.Request, base_url: str | None) -> dict[str, str] | None:
        """The request's form fields if it is signed for ``base_url`` + its path, else None
        (refused, logged and counted). No base URL: nothing can be verified, all is refused."""
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if (
            base_url
            and signature
            and self._validator.validate(base_url + request.path_qs, params, signature)
        ):
            return params
        self.rejections.record(
            f"{'invalid' if signature else 'missing'} {SIGNATURE_HEADER}",
            path=request.path,
            remote=request.remote,
        )
        return None


def forbidden() -> web.Response:
    """The answer to a request whose signature did not verify."""
    return web.Response(status=403, text=f"invalid or missing {SIGNATURE_HEADER}")
