"""A minimal async LMTP client (RFC 2033) over asyncio streams.

aiosmtplib speaks SMTP only; LMTP differs in the greeting verb (LHLO) and in returning one
reply per accepted recipient after DATA, which is what tells us the message is in the mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass


class LmtpError(Exception):
    """The LMTP server refused a command; carries the reply code and text."""

    def __init__(self, stage: str, code: int, text: str) -> None:
        super().__init__(f"LMTP {stage} refused: {code} {text}")
        self.stage = stage
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Reply:
    code: int
    text: str


def dot_stuff(message: bytes) -> bytes:
    """Normalise line endings to CRLF, double leading dots and append the end-of-data line."""
    lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"".join(line + b"\r\n" for line in stuffed) + b".\r\n"


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    texts: list[str] = []
    while True:
        raw = await reader.readline()
        if not raw:
            raise ConnectionError("LMTP server closed the connection")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        texts.append(line[4:])
        # "250-..." continues a multi-line reply, "250 ..." ends it.
        if len(line) < 4 or line[3] != "-":
            return Reply(int(line[:3]), "\n".join(texts))


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stage: str, line: str, ok: int
) -> Reply:
    writer.write(line.encode() + b"\r\n")
    await writer.drain()
    reply = await _read_reply(reader)
    if reply.code // 100 != ok // 100:
        raise LmtpError(stage, reply.code, reply.text)
    return reply


async def send(
    host: str,
    port: int,
    mail_from: str,
    recipients: Sequence[str],
    message: bytes,
    *,
    lhlo_name: str = "sandbox.localhost",
) -> list[Reply]:
    """Deliver message to every recipient; raise LmtpError unless all of them accepted it.

    mail_from may be "" for a null reverse path (auto-replies, RFC 3834).
    Returns the per-recipient DATA replies in recipient order. Callers bound the time with
    asyncio.timeout.
    """
    # Accept "<addr>" as well as "addr": SMTP servers such as aiosmtpd keep "<>" for null paths.
    mail_from = mail_from.strip().removeprefix("<").removesuffix(">")
    recipients = [r.strip().removeprefix("<").removesuffix(">") for r in recipients]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        greeting = await _read_reply(reader)
        if greeting.code != 220:
            raise LmtpError("greeting", greeting.code, greeting.text)
        await _command(reader, writer, "LHLO", f"LHLO {lhlo_name}", 250)
        await _command(reader, writer, "MAIL FROM", f"MAIL FROM:<{mail_from}>", 250)
        for rcpt in recipients:
            await _command(reader, writer, "RCPT TO", f"RCPT TO:<{rcpt}>", 250)
        await _command(reader, writer, "DATA", "DATA", 354)
        writer.write(dot_stuff(message))
        await writer.drain()
        replies = [await _read_reply(reader) for _ in recipients]
        for rcpt, reply in zip(recipients, replies, strict=True):
            if reply.code // 100 != 2:
                raise LmtpError(f"DATA for {rcpt}", reply.code, reply.text)
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return replies
    finally:
        writer.close()
        # The server may drop the socket right after QUIT.
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
