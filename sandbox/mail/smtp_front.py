"""The desk's inbound SMTP server: aiosmtpd served from the running event loop.

No aiosmtpd Controller: its thread and private loop would make the desk's state shared across
threads. Three TLS modes let a client be tested against each: plain, STARTTLS, implicit TLS.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sandbox.net import LOOPBACK

TlsMode = Literal["none", "starttls", "implicit"]
# Returns None to accept the recipient, or the full SMTP reply to refuse it.
RcptCheck = Callable[[str], str | None]
# Called with (mail_from, recipients, raw message) once DATA is complete.
MessageSink = Callable[[str, list[str], bytes], Awaitable[None]]


class _Handler:
    def __init__(self, check_rcpt: RcptCheck, sink: MessageSink) -> None:
        self._check_rcpt = check_rcpt
        self._sink = sink

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self._check_rcpt(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)  # decode_data=False
        await self._sink(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        return "250 2.0.0 OK: queued"


class _Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self._expected = (username.encode(), password.encode())

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login, auth_data.password) == self._expected
        )
        # handled=False makes aiosmtpd send the 235/535 itself; its default (True) sends nothing.
        return AuthResult(success=ok, handled=False)


class SmtpFront:
    """Serves SMTP on 127.0.0.1 until closed; `port` is known once started."""

    def __init__(
        self,
        check_rcpt: RcptCheck,
        sink: MessageSink,
        *,
        port: int = 0,
        tls: TlsMode = "none",
        tls_context: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        hostname: str = "mx.sandbox.localhost",
    ) -> None:
        if tls != "none" and tls_context is None:
            raise ValueError(f"SMTP tls mode {tls!r} needs a server TLS context")
        self.host = LOOPBACK
        self.port = port
        self.tls = tls
        self._handler = _Handler(check_rcpt, sink)
        self._tls_context = tls_context
        self._auth = auth
        self._hostname = hostname
        self._server: asyncio.Server | None = None

    def _protocol(self) -> SMTP:
        options: dict[str, Any] = {
            # A fixed name: SMTP() otherwise calls socket.getfqdn(), a DNS lookup per connection.
            "hostname": self._hostname,
            "loop": asyncio.get_running_loop(),
        }
        if self.tls == "starttls":
            options.update(tls_context=self._tls_context, require_starttls=True)
        if self._auth is not None:
            options.update(
                authenticator=_Authenticator(*self._auth),
                auth_required=True,
                # Plain mode with AUTH exists to test clients that allow it; TLS modes insist.
                auth_require_tls=self.tls != "none",
            )
        with warnings.catch_warnings():
            # aiosmtpd warns when AUTH is allowed without TLS; that is this mode's purpose.
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            return SMTP(self._handler, **options)

    async def __aenter__(self) -> SmtpFront:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol,
            self.host,
            self.port,
            ssl=self._tls_context if self.tls == "implicit" else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
